"""Moved to :mod:`flask_omi.stores`; kept for one release, warning when used."""

from ._moved import moved

__getattr__ = moved(__name__, "flask_omi.stores", {"registry_key": "hashed_key"})
