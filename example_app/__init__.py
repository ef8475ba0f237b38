"""A small, real app that uses flask-omi: landing page, protected dashboard, a set-up step.

The set-up step (choose a display name) comes after sign-in, not before: OMI opens set-up links
with nothing but an unsigned ``?uid=``, so a page reached that way cannot tell who is at the
keyboard, and a form that wrote for that uid would let anyone write for anyone.

``create_app()`` reads ``OMI_APP_ID``, ``OMI_API_KEY``, ``OMI_API_BASE``, ``OMI_SIGNING_SECRET``,
``OMI_EXTERNAL_URL`` and ``SECRET_KEY`` from the environment; ``python -m example_app`` starts the
fake OMI beside it when ``OMI_APP_ID`` is unset.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, abort, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from flask_omi import (
    ConversationCreated,
    OmiApiError,
    OmiBlueprint,
    OmiWebhooks,
    current_omi_user,
    omi_client,
    omi_logged_in,
    omi_login_required,
)

from .chat_tools import make_tools
from .store import ExampleStore

ENV_KEYS = (
    "OMI_APP_ID",
    "OMI_API_KEY",
    "OMI_API_BASE",
    "OMI_SIGNING_SECRET",
    "OMI_EXTERNAL_URL",
    "SECRET_KEY",
)


def create_app(
    config: dict[str, Any] | None = None, *, before: Callable[[Flask], None] | None = None
) -> Flask:
    """The example app; ``before(app)`` runs once its configuration is read and before anything
    is registered (example_app.production sets up Celery there)."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secrets.token_hex(32),
        SESSION_COOKIE_SAMESITE="Lax",
        EXAMPLE_DB=os.path.join(app.instance_path, "example.sqlite3"),
    )
    app.config.update({key: os.environ[key] for key in ENV_KEYS if os.environ.get(key)})
    app.config.update(config or {})
    if before is not None:
        before(app)
    # A code sent to the user's OMI app before a sensitive action: it needs the API key to send the
    # code and the public URL to name the site in it; with the signing secret, the code can also be
    # sent to the app in OMI's chat (a way in that nobody who merely knows the uid can flood).
    confirms = bool(app.config.get("OMI_API_KEY") and app.config.get("OMI_EXTERNAL_URL"))
    app.config.setdefault("OMI_CONFIRM_SIGNIN", "step-up" if confirms else False)
    if app.config.get("OMI_SIGNING_SECRET"):
        app.config.setdefault("OMI_CONFIRM_CHANNELS", ("notification", "chat"))
    os.makedirs(os.path.dirname(app.config["EXAMPLE_DB"]) or ".", exist_ok=True)
    setups = ExampleStore(app.config["EXAMPLE_DB"])
    app.extensions["example_setups"] = setups

    # No setup_checker: OMI may enable the app at once, and the display name is asked for after
    # sign-in, when the uid is known to come from a sign-in this browser started.
    omi = OmiBlueprint()

    @omi.user_loader
    def load_user(uid: str) -> ExampleUser | None:
        # A uid is a user of this app once it has signed in here; the chat tool requires that.
        return ExampleUser(uid) if setups.knows(uid) else None

    app.register_blueprint(omi)
    omi_logged_in.connect(lambda sender, uid, **_: setups.remember_user(uid), app, weak=False)
    if app.config.get("OMI_SIGNING_SECRET"):
        app.register_blueprint(make_tools(setups))
    else:
        # Unsigned, the search_notes tool would answer anyone who finds its URL with any user's
        # notes: without the app's signing secret from OMI, the example offers no tools at all.
        app.logger.warning("OMI_SIGNING_SECRET is not set: the example's chat tools are off")

    hooks = OmiWebhooks()

    # With a Celery app (example_app.production), the handler runs on a worker and OMI's request
    # is answered at once; without one, inside the request.
    @hooks.on_conversation_created(background="celery" in app.extensions)
    def conversation_created(event: ConversationCreated) -> None:
        title = event.structured.title or "(untitled)"
        app.logger.info("OMI sent conversation %s for uid %s", event.id, event.uid)
        setups.record_conversation(event.uid, event.id, title)

    app.register_blueprint(hooks)

    @app.get("/")
    def index() -> str:
        return render_template("index.html", user=current_omi_user)

    @app.get("/dashboard")
    @omi_login_required
    def dashboard() -> str:
        uid = current_omi_user.uid
        memories, problem = None, None
        if app.config.get("OMI_API_KEY"):
            try:
                memories = omi_client().get_memories(uid, limit=20)
            except OmiApiError as error:
                problem = f"OMI did not answer ({error.error_code})."
        return render_template(
            "dashboard.html",
            uid=uid,
            display_name=setups.display_name(uid),
            memories=memories,
            problem=problem,
            received=setups.received_conversations(uid),
            notes=setups.notes(uid),
            csrf_token=csrf_token(),
        )

    @app.post("/memories")
    @omi_login_required
    def add_memory() -> Response:
        require_csrf_token()
        content = request.form.get("content", "").strip()[:500]
        if content:
            try:
                omi_client().create_memories(current_omi_user.uid, memories=[{"content": content}])
                flash("Memory added to OMI.")
            except OmiApiError as error:
                flash(f"OMI refused the memory ({error.error_code}).")
        return redirect(url_for("dashboard"))

    @app.post("/notes")
    @omi_login_required
    def add_note() -> Response:
        require_csrf_token()
        text = request.form.get("note", "").strip()[:500]
        if text:
            setups.add_note(current_omi_user.uid, text)
            flash("Note saved. Ask OMI's chat about it.")
        return redirect(url_for("dashboard"))

    @app.route("/notes/delete", methods=["GET", "POST"])
    @omi_login_required(confirmed=True)
    def delete_notes() -> str | Response:
        """A sensitive action: with OMI_CONFIRM_SIGNIN = "step-up" it asks for a code sent to the
        user's OMI app first, even though the user is signed in."""
        if request.method == "POST":
            require_csrf_token()
            gone = setups.delete_notes(current_omi_user.uid)
            flash(f"Deleted {gone} note(s).")
            return redirect(url_for("dashboard"))
        count = len(setups.notes(current_omi_user.uid))
        return render_template("delete_notes.html", count=count, csrf_token=csrf_token())

    @app.route("/setup", methods=["GET", "POST"])
    @omi_login_required
    def setup() -> str | Response:
        """Choose a display name. OMI links here with ``?uid=``; that uid only has to match."""
        uid = current_omi_user.uid
        linked_uid = request.args.get("uid")
        if linked_uid is not None and linked_uid != uid:
            abort(403, "This set-up link is for another OMI account. Sign out, then sign in as that account.")
        if request.method == "POST":
            require_csrf_token()
            name = request.form.get("display_name", "").strip()[:60]
            if not name:
                return render_template(
                    "setup.html", uid=uid, csrf_token=csrf_token(), error="Please choose a display name."
                )
            setups.complete(uid, name)
            return redirect(url_for("dashboard"))
        return render_template("setup.html", uid=uid, csrf_token=csrf_token())

    return app


@dataclass(frozen=True)
class ExampleUser:
    uid: str
    is_authenticated: bool = True
    is_anonymous: bool = False


def require_csrf_token() -> None:
    """Refuse a form POST without this session's token (400)."""
    if not secrets.compare_digest(request.form.get("csrf_token", ""), csrf_token()):
        abort(400, "The form expired; please reload the page.")


def csrf_token() -> str:
    """A per-session token for the example's own forms (flask-omi's routes need none)."""
    token = session.get("example_csrf")
    if not isinstance(token, str):
        token = session["example_csrf"] = secrets.token_urlsafe(32)
    return token
