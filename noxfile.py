"""The version matrix: the test suite against the newest and the lowest supported dependencies,
on every Python from 3.10 that the machine has (missing interpreters are skipped).

    nox                      # everything
    nox -s minimum-3.11      # one session; `make test` runs the minimum session on its Python

Browsers, Redis and OpenSSL come from the system (`make system-deps`).
"""

from __future__ import annotations

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
nox.options.error_on_missing_interpreters = False
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["newest", "minimum"]


def _suite(session: nox.Session) -> None:
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=PYTHONS)
def newest(session: nox.Session) -> None:
    """The newest release of every dependency."""
    session.install("--upgrade", ".[testing,flask-login]", "-r", "requirements/tests.txt")
    _suite(session)


@nox.session(python=PYTHONS)
def minimum(session: nox.Session) -> None:
    """Flask, requests and itsdangerous (and Flask's own dependencies) at their lowest versions."""
    session.install(".[testing,flask-login]", "-r", "requirements/tests.txt", "-c", "requirements/min.txt")
    session.install("-r", "requirements/min.txt")
    session.run("python", "-m", "pip", "freeze")
    _suite(session)
