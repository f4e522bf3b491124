"""Checkpoint fuzz (issue 12): every hostile file ends as loaded or refused with a reason.

Inputs: random bytes, truncations, bit flips, mangled metadata (wrong types, missing keys, huge
declared shapes, NaN hyperparameters, deep nesting, duplicate keys; each with and without a
valid checksum) and special files (FIFO, /dev/zero, /dev/urandom, a sparse 4 GiB file, ...).
They are loaded by a worker process under an address-space limit; the parent gives every input
a time bound and counts a hang (then restarts the worker) when it is passed.

Figure lines (``pytest -s``)::

    inputs=N uncaught=0 hangs=0 max_rss_mib=...
    bitflips=N detected=N
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import selectors
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from rnnviz.core.checkpoint import CHECKSUM_KEY, CHECKSUM_PREFIX, content_digest, save_run
from rnnviz.core.config import RunConfig
from rnnviz.core.runs import build_run

# a load that takes longer is a hang (the machine is shared and slow; a real load takes ms)
TIME_BOUND_S = 10.0
# the worker's address-space limit: reading /dev/zero or building a 6.7 GiB model fails inside it
ADDRESS_SPACE_LIMIT = 8 * 2**30
MAX_RSS_MIB = 1024
DEEP = "[" * 100_000 + "]" * 100_000


def tiny_config(**model: Any) -> RunConfig:
    return RunConfig().replace(
        corpus={"source": "synthetic:repeat", "synthetic_length": 2000},
        model={"hidden_size": 8, **model},
        train={"batch_size": 4, "num_steps": 6, "windows_per_epoch": 16, "val_windows": 8},
    )


def _saved(path: Path, **changes: Any) -> Path:
    model = {k: v for k, v in changes.items() if k in ("kind",)}
    train = {k: v for k, v in changes.items() if k not in ("kind",)}
    cfg = tiny_config(**model)
    run = build_run(cfg.replace(train=train) if train else cfg)
    run.trainer.train_step()
    save_run(path, run)
    return path


def _split(data: bytes) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    return header, json.loads(header["__metadata__"]["rnnviz"]), data[8 + n :]


def _join(header: dict[str, Any], body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + body


def _tensors(header: dict[str, Any], body: bytes) -> dict[str, torch.Tensor]:
    out = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        out[key] = torch.frombuffer(bytearray(body[begin:end]), dtype=torch.float32).reshape(
            entry["shape"]
        )
    return out


def _with_meta(data: bytes, meta_text: str, sign: bool) -> bytes:
    header, _meta, body = _split(data)
    header["__metadata__"]["rnnviz"] = meta_text
    if sign:  # the checksum a writer would have stored for this text
        digest = content_digest(meta_text, _tensors(header, body))
        header["__metadata__"][CHECKSUM_KEY] = CHECKSUM_PREFIX + digest
    return _join(header, body)


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key)
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node[:3]):
            yield (*path, i)
            yield from _leaves(value, (*path, i))


def _replaced(meta: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(meta))
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


_DELETE = object()
BAD_VALUES: list[Any] = [
    _DELETE,
    None,
    "abc",
    -1,
    0,
    2**70,
    32.5,
    True,
    math.nan,
    math.inf,
    [],
    {},
    [None],
    "x" * 5000,
]


def mangled_metadata(data: bytes) -> Iterator[tuple[str, bytes]]:
    _header, meta, _body = _split(data)
    for path in _leaves(meta):
        for value in BAD_VALUES:
            text = json.dumps(_replaced(meta, path, value))
            label = ".".join(map(str, path))
            yield f"meta {label}={value!r:.12}", _with_meta(data, text, sign=False)
            yield f"meta {label}={value!r:.12} signed", _with_meta(data, text, sign=True)
    specials = {
        "deep": DEEP,
        "deep in vocab": json.dumps(meta).replace('"vocab": [', '"vocab": [' + DEEP + ", ", 1),
        "duplicate key": json.dumps(meta)[:-1] + ', "format_version": 1}',
        "not json": "{not json",
        "a list": "[1, 2]",
        "huge int": '{"format_version": ' + "9" * 5000 + "}",
        "vocab 100,001 hidden 8192": json.dumps(
            _replaced(
                _replaced(meta, ("vocab",), ["<unk>"] + [chr(0x4E00 + i) for i in range(100_000)]),
                ("config", "model", "hidden_size"),
                8192,
            )
        ),
        "vocab 10^6": json.dumps(
            _replaced(meta, ("vocab",), ["<unk>"] + [chr(0x10000 + i) for i in range(10**6)])
        ),
        "hidden 8192": json.dumps(_replaced(meta, ("config", "model", "hidden_size"), 8192)),
        "lr NaN": json.dumps(meta).replace('"lr": 1.0', '"lr": NaN'),
        "theta Infinity": json.dumps(meta).replace('"clip_theta": 1.0', '"clip_theta": Infinity'),
    }
    for label, text in specials.items():
        yield label, _with_meta(data, text, sign=False)
        yield label + " signed", _with_meta(data, text, sign=True)


def mangled_tables(data: bytes) -> Iterator[tuple[str, bytes]]:
    header, _meta, body = _split(data)
    names = [k for k in header if k != "__metadata__"]
    shapes: list[Any] = [[65536, 8192], [10**12, 10**12], [2**62], [-1], [], ["8"], None, [8.0]]
    for name in names:
        for shape in shapes:
            h = json.loads(json.dumps(header))
            h[name]["shape"] = shape
            yield f"shape {name}={shape}", _join(h, body)
            if isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape):
                # offsets that agree with the huge shape: the file is then far too short
                h[name]["data_offsets"] = [0, math.prod(shape) * 4]
                yield f"shape+offsets {name}={shape}", _join(h, body)
        for value in ("0,12", None, 12, [0], [5, 1], [-4, 0], [0, 2**70]):
            h = json.loads(json.dumps(header))
            h[name]["data_offsets"] = value
            yield f"offsets {name}={value}", _join(h, body)
        for dtype in ("F16", "I64", "F64", 7, None):
            h = json.loads(json.dumps(header))
            h[name]["dtype"] = dtype
            yield f"dtype {name}={dtype}", _join(h, body)
        h = json.loads(json.dumps(header))
        del h[name]
        yield f"without {name}", _join(h, body)
    h = json.loads(json.dumps(header))
    h["model.extra"] = {"dtype": "F32", "shape": [1], "data_offsets": [len(body), len(body) + 4]}
    yield "extra tensor", _join(h, body + b"\0\0\0\0")
    raw = json.dumps(header).encode()
    deep = raw[:-1] + b', "deep": ' + DEEP.encode() + b"}"
    yield "deep header", len(deep).to_bytes(8, "little") + deep + body
    yield "header length 2**64-1", (2**64 - 1).to_bytes(8, "little") + data[8:]
    yield "header length 0", bytes(8) + data[8:]


def special_files(tmp: Path) -> list[tuple[str, Path]]:
    tmp = tmp / "special"
    tmp.mkdir()
    fifo = tmp / "fifo.safetensors"
    os.mkfifo(fifo)
    sparse = tmp / "sparse.safetensors"
    with sparse.open("wb") as fh:
        fh.truncate(4 * 2**30)
    zero_link = tmp / "zero-link.safetensors"
    zero_link.symlink_to("/dev/zero")
    loop = tmp / "loop.safetensors"
    loop.symlink_to(loop.name)
    unreadable = tmp / "unreadable.safetensors"
    unreadable.write_bytes(b"x" * 100)
    unreadable.chmod(0)
    folder = tmp / "folder.safetensors"
    folder.mkdir()
    return [
        ("FIFO", fifo),
        ("/dev/zero", Path("/dev/zero")),
        ("/dev/urandom", Path("/dev/urandom")),
        ("/dev/null", Path("/dev/null")),
        ("sparse 4 GiB", sparse),
        ("symlink to /dev/zero", zero_link),
        ("symlink loop", loop),
        ("unreadable", unreadable),
        ("folder", folder),
        ("missing", tmp / "missing.safetensors"),
    ]


def build_inputs(tmp: Path, n_flips: int) -> tuple[list[tuple[str, Path]], list[int], list[int]]:
    """Every input as (label, path), the indices of the bit flips and of the special files."""
    rng = random.Random(12)
    base_dir = tmp / "base"
    base_dir.mkdir()
    bases = [
        _saved(base_dir / "fast.safetensors"),
        _saved(base_dir / "lstm.safetensors", kind="lstm", optimizer="adam", lr=0.01),
    ]
    out_dir = tmp / "inputs"
    out_dir.mkdir()
    inputs: list[tuple[str, Path]] = [(f"valid {b.name}", b) for b in bases]
    flips: list[int] = []

    def add(label: str, content: bytes) -> None:
        path = out_dir / f"{len(inputs):05d}.safetensors"
        path.write_bytes(content)
        inputs.append((label, path))

    for i in range(150):
        add(f"random {i}", rng.randbytes(rng.choice([0, 1, 7, 8, 9, 64, 300, 4096])))
    for i in range(50):  # random bytes behind a plausible safetensors length and brace
        body = b"{" + rng.randbytes(rng.randrange(0, 2000))
        add(f"random framed {i}", len(body).to_bytes(8, "little") + body)
    for base in bases:
        data = base.read_bytes()
        n = int.from_bytes(data[:8], "little")
        cuts = set(range(0, 24)) | {n + 7, n + 8, n + 9, len(data) - 1}
        cuts |= set(range(0, len(data), 53))
        for cut in sorted(cuts):
            add(f"{base.name} cut at {cut}", data[:cut])
        add(f"{base.name} + trailing bytes", data + b"\0" * 16)
        for pos in list(range(64)) + [rng.randrange(8 * len(data)) for _ in range(n_flips // 2)]:
            flipped = bytearray(data)
            flipped[pos // 8] ^= 1 << (pos % 8)
            flips.append(len(inputs))
            add(f"{base.name} bit {pos}", bytes(flipped))
        for label, content in mangled_metadata(data):
            add(f"{base.name} {label}", content)
        for label, content in mangled_tables(data):
            add(f"{base.name} {label}", content)
    first_special = len(inputs)
    inputs += special_files(tmp)
    return inputs, flips, list(range(first_special, len(inputs)))


# ---------------------------------------------------------------- the worker process


def worker(list_file: str, start: int) -> None:
    """Load every input from ``start`` on; one line before and one after each."""
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    torch.set_num_threads(1)
    from rnnviz.core.checkpoint import CheckpointError, load_checkpoint, restore_model

    paths = Path(list_file).read_text().splitlines()
    for i in range(start, len(paths)):
        print(f"S {i}", flush=True)
        t0 = time.perf_counter()
        try:
            ckpt = load_checkpoint(paths[i])
            restore_model(ckpt)
            outcome, reason = "loaded", ""
        except CheckpointError as exc:
            outcome, reason = "rejected", str(exc)
        except BaseException as exc:  # what the fuzz is looking for
            outcome, reason = "uncaught", f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - t0
        reason = reason.replace("\n", "\\n")  # a multi-line message is a finding too
        print(f"E {i} {outcome} {seconds:.4f} {reason[:300]}", flush=True)
    print(f"R {_own_peak_rss_mib():.0f}", flush=True)


def _own_peak_rss_mib() -> float:
    """This process's own peak RSS. Not ru_maxrss: Linux carries it across execve from the
    forked parent's image, so in the full suite the worker reported the pytest process's
    ~1 GiB; VmHWM belongs to the process's own address space."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_inputs(
    paths: list[Path], tmp: Path
) -> tuple[dict[int, tuple[str, float, str]], int, float]:
    """Results by index, hangs, and the largest worker RSS in MiB."""
    list_file = tmp / "inputs.txt"
    list_file.write_text("\n".join(str(p) for p in paths))
    results: dict[int, tuple[str, float, str]] = {}
    hangs, max_rss = 0, 0.0
    start = 0
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    while start < len(paths):
        proc = subprocess.Popen(
            [sys.executable, __file__, "worker", str(list_file), str(start)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        current, deadline = start, time.monotonic() + 120.0  # the first includes start-up
        finished = False
        while True:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                hangs += 1
                proc.kill()
                start = current + 1
                break
            line = proc.stdout.readline()
            if not line:  # the worker died (a crash counts as uncaught for its input)
                results.setdefault(current, ("uncaught", 0.0, f"worker exit {proc.wait()}"))
                start = current + 1
                break
            kind, _, rest = line.rstrip("\n").partition(" ")
            if kind == "S":
                current = int(rest)
                deadline = time.monotonic() + TIME_BOUND_S
            elif kind == "E":
                index, outcome, seconds, reason = (rest.split(" ", 3) + [""])[:4]
                results[int(index)] = (outcome, float(seconds), reason)
                deadline = time.monotonic() + TIME_BOUND_S
            elif kind == "R":
                max_rss = max(max_rss, float(rest))
                finished = True
                break
        proc.wait()
        sel.close()
        if finished:
            break
    return results, hangs, max_rss


def _check(n_flips: int, tmp_path: Path) -> None:
    inputs, flips, specials = build_inputs(tmp_path, n_flips)
    paths = [p for _, p in inputs]
    results, hangs, max_rss = run_inputs(paths, tmp_path)
    uncaught = [
        (inputs[i][0], reason)
        for i, (outcome, _s, reason) in results.items()
        if outcome == "uncaught" or (outcome == "rejected" and (not reason or "\\n" in reason))
    ]
    outcomes = Counter(outcome for outcome, _s, _r in results.values())
    detected = sum(results[i][0] == "rejected" for i in flips)
    print(f"inputs={len(inputs)} uncaught={len(uncaught)} hangs={hangs} max_rss_mib={max_rss:.0f}")
    print(f"bitflips={len(flips)} detected={detected}")
    print(f"  outcomes: {dict(outcomes)}")
    assert uncaught == [], uncaught[:5]
    assert hangs == 0
    assert len(results) == len(inputs)
    assert max_rss < MAX_RSS_MIB
    assert detected == len(flips)
    for label in ("valid fast.safetensors", "valid lstm.safetensors"):
        assert results[[lab for lab, _ in inputs].index(label)][0] == "loaded"
    for i in specials:  # refused at once
        outcome, seconds, _reason = results[i]
        assert outcome == "rejected" and seconds < 1.0, (inputs[i][0], results[i])


def test_checkpoint_fuzz(tmp_path: Path) -> None:
    _check(n_flips=400, tmp_path=tmp_path)


FLIP_PARTS = 4  # each part stays under the suite's 120 s hang dump on a busy machine


@pytest.mark.slow
@pytest.mark.parametrize("part", range(FLIP_PARTS))
def test_every_single_bit_flip_is_detected(tmp_path: Path, part: int) -> None:
    from rnnviz.core.checkpoint import CheckpointError, load_checkpoint

    data = _saved(tmp_path / "ck.safetensors").read_bytes()
    target = tmp_path / "flipped.safetensors"
    positions = range(part, 8 * len(data), FLIP_PARTS)
    missed = []
    for pos in positions:
        flipped = bytearray(data)
        flipped[pos // 8] ^= 1 << (pos % 8)
        target.write_bytes(flipped)
        try:
            load_checkpoint(target)
            missed.append(pos)
        except CheckpointError:
            pass
    print(
        f"bitflips={len(positions)} detected={len(positions) - len(missed)} "
        f"(every bit of a {len(data):,}-byte checkpoint, part {part + 1} of {FLIP_PARTS})"
    )
    assert missed == []


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    worker(sys.argv[2], int(sys.argv[3]))
