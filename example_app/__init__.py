"""A small, real app that uses flask-omi: landing page, set-up step, protected dashboard.

``create_app()`` reads ``OMI_APP_ID``, ``OMI_API_KEY``, ``OMI_API_BASE`` and ``SECRET_KEY`` from the
environment; ``python -m example_app`` starts the fake OMI beside it when ``OMI_APP_ID`` is unset.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from flask import Flask, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from flask_omi import OmiBlueprint, current_omi_user, omi_login_required
from flask_omi.validation import is_valid_uid

from .store import SetupStore

ENV_KEYS = ("OMI_APP_ID", "OMI_API_KEY", "OMI_API_BASE", "SECRET_KEY")


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secrets.token_hex(32),
        SESSION_COOKIE_SAMESITE="Lax",
        EXAMPLE_DB=os.path.join(app.instance_path, "example.sqlite3"),
    )
    app.config.update({key: os.environ[key] for key in ENV_KEYS if os.environ.get(key)})
    app.config.update(config or {})
    os.makedirs(os.path.dirname(app.config["EXAMPLE_DB"]) or ".", exist_ok=True)
    setups = SetupStore(app.config["EXAMPLE_DB"])
    app.extensions["example_setups"] = setups

    omi = OmiBlueprint()

    @omi.setup_checker
    def setup_done(uid: str) -> bool:
        return setups.is_complete(uid)

    app.register_blueprint(omi)

    @app.get("/")
    def index() -> str:
        return render_template("index.html", user=current_omi_user)

    @app.get("/dashboard")
    @omi_login_required
    def dashboard() -> str:
        uid = current_omi_user.uid
        return render_template("dashboard.html", uid=uid, display_name=setups.display_name(uid))

    @app.route("/setup", methods=["GET", "POST"])
    def setup() -> str | Response:
        """The set-up step OMI opens with ``?uid=`` before it enables the app for a user."""
        uid = request.values.get("uid", "")
        if not is_valid_uid(uid):
            abort(400, "This page must be opened from OMI, with a valid ?uid=.")
        if request.method == "POST":
            name = request.form.get("display_name", "").strip()[:60]
            if not name:
                return render_template("setup.html", uid=uid, error="Please choose a display name.")
            setups.complete(uid, name)
            return redirect(url_for("setup", uid=uid, done=1))
        return render_template("setup.html", uid=uid, done=request.args.get("done"))

    return app
