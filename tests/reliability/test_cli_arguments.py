"""Every numeric CLI option at 0, negative, NaN, +-Inf, huge and 2**70; every path option
missing, a folder, /dev/full, read-only or empty. No traceback, exit 0 or 2, and each refused
`train` is refused before its first training step.

Prints: cases=N tracebacks=0 checked_before_training=all
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import torch

from rnnviz.cli import main
from rnnviz.core.trainer import Trainer

torch.set_num_threads(1)

TINY = [
    "--corpus", "synthetic:repeat", "--hidden", "8", "--batch-size", "4",
    "--num-steps", "4", "--quiet",
]  # fmt: skip
VALUES = ["0", "-1", "nan", "inf", "-inf", "1e308", str(10**30), str(2**70)]
TRAIN_NUMERIC = [
    "--hidden", "--num-steps", "--batch-size", "--lr", "--clip", "--epochs", "--max-steps",
    "--seed", "--val-every",
]  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ck") / "ck.safetensors"
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        assert main(["train", *TINY, "--max-steps", "3", "--checkpoint-out", str(path)]) == 0
    return str(path)


def _bad_paths(tmp: Path) -> Iterator[tuple[str, str]]:
    """(what, path): unusable as an output or input."""
    yield "missing folder", str(tmp / "no" / "such" / "file")
    yield "a folder", str(tmp)
    yield "/dev/full", "/dev/full"
    yield "read-only (procfs)", "/proc/rnnviz-test-file"
    yield "empty", ""
    if os.geteuid() != 0:  # root writes into a 0o555 folder anyway
        locked = tmp / "locked"
        locked.mkdir(exist_ok=True)
        locked.chmod(0o555)
        yield "read-only folder", str(locked / "file")


def _cases(tmp: Path, ck: str) -> Iterator[tuple[list[str], bool]]:
    """(argv, is a train run)."""
    for option in TRAIN_NUMERIC:
        base = ["train", *TINY] if option in ("--epochs", "--max-steps") else [
            "train", *TINY, "--max-steps", "2"]  # fmt: skip
        for value in VALUES:
            yield [*base, option, value], True
    for value in VALUES:
        yield ["--train-steps", value], False
        yield ["probe", "machine", "--checkpoint", ck, "--top-k", value], False
        yield ["sample", "mach", "--checkpoint", ck, "--num-chars", value], False
        yield ["sample", "mach", "--checkpoint", ck, "--temperature", value], False
        yield ["sample", "mach", "--checkpoint", ck, "--seed", value], False
    for _, path in _bad_paths(tmp):
        for flag in ("--checkpoint-out", "--metrics-out"):
            yield ["train", *TINY, "--max-steps", "2", flag, path], True
        yield ["train", *TINY, "--max-steps", "2", "--corpus", path], True
        yield ["probe", "machine", "--checkpoint", path], False
        yield ["sample", "mach", "--checkpoint", path], False


def test_cli_arguments(
    checkpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    steps: list[int] = []
    real = Trainer.train_step

    def counted(self: Trainer) -> object:
        steps.append(1)
        return real(self)

    monkeypatch.setattr(Trainer, "train_step", counted)
    gui = types.ModuleType("rnnviz.gui.app")
    gui.run_app = lambda argv, screenshot=None, train_steps=100, options=None: 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rnnviz.gui.app", gui)

    cases = tracebacks = refused_train = refused_before = 0
    problems: list[str] = []
    for argv, is_train in _cases(tmp_path, checkpoint):
        cases += 1
        steps.clear()
        try:
            rc = main(argv)
        except BaseException as exc:  # noqa: BLE001 - what escapes main is a traceback
            tracebacks += 1
            problems.append(f"{argv[-2:]}: {type(exc).__name__}: {exc}")
            continue
        err = capsys.readouterr().err
        if "Traceback" in err:
            tracebacks += 1
            problems.append(f"{argv[-2:]}: traceback printed")
        if rc not in (0, 2):
            problems.append(f"{argv[-2:]}: exit {rc}")
        if rc != 0 and "error" not in err:
            problems.append(f"{argv[-2:]}: exit {rc} without a message")
        if rc == 2 and is_train:
            refused_train += 1
            if not steps:
                refused_before += 1
            else:
                problems.append(f"{argv[-2:]}: refused after {len(steps)} steps")
    checked = "all" if refused_before == refused_train else f"{refused_before}/{refused_train}"
    with capsys.disabled():
        print(f"\ncases={cases} tracebacks={tracebacks} checked_before_training={checked}")
    assert problems == []
    assert tracebacks == 0 and checked == "all"


def test_real_exit_codes_in_subprocesses(tmp_path: Path) -> None:
    """What a shell sees: the exit status of `python -m rnnviz`, no traceback."""
    runs = {
        "seed 2**64": (["train", *TINY, "--max-steps", "2", "--seed", str(2**64)], 2),
        "device meta": (["train", *TINY, "--max-steps", "2", "--device", "meta"], 2),
        "metrics /dev/full": (
            ["train", *TINY, "--max-steps", "2", "--metrics-out", "/dev/full"],
            2,
        ),
        "lr 1000, 5 steps": (["train", *TINY, "--max-steps", "5", "--lr", "1000"], 3),
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "rnnviz", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for name, (argv, _) in runs.items()
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == runs[name][1], (name, err)
        assert "Traceback" not in err, (name, err)
        assert "error" in err or "diverged" in err, (name, err)
