"""Sphinx configuration: the guide pages include the README's sections, the reference is autodoc."""

from __future__ import annotations

from importlib.metadata import version as _version

project = "flask-omi"
author = "The flask-omi maintainers"
copyright = "2026, the flask-omi maintainers"
release = _version("flask-omi")
version = ".".join(release.split(".")[:2])

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinxcontrib.mermaid"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "images", "pypi-description.md"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
html_theme = "alabaster"
html_title = f"flask-omi {release}"
# The sign-in flow is a Mermaid diagram: GitHub draws it in the README, sphinxcontrib-mermaid here
# (MyST hands ```mermaid fences to its directive). The guide pages include README sections whose
# subheadings start at level 3.
myst_fence_as_directive = ["mermaid"]
# Shipped with the site (make docs fetches it from the npm registry), never loaded from a CDN.
mermaid_use_local = "mermaid/mermaid.esm.min.mjs"
suppress_warnings = ["myst.header"]
# Wide tables and code scroll inside the page instead of running past the theme's column.
html_static_path = ["_static"]
html_css_files = ["wide.css"]


# The configuration reference is generated from the defaults and descriptions in the code, so that
# it cannot drift from them.
def _write_configuration_reference() -> None:
    from pathlib import Path

    from flask_omi.config import reference_table

    target = Path(__file__).parent / "_generated" / "settings.md"
    target.parent.mkdir(exist_ok=True)
    target.write_text(reference_table())


_write_configuration_reference()
