"""Old module paths and names kept for one release after a move or rename, warning when used.

A moved module's old file holds only ``__getattr__ = moved(__name__, "new.path")``: the first
lookup of a name through the old path imports the new module and warns, naming where to import
from instead, so existing imports keep working while they are updated.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def moved(old: str, new: str, renamed: Mapping[str, str] | None = None) -> Callable[[str], Any]:
    renames = dict(renamed or {})

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        target = renames.get(name, name)
        try:
            value = getattr(importlib.import_module(new), target)
        except AttributeError:
            raise AttributeError(f"module {old!r} has no attribute {name!r}") from None
        where = f"{old}.{name} is now {target}" if old == new else f"{old} moved to {new}"
        warnings.warn(
            f"{where}: import {target} from {new} (the old name goes in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return value

    return __getattr__


def _internal(module: str) -> bool:
    return module.partition(".")[0] in ("flask_omi", "flask")


def warn_deprecated(message: str) -> None:
    """A ``DeprecationWarning`` attributed to the app's own line that led here (such as its
    ``app.register_blueprint``), past flask-omi's and Flask's frames, so that the app sees it."""
    frame, level = sys._getframe(1), 2  # stacklevel 2 is the caller of this function
    while frame.f_back is not None and _internal(str(frame.f_globals.get("__name__", ""))):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DeprecationWarning, stacklevel=level)
