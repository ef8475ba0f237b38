"""Moved to :mod:`flask_omi.inbound.signing`; kept for one release, warning when used."""

from ._moved import moved

__getattr__ = moved(__name__, "flask_omi.inbound.signing")
