"""Settings that can never run code and never stop the app from starting (issue 12, 1 and 6).

Figure lines (``pytest -s``): ``payloads=N executed=0`` and ``corrupted_starts=100 crashes=0``.

Every payload is a real pickle that creates a sentinel file when un-pickled; a control test
shows that PySide6's QSettings does run it from an INI file, as the app's old code read it.
The tests that start the real app in a subprocess need the window to read its settings
through ``rnnviz.gui.state.settings.SettingsStore``: until the window stops using QSettings
they are skipped ("store not wired").
"""

from __future__ import annotations

import ast
import base64
import io
import json
import os
import pickle
import random
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rnnviz.core.config import RunConfig
from rnnviz.gui.state.settings import MAX_FILE_BYTES, Key, SettingsStore

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "rnnviz"
KEYS = ("config", "probe_text", "geometry", "window_state")
TEXT_KEY = Key("attack_text", str, "")
BLOB_KEY = Key("attack_blob", bytes, b"")
LINUX = sys.platform.startswith("linux")  # XDG_CONFIG_HOME decides where the app looks


def _uses_qsettings(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "QSettings":
            return True
        if isinstance(node, ast.Attribute) and node.attr == "QSettings":
            return True
        if isinstance(node, ast.ImportFrom) and any(a.name == "QSettings" for a in node.names):
            return True
    return False


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


_UNWIRED = [
    str(p.relative_to(ROOT))
    for p in sorted(PACKAGE.glob("gui/**/main_window.py"))
    if _uses_qsettings(p)
]
needs_wired_store = pytest.mark.skipif(
    bool(_UNWIRED),
    reason=f"store not wired: {', '.join(_UNWIRED)} still reads QSettings "
    "(the app would run the INI's payload)",
)


# ---------------------------------------------------------------------- payloads


class _Touch:
    """Un-pickled, creates ``path`` (``open(path, "w")``): proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        return (open, (self.path, "w"))


def _pickle(sentinel: Path) -> bytes:
    return pickle.dumps(_Touch(sentinel), protocol=4)


def _qsettings_variant(tmp: Path, sentinel: Path) -> str:
    """PySide6's own INI form of a Python object: ``@Variant(... PyObjectWrapper ...)``,
    written by QSettings.setValue into a fresh scratch file (nothing is read back)."""
    from PySide6.QtCore import QSettings

    scratch = tmp / "forge.ini"
    writer = QSettings(str(scratch), QSettings.Format.IniFormat)
    writer.setValue("probe_text", _Touch(sentinel))
    writer.sync()
    del writer
    for line in scratch.read_text(encoding="latin-1").splitlines():
        if line.startswith("probe_text="):
            value = line.split("=", 1)[1]
            assert value.startswith("@Variant(") and "PyObjectWrapper" in value
            return value
    raise AssertionError("QSettings wrote no probe_text")


def _datastream(sentinel: Path) -> bytes:
    """The bytes inside ``@Variant(...)``: user type, type name, then the pickle."""
    name = b"PySide::PyObjectWrapper\0"
    body = _pickle(sentinel)
    return (
        struct.pack(">I", 0x7F)
        + struct.pack(">I", len(name))
        + name
        + (struct.pack(">I", len(body)) + body)
    )


def _torch_save(sentinel: Path) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({"probe_text": _Touch(sentinel)}, buffer)
    return buffer.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _ini(entries: dict[str, str]) -> str:
    return "[General]\n" + "".join(f"{k}={v}\n" for k, v in entries.items())


def _payload_files(tmp: Path, sentinel: Path) -> list[tuple[str, dict[str, bytes]]]:
    """(name, {file name: content}) for every plausible place a payload could hide."""
    variant = _qsettings_variant(tmp, sentinel)
    raw = _pickle(sentinel)
    forms: dict[str, Any] = {
        "@Variant text": variant,
        "base64 of the variant's bytes": _b64(_datastream(sentinel)),
        "base64 of the pickle": _b64(raw),
        "the pickle as latin-1 text": raw.decode("latin-1"),
        "{'@Variant': ...}": {"@Variant": variant},
        "jsonpickle py/reduce": {
            "py/reduce": [{"py/function": "io.open"}, {"py/tuple": [str(sentinel), "w"]}]
        },
        "{'__reduce__': ...}": {"__reduce__": ["io.open", [str(sentinel), "w"]]},
        "typed wrapper": {"type": "PyObjectWrapper", "value": _b64(raw)},
        "in a list": [variant],
    }
    cases: list[tuple[str, dict[str, bytes]]] = []
    for key in (*KEYS, TEXT_KEY.name, BLOB_KEY.name):
        for form, value in forms.items():
            document = {"version": 1, key: value}
            cases.append((f"{key}: {form}", {"settings.json": json.dumps(document).encode()}))
    config = RunConfig().to_json()
    for section, field in (("corpus", "source"), ("train", "device"), ("model", "kind")):
        mangled = json.loads(json.dumps(config))
        mangled[section][field] = variant
        document = {"version": 1, "config": mangled}
        cases.append(
            (
                f"config.{section}.{field}: @Variant text",
                {"settings.json": json.dumps(document).encode()},
            )
        )
    cases.append(
        (
            "unknown key: @Variant text",
            {"settings.json": json.dumps({"version": 1, "evil": variant}).encode()},
        )
    )
    cases += [
        ("whole file: a pickle", {"settings.json": raw}),
        ("whole file: torch.save zip", {"settings.json": _torch_save(sentinel)}),
        ("whole file: the INI", {"settings.json": _ini(dict.fromkeys(KEYS, variant)).encode()}),
        ("whole file: @Variant text", {"settings.json": variant.encode("latin-1")}),
        ("whole file: a JSON string", {"settings.json": json.dumps(variant).encode()}),
    ]
    for key in KEYS:  # where the old code read them
        cases.append((f"rnnviz.ini: {key}", {"rnnviz.ini": _ini({key: variant}).encode()}))
    cases.append(
        ("rnnviz.ini: every key", {"rnnviz.ini": _ini(dict.fromkeys(KEYS, variant)).encode()})
    )
    cases.append(
        (
            "rnnviz.ini and settings.json",
            {
                "rnnviz.ini": _ini(dict.fromkeys(KEYS, variant)).encode(),
                "settings.json": json.dumps(
                    {"version": 1, **dict.fromkeys(KEYS, variant)}
                ).encode(),
            },
        )
    )
    return cases


def _use_store(path: Path) -> SettingsStore:
    """What the window does with its settings: read every key, then save on close."""
    store = SettingsStore(path)
    store.config()
    store.probe_text()
    store.geometry()
    store.window_state()
    store.get(TEXT_KEY)
    store.get(BLOB_KEY)
    store.save()
    return store


def test_the_payload_is_live_under_qsettings(tmp_path: Path) -> None:
    """Control: the old way of reading (QSettings.value) does run the INI payload."""
    sentinel = tmp_path / "ran"
    ini = tmp_path / "rnnviz.ini"
    ini.write_text(_ini({"probe_text": _qsettings_variant(tmp_path, sentinel)}), "latin-1")
    code = (
        "import sys; from PySide6.QtCore import QSettings;"
        "QSettings(sys.argv[1], QSettings.Format.IniFormat).value('probe_text')"
    )
    subprocess.run([sys.executable, "-c", code, str(ini)], timeout=60, capture_output=True)
    assert sentinel.exists()


def test_no_payload_runs_from_the_settings(tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    cases = _payload_files(tmp_path, sentinel)
    executed = []
    for i, (name, files) in enumerate(cases):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        for file_name, content in files.items():
            (folder / file_name).write_bytes(content)
        store = _use_store(folder / "settings.json")
        if sentinel.exists():
            executed.append(name)
            sentinel.unlink()
        assert len(store.warnings) <= 8, (name, store.warnings)
    print(f"payloads={len(cases)} executed={len(executed)}")
    assert executed == []
    assert len(cases) >= 60


# ---------------------------------------------------------------------- the real app


def _start_app(
    config_home: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home), "QT_QPA_PLATFORM": "offscreen"}
    if not args:  # the window reads its remembered settings, shows, and the app exits
        env["RNNVIZ_EXIT_AFTER_SHOW"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "rnnviz", *args],
        cwd=config_home,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _poisoned_config_home(tmp: Path, sentinel: Path) -> Path:
    home = tmp / "config"
    folder = home / "rnnviz"
    folder.mkdir(parents=True)
    variant = _qsettings_variant(tmp, sentinel)
    (folder / "rnnviz.ini").write_text(_ini(dict.fromkeys(KEYS, variant)), "latin-1")
    document = {"version": 1, **dict.fromkeys(KEYS, variant)}
    (folder / "settings.json").write_text(json.dumps(document), "utf-8")
    return home


@pytest.mark.skipif(not LINUX, reason="XDG_CONFIG_HOME places the settings on Linux only")
@needs_wired_store
def test_app_start_runs_no_payload(tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    home = _poisoned_config_home(tmp_path, sentinel)
    result = _start_app(home)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not sentinel.exists()
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="XDG_CONFIG_HOME places the settings on Linux only")
@needs_wired_store
def test_screenshot_start_runs_no_payload(tmp_path: Path) -> None:
    sentinel = tmp_path / "ran"
    home = _poisoned_config_home(tmp_path, sentinel)
    result = _start_app(home, "--screenshot", str(tmp_path / "out.png"), "--train-steps", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    assert not sentinel.exists()
    assert (tmp_path / "out.png").stat().st_size > 0


# ---------------------------------------------------------------------- corrupt files


def _valid_document() -> dict[str, Any]:
    config = RunConfig().replace(train={"seed": 5}).to_json()
    return {
        "version": 1,
        "config": config,
        "probe_text": "the time traveller",
        "geometry": _b64(bytes(range(66))),
        "window_state": _b64(bytes(range(200))),
    }


def _with(**changes: Any) -> bytes:
    document = _valid_document()
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = document
        for part in parents:
            target = target[part]
        target[last] = value
    return json.dumps(document).encode()


def _corruptions() -> list[tuple[str, Callable[[Path], None]]]:
    """100 ways to break the settings file, each a function that makes it at a path."""
    valid = json.dumps(_valid_document()).encode()
    rng = random.Random(3_000_000_000)

    def content(data: bytes) -> Callable[[Path], None]:
        return lambda path: path.write_bytes(data)

    cases: list[tuple[str, Callable[[Path], None]]] = []
    for cut in (0, 1, 2, 10, 50, len(valid) // 4, len(valid) // 2, len(valid) - 2, len(valid) - 1):
        cases.append((f"truncated at {cut}", content(valid[:cut])))
    for key in KEYS:
        for bad in (5, None, [], {}, True, 2.5):
            cases.append((f"{key} = {bad!r}", content(_with(**{key: bad}))))
    cases += [
        ("probe_text a million characters", content(_with(probe_text="x" * 1_000_000))),
        ("probe_text with NUL", content(_with(probe_text="a\0b"))),
        ("geometry 1 MiB", content(_with(geometry=_b64(b"\0" * 1024 * 1024)))),
        ("geometry not base64", content(_with(geometry="@ByteArray(\\x1)"))),
        ("file over the cap", content(valid + b" " * MAX_FILE_BYTES)),
        ("an int of 10,000 digits", content(b'{"version": 1, "x": ' + b"7" * 10_000 + b"}")),
        ("seed 3000000000", content(_with(config__train__seed=3_000_000_000))),
        ("seed 2**70", content(_with(config__train__seed=2**70))),
        ("seed -5", content(_with(config__train__seed=-5))),
        ("seed 1e9 as a float", content(_with(config__train__seed=1e9))),
        ("NaN lr", content(_with(config__train__lr=float("nan")))),
        ("Infinity lr", content(_with(config__train__lr=float("inf")))),
        ("-Infinity theta", content(_with(config__train__clip_theta=float("-inf")))),
        ("lr 1e400", content(valid.replace(b'"lr": 1.0', b'"lr": 1e400'))),
        ("hidden 32.5", content(_with(config__model__hidden_size=32.5))),
        ("hidden true", content(_with(config__model__hidden_size=True))),
        ("hidden 10**9", content(_with(config__model__hidden_size=10**9))),
        ("batch 0", content(_with(config__train__batch_size=0))),
        ("model 'abc'", content(_with(config__model="abc"))),
        ("corpus 'abc'", content(_with(config__corpus="abc"))),
        ("kind 'transformer'", content(_with(config__model__kind="transformer"))),
        ("source with NUL", content(_with(config__corpus__source="a\0b"))),
        ("config a JSON string", content(_with(config=json.dumps(RunConfig().to_json())))),
        (
            "config nested 100,000 deep",
            content(b'{"version": 1, "config": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ),
        ("objects nested 50,000 deep", content(b'{"a":' * 50_000 + b"1" + b"}" * 50_000)),
        ("version 99", content(_with(version=99))),
        ("version missing", content(json.dumps({"probe_text": "x"}).encode())),
        ("a list", content(b"[]")),
        ("null", content(b"null")),
        ("whitespace", content(b"   \n\t ")),
        ("NULs", content(b"\0" * 4096)),
        ("UTF-16 JSON", content(json.dumps(_valid_document()).encode("utf-16"))),
        (
            "PNG header",
            content(b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(200))),
        ),
        ("a pickle", content(pickle.dumps({"probe_text": "x"}))),
    ]
    for i in range(4):
        garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5000)))
        cases.append((f"binary garbage {i}", content(garbage)))
    cases += [
        ("a FIFO", (lambda path: os.mkfifo(path))),
        ("a directory", (lambda path: path.mkdir())),
        ("a symlink to /dev/zero", (lambda path: path.symlink_to("/dev/zero"))),
        ("a symlink to /dev/urandom", (lambda path: path.symlink_to("/dev/urandom"))),
        ("a dangling symlink", (lambda path: path.symlink_to(path.with_name("nowhere")))),
        ("a symlink loop", (lambda path: path.symlink_to(path))),
        ("a sparse 4 GiB file", (lambda path: os.truncate(_touch(path), 4 * 1024**3))),
    ]
    while len(cases) < 100:  # bit flips in a valid file
        flipped = bytearray(valid)
        for _ in range(rng.randrange(1, 9)):
            spot = rng.randrange(len(flipped))
            flipped[spot] ^= 1 << rng.randrange(8)
        cases.append((f"bit flips {len(cases)}", content(bytes(flipped))))
    return cases[:100]


def _touch(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _load_within(path: Path, seconds: float) -> str | None:
    """None if the store loaded and answered with the right types; else what went wrong."""
    outcome: list[str | None] = []

    def load() -> None:
        try:
            store = _use_store(path)
            config = store.config()
            assert config is None or isinstance(config, RunConfig)
            assert isinstance(store.probe_text(), str)
            assert store.geometry() is None or isinstance(store.geometry(), bytes)
            assert store.window_state() is None or isinstance(store.window_state(), bytes)
            outcome.append(None)
        except BaseException as exc:  # every failure counts as a crash
            outcome.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return f"hung over {seconds} s"
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and symlinks")
def test_corrupted_settings_never_stop_a_start(tmp_path: Path) -> None:
    cases = _corruptions()
    assert len(cases) == 100
    crashes = []
    for i, (name, make) in enumerate(cases):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        make(folder / "settings.json")
        problem = _load_within(folder / "settings.json", seconds=10)
        if problem is not None:
            crashes.append(f"{name}: {problem}")
    print(f"corrupted_starts={len(cases)} crashes={len(crashes)}")
    assert crashes == []


@pytest.mark.skipif(not LINUX, reason="XDG_CONFIG_HOME places the settings on Linux only")
@needs_wired_store
@pytest.mark.parametrize(
    "case",
    ["seed 3000000000", "NaN lr", "binary garbage"],
)
def test_real_app_starts_on_a_corrupt_file(tmp_path: Path, case: str) -> None:
    data = {
        "seed 3000000000": _with(config__train__seed=3_000_000_000),
        "NaN lr": _with(config__train__lr=float("nan")),
        "binary garbage": bytes(random.Random(3).randrange(256) for _ in range(3000)),
    }[case]
    folder = tmp_path / "config" / "rnnviz"
    folder.mkdir(parents=True)
    (folder / "settings.json").write_bytes(data)
    result = _start_app(tmp_path / "config")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------- source scan

_UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "jsonpickle"}


def _call_name(node: ast.Call) -> str:
    parts = []
    target: ast.expr = node.func
    while isinstance(target, ast.Attribute):
        parts.append(target.attr)
        target = target.value
    if isinstance(target, ast.Name):
        parts.append(target.id)
    return ".".join(reversed(parts))


def _keyword_true(node: ast.Call, name: str) -> bool:
    return any(
        k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in node.keywords
    )


def test_source_never_unpickles() -> None:
    findings = []
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in _UNPICKLERS:
                bad = [
                    a.name for a in node.names if a.name in {"load", "loads", "Unpickler", "decode"}
                ]
                if bad:
                    findings.append(f"{where}:{node.lineno} from {node.module} import {bad}")
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            head, _, tail = name.rpartition(".")
            if head in _UNPICKLERS and tail in {"load", "loads", "Unpickler", "decode"}:
                findings.append(f"{where}:{node.lineno} {name}")
            if name == "shelve.open":
                findings.append(f"{where}:{node.lineno} {name}")
            if name == "torch.load" and not _keyword_true(node, "weights_only"):
                findings.append(f"{where}:{node.lineno} torch.load without weights_only=True")
            if tail == "load" and head in {"np", "numpy"} and _keyword_true(node, "allow_pickle"):
                findings.append(f"{where}:{node.lineno} {name}(allow_pickle=True)")
    assert findings == []


@needs_wired_store
def test_source_never_reads_qsettings() -> None:
    users = [str(p.relative_to(ROOT)) for p in _sources() if _uses_qsettings(p)]
    assert users == [], "QSettings un-pickles INI values; read settings with SettingsStore"
