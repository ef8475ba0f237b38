"""How a browser resolves a ``Location`` header, for judging redirects (WHATWG URL rules).

Only what matters for "does this leave the origin": leading and trailing C0 controls and spaces are
trimmed, tabs and newlines anywhere are removed, a backslash counts as a slash in special schemes,
and a special scheme without slashes is read as relative (same scheme) or as an authority (other
scheme), as the URL standard says.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

SPECIAL = {"http", "https", "ws", "wss", "ftp", "file"}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(.*)", re.S)


def resolve(location: str, base: str) -> str:
    text = location.strip("".join(chr(c) for c in range(0x21)))
    text = re.sub(r"[\t\n\r]", "", text)
    base_scheme = urlsplit(base).scheme
    match = _SCHEME.fullmatch(text)
    if match:
        scheme, rest = match.group(1).lower(), match.group(2)
        if scheme not in SPECIAL:
            return f"{scheme}:{rest}"  # javascript:, data:, ... : never same-origin
        rest = rest.replace("\\", "/")
        if scheme == base_scheme and not rest.startswith("/"):
            text = rest  # "https:evil.com" on an https page is a relative path
        else:
            return f"{scheme}://{rest.lstrip('/')}"
    return urljoin(base, text.replace("\\", "/"))


def same_origin(location: str, base: str) -> bool:
    target, origin = urlsplit(resolve(location, base)), urlsplit(base)
    try:
        target_port = target.port
    except ValueError:
        return False
    return (target.scheme, target.hostname, target_port) == (origin.scheme, origin.hostname, origin.port)
