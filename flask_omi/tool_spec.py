"""Moved to :mod:`flask_omi.inbound.tool_spec`; kept for one release, warning when used."""

from ._moved import moved

__getattr__ = moved(__name__, "flask_omi.inbound.tool_spec")
