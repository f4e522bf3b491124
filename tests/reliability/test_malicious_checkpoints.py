"""Malicious checkpoints never run (issue 12): payloads that would create a sentinel file.

Every payload is a real pickle whose ``__reduce__`` calls ``open(sentinel, "w")``: plain, at
every protocol; nested in a dict; inside ``torch.save``'s zip and its legacy format; behind a
safetensors header; appended to a valid checkpoint. Each is given to every way the app reads a
checkpoint (``load_checkpoint``, ``restore_run``, ``rnnviz probe`` and ``rnnviz sample``) and
must be refused with a one-line message that names a pickle where it is one. That the payloads
are armed is shown by disassembly (``pickletools``), without un-pickling anything.

Figure line (``pytest -s``): ``payloads=N executed=0``. A source scan checks that nothing in
``rnnviz/`` can un-pickle: no ``pickle.load``/``loads``, ``Unpickler``, ``torch.load`` without
``weights_only=True``, ``allow_pickle=True``, ``marshal.load``, ``shelve``, ``dill``.
"""

from __future__ import annotations

import ast
import io
import json
import pickle
import pickletools
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnviz import cli
from rnnviz.core.checkpoint import CheckpointError, load_checkpoint, restore_run, save_run
from rnnviz.core.config import RunConfig
from rnnviz.core.runs import build_run

ROOT = Path(__file__).resolve().parents[2]


class Payload:
    """Un-pickling this object calls ``open(path, "w")``: the sentinel file appears."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return (open, (self.path, "w"))


def _armed(data: bytes, sentinel: Path) -> bool:
    """Whether the pickle ``data`` calls ``open`` on ``sentinel`` (by disassembly only)."""
    args = []
    ops = set()
    for opcode, arg, _pos in pickletools.genops(io.BytesIO(data)):
        ops.add(opcode.name)
        if isinstance(arg, str):
            args.append(arg)
    calls_open = any(a in ("open", "builtins open", "__builtin__ open", "io open") for a in args)
    return calls_open and str(sentinel) in args and "REDUCE" in ops


def _tiny_checkpoint(path: Path) -> Path:
    cfg = RunConfig().replace(
        corpus={"source": "synthetic:repeat", "synthetic_length": 2000},
        model={"hidden_size": 8},
        train={"batch_size": 4, "num_steps": 6, "windows_per_epoch": 16, "val_windows": 8},
    )
    save_run(path, build_run(cfg))
    return path


def payloads(tmp: Path, sentinel: Path) -> dict[str, tuple[bytes, list[bytes]]]:
    """name -> (file content, the pickles inside it, each to be shown armed)."""
    evil = Payload(sentinel)
    out: dict[str, tuple[bytes, list[bytes]]] = {}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        plain = pickle.dumps(evil, protocol=protocol)
        out[f"pickle protocol {protocol}"] = (plain, [plain])
        nested = pickle.dumps({"model": {"W_hh": [0.1, 0.2], "x": evil}}, protocol=protocol)
        out[f"nested in a dict, protocol {protocol}"] = (nested, [nested])
    buf = io.BytesIO()
    torch.save({"W_hh": torch.zeros(2, 2), "x": evil}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        inner = [zf.read(n) for n in zf.namelist() if n.endswith(".pkl")]
    out["torch.save zip"] = (buf.getvalue(), inner)
    legacy = io.BytesIO()
    torch.save({"x": evil}, legacy, _use_new_zipfile_serialization=False)
    # the legacy format is five pickles in a row; the fourth holds the object
    stream = io.BytesIO(legacy.getvalue())
    parts = []
    for _ in range(5):
        start = stream.tell()
        for opcode, _arg, _pos in pickletools.genops(stream):
            if opcode.name == "STOP":
                break
        parts.append(legacy.getvalue()[start : stream.tell()])
    out["torch.save legacy"] = (
        legacy.getvalue(),
        [p for p in parts if str(sentinel).encode() in p],
    )
    plain = pickle.dumps(evil, protocol=2)
    # a safetensors header whose one tensor's bytes are the pickle
    data = plain + b"\0" * (-len(plain) % 4)
    header = {
        "__metadata__": {"rnnviz": json.dumps({"format_version": 1, "config": {}, "vocab": []})},
        "W": {"dtype": "F32", "shape": [len(data) // 4], "data_offsets": [0, len(data)]},
    }
    raw = json.dumps(header).encode()
    out["pickle behind a safetensors header"] = (
        len(raw).to_bytes(8, "little") + raw + data,
        [plain],
    )
    valid = _tiny_checkpoint(tmp / "valid.safetensors").read_bytes()
    out["pickle appended to a checkpoint"] = (valid + plain, [plain])
    npy = io.BytesIO()
    np.save(npy, np.array([evil], dtype=object), allow_pickle=True)
    out["numpy object array"] = (npy.getvalue(), [npy.getvalue()[npy.getvalue().index(b"\x80") :]])
    return out


def _readers(path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Every way the app reads a checkpoint; what each said (all must refuse)."""
    said = []
    for read in (load_checkpoint, lambda p: restore_run(load_checkpoint(p))):
        with pytest.raises(CheckpointError) as info:
            read(path)
        said.append(str(info.value))
    for argv in (
        ["probe", "time", "--checkpoint", str(path)],
        ["sample", "time", "--checkpoint", str(path), "--num-chars", "5"],
    ):
        capsys.readouterr()
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        said.append(err)
    return said


def test_malicious_checkpoints_never_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel = tmp_path / "EXECUTED"
    cases = payloads(tmp_path, sentinel)
    executed = 0
    for name, (content, pickles) in cases.items():
        assert pickles and all(_armed(p, sentinel) for p in pickles), name
        path = tmp_path / "ck.safetensors"
        path.write_bytes(content)
        for message in _readers(path, capsys):
            assert message and "\n" not in message, (name, message)
            if "pickle" in name and "header" not in name and "appended" not in name:
                assert "pickle" in message, (name, message)
        if sentinel.exists():
            executed += 1
            sentinel.unlink()
    print(f"payloads={len(cases)} executed={executed}")
    assert executed == 0


# ---------------------------------------------------------------- source scan

FORBIDDEN = {
    r"\bpickle\.(load|loads|Unpickler)\b": "un-pickles",
    r"\bUnpickler\b": "un-pickles",
    r"\b(cPickle|dill|cloudpickle|shelve|joblib)\b": "a pickle library",
    r"\bmarshal\.loads?\b": "un-marshals code objects",
    r"allow_pickle\s*=\s*True": "lets NumPy un-pickle",
}


def _torch_loads_without_weights_only(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = func.value if isinstance(func, ast.Attribute) else None
        is_torch_load = name == "load" and isinstance(owner, ast.Name) and owner.id == "torch"
        if not is_torch_load:
            continue
        safe = any(
            k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
            for k in node.keywords
        )
        if not safe:
            lines.append(node.lineno)
    return lines


def test_source_never_unpickles() -> None:
    findings = []
    sources = sorted((ROOT / "rnnviz").rglob("*.py"))
    assert len(sources) > 20
    for path in sources:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        rel = path.relative_to(ROOT)
        for line in _torch_loads_without_weights_only(tree):
            findings.append(f"{rel}:{line}: torch.load without weights_only=True")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module == "torch"
                and any(a.name == "load" for a in node.names)
            ):
                findings.append(f"{rel}:{node.lineno}: from torch import load")
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        for pattern, why in FORBIDDEN.items():
            for match in re.finditer(pattern, code):
                findings.append(f"{rel}: {match.group(0)!r} ({why})")
    print(f"files_scanned={len(sources)} findings={len(findings)}")
    assert findings == []
