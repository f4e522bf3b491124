"""SettingsStore: a JSON settings file read against a strict schema, every refusal one warning."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnviz.core.config import RunConfig
from rnnviz.gui.state import settings as settings_module
from rnnviz.gui.state.settings import (
    MAX_BLOB_BYTES,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_TEXT_CHARS,
    Key,
    SettingsStore,
    default_settings_path,
)


def _write(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _doc(**values: Any) -> dict[str, Any]:
    return {"version": 1, **values}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "settings.json"


def _assert_defaults(store: SettingsStore) -> None:
    assert store.config() is None
    assert store.probe_text() == ""
    assert store.geometry() is None
    assert store.window_state() is None


# ---------------------------------------------------------------------- round trip


def test_round_trip_keeps_every_value(path: Path) -> None:
    config = RunConfig().replace(train={"seed": 7, "lr": 0.5}, model={"hidden_size": 64})
    store = SettingsStore(path)
    assert store.warnings == []
    assert store.set_config(config)
    assert store.set_probe_text("the time machine ✓")
    assert store.set_geometry(b"\x01\xd9\xd0\xcb\x00\x03")
    assert store.set_window_state(bytes(range(256)) * 10)
    assert store.save()

    again = SettingsStore(path)
    assert again.warnings == []
    assert again.config() == config
    assert again.probe_text() == "the time machine ✓"
    assert again.geometry() == b"\x01\xd9\xd0\xcb\x00\x03"
    assert again.window_state() == bytes(range(256)) * 10
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["version"] == 1
    assert document["geometry"] == _b64(b"\x01\xd9\xd0\xcb\x00\x03")


def test_missing_file_is_defaults_without_warning(path: Path) -> None:
    store = SettingsStore(path)
    _assert_defaults(store)
    assert store.warnings == []


def test_default_path_is_in_the_user_config_dir(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    if sys.platform.startswith("linux"):
        assert default_settings_path() == tmp_path / "rnnviz" / "settings.json"
    assert SettingsStore().path == default_settings_path()


def test_save_creates_the_folder(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "a" / "b" / "settings.json")
    assert store.set_probe_text("x") and store.save()
    assert SettingsStore(tmp_path / "a" / "b" / "settings.json").probe_text() == "x"


def test_a_warning_goes_to_the_rnnviz_logger(path: Path, caplog) -> None:
    path.write_text("{", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="rnnviz"):
        store = SettingsStore(path)
    assert [r.getMessage() for r in caplog.records if r.name == "rnnviz"] == store.warnings


def test_imports_nothing_from_qt() -> None:
    code = (
        "import sys, rnnviz.gui.state.settings as s; s.SettingsStore('/nonexistent/x.json');"
        "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------- the old INI


def test_old_ini_is_not_read_and_said_once(tmp_path: Path) -> None:
    ini = tmp_path / "rnnviz.ini"
    ini.write_text('[General]\nprobe_text=hello\nconfig="{}"\n', encoding="utf-8")
    store = SettingsStore(tmp_path / "settings.json")
    _assert_defaults(store)
    assert len(store.warnings) == 1 and "rnnviz.ini" in store.warnings[0]
    assert store.save()
    assert SettingsStore(tmp_path / "settings.json").warnings == []  # said once
    assert ini.read_text(encoding="utf-8").startswith("[General]")  # left alone


def test_the_module_never_names_qsettings() -> None:
    source = Path(settings_module.__file__).read_text(encoding="utf-8")
    code = "\n".join(
        line for line in source.splitlines() if not line.lstrip().startswith("#")
    ).split('"""', 2)[2]  # past the module docstring, which explains the attack
    assert "QSettings" not in code and "PySide6" not in code and "pickle" not in code


# ---------------------------------------------------------------------- refused files


def _fifo(path: Path) -> None:
    os.mkfifo(path)


FILE_CASES: dict[str, Any] = {
    "empty": b"",
    "not json": b"{probe_text: hi}",
    "truncated": json.dumps(_doc(probe_text="hello")).encode()[:-3],
    "not utf-8": b'{"version": 1, "probe_text": "\xff\xfe"}',
    "binary garbage": bytes(range(256)) * 4,
    "a list": b"[1, 2, 3]",
    "a string": b'"settings"',
    "null": b"null",
    "no version": json.dumps({"probe_text": "hi"}).encode(),
    "version 2": json.dumps({"version": 2, "probe_text": "hi"}).encode(),
    "version as text": json.dumps({"version": "1", "probe_text": "hi"}).encode(),
    "version true": json.dumps({"version": True, "probe_text": "hi"}).encode(),
    "version 1.0": b'{"version": 1.0, "probe_text": "hi"}',
    "nested past the limit": json.dumps(
        _doc(probe_text="hi", extra=json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH))
    ).encode(),
    "nested 100,000 deep": b'{"version": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "an int of 5,000 digits": b'{"version": 1, "x": ' + b"9" * 5000 + b"}",
    "a pickle": b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94.",
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_unreadable_content_is_one_warning_and_defaults(path: Path, case: str) -> None:
    path.write_bytes(FILE_CASES[case])
    store = SettingsStore(path)
    _assert_defaults(store)
    assert len(store.warnings) == 1, store.warnings
    assert str(path) in store.warnings[0]
    assert store.save()  # replaced with a file that reads back cleanly
    assert SettingsStore(path).warnings == []


def test_nesting_at_the_limit_is_read(path: Path) -> None:
    deep = json.loads("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))
    _write(path, _doc(probe_text="ok", extra=deep))
    store = SettingsStore(path)
    assert store.warnings == [] and store.probe_text() == "ok"


def test_file_over_the_size_cap(path: Path) -> None:
    with path.open("wb") as fh:  # sparse: no 2 MiB written
        fh.truncate(MAX_FILE_BYTES + 1)
    store = SettingsStore(path)
    _assert_defaults(store)
    assert len(store.warnings) == 1 and "over the limit" in store.warnings[0]


def test_sparse_4_gib_file_is_refused_without_reading(path: Path) -> None:
    with path.open("wb") as fh:
        fh.truncate(4 * 1024**3)
    store = SettingsStore(path)
    assert len(store.warnings) == 1 and "over the limit" in store.warnings[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_without_blocking(path: Path) -> None:
    os.mkfifo(path)
    store = SettingsStore(path)  # a blocking open would hang here (pytest-timeout)
    _assert_defaults(store)
    assert len(store.warnings) == 1 and "not a regular file" in store.warnings[0]
    assert not store.save()  # the FIFO is not replaced either
    assert len(store.warnings) == 2 and path.is_fifo()


def test_directory_is_refused(path: Path) -> None:
    path.mkdir()
    store = SettingsStore(path)
    _assert_defaults(store)
    assert len(store.warnings) == 1
    assert not store.save()
    assert len(store.warnings) == 2 and path.is_dir()


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_symlink_to_a_device_is_refused(path: Path, device: str) -> None:
    path.symlink_to(device)
    store = SettingsStore(path)
    assert len(store.warnings) == 1 and "not a regular file" in store.warnings[0]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_refused(path: Path) -> None:
    _write(path, _doc(probe_text="x"))
    path.chmod(0)
    try:
        store = SettingsStore(path)
        assert len(store.warnings) == 1 and store.probe_text() == ""
    finally:
        path.chmod(0o600)


def test_utf8_bom_is_accepted(path: Path) -> None:
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(_doc(probe_text="bom")).encode())
    assert SettingsStore(path).probe_text() == "bom"


# ---------------------------------------------------------------------- refused values

CONFIG = RunConfig().to_json()


def _config(section: str, field: str, value: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(CONFIG))
    data[section][field] = value
    return data


VALUE_CASES: dict[str, tuple[str, Any]] = {
    # probe_text
    "probe_text a number": ("probe_text", 5),
    "probe_text null": ("probe_text", None),
    "probe_text a list": ("probe_text", ["a"]),
    "probe_text an object": ("probe_text", {"@Variant": "x"}),
    "probe_text true": ("probe_text", True),
    "probe_text too long": ("probe_text", "a" * (MAX_TEXT_CHARS + 1)),
    "probe_text a million characters": ("probe_text", "a" * 1_000_000),
    "probe_text with NUL": ("probe_text", "the\0time"),
    "probe_text an unpaired surrogate": ("probe_text", "\ud800"),
    # geometry / window_state
    "geometry a number": ("geometry", 12),
    "geometry a list of bytes": ("geometry", [1, 2, 3]),
    "geometry not base64": ("geometry", "@ByteArray(\\0\\x1)"),
    "geometry a variant": ("geometry", "@Variant(\\0\\0\\0\\x7f)"),
    "geometry bad padding": ("geometry", "AAE"),
    "geometry non-ascii": ("geometry", "ÄÖ=="),
    "geometry too large": ("geometry", _b64(b"\0" * (MAX_BLOB_BYTES + 1))),
    "window_state too large": ("window_state", _b64(b"\0" * (MAX_BLOB_BYTES + 3))),
    "window_state an object": ("window_state", {"base64": "AAEC"}),
    "window_state null": ("window_state", None),
    # config
    "config a JSON string": ("config", json.dumps(CONFIG)),
    "config a list": ("config", [CONFIG]),
    "config null": ("config", None),
    "config unknown section": ("config", {**CONFIG, "extra": {}}),
    "config section a list": ("config", {**CONFIG, "train": [1]}),
    "config unknown field": ("config", _config("train", "momentum", 0.9)),
    "config hidden as text": ("config", _config("model", "hidden_size", "32")),
    "config hidden 32.5": ("config", _config("model", "hidden_size", 32.5)),
    "config hidden true": ("config", _config("model", "hidden_size", True)),
    "config hidden 0": ("config", _config("model", "hidden_size", 0)),
    "config seed 3000000000": ("config", _config("train", "seed", 3_000_000_000)),
    "config seed 2**70": ("config", _config("train", "seed", 2**70)),
    "config seed -1": ("config", _config("train", "seed", -1)),
    "config lr NaN": ("config", _config("train", "lr", float("nan"))),
    "config lr Infinity": ("config", _config("train", "lr", float("inf"))),
    "config theta -Infinity": ("config", _config("train", "clip_theta", float("-inf"))),
    "config lr a huge int": ("config", _config("train", "lr", 10**400)),
    "config lr text": ("config", _config("train", "lr", "1.0")),
    "config lr 0": ("config", _config("train", "lr", 0.0)),
    "config clip 1": ("config", _config("train", "clip_enabled", 1)),
    "config kind unknown": ("config", _config("model", "kind", "transformer")),
    "config gru with relu": (
        "config",
        {**CONFIG, "model": {**CONFIG["model"], "kind": "gru", "activation": "relu"}},
    ),
    "config source with NUL": ("config", _config("corpus", "source", "a\0b")),
    "config source too long": ("config", _config("corpus", "source", "a" * 5000)),
    "config source a number": ("config", _config("corpus", "source", 3)),
}


@pytest.mark.parametrize("case", list(VALUE_CASES))
def test_a_refused_value_is_one_warning_and_only_its_key_defaults(path: Path, case: str) -> None:
    name, bad = VALUE_CASES[case]
    good: dict[str, Any] = {
        "config": _config("train", "seed", 11),
        "probe_text": "kept",
        "geometry": _b64(b"geo"),
        "window_state": _b64(b"state"),
    }
    good[name] = bad
    path.write_text(json.dumps(_doc(**good)), encoding="utf-8")  # NaN/Infinity as JS literals
    store = SettingsStore(path)
    assert len(store.warnings) == 1, store.warnings
    assert repr(name) in store.warnings[0] or "configuration" in store.warnings[0]
    assert "\n" not in store.warnings[0] and len(store.warnings[0]) < 300
    expected: dict[str, Any] = {
        "config": RunConfig().replace(train={"seed": 11}),
        "probe_text": "kept",
        "geometry": b"geo",
        "window_state": b"state",
    }
    expected[name] = {"config": None, "probe_text": ""}.get(name)
    assert store.config() == expected["config"]
    assert store.probe_text() == expected["probe_text"]
    assert store.geometry() == expected["geometry"]
    assert store.window_state() == expected["window_state"]
    assert len(store.warnings) == 1  # asking again does not warn again
    assert store.save() and SettingsStore(path).warnings == []


def test_limits_themselves_are_accepted(path: Path) -> None:
    _write(
        path,
        _doc(
            probe_text="é" * MAX_TEXT_CHARS,
            geometry=_b64(b"\xff" * MAX_BLOB_BYTES),
            config=_config("train", "seed", 2**31 - 1),
        ),
    )
    store = SettingsStore(path)
    assert store.warnings == []
    assert store.probe_text() == "é" * MAX_TEXT_CHARS
    assert store.geometry() == b"\xff" * MAX_BLOB_BYTES
    config = store.config()
    assert config is not None and config.train.seed == 2**31 - 1


def test_config_may_leave_fields_out(path: Path) -> None:
    _write(path, _doc(config={"train": {"lr": 2.0}}))
    store = SettingsStore(path)
    assert store.warnings == [] and store.config() == RunConfig().replace(train={"lr": 2.0})


def test_unknown_keys_are_not_written_back(path: Path) -> None:
    _write(path, _doc(probe_text="x", unknown="@Variant(\\0)"))
    store = SettingsStore(path)
    assert store.warnings == [] and store.save()
    assert "unknown" not in json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------- setting values


def test_set_refuses_out_of_range_with_a_warning(path: Path) -> None:
    store = SettingsStore(path)
    assert not store.set_probe_text("a" * (MAX_TEXT_CHARS + 1))
    assert not store.set_probe_text("nul\0")
    assert not store.set_geometry(b"\0" * (MAX_BLOB_BYTES + 1))
    assert len(store.warnings) == 3
    assert store.probe_text() == "" and store.geometry() is None
    with pytest.raises(TypeError):
        store.set_probe_text(5)  # type: ignore[arg-type]


def test_set_config_beyond_a_c_int_is_refused(path: Path) -> None:
    # past the core's validation (its own bound may be tighter): the store's bound still holds
    config = RunConfig()
    object.__setattr__(config.train, "seed", 2**40)
    store = SettingsStore(path)
    assert not store.set_config(config)
    assert len(store.warnings) == 1 and store.config() is None


def test_save_failures_warn_and_return_false(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    store = SettingsStore(blocker / "settings.json")  # its folder is a file
    assert len(store.warnings) == 1 and "cannot be opened" in store.warnings[0]
    assert not store.save()
    assert len(store.warnings) == 2 and "could not save" in store.warnings[1]


def test_save_failure_keeps_the_previous_file(monkeypatch, path: Path) -> None:
    _write(path, _doc(probe_text="old"))
    store = SettingsStore(path)
    store.set_probe_text("new")

    def fail(target: Any, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(settings_module, "atomic_write_bytes", fail)
    assert not store.save()
    assert "No space left" in store.warnings[-1]
    assert SettingsStore(path).probe_text() == "old"


def test_save_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "rnnviz.json"
    real.parent.mkdir()
    _write(real, _doc(probe_text="old"))
    link = tmp_path / "settings.json"
    link.symlink_to(real)
    store = SettingsStore(link)
    assert store.probe_text() == "old"
    store.set_probe_text("new")
    assert store.save()
    assert link.is_symlink() and SettingsStore(real).probe_text() == "new"


# ---------------------------------------------------------------------- generic keys

ZOOM = Key("zoom", float, 1.0, minimum=0.1, maximum=10.0)
COUNT = Key("count", int, 3, minimum=0, maximum=100)
FLAG = Key("flag", bool, False)
NAME = Key("name", str, "none", max_length=8)
BLOB = Key("blob", bytes, b"", max_length=4)


def test_generic_keys_round_trip(path: Path) -> None:
    store = SettingsStore(path)
    assert [store.get(k) for k in (ZOOM, COUNT, FLAG, NAME, BLOB)] == [1.0, 3, False, "none", b""]
    assert store.set(ZOOM, 2) and store.set(COUNT, 100) and store.set(FLAG, True)
    assert store.set(NAME, "eight ch") and store.set(BLOB, b"\0\1\2\3")
    assert store.save()
    again = SettingsStore(path)
    values = [again.get(k) for k in (ZOOM, COUNT, FLAG, NAME, BLOB)]
    assert values == [2.0, 100, True, "eight ch", b"\0\1\2\3"]
    assert type(values[0]) is float and again.warnings == []


GENERIC_BAD: list[tuple[Key[Any], Any]] = [
    (ZOOM, "2.0"),
    (ZOOM, True),
    (ZOOM, float("nan")),
    (ZOOM, 11.0),
    (ZOOM, 0.0),
    (ZOOM, 10**400),
    (COUNT, 3.0),
    (COUNT, True),
    (COUNT, 101),
    (COUNT, -1),
    (COUNT, None),
    (FLAG, 1),
    (FLAG, "true"),
    (NAME, "nine char"),
    (NAME, 5),
    (BLOB, _b64(b"12345")),
    (BLOB, "not base64!"),
]


@pytest.mark.parametrize(("key", "bad"), GENERIC_BAD, ids=lambda v: repr(v)[:20])
def test_generic_key_refusals(path: Path, key: Key[Any], bad: Any) -> None:
    path.write_text(json.dumps(_doc(**{key.name: bad})), encoding="utf-8")
    store = SettingsStore(path)
    assert store.warnings == []  # checked at the first get
    assert store.get(key) == key.default
    assert store.get(key) == key.default
    assert len(store.warnings) == 1 and repr(key.name) in store.warnings[0]


def test_generic_set_checks_type_and_range(path: Path) -> None:
    store = SettingsStore(path)
    assert not store.set(ZOOM, 50.0) and not store.set(ZOOM, float("inf"))
    assert not store.set(COUNT, 2**40) and not store.set(NAME, "far too long")
    assert len(store.warnings) == 4
    for key, value in ((COUNT, True), (FLAG, 1), (ZOOM, "1"), (BLOB, "ab"), (NAME, b"x")):
        with pytest.raises(TypeError):
            store.set(key, value)


def test_key_definitions_are_checked() -> None:
    with pytest.raises(ValueError):
        Key("version", int, 1)
    with pytest.raises(ValueError):
        Key("config", str, "")
    with pytest.raises(ValueError):
        Key("n", int, 5, maximum=4)
    with pytest.raises(TypeError):
        Key("n", int, True)
    with pytest.raises(TypeError):
        Key("n", list, [])  # type: ignore[type-var]


# ---------------------------------------------------------------------- any input

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
KNOWN = ["config", "probe_text", "geometry", "window_state", "zoom", "count", "flag", "version"]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.dictionaries(st.sampled_from(KNOWN) | st.text(max_size=6), json_values, max_size=8))
def test_any_json_document_loads(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document), encoding="utf-8")
    store = SettingsStore(path)
    assert isinstance(store.probe_text(), str)
    assert store.geometry() is None or isinstance(store.geometry(), bytes)
    assert store.config() is None or isinstance(store.config(), RunConfig)
    assert type(store.get(ZOOM)) is float and type(store.get(COUNT)) is int
    assert type(store.get(FLAG)) is bool
    assert len(store.warnings) <= 7
    assert store.save() and SettingsStore(path).warnings == []


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300))
def test_any_bytes_load(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    store = SettingsStore(path)
    assert isinstance(store.probe_text(), str) and len(store.warnings) <= 4
