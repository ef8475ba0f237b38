"""Bridges to other Flask extensions; each module needs its extension installed."""
