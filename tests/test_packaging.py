"""The release artefacts: an sdist that holds the whole test suite, and a wheel that works when
installed alone in a fresh virtualenv (templates, ``py.typed``, the pytest plugin), both passing
``twine check``."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The sdist, and the wheel built from it (as ``python -m build`` does by default): a wheel built
    from the work tree could pick up a stale ``build/lib`` and hide a file the package misses."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    yield out


def only(folder: Path, pattern: str) -> Path:
    (found,) = folder.glob(pattern)
    return found


def test_twine_check_passes(dist: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_sdist_holds_the_whole_suite(dist: Path) -> None:
    with tarfile.open(only(dist, "*.tar.gz")) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for needed in (
        "tests/conftest.py",
        "tests/attack/conftest.py",
        "tests/attack/test_state_and_uid.py",
        "tests/data/integration-public-openapi.json",
        "flask_omi/py.typed",
        "flask_omi/templates/omi/error.html",
        "docs/conf.py",
        "example_app/templates/dashboard.html",
        "requirements/tests.txt",
        "CHANGES.rst",
        "SECURITY.md",
        "noxfile.py",
        "Makefile",
    ):
        assert needed in names, needed


def test_the_wheel_installs_and_works_alone(dist: Path, tmp_path: Path) -> None:
    wheel = only(dist, "*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"flask_omi/py.typed", "flask_omi/templates/omi/continue.html"} <= names
    assert "flask_omi/testing/fake/templates/fake_omi/authorize.html" in names
    assert not any(name.startswith(("tests/", "example_app/", "benchmarks/")) for name in names)
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"{wheel}[testing]"], check=True, timeout=600
    )
    probe = """
import importlib.metadata as metadata, importlib.resources as resources
import flask_omi
assert flask_omi.__version__ == metadata.version("flask-omi"), flask_omi.__version__
assert resources.files("flask_omi").joinpath("py.typed").is_file()
assert resources.files("flask_omi").joinpath("templates/omi/error.html").is_file()
plugins = {e.name: e.value for e in metadata.entry_points(group="pytest11")}
assert plugins.get("flask_omi") == "flask_omi.testing.pytest_plugin", plugins
from flask import Flask
app = Flask(__name__)
app.config.update(SECRET_KEY="x" * 32, OMI_APP_ID="app")
app.register_blueprint(flask_omi.omi_bp)
page = app.test_client().get("/omi/callback?uid=u1")
assert page.status_code == 200 and "Continue with OMI" in page.text
print("ok")
"""
    run = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert run.stdout.strip() == "ok", run.stderr
    fixtures = subprocess.run(
        [str(python), "-m", "pytest", "--fixtures", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    for name in ("fake_omi", "omi_sign_in", "omi_sign_out", "omi_live_app"):
        assert name in fixtures.stdout, fixtures.stdout[-2000:]
    assert "served on a free 127.0.0.1 port and connected to" in fixtures.stdout  # with their docstrings


def test_the_version_says_whether_it_is_released() -> None:
    """A version is a dev version exactly while CHANGES.rst says it is unreleased."""
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    version = config["metadata"]["version"]
    changes = (ROOT / "CHANGES.rst").read_text()
    newest = re.search(r"Version (\S+)\n-+\n\n(\S.*)\n", changes)
    assert newest is not None
    assert version.startswith(newest.group(1))
    assert (newest.group(2) == "Unreleased") == (".dev" in version)


def test_the_pypi_description_stands_alone() -> None:
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    path = config["metadata"]["long_description"].removeprefix("file: ").strip()
    text = (ROOT / path).read_text()
    links = re.findall(r"\]\(([^)]+)\)|<(https?://[^>]+)>", text)
    assert links and all((a or b).startswith("https://") for a, b in links)
    assert "make " not in text and "Makefile" not in text
    assert "License ::" not in config["metadata"]["classifiers"]  # the license is the license field


def test_releases_publish_with_trusted_publishing_and_no_token() -> None:
    workflow = (ROOT / ".github" / "workflows" / "publish.yaml").read_text()
    assert "id-token: write" in workflow and "pypa/gh-action-pypi-publish" in workflow
    assert "password" not in workflow and "secrets." not in workflow
    assert workflow.count("python -m build") == 1  # built once, the same files published
