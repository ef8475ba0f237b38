"""The chat channel of confirmed sign-in: the ``omi_confirm_sign_in`` tool in the app's manifest.

The confirm page shows a short code; the person sends it to the app in OMI's chat, and OMI's
assistant calls this tool signed (``v2``) with the uid of the person chatting. Only that uid's
owner can make OMI do so, and nobody can spend that person's OMI notification quota this way: it
is the way in that an attacker who knows the uid cannot flood. The tool confirms the pending
sign-in of *that* uid with *that* code, never another uid's; the browser then completes it.

Declared on the app's :class:`~flask_omi.OmiTools`, registered before or after the sign-in; an app
without tools gets a stand-in, so that it serves the manifest too.
"""

from __future__ import annotations

import logging
from typing import Annotated

from flask.sansio.app import App

from flask_omi._registration import record_of
from flask_omi.errors import OmiConfigError
from flask_omi.extension import get_extension
from flask_omi.inbound.tool_spec import ToolError, describe
from flask_omi.inbound.tools import ToolsState, _StandInTools
from flask_omi.signin import confirm
from flask_omi.signin.confirm_views import ledger, site_name

logger = logging.getLogger("flask_omi")


def omi_confirm_sign_in(
    code: Annotated[str, "the short code the sign-in page shows, such as K7PQ2M"], uid: str
) -> str:
    """Confirm a sign-in to this app's website: use it when the person sends the short code that
    the website's sign-in page shows them. Pass the code exactly as they sent it."""
    site, records = site_name(), ledger()
    try:
        outcome, _ = records.confirm_from_chat(uid, code, get_extension().clock())
    except Exception as error:  # the store failed: nothing confirmed (fail closed)
        logger.error("OMI sign-in confirmation from the chat: the store failed (%s)", type(error).__name__)
        raise ToolError(f"{site} could not check the code just now. Please try again shortly.") from None
    if outcome == "confirmed":
        logger.info("OMI sign-in confirmation: a code was confirmed from OMI's chat")
        return (
            f"Confirmed: your sign-in to {site} in the browser that showed this code. Go back to that "
            "page and press Continue. If you did not just sign in there, sign out of it."
        )
    if outcome == "used":
        return f"That code already confirmed a sign-in to {site}. Go back to that page and press Continue."
    if outcome == "budget_spent":
        raise ToolError(f"Too many codes were tried for {site} this hour. Please try again later.")
    raise ToolError(
        f"That code does not match a sign-in to {site} waiting for you. Check the code on the sign-in "
        "page (it works for five minutes), or start the sign-in again."
    )


SPEC = describe(omi_confirm_sign_in, name=confirm.CHAT_TOOL_NAME)


def attach_confirm_tool(app: App) -> None:
    """Declare the tool on the app's tools (an :class:`OmiTools` of its own when it has none)."""
    state: ToolsState | None = record_of(app).tools
    if state is None:
        app.register_blueprint(_StandInTools(name="omi_confirm_tools"))
        state = record_of(app).tools
    if confirm.CHAT_TOOL_NAME in state.specs and state.specs[confirm.CHAT_TOOL_NAME] is not SPEC:
        raise OmiConfigError(
            f"the app declares a tool named {confirm.CHAT_TOOL_NAME!r}, which flask-omi needs"
        )
    state.specs[confirm.CHAT_TOOL_NAME] = SPEC
