"""``python -m example_app``: run the example, against the fake OMI unless OMI_APP_ID is set.

Options: ``--port`` (default 5000) and ``--fake-omi-port`` (default 8765). Everything listens on
127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
from urllib.parse import urlencode

from flask import Flask, redirect, request, url_for
from werkzeug.wrappers import Response

from flask_omi import current_omi_user, omi_login_required
from flask_omi.testing import FakeOmi, connect_app
from flask_omi.testing.server import answer_loopback_hosts_only

from . import create_app, require_csrf_token

DEMO_APP_ID = "example-app"
DEMO_UID = "fake-user-1"
#: The one signing secret OMI issues an app, for its webhooks and its chat tools.
DEMO_SIGNING_SECRET = "whsec_" + secrets.token_hex(16)


def demo_app(port: int, fake_port: int, db_path: str | None = None) -> tuple[Flask, FakeOmi]:
    """The example wired to a fake OMI on loopback, with the default uid already set up."""
    base = f"http://127.0.0.1:{port}"
    fake = FakeOmi().start(fake_port)
    config = {
        "OMI_APP_ID": DEMO_APP_ID,
        "OMI_API_BASE": fake.url,
        "OMI_API_KEY": "sk_demo_" + secrets.token_hex(16),  # the fake registers the app with it
        "OMI_SIGNING_SECRET": DEMO_SIGNING_SECRET,
        "OMI_EXTERNAL_URL": base,
    }
    app = create_app({**config, "EXAMPLE_DB": db_path} if db_path else config)
    # The fake is set up with exactly the URLs `flask omi check` prints for pasting into OMI.
    connect_app(
        fake,
        fake.url,
        app,
        base,
        name="Example OMI app",
        auth_steps=[{"name": "Set up Example OMI app", "url": f"{base}/setup"}],
    )
    fake.seed(DEMO_UID, memories=["Likes green tea", "Is learning the cello"])
    app.extensions["example_setups"].complete(DEMO_UID, "Demo user")

    app.jinja_env.globals["demo"] = True
    app.jinja_env.globals["demo_chat_url"] = lambda uid: (
        f"{fake.url}/_fake/chat?{urlencode({'app_id': DEMO_APP_ID, 'uid': uid})}"
    )

    @app.post("/demo/send-conversation")
    @omi_login_required
    def demo_send_conversation() -> Response:
        """Demo only: ask the fake OMI to post a conversation to this app's webhook, signed."""
        require_csrf_token()
        topic = secrets.choice(["the weekend hike", "a book club pick", "the garden plan", "a recipe swap"])
        conversation = fake.make_conversation(f"Talked about {topic}")
        fake.trigger(DEMO_APP_ID, current_omi_user.uid, conversation)
        return redirect(url_for("dashboard"))

    answer_loopback_hosts_only(app)

    @app.before_request
    def one_host_only() -> Response | None:
        # Cookies for localhost and 127.0.0.1 are separate jars; the App Home URL uses 127.0.0.1.
        if request.host.split(":")[0] == "localhost":
            return redirect(request.url.replace("//localhost", "//127.0.0.1", 1))
        return None

    return app, fake


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m example_app")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    parser.add_argument("--fake-omi-port", type=int, default=8765)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if os.environ.get("OMI_APP_ID"):
        app = create_app()
        print(f"Example app for OMI app {app.config['OMI_APP_ID']} on http://127.0.0.1:{args.port}")
    else:
        app, fake = demo_app(args.port, args.fake_omi_port)
        print(f"Fake OMI on {fake.url} (no OMI_APP_ID set, so the demo uses it)")
        print(f"Open http://127.0.0.1:{args.port} and sign in (try uid {DEMO_UID})")
    app.run(host="127.0.0.1", port=args.port, debug=False)


if __name__ == "__main__":
    main()
