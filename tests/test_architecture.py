"""The layout docs/architecture.md describes, kept true: no import circles, a core that imports no
Flask, old module paths that still work (and warn), one source for every default, and every
``OMI_*`` key checked at start-up by every flask-omi blueprint."""

from __future__ import annotations

import ast
import dataclasses
import importlib
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import flask_omi
from flask_omi import OmiBlueprint, OmiConfigError, OmiTools, OmiWebhooks, TranscriptBatch, TranscriptSegment
from flask_omi.config import DEFAULTS
from flask_omi.inbound.payloads import fast_new

PACKAGE = Path(flask_omi.__file__).parent

#: Modules that must work without Flask: the API client, the stores, the signature schemes, the
#: payload types and the tool declarations (docs/architecture.md, "Framework-neutral core").
FRAMEWORK_NEUTRAL = (
    "flask_omi.api.client",
    "flask_omi.api.transport",
    "flask_omi.api.models",
    "flask_omi.config",
    "flask_omi.keystore",
    "flask_omi.stores",
    "flask_omi.signin.state",
    "flask_omi.validation",
    "flask_omi.inbound.protocol",
    "flask_omi.inbound.signing",
    "flask_omi.inbound.request_signing",
    "flask_omi.inbound.payloads",
    "flask_omi.inbound.tool_spec",
    "flask_omi.inbound.deliveries",
    "flask_omi.signin.confirm",
    "flask_omi.signin.confirm_records",
    "flask_omi._registration",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports at run time, at any depth (TYPE_CHECKING blocks excepted)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking_block(child):
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base]) if base else ".".join(anchor)
                found.add(base)
                # "from . import views" imports a submodule
                found.update(f"{base}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = set()
        for target in _imports(path):
            if target in modules and target != name:
                graph[name].add(target)
            elif not target.startswith("flask_omi"):
                graph[name].add(target.split(".")[0])
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle among flask_omi's modules, or None. An import of a module's own parent
    package is left out: Python has started that package before the module, so it never waits."""

    def ancestor(package: str, module: str) -> bool:
        return module.startswith(package + ".")

    edges = {
        name: {t for t in targets if t in graph and not ancestor(t, name)} for name, targets in graph.items()
    }
    visiting: list[str] = []
    done: set[str] = set()

    def walk(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(edges[node]):
            found = walk(target)
            if found:
                return found
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(edges):
        if found := walk(start):
            return found
    return None


def test_no_import_circles() -> None:
    assert _cycle(_graph()) is None


def test_the_cycle_finder_finds_a_circle() -> None:
    # 0.2's circle: the CLI imported the testing package, whose connect module imported the CLI.
    graph = {
        "p": {"p.cli"},
        "p.cli": {"p", "p.testing", "flask"},
        "p.testing": {"p", "p.testing.connect"},
        "p.testing.connect": {"p.cli", "p.testing"},
    }
    assert _cycle(graph) == ["p.cli", "p.testing", "p.testing.connect", "p.cli"]


@pytest.mark.parametrize("module", FRAMEWORK_NEUTRAL)
def test_the_core_imports_no_flask(module: str) -> None:
    graph = _graph()
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(graph.get(current, ()))
    assert "flask" not in seen, f"{module} reaches Flask through {sorted(seen & set(graph))}"


# -- the public names ------------------------------------------------------------------------------
#: Names of an unreleased draft, removed before the first release (CHANGES lists them).
REMOVED = [
    "DeliveryLedger",
    "MemoryDeliveryLedger",
    "RedisDeliveryLedger",
    "StateRegistry",
    "MemoryStateRegistry",
    "RedisStateRegistry",
    "OmiWebhookError",
    "WebhookSignatureError",
    "WebhookPayloadError",
    "current_omi_uid",
]
REMOVED_MODULES = [
    "_moved",
    "dedup",
    "registry",
    "signing",
    "request_signing",
    "webhooks",
    "tools",
    "tool_spec",
    "webhook_payloads",
]


def test_the_drafts_names_are_gone() -> None:
    for name in REMOVED:
        assert name not in flask_omi.__all__ and not hasattr(flask_omi, name), name
    for module in REMOVED_MODULES:
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"flask_omi.{module}")
    from flask_omi import keystore

    assert not hasattr(keystore, "Status")


def test_every_public_name_resolves_and_is_in_the_api_reference() -> None:
    reference = (PACKAGE.parent / "docs" / "reference.md").read_text()
    for name in ("KeyStore", "MemoryStore", "RedisStore", "RecordStore", "OmiInboundError", "omi_uid"):
        assert name in flask_omi.__all__
    missing = []
    for name in flask_omi.__all__:
        assert getattr(flask_omi, name) is not None
        if f"flask_omi.{name}" not in reference and f"~flask_omi.{name}`" not in reference:
            missing.append(name)
    assert missing == [], f"public names missing from docs/reference.md: {missing}"


@pytest.mark.parametrize(
    "module", ["flask_omi.inbound.signing", "flask_omi.api.client", "flask_omi.keystore"]
)
def test_importing_a_framework_neutral_module_loads_no_flask(module: str) -> None:
    """flask_omi/__init__.py loads its names on first use: a program that only checks signatures
    or calls OMI's API does not import Flask, the views or the Celery glue."""
    import subprocess
    import sys

    code = f"import sys, {module}; print(sorted(m for m in ('flask', 'celery') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


# -- one source for every default ------------------------------------------------------------------
def test_defaults_have_one_source() -> None:
    from flask_omi import OmiClient
    from flask_omi.api.transport import DEFAULT_MAX_RESPONSE_BYTES
    from flask_omi.inbound import signing

    client = OmiClient("app", "sk_key")
    assert repr(client) == f"OmiClient(app_id='app', base_url={DEFAULTS['OMI_API_BASE']!r})"
    assert DEFAULTS["OMI_API_MAX_RESPONSE_BYTES"] == DEFAULT_MAX_RESPONSE_BYTES
    assert DEFAULTS["OMI_SIGNATURE_TOLERANCE"] == signing.DEFAULT_TOLERANCE
    for path in PACKAGE.rglob("*.py"):
        if path.name != "config.py":
            text = path.read_text()
            assert "api.omi.me" not in text or "OMI_API_BASE" in text, path
            assert "32 * 1024 * 1024" not in text, path


# -- every key checked by every blueprint ----------------------------------------------------------
BAD_VALUES: dict[str, Any] = {
    "OMI_STORE": True,
    "OMI_APP_ID": 12345,
    "OMI_STATE_MAX_AGE": "600",
    "OMI_MAX_PENDING_SIGNINS": 0,
    "OMI_LOGIN_REDIRECT": "//evil.example",
    "OMI_LOGOUT_REDIRECT": 7,
    "OMI_LOGOUT_ALLOW_GET": "no",
    "OMI_LOGOUT_CLEAR_SESSION": None,
    "OMI_STATE_REGISTRY": "127.0.0.1:6379",
    "OMI_VERIFY_UID": "yes",
    "OMI_VERIFY_TIMEOUT": -1,
    "OMI_API_BASE": "api.omi.me",
    "OMI_EXTERNAL_URL": "app.example.com",
    "OMI_SINGLE_PROCESS": "yes",
    "OMI_CONFIRM_SIGNIN": "always",
    "OMI_CONFIRM_CHANNELS": "chat",
    "OMI_CONFIRM_SENDS_PER_UID": 11,
    "OMI_CONFIRM_CODES_PER_ADDRESS": 0,
    "OMI_TEMPLATE_LAYOUT": "",
    "OMI_API_KEY": "",
    "OMI_API_TIMEOUT": 0,
    "OMI_API_WRITE_TIMEOUT": True,
    "OMI_API_MAX_ATTEMPTS": 2.5,
    "OMI_API_DEADLINE": "30",
    "OMI_API_MAX_RESPONSE_BYTES": -5,
    "OMI_SIGNING_SECRET": ["whsec_new", ""],
    "OMI_WEBHOOK_MAX_BYTES": "5MB",
    "OMI_SIGNATURE_TOLERANCE": "300",
    "OMI_WEBHOOK_STORE": "yes",
    "OMI_WEBHOOK_DEDUP_TTL": 0,
    "OMI_WEBHOOK_TASK_RETRIES": -1,
    "OMI_WEBHOOK_TASK_TIME_LIMIT": 2.5,
    "OMI_TOOLS_MAX_BYTES": 0,
    "OMI_TOOLS_REPLAY_STORE": object(),
}


def test_every_key_has_a_bad_value_here() -> None:
    assert set(BAD_VALUES) == set(DEFAULTS)


def _blueprints() -> list[Any]:
    return [OmiBlueprint(), OmiWebhooks(), OmiTools()]


@pytest.mark.parametrize("key", sorted(BAD_VALUES))
@pytest.mark.parametrize("kind", ["OmiBlueprint", "OmiWebhooks", "OmiTools"])
def test_a_bad_value_fails_at_registration_with_its_name(key: str, kind: str) -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="k" * 40, OMI_APP_ID="01APP", OMI_API_KEY="sk_key")
    app.config[key] = BAD_VALUES[key]
    blueprint = next(bp for bp in _blueprints() if type(bp).__name__ == kind)
    with pytest.raises(OmiConfigError, match=key):
        app.register_blueprint(blueprint)
    assert not any(name.startswith("omi") for name in app.extensions)


@pytest.mark.parametrize("kind", ["OmiBlueprint", "OmiWebhooks", "OmiTools"])
def test_a_misspelt_key_is_named_with_the_right_one(kind: str) -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="k" * 40, OMI_APP_ID="01APP", OMI_SIGNNG_SECRET="whsec_x")
    blueprint = next(bp for bp in _blueprints() if type(bp).__name__ == kind)
    with pytest.raises(
        OmiConfigError,
        match=r"OMI_SIGNNG_SECRET is not a flask-omi setting\. Did you mean OMI_SIGNING_SECRET",
    ):
        app.register_blueprint(blueprint)


def test_good_values_of_every_kind_are_taken() -> None:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="k" * 40,
        OMI_APP_ID="01APP",
        OMI_LOGIN_REDIRECT="https://app.example.com/welcome",
        OMI_API_BASE="http://127.0.0.1:8765",
        OMI_STATE_MAX_AGE=300.5,
        OMI_WEBHOOK_STORE=False,
        OMI_TOOLS_REPLAY_STORE=True,
        OMI_STATE_REGISTRY=True,
    )
    for blueprint in _blueprints():
        app.register_blueprint(blueprint)
    assert {name for name in app.extensions if name.startswith("omi")} == {"omi"}  # one record
    record = app.extensions["omi"]
    assert record.signin is not None and record.webhooks is not None and record.tools is not None


# -- fast construction of payloads -----------------------------------------------------------------
SEGMENT = {"text": "hi", "speaker": "SPEAKER_0", "is_user": True, "start": 1, "end": 2.5, "person_id": "p"}


def test_the_fast_path_builds_what_the_constructor_builds() -> None:
    fast = TranscriptSegment.from_json(dict(SEGMENT))
    slow = TranscriptSegment(text="hi", speaker="SPEAKER_0", is_user=True, start=1.0, end=2.5, raw=SEGMENT)
    assert fast == slow and vars(fast) == vars(slow)
    batch = TranscriptBatch.from_json("u1", {"session_id": "s", "segments": [SEGMENT]}, delivery_id="d")
    built = TranscriptBatch(
        uid="u1",
        session_id="s",
        segments=[slow],
        raw={"session_id": "s", "segments": [SEGMENT]},
        delivery_id="d",
    )
    assert batch == built and vars(batch) == vars(built)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.text = "changed"  # type: ignore[misc]


def test_the_fast_path_refuses_a_field_set_that_does_not_match() -> None:
    with pytest.raises(TypeError, match="has the fields"):
        fast_new(TranscriptSegment, {"text": "hi"})

    @dataclasses.dataclass(frozen=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            raise AssertionError

    @dataclasses.dataclass(frozen=True, slots=True)
    class Slotted:
        a: int

    @dataclasses.dataclass(frozen=True)
    class Derived:
        a: int
        b: int = dataclasses.field(init=False, default=0)

    for cls in (Checked, Slotted, Derived):
        with pytest.raises(TypeError, match="cannot be built by fast_new"):
            fast_new(cls, {"a": 1})


# -- every public name documented ---------------------------------------------------------------------
def _public_objects() -> list[tuple[str, Any]]:
    import inspect

    import flask_omi.api.models
    import flask_omi.stores
    import flask_omi.testing

    found: list[tuple[str, Any]] = []
    for module in (flask_omi, flask_omi.testing, flask_omi.api.models, flask_omi.stores):
        names = getattr(module, "__all__", None) or [
            n
            for n in vars(module)
            if not n.startswith("_") and getattr(vars(module)[n], "__module__", "") == module.__name__
        ]
        for name in names:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            found.append((f"{module.__name__}.{name}", obj))
            if inspect.isclass(obj) and obj.__module__.startswith("flask_omi"):
                for attr, value in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    target = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
                    if inspect.isfunction(target):
                        found.append((f"{module.__name__}.{name}.{attr}", target))
    return found


def test_every_public_name_has_a_docstring() -> None:
    """CI fails when a public class, function or method has none: the reference is built from them."""
    missing = [name for name, obj in _public_objects() if not (obj.__doc__ or "").strip()]
    assert missing == []


def test_every_setting_is_described_for_the_configuration_reference() -> None:
    from flask_omi.config import DESCRIPTIONS

    assert set(DESCRIPTIONS) == set(DEFAULTS)
    assert all(text.strip().endswith(".") for text in DESCRIPTIONS.values())
    readme = (PACKAGE.parent / "README.md").read_text()
    assert [key for key in DEFAULTS if f"`{key}`" not in readme] == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("OMI_WEBHOOK_DEDUP", "OMI_WEBHOOK_STORE"),
        ("OMI_TOOLS_DEDUP", "OMI_TOOLS_REPLAY_STORE"),
        ("OMI_WEBHOOK_TOLERANCE", "OMI_SIGNATURE_TOLERANCE"),
        ("OMI_WEBHOOK_SECRET", "OMI_SIGNING_SECRET"),
    ],
)
def test_a_draft_settings_name_fails_at_start_up_naming_the_new_one(old: str, new: str) -> None:
    app = Flask(__name__)
    app.config.update({"SECRET_KEY": "k" * 40, "OMI_APP_ID": "01APP", old: True})
    with pytest.raises(OmiConfigError, match=f"{old} is not a flask-omi setting. Did you mean {new}"):
        app.register_blueprint(OmiBlueprint())


# -- the layout: the parts' table in docs/architecture.md against the real imports ----------------
PARTS = ("signin", "api", "inbound", "cli", "testing", "contrib")


def _part(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 and pieces[1] in PARTS else "root"


def _allowed() -> dict[str, set[str]]:
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    table = text.split("<!-- parts -->", 1)[1].split("<!-- /parts -->", 1)[0]
    allowed: dict[str, set[str]] = {}
    for row in table.strip().splitlines()[2:]:
        part, may = (cell.strip() for cell in row.strip("|").split("|"))
        allowed[part] = {name.strip() for name in may.split(",") if name.strip()}
    return allowed


def test_every_import_between_parts_is_one_the_architecture_map_allows() -> None:
    allowed = _allowed()
    assert set(allowed) == {"root", *PARTS}
    wrong = []
    for module, targets in _graph().items():
        for target in targets:
            if not target.startswith("flask_omi") or _part(target) == _part(module):
                continue
            kind = "cli package" if target == "flask_omi.cli" else _part(target)
            if kind not in allowed[_part(module)] and _part(target) not in allowed[_part(module)]:
                wrong.append(f"{module} -> {target}")
    assert wrong == [], wrong


def test_the_map_names_every_module_and_only_those() -> None:
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        folder = path.parent.relative_to(PACKAGE).as_posix()
        named = f"`{relative}`" in text or f"`{path.name}`" in text or f"`{folder}/`" in text
        assert named, f"docs/architecture.md does not name {relative}"
    for named in __import__("re").findall(r"^\\| `([\\w/]+\\.py)`", text, __import__("re").M):
        assert (PACKAGE / named).exists(), f"docs/architecture.md names {named}, which does not exist"
