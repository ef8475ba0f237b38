"""The fake OMI as a gunicorn app (gthread workers keep connections alive, as api.omi.me does)."""

from __future__ import annotations

import os

from flask import Flask

from flask_omi.testing import FakeOmi


def create() -> Flask:
    fake = FakeOmi()
    fake.register_app(
        "bench-app", app_home_url="http://127.0.0.1:9/omi/callback", api_key=os.environ["BENCH_API_KEY"]
    )
    fake.enable_app("bench_uid", "bench-app")
    fake.add_conversation("bench_uid", "a short conversation about benchmarks")
    app = fake.wsgi_app
    app.add_url_rule("/health", "bench_health", lambda: "ok")
    return app
