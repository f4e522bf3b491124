"""Atomic saves (issue 12, item 10): a failed or killed save never costs the previous file.

Figure lines (``pytest -s``)::

    trials=200 corrupt=0 previous_intact=200 leftover_tmp=0
    kills=100 load_failures=0 leftover_tmp_after_next_save=0     (slow; 10 kills in the fast run)

Fault injection raises inside the save after a random number of bytes written (the fake
``os.write`` also writes short, as the real one may), in ``fsync``, in the rename, or when the
temp file is created. The kill test SIGKILLs a process that saves in a loop, at a random
moment, then loads what is there and saves once more.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from rnnviz.core.atomic import (
    TMP_SUFFIX,
    OutputPathError,
    atomic_write_bytes,
    check_output_path,
)
from rnnviz.core.checkpoint import CheckpointError, checkpoint_bytes, load_checkpoint, save_run
from rnnviz.core.config import RunConfig
from rnnviz.core.model import build_model
from rnnviz.core.runs import Run, build_run
from rnnviz.core.vocab import Vocab

ROOT = Path(__file__).resolve().parents[2]


def _run(hidden: int = 8) -> Run:
    cfg = RunConfig().replace(
        corpus={"source": "synthetic:repeat", "synthetic_length": 2000},
        model={"hidden_size": hidden},
        train={"batch_size": 4, "num_steps": 6, "windows_per_epoch": 16, "val_windows": 8},
    )
    return build_run(cfg)


def _others(folder: Path, target: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p != target)


def _bytes_of(run: Run) -> bytes:
    return checkpoint_bytes(
        config=run.config, vocab=run.vocab, model=run.model, trainer=run.trainer, corpus=run.corpus
    )


# ---------------------------------------------------------------- fault injection


def _faulty_write(limit: int, rng: random.Random) -> Callable[[int, Any], int]:
    real = os.write
    written = 0

    def write(fd: int, data: Any) -> int:
        nonlocal written
        if written >= limit:
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        chunk = min(len(data), limit - written, rng.randint(1, 1 << 16))
        n = real(fd, bytes(data[:chunk]))
        written += n
        return n

    return write


def _raiser(err: int, what: str) -> Callable[..., Any]:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError(err, f"{what} (injected)")

    return fail


def _failing_create() -> Callable[..., int]:
    real = os.open

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT:
            raise OSError(errno.EMFILE, "Too many open files (injected)")
        return real(path, flags, *args, **kwargs)

    return open_


def test_fault_injection_never_costs_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(2024)
    run = _run()
    target = tmp_path / "ck.safetensors"
    save_run(target, run)
    previous = target.read_bytes()
    run.trainer.train_step()
    size = len(_bytes_of(run))
    trials = 200
    corrupt = intact = leftover = 0
    modes = Counter()
    for _ in range(trials):
        mode = rng.choice(["write", "write", "fsync", "rename", "create"])
        modes[mode] += 1
        with monkeypatch.context() as m:
            if mode == "write":
                m.setattr(os, "write", _faulty_write(rng.randrange(size), rng))
            elif mode == "fsync":
                m.setattr(os, "fsync", _raiser(errno.EIO, "Input/output error"))
            elif mode == "rename":
                m.setattr(os, "replace", _raiser(errno.EXDEV, "Invalid cross-device link"))
            else:
                m.setattr(os, "open", _failing_create())
            with pytest.raises(CheckpointError, match="injected"):
                save_run(target, run)
        try:
            load_checkpoint(target)
        except CheckpointError:
            corrupt += 1
        intact += target.read_bytes() == previous
        leftover += len(_others(tmp_path, target))
    print(f"trials={trials} corrupt={corrupt} previous_intact={intact} leftover_tmp={leftover}")
    assert (corrupt, intact, leftover) == (0, trials, 0), dict(modes)
    save_run(target, run)  # and the next save, unhindered, goes through
    assert load_checkpoint(target).step == 1 and _others(tmp_path, target) == []


# ---------------------------------------------------------------- SIGKILL during saves

SAVE_LOOP = """
import sys
from pathlib import Path
from rnnviz.core.atomic import atomic_write_bytes
target, a, b = sys.argv[1], Path(sys.argv[2]).read_bytes(), Path(sys.argv[3]).read_bytes()
i = 0
while True:
    atomic_write_bytes(target, a if i % 2 else b)
    if i == 0:
        print("ready", flush=True)
    i += 1
"""


def _kill_loop(tmp_path: Path, kills: int) -> None:
    rng = random.Random(kills)
    # ~8 MB checkpoints (hidden 1400): a save takes long enough to be cut
    config = RunConfig().replace(model={"hidden_size": 1400})
    vocab = Vocab.from_text("the time machine by h. g. wells")
    model = build_model(len(vocab), config.model, 0)
    first = checkpoint_bytes(config=config, vocab=vocab, model=model)
    with torch.no_grad():
        model.W_hh.mul_(0.5)
    second = checkpoint_bytes(config=config, vocab=vocab, model=model)
    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "a").write_bytes(first)
    (sources / "b").write_bytes(second)
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "ck.safetensors"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    load_failures = leftover_after = cut_mid_save = 0
    for _ in range(kills):
        proc = subprocess.Popen(
            [sys.executable, "-c", SAVE_LOOP, str(target), str(sources / "a"), str(sources / "b")],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.08))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        cut_mid_save += bool(_others(folder, target))
        try:
            load_checkpoint(target)
            assert target.read_bytes() in (first, second)
        except CheckpointError:
            load_failures += 1
        atomic_write_bytes(target, first)  # the next save
        leftover_after += len(_others(folder, target))
    print(
        f"kills={kills} load_failures={load_failures} leftover_tmp_after_next_save={leftover_after}"
    )
    print(f"  kills that left a temp file behind: {cut_mid_save}")
    assert load_failures == 0 and leftover_after == 0
    assert cut_mid_save > 0  # the kills did land inside saves


def test_sigkill_during_saves_fast(tmp_path: Path) -> None:
    _kill_loop(tmp_path, kills=10)


@pytest.mark.slow
def test_sigkill_during_saves(tmp_path: Path) -> None:
    _kill_loop(tmp_path, kills=100)


# ---------------------------------------------------------------- temp files and targets


HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.readline()
"""


def test_a_live_writers_temp_file_is_kept_a_dead_ones_removed(tmp_path: Path) -> None:
    target = tmp_path / "ck.safetensors"
    live = tmp_path / f".ck.safetensors.live{TMP_SUFFIX}"
    dead = tmp_path / f".ck.safetensors.dead{TMP_SUFFIX}"
    dead.write_bytes(b"left by a killed save")
    legacy_fresh = tmp_path / ".ck.safetensors.abcd1234.tmp"  # an older version's, recent
    legacy_fresh.write_bytes(b"x")
    other = tmp_path / "notes.txt"
    other.write_text("not ours")
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(live)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        assert proc.stdout.readline().strip() == "locked"
        atomic_write_bytes(target, b"new")
        assert live.exists() and not dead.exists()
        assert legacy_fresh.exists() and other.exists()
    finally:
        proc.stdin.close()
        proc.wait()
    atomic_write_bytes(target, b"newer")
    assert not live.exists() and target.read_bytes() == b"newer"
    old = time.time() - 2 * 3600
    os.utime(legacy_fresh, (old, old))
    atomic_write_bytes(target, b"newest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.safetensors", "notes.txt"]


def test_symlinks_are_followed_and_special_targets_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.csv"
    real.write_bytes(b"old")
    real.chmod(0o640)
    link = tmp_path / "link.csv"
    link.symlink_to(real.name)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to("created.csv")
    atomic_write_bytes(dangling, b"made")
    assert dangling.is_symlink() and (tmp_path / "created.csv").read_bytes() == b"made"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    full_link = tmp_path / "full"
    full_link.symlink_to("/dev/full")
    for target, message in (
        (Path("/dev/full"), "is a device, not a regular file"),
        (full_link, "is a device"),
        (fifo, "is a FIFO"),
        (tmp_path, "is a folder"),
    ):
        with pytest.raises(OutputPathError, match=message):
            atomic_write_bytes(target, b"x")
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    long_name = tmp_path / ("n" * 250)
    atomic_write_bytes(long_name, b"fits")
    assert long_name.read_bytes() == b"fits"


def test_check_output_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    cases = {
        str(tmp_path / "missing" / "ck.safetensors"): "folder .* does not exist",
        str(tmp_path): "is a folder",
        "/dev/full": "is a device",
        str(fifo): "is a FIFO",
        str(not_a_folder / "ck.safetensors"): "is not a folder",
        "": "empty",
    }
    for path, message in cases.items():
        with pytest.raises(OutputPathError, match=message) as info:
            check_output_path(path)
        assert "\n" not in str(info.value)
    before = sorted(tmp_path.iterdir())
    check_output_path(tmp_path / "ck.safetensors")
    check_output_path(not_a_folder)
    assert sorted(tmp_path.iterdir()) == before  # the probe file is gone again

    # a full disk shows on the probe write (here: injected at fsync, as ext4 reports it)
    monkeypatch.setattr(os, "fsync", _raiser(errno.ENOSPC, "No space left on device"))
    with pytest.raises(OutputPathError, match="no space left on the disk"):
        check_output_path(tmp_path / "ck.safetensors")
    monkeypatch.undo()
    assert sorted(tmp_path.iterdir()) == before

    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(OutputPathError, match="permission denied"):
                check_output_path(locked / "ck.safetensors")
        finally:
            locked.chmod(0o700)
