"""The settings audit behind ``flask omi check``: what sign-in depends on, checked before going live.

Each finding is either *fatal* (insecure, or sign-in cannot work: the command exits 1) or advice.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import SplitResult, urlsplit

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_omi._registration import record_of
from flask_omi.cli.deployment_audit import LOCAL_HOSTS, Finding, inbound_findings
from flask_omi.config import store_for
from flask_omi.stores import is_per_process

MIN_SECRET_KEY_LENGTH = 32
MIN_SECRET_KEY_DISTINCT = 10
#: A state older than this is refused by OMI's own flow in practice (a person signs in in minutes);
#: above the first bound the check advises, above the second it fails.
STATE_MAX_AGE_ADVISED, STATE_MAX_AGE_LIMIT = 900, 3600
_OBVIOUS_WORDS = (
    "secret", "password", "passwd", "changeme", "change-me", "change_me", "example", "default",
    "insecure", "qwerty", "letmein", "flask", "django", "dev-key", "devkey", "testkey", "test-key",
)  # fmt: skip


def weak_secret_key_reason(key: object) -> str | None:
    """Why ``key`` is guessable or forgeable, or None. Length alone does not make a key random."""
    if not key:
        return "SECRET_KEY is missing"
    text = key.decode("latin-1") if isinstance(key, bytes) else str(key)
    if len(text) < MIN_SECRET_KEY_LENGTH:
        return f"SECRET_KEY is shorter than {MIN_SECRET_KEY_LENGTH} characters"
    if len(set(text)) < MIN_SECRET_KEY_DISTINCT or text in (text + text)[1:-1]:
        return "SECRET_KEY is a repeated pattern, not random"
    lowered = text.lower()
    if any(word in lowered for word in _OBVIOUS_WORDS):
        return "SECRET_KEY contains an obvious word"
    return None


def check_settings(app: Flask, base_url: str, behind_proxy: bool) -> list[Finding]:
    """Every finding for ``app`` served at ``base_url``: sign-in's only when it registered the
    sign-in blueprint (a webhook-only app has no session to protect)."""
    parts = urlsplit(base_url)
    local = (parts.hostname or "") in LOCAL_HOSTS
    signin = [
        *_secret_key(app),
        *_cookie(app.config, parts, local),
        *_sign_in(app, parts, local),
    ]
    return [
        *(signin if record_of(app).signin is not None else []),
        *_urls(parts, local),
        *_proxy(app, parts, local, behind_proxy),
        *inbound_findings(app, local),
    ]


def _secret_key(app: Flask) -> list[Finding]:
    found: list[Finding] = []
    reason = weak_secret_key_reason(app.secret_key)
    if reason is not None:
        found.append(
            Finding(
                True,
                f"{reason}: whoever guesses it can forge sessions, and so sign-ins. "
                "Use secrets.token_hex(32), kept out of the code.",
            )
        )
    # Flask also accepts sessions signed with each fallback key: a weak one forges sessions too.
    for n, key in enumerate(app.config.get("SECRET_KEY_FALLBACKS") or ()):
        weak = weak_secret_key_reason(key)
        if weak is not None:
            found.append(
                Finding(
                    True,
                    f"SECRET_KEY_FALLBACKS[{n}]: {weak.replace('SECRET_KEY ', 'the key ')}; Flask still "
                    "accepts sessions signed with it, so it forges sign-ins as well as SECRET_KEY would. "
                    "Remove it once sessions signed with it have expired.",
                )
            )
    return found


def _cookie(config: Any, parts: SplitResult, local: bool) -> list[Finding]:
    found: list[Finding] = []
    samesite = str(config.get("SESSION_COOKIE_SAMESITE") or "").lower()
    if samesite == "strict":
        found.append(
            Finding(
                True,
                "SESSION_COOKIE_SAMESITE is 'Strict': the browser will not send the session cookie on "
                "OMI's redirect back to the App Home URL, so every sign-in fails its state check. Use 'Lax'.",
            )
        )
    elif samesite != "lax":
        shown = repr(config.get("SESSION_COOKIE_SAMESITE"))
        found.append(
            Finding(
                True,
                f"SESSION_COOKIE_SAMESITE is {shown}: other sites' forms and requests then carry the "
                "session cookie (cross-site request forgery, forced sign-out). Use 'Lax'.",
            )
        )
    if not config.get("SESSION_COOKIE_HTTPONLY", True):
        found.append(
            Finding(
                True,
                "SESSION_COOKIE_HTTPONLY is off: any script on the page, an injected one included, "
                "can read the session cookie and take over the sign-in. Leave it on (Flask's default).",
            )
        )
    # No exemption for debug mode: the check is about the app as it will run in production, and
    # FLASK_DEBUG left set in the shell must not make an insecure setting pass.
    if not config.get("SESSION_COOKIE_SECURE") and not local:
        found.append(
            Finding(
                True,
                "SESSION_COOKIE_SECURE is off: the session cookie (your users' sign-in) would also "
                "travel over plain http.",
            )
        )
    found.extend(_cookie_scope(config, parts, local))
    return found


def _cookie_scope(config: Any, parts: SplitResult, local: bool) -> list[Finding]:
    """Cookie tossing: a sibling subdomain can set a cookie this app then reads as its session."""
    name = str(config.get("SESSION_COOKIE_NAME") or "session")
    domain = config.get("SESSION_COOKIE_DOMAIN")
    if name.startswith("__Host-"):
        path = config.get("SESSION_COOKIE_PATH") or config.get("APPLICATION_ROOT") or "/"
        if domain or path != "/" or not config.get("SESSION_COOKIE_SECURE"):
            return [
                Finding(
                    True,
                    f"SESSION_COOKIE_NAME is {name!r}, but browsers only accept a __Host- cookie that is "
                    "Secure, has Path=/ and no Domain: set SESSION_COOKIE_SECURE=True, leave "
                    "SESSION_COOKIE_DOMAIN unset and APPLICATION_ROOT at '/'.",
                )
            ]
        return []
    found: list[Finding] = []
    if domain:
        found.append(
            Finding(
                True,
                f"SESSION_COOKIE_DOMAIN is {domain!r}: the session cookie is shared with every "
                "subdomain, any of which can read it, or toss in a cookie of its own that signs a "
                "visitor in as someone else. Leave it unset.",
            )
        )
    if parts.scheme == "https" and not local:
        found.append(
            Finding(
                False,
                f"SESSION_COOKIE_NAME is {name!r}: a sibling subdomain can set a cookie of that name "
                "(with Path=/omi/callback) that shadows the session on the callback and defeats the "
                "sign-in state. Name it '__Host-session': browsers then refuse such cookies.",
            )
        )
    return found


def _urls(parts: SplitResult, local: bool) -> list[Finding]:
    found: list[Finding] = []
    if parts.query or parts.fragment:
        found.append(
            Finding(
                True,
                "The App Home URL would carry a query string or a #fragment: OMI appends '?uid=...' by "
                "plain concatenation, so the parameters would be lost or mangled.",
            )
        )
    if parts.scheme != "https" and not local:
        found.append(Finding(True, "The App Home URL uses plain http on a public host: use https."))
    if not local and not is_public_host(parts.hostname or ""):
        found.append(
            Finding(
                False,
                f"{parts.hostname} is not a public address: OMI calls the setup-completed URL and chat "
                "tools only at public addresses (it refuses a new user's sign-in with 'This app is "
                "misconfigured (setup URL is not a public address)'), and cannot reach webhooks there.",
            )
        )
    return found


_PRIVATE_SUFFIXES = (".local", ".localhost", ".internal", ".lan", ".home", ".corp", ".intranet")


def is_public_host(host: str) -> bool:
    """Whether OMI could call ``host``: a global IP address, or a dotted name outside the suffixes
    private networks use. (OMI's own check resolves the name; this one cannot know the DNS.)"""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_global
    except ValueError:
        name = host.lower().rstrip(".")
        return "." in name and not name.endswith(_PRIVATE_SUFFIXES)


def _sign_in(app: Flask, parts: SplitResult, local: bool) -> list[Finding]:
    config = app.config
    found: list[Finding] = []
    max_age = config.get("OMI_STATE_MAX_AGE", 600)
    if isinstance(max_age, (int, float)) and max_age > STATE_MAX_AGE_ADVISED:
        fatal = max_age > STATE_MAX_AGE_LIMIT
        found.append(
            Finding(
                fatal,
                f"OMI_STATE_MAX_AGE is {max_age} s: a captured callback URL stays usable that long. "
                f"A sign-in takes minutes; keep it at most {STATE_MAX_AGE_ADVISED} s (default 600).",
            )
        )
    found.extend(_confirmation(config, local))
    if config.get("OMI_STATE_REGISTRY") is None and not local:
        found.append(
            Finding(
                False,
                "OMI_STATE_REGISTRY is not set: two callbacks sent at once with the same cookie, or a "
                "callback replayed with a session cookie copied before it, can both sign in. Set it to "
                "the app's Redis client (see SECURITY.md).",
            )
        )
    return found


def _confirmation(config: Any, local: bool) -> list[Finding]:
    """Confirmed sign-in: where its budgets live, and what trusting the unsigned uid means (advice
    left out on a local address, as a developer's machine signs in fake users)."""
    mode = config.get("OMI_CONFIRM_SIGNIN")
    found: list[Finding] = []
    if mode and not config.get("OMI_EXTERNAL_URL"):
        found.append(
            Finding(
                True,
                "OMI_CONFIRM_SIGNIN is on without OMI_EXTERNAL_URL: the code's message must name the "
                "site from configuration, never from the requester's Host header.",
            )
        )
    if mode and not config.get("OMI_SINGLE_PROCESS") and is_per_process_or_none(config):
        found.append(
            Finding(
                True,
                "OMI_CONFIRM_SIGNIN keeps its codes and guessing budgets in each process (OMI_STATE_REGISTRY "
                "is not shared): under several workers an attacker gets each worker's budget. Set "
                "OMI_STATE_REGISTRY to the app's Redis client, or OMI_SINGLE_PROCESS = True.",
            )
        )
    if not local and not mode and not config.get("OMI_VERIFY_UID"):
        found.append(
            Finding(
                False,
                "Sign-in trusts the unsigned uid in OMI's redirect: anyone who starts a sign-in here can "
                "put someone else's uid in it. Set OMI_CONFIRM_SIGNIN = True (a code sent to that uid's "
                "OMI app), or at least OMI_VERIFY_UID = True (see SECURITY.md).",
            )
        )
    elif not local and mode == "step-up":
        found.append(
            Finding(
                False,
                "OMI_CONFIRM_SIGNIN is 'step-up': sign-in itself still trusts the unsigned uid; only "
                "views marked omi_login_required(confirmed=True) ask for a code. Use True to confirm "
                "every sign-in.",
            )
        )
    if config.get("OMI_LOGOUT_CLEAR_SESSION") is False:
        found.append(
            Finding(
                False,
                "OMI_LOGOUT_CLEAR_SESSION is False: sign-out leaves the rest of the session (and a "
                "server-side session's id) in place for whoever uses the browser next.",
            )
        )
    return found


def is_per_process_or_none(config: Any) -> bool:
    """Whether ``OMI_STATE_REGISTRY`` names no store shared between processes."""
    store = store_for(config, "OMI_STATE_REGISTRY")
    return store is None or is_per_process(store)


def _proxy(app: Flask, parts: SplitResult, local: bool, behind_proxy: bool) -> list[Finding]:
    if isinstance(app.wsgi_app, ProxyFix):
        return []
    message = (
        "The app is not wrapped in werkzeug's ProxyFix: behind a reverse proxy, generated URLs "
        "(the callback, redirects) use the proxy's internal scheme and host."
    )
    if behind_proxy:
        return [Finding(True, message)]
    if parts.scheme == "https" and not local:
        return [Finding(False, message + " Ignore this if nothing sits in front of the app.")]
    return []
