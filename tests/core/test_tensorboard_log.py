"""TensorBoard logging: `rnnviz train --tensorboard DIR` read back with TensorBoard's own event
reader and checked against the same run's metrics CSV step by step; the refusals before
training (package missing, a bad folder); the engine session's logs (a folder per run, a
rollback hidden, a failure that stops the logging and not the training)."""

from __future__ import annotations

import csv
import errno
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rnnviz.cli import main
from rnnviz.core import tensorboard_log as tb
from rnnviz.core.analysis import clip_stats
from rnnviz.core.checkpoint import load_checkpoint
from rnnviz.core.config import RunConfig
from rnnviz.core.messages import Event, Failure, Fork, LogToTensorBoard, Reset, Rollback, Step
from rnnviz.core.runs import build_run

torch.set_num_threads(1)

TINY = [
    "--corpus", "synthetic:repeat", "--hidden", "16", "--batch-size", "8",
    "--num-steps", "8", "--quiet",
]  # fmt: skip
STEPS = 40
HIDDEN, BATCH = 16, 8

# tag -> the metrics CSV column it must equal (grad_norm/<p> -> grad_norm:<p> besides)
COLUMNS = {
    tb.TAG_LOSS: "loss",
    tb.TAG_PPL: "ppl",
    tb.TAG_VAL_PPL: "val_ppl",
    tb.TAG_LR: "lr",
    tb.TAG_BEFORE: "grad_norm_before_clip",
    tb.TAG_AFTER: "grad_norm_after_clip",
    tb.TAG_CLIPPED: "clipped",
    tb.TAG_THETA: "clip_theta",
    tb.TAG_NONFINITE: "nonfinite_total",
    tb.TAG_SIGMA: "w_hh_sigma_max",
}


def accumulator(folder: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    guidance = {"scalars": 0, "histograms": 0, "tensors": 0}
    ea = EventAccumulator(str(folder), size_guidance=guidance)
    ea.Reload()
    return ea


def start_hparams(ea: Any) -> dict[str, Any]:
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    content = ea.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = HParamsPluginData.FromString(content).session_start_info
    return {k: getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def as_float(cell: str) -> float:
    return math.nan if cell == "" else float(cell)


def same32(a: float, b: float) -> bool:
    """TensorBoard keeps a float32: the CSV's float64 rounded so, or both NaN."""
    a32, b32 = np.float32(a), np.float32(b)
    return bool((np.isnan(a32) and np.isnan(b32)) or a32 == b32)


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]], Path]:
    pytest.importorskip("tensorboard")
    folder = tmp_path_factory.mktemp("tb")
    logs, metrics, ck = folder / "logs" / "run", folder / "m.csv", folder / "ck.safetensors"
    rc = main(
        ["train", *TINY, "--clip", "0.5", "--max-steps", str(STEPS), "--val-every", "10",
         "--tensorboard", str(logs), "--metrics-out", str(metrics), "--checkpoint-out", str(ck)]
    )  # fmt: skip
    assert rc == 0
    return logs, read_csv(metrics), ck


def test_every_scalar_equals_the_metrics_csv_step_by_step(
    logged: tuple[Path, list[dict[str, str]], Path],
) -> None:
    logs, rows, _ = logged
    assert [p.name.startswith("events.out.tfevents.") for p in logs.iterdir()] == [True]
    ea = accumulator(logs)
    params = [c.removeprefix("grad_norm:") for c in rows[0] if c.startswith("grad_norm:")]
    assert params == ["W_xh", "W_hh", "b_h", "W_hq", "b_q"]  # the panels' names
    expected = {**COLUMNS, **{tb.TAG_PARAM + p: f"grad_norm:{p}" for p in params}}
    assert set(ea.Tags()["scalars"]) == {*expected, tb.TAG_CLIP_RATE}
    steps = [int(r["step"]) for r in rows]
    assert steps == list(range(1, STEPS + 1))
    for tag, column in expected.items():
        events = ea.Scalars(tag)
        want = [(int(r["step"]), as_float(r[column])) for r in rows if r[column] != ""]
        assert [e.step for e in events] == [s for s, _ in want], tag
        for event, (step, value) in zip(events, want, strict=True):
            assert same32(event.value, value), (tag, step, event.value, value)
    val_steps = [e.step for e in ea.Scalars(tb.TAG_VAL_PPL)]
    assert val_steps == [10, 20, 30, 40]
    clipped = [e.value for e in ea.Scalars(tb.TAG_CLIPPED)]
    assert set(clipped) == {0.0, 1.0}, "the run should clip on some steps and not on others"


def test_the_clip_rate_is_the_panels_over_the_newest_steps(
    logged: tuple[Path, list[dict[str, str]], Path],
) -> None:
    logs, rows, _ = logged
    events = accumulator(logs).Scalars(tb.TAG_CLIP_RATE)
    assert [e.step for e in events] == list(range(1, STEPS + 1))
    for i, event in enumerate(events):
        recent = {
            "step": [int(r["step"]) for r in rows[: i + 1]],
            "clipped": [r["clipped"] == "1" for r in rows[: i + 1]],
            "clip_theta": [float(r["clip_theta"]) for r in rows[: i + 1]],
            "clip_enabled": [r["clip_enabled"] == "1" for r in rows[: i + 1]],
            "grad_norm_before_clip": [float(r["grad_norm_before_clip"]) for r in rows[: i + 1]],
        }
        stats = clip_stats(recent)
        assert stats is not None and same32(event.value, stats.rate)


def test_histograms_of_the_hidden_state_and_w_hh(
    logged: tuple[Path, list[dict[str, str]], Path],
) -> None:
    logs, _, ck = logged
    ea = accumulator(logs)
    assert set(ea.Tags()["histograms"]) == {tb.TAG_HIDDEN, tb.TAG_WEIGHT + "W_hh"}
    hidden = ea.Histograms(tb.TAG_HIDDEN)
    weight = ea.Histograms(tb.TAG_WEIGHT + "W_hh")
    # step 1, every HISTOGRAM_EVERY steps (none in 40), the last step
    assert [h.step for h in hidden] == [h.step for h in weight] == [1, STEPS]
    for h in hidden:
        value = h.histogram_value
        assert value.num == BATCH * HIDDEN
        assert -1.0 <= value.min <= value.max <= 1.0  # tanh
    W = load_checkpoint(ck).params["W_hh"].numpy()
    last = weight[-1].histogram_value
    assert last.num == W.size
    assert (last.min, last.max) == (float(W.min()), float(W.max()))
    assert math.isclose(last.sum, float(W.astype(np.float64).sum()), rel_tol=1e-6, abs_tol=1e-6)


def test_hparams_are_the_run_config_flattened(
    logged: tuple[Path, list[dict[str, str]], Path],
) -> None:
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    logs, _, ck = logged
    ea = accumulator(logs)
    config = load_checkpoint(ck).config
    flat = tb.flat_hparams(config)
    got = start_hparams(ea)
    assert set(got) == set(flat)
    for key, value in flat.items():
        assert got[key] == (value if isinstance(value, str) else float(value)), key
    assert got["model.hidden_size"] == HIDDEN and got["train.clip_theta"] == 0.5
    experiment = HParamsPluginData.FromString(
        ea.PluginTagToContent("hparams")["_hparams_/experiment"]
    ).experiment
    assert {m.name.tag for m in experiment.metric_infos} == {tb.TAG_LOSS, tb.TAG_VAL_PPL}
    assert "_hparams_/session_end_info" in ea.PluginTagToContent("hparams")


# ---------------------------------------------------------------- refused before training


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one line of a train command refused with exit 2 before anything was loaded."""
    rc = main(["train", *TINY, "--max-steps", "3", *argv])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # no "corpus ..." line: nothing was built
    return lines[0]


def test_a_missing_package_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` fails
    logs = tmp_path / "logs"
    line = refused(capsys, "--tensorboard", str(logs))
    assert line == (
        "error: --tensorboard: TensorBoard logging needs the tensorboard package: "
        "pip install 'rnnviz[tensorboard]'"
    )
    assert not logs.exists()
    assert tb.missing_message() == tb.MISSING_MESSAGE


@pytest.fixture
def with_writer() -> None:
    pytest.importorskip("tensorboard")


def test_a_file_is_no_folder(
    with_writer: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("x")
    line = refused(capsys, "--tensorboard", str(file))
    assert (
        line
        == f"error: --tensorboard: {file} exists and is not a folder: give a folder for the logs"
    )
    line = refused(capsys, "--tensorboard", str(file / "run"))
    assert f"{file} exists and is not a folder" in line
    assert refused(capsys, "--tensorboard", " ").endswith("the folder name is empty; give a folder")
    assert file.read_text() == "x"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_read_only_place_is_refused(
    with_writer: None, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(capsys, "--tensorboard", "/proc/rnnviz-tensorboard/run")
    assert line.startswith("error: --tensorboard: cannot write in /proc: "), line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anyway")
def test_a_folder_without_write_permission_is_refused(
    with_writer: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        line = refused(capsys, "--tensorboard", str(locked / "run"))
    finally:
        locked.chmod(0o755)
    assert line == f"error: --tensorboard: cannot write in {locked}: permission denied"


def test_a_folder_that_cannot_take_a_file_is_refused(
    with_writer: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real_open = os.open

    def full(path: Any, *args: Any, **kwargs: Any) -> int:
        if ".rnnviz-probe-" in os.fspath(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(tb.os, "open", full)
    line = refused(capsys, "--tensorboard", str(tmp_path))
    assert line == f"error: --tensorboard: cannot write in {tmp_path}: no space left on the disk"


def test_a_failed_write_stops_the_log_not_the_training(
    with_writer: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real_write = tb.TensorBoardLog.write

    def write(self: tb.TensorBoardLog, record: Any) -> None:
        if record.step == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, record)

    monkeypatch.setattr(tb.TensorBoardLog, "write", write)
    metrics = tmp_path / "m.csv"
    rc = main(
        ["train", *TINY, "--max-steps", "6", "--tensorboard", str(tmp_path / "logs"),
         "--metrics-out", str(metrics)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 4
    assert "warning: --tensorboard" in err and "write failed at step 3" in err
    assert len(read_csv(metrics)) == 6  # the training went on
    ea = accumulator(tmp_path / "logs")
    assert [e.step for e in ea.Scalars(tb.TAG_LOSS)] == [1, 2]


# ---------------------------------------------------------------- the engine's session


def tiny_config(kind: str = "fast") -> RunConfig:
    return RunConfig().replace(
        corpus={"source": "synthetic:repeat", "synthetic_length": 2000},
        model={"kind": kind, "hidden_size": 8},
        train={"batch_size": 4, "num_steps": 6, "windows_per_epoch": 16, "val_windows": 8},
    )


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def failures(self) -> list[str]:
        return [e.message for e in self.events if isinstance(e, Failure)]


def test_the_session_logs_each_run_in_a_folder_of_its_own(
    with_writer: None, tmp_path: Path
) -> None:
    from rnnviz.core.session import Session

    emit = Recorder()
    session = Session(tiny_config(), emit, batch_interval_s=0.0)
    session.handle(LogToTensorBoard(str(tmp_path)))
    session.handle(Fork({"train": {"lr": 0.5}}, label="lr 0.5"))
    session.handle(Step(12))
    session.run_until_idle()
    session.handle(Rollback(5))  # steps after the newest snapshot at or before 5 are hidden
    session.handle(Step(3))
    session.run_until_idle()
    session.handle(Reset())  # a rebuilt run: a new folder from step 1
    session.handle(Step(2))
    session.run_until_idle()
    session.handle(LogToTensorBoard(None))  # closes (and flushes) every log
    assert emit.failures() == []
    # named by the time and the label (a "-2" when a folder of that name exists), in order
    folders = sorted(p.name for p in tmp_path.iterdir())
    main_runs = [f for f in folders if "-main" in f]
    forks = [f for f in folders if "-lr_0.5" in f]
    assert len(main_runs) == len(forks) == 2 and len(folders) == 4, folders
    first, second = (accumulator(tmp_path / f) for f in main_runs)
    # the rollback went to the start (no snapshot between 0 and 5 with SNAPSHOT_EVERY 50)
    assert [e.step for e in first.Scalars(tb.TAG_LOSS)] == [1, 2, 3]
    assert [e.step for e in second.Scalars(tb.TAG_LOSS)] == [1, 2]
    fork = accumulator(tmp_path / forks[0])
    assert {e.value for e in fork.Scalars(tb.TAG_LR)} == {0.5}
    assert start_hparams(fork)["train.lr"] == 0.5


def test_the_session_refuses_a_bad_folder_with_one_failure(
    with_writer: None, tmp_path: Path
) -> None:
    from rnnviz.core.session import Session

    file = tmp_path / "f"
    file.write_text("")
    emit = Recorder()
    session = Session(tiny_config(), emit, batch_interval_s=0.0)
    session.handle(LogToTensorBoard(str(file)))
    assert emit.failures() == [
        f"TensorBoard: {file} exists and is not a folder: give a folder for the logs"
    ]
    assert session.tensorboard is None
    session.handle(Step(2))
    session.run_until_idle()
    assert session.main.trainer.step == 2


def test_a_failed_write_in_the_session_stops_the_logging_only(
    with_writer: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rnnviz.core.session import Session

    def broken(self: tb.TensorBoardLog, record: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tb.TensorBoardLog, "write", broken)
    emit = Recorder()
    session = Session(tiny_config(), emit, batch_interval_s=0.0)
    session.handle(LogToTensorBoard(str(tmp_path)))
    session.handle(Step(4))
    session.run_until_idle()
    assert session.main.trainer.step == 4
    assert emit.failures() == [
        "TensorBoard logging stopped: OSError: [Errno 30] Read-only file system"
    ]
    assert session.tensorboard is None


def test_an_lstm_logs_the_h_of_its_state(with_writer: None, tmp_path: Path) -> None:
    run = build_run(tiny_config("lstm"))
    log = tb.TensorBoardLog(tmp_path, run)
    for _ in range(3):
        log.write(run.trainer.train_step())
    log.close()
    ea = accumulator(tmp_path)
    hidden = ea.Histograms(tb.TAG_HIDDEN)
    assert [h.step for h in hidden] == [1, 3]
    assert hidden[0].histogram_value.num == 4 * 8  # h only, not (h, c)
    assert [h.step for h in ea.Histograms(tb.TAG_WEIGHT + "W_h(gates)")] == [1, 3]
    assert tb.TAG_PARAM + "W_h(gates)" in ea.Tags()["scalars"]
