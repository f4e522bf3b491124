"""``train --session-out``, ``probe --session [--at-step]`` and ``export --csv``."""

from __future__ import annotations

import dataclasses
import itertools
import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnviz import cli
from rnnviz.cli import main
from rnnviz.core.checkpoint import load_checkpoint, run_checkpoint_bytes
from rnnviz.core.history import MetricHistory, read_metrics_csv, read_runs_csv
from rnnviz.core.probe import model_from_params, params_to_numpy, probe
from rnnviz.core.probe_defaults import default_probe_text
from rnnviz.core.probe_json import probe_json
from rnnviz.core.runs import build_run
from rnnviz.core.session_file import SessionData, load_session, save_session
from rnnviz.core.snapshots import SnapshotStore

torch.set_num_threads(1)

TINY = [
    "--corpus", "synthetic:repeat", "--hidden", "16", "--batch-size", "8",
    "--num-steps", "8", "--quiet",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("train")
    session, ck, metrics = folder / "s.rnnviz", folder / "ck.safetensors", folder / "m.csv"
    rc = main(
        ["train", *TINY, "--max-steps", "12", "--session-out", str(session),
         "--checkpoint-out", str(ck), "--metrics-out", str(metrics)]
    )  # fmt: skip
    assert rc == 0
    return session, ck, metrics


def test_train_writes_the_session(trained: tuple[Path, Path, Path]) -> None:
    session, ck, metrics = trained
    data = load_session(session)
    ckpt = data.load_checkpoint()
    assert ckpt.step == 12 and ckpt.config == load_checkpoint(ck).config
    assert data.config == ckpt.config
    assert data.probe_text == default_probe_text(ckpt.config.corpus) and data.cursor == 0
    assert data.view == {}
    [(label, history)] = data.runs
    assert label == "main"
    columns = history.columns()
    np.testing.assert_array_equal(columns["step"], np.arange(1, 13))
    # the same numbers as the --metrics-out stream, bit for bit
    streamed = read_metrics_csv(metrics)
    for name in ("loss", "grad_norm_before_clip", "wall_s", "val_ppl"):
        np.testing.assert_array_equal(columns[name], streamed[name], err_msg=name)
    wall = columns["wall_s"]
    assert np.all(np.isfinite(wall)) and np.all(np.diff(wall) > 0) and wall[0] > 0
    assert data.snapshots is not None
    steps = data.snapshots.steps()
    assert steps[0] == 0 and steps[-1] == 12 and steps == sorted(set(steps))
    final = data.snapshots.newest()
    assert final is not None
    for name, tensor in ckpt.params.items():
        np.testing.assert_array_equal(final.params[name], tensor.numpy())
    first = data.snapshots.snapshots()[0]
    assert not np.array_equal(first.params["W_hh"], final.params["W_hh"])  # it trained


def test_session_output_checked_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rnnviz.core.trainer import Trainer

    steps: list[int] = []
    real = Trainer.train_step
    monkeypatch.setattr(Trainer, "train_step", lambda self: steps.append(1) or real(self))
    for path in (str(tmp_path), str(tmp_path / "missing" / "s.rnnviz"), "/dev/full", ""):
        assert main(["train", *TINY, "--max-steps", "2", "--session-out", path]) == 2, path
        err = capsys.readouterr().err
        assert err.startswith("error: --session-out") and err.count("\n") == 1, err
    same = str(tmp_path / "same")
    assert main(["train", *TINY, "--checkpoint-out", same, "--session-out", same]) == 2
    assert "--checkpoint-out and --session-out name the same file" in capsys.readouterr().err
    assert steps == []


def test_a_failed_session_write_rescues_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import errno

    from rnnviz.core import atomic

    real = atomic.atomic_write_bytes
    target = tmp_path / "s.rnnviz"

    def write(path: object, data: bytes) -> None:
        if Path(str(path)) == target:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)  # type: ignore[arg-type]

    monkeypatch.setattr(atomic, "atomic_write_bytes", write)
    assert main(["train", *TINY, "--max-steps", "3", "--session-out", str(target)]) == 4
    err = capsys.readouterr().err
    assert f"--session-out {target}: No space left on device" in err
    rescued = Path(err.split("went to ")[1].split()[0])
    try:
        assert load_session(rescued).load_checkpoint().step == 3
    finally:
        rescued.unlink()


def test_snapshots_cost_a_small_share_of_the_training_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = build_run(cli.config_from_args(cli.build_parser().parse_args(["train", *TINY])))
    record = run.trainer.train_step()
    run.trainer.step = 0
    # a fake clock: every snapshot takes 1 ms; every step takes 10 ms
    ticks = itertools.chain.from_iterable((t, t + 1e-3) for t in itertools.count())
    monkeypatch.setattr(cli, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    recorder = cli._SessionRecorder(run)
    train_s = 0.0
    for step in range(1, 1001):
        run.trainer.step = step
        train_s += 0.01
        recorder.step(dataclasses.replace(record, step=step), train_s)
    # k = ceil(1 ms / (0.5 % x 10 ms)) = 20 steps between snapshots (21 where the float
    # division lands a hair above 20)
    kept = recorder.store.steps()
    assert kept[:2] == [0, 1]
    assert set(np.diff(kept[1:]).tolist()) <= {20, 21} and len(kept) >= 2 + 999 // 21
    assert recorder.snapshot_s == pytest.approx(len(kept) * 1e-3)
    assert recorder.snapshot_s / train_s < 0.02
    assert recorder.snapshot_s / train_s == pytest.approx(0.005, rel=0.1)


def snapshot_session(path: Path) -> tuple[Path, SnapshotStore]:
    """A session whose snapshots are those of steps 0, 4 and 8."""
    run = build_run(cli.config_from_args(cli.build_parser().parse_args(["train", *TINY])))
    store = SnapshotStore()
    history = MetricHistory()
    store.add(0, params_to_numpy(run.model))
    for _ in range(8):
        history.append([run.trainer.train_step()])
        if run.trainer.step % 4 == 0:
            store.add(run.trainer.step, params_to_numpy(run.model))
    data = SessionData(
        checkpoint=run_checkpoint_bytes(run),
        config=run.config,
        probe_text="machine",
        cursor=0,
        view={},
        runs=(("main", history),),
        snapshots=store,
    )
    save_session(path, data)
    return path, store


def test_probe_at_step_uses_the_nearest_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, store = snapshot_session(tmp_path / "s.rnnviz")
    data = load_session(path)
    ckpt = data.load_checkpoint()
    outputs = {}
    for asked, used, line in [
        (5, 4, "model at step 4 (the stored snapshot nearest to 5)"),
        (1_234, 8, "model at step 8 (the stored snapshot nearest to 1,234)"),
        (0, 0, "model at step 0 (a stored snapshot)"),
    ]:
        argv = ["probe", "machine", "--session", str(path), "--at-step", str(asked), "--json"]
        assert main(argv) == 0
        captured = capsys.readouterr()
        assert captured.err.splitlines() == [line]
        snap = store.nearest(asked)
        assert snap is not None and snap.step == used
        model = model_from_params(ckpt.config.model, len(ckpt.vocab), dict(snap.params))
        expected = probe_json(probe(model, ckpt.vocab, "machine", top_k=5))
        assert json.loads(captured.out) == json.loads(json.dumps(expected))
        outputs[used] = json.loads(captured.out)
    assert outputs[0]["hidden"] != outputs[8]["hidden"]  # the steps' models differ


def test_probe_session_without_at_step_is_its_checkpoint(
    trained: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    session, ck, _ = trained
    assert main(["probe", "machine", "--session", str(session)]) == 0
    by_session = capsys.readouterr()
    assert by_session.err == ""
    assert main(["probe", "machine", "--checkpoint", str(ck)]) == 0
    assert by_session.out == capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--checkpoint", "a", "--session", "b"], "not allowed with argument"),
        ([], "one of the arguments --checkpoint --session --torch-model is required"),
        (["--checkpoint", "a", "--at-step", "3"], "--at-step needs --session"),
        (["--session", "b", "--at-step", "-1"], "must be >= 0"),
    ],
)
def test_probe_model_arguments(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", "abc", *argv]) == 2
    assert message in capsys.readouterr().err


def test_probe_at_step_of_a_session_without_snapshots(
    tmp_path: Path, trained: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = load_session(trained[0])
    path = tmp_path / "bare.rnnviz"
    save_session(path, dataclasses.replace(data, snapshots=None))
    assert main(["probe", "machine", "--session", str(path), "--at-step", "3"]) == 2
    err = capsys.readouterr().err
    assert "holds no parameter snapshots; probe without --at-step" in err and "step 12" in err


def test_probe_of_a_file_that_is_not_a_session(
    trained: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ck = trained[1]
    assert main(["probe", "machine", "--session", str(ck)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "open it as a checkpoint" in err and "Traceback" not in err


def test_export_writes_the_wide_csv(
    tmp_path: Path, trained: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    session = trained[0]
    out = tmp_path / "metrics.csv"
    assert main(["export", str(session), "--csv", str(out)]) == 0
    assert f"metrics: {out} (1 run(s), 12 rows)" in capsys.readouterr().err
    [(label, columns)] = read_runs_csv(out)
    history = load_session(session).runs[0][1].columns()
    assert label == "main" and list(columns) == list(history)
    for name in history:
        np.testing.assert_array_equal(columns[name], history[name], err_msg=name)
    header = out.read_text().splitlines()[0].split(",")
    assert header[:4] == ["run", "step", "wall_s", "loss"]


def test_export_checks_its_output_before_reading(
    tmp_path: Path,
    trained: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from rnnviz.core import session_file

    loads: list[object] = []
    real = session_file.load_session
    monkeypatch.setattr(session_file, "load_session", lambda p: loads.append(p) or real(p))
    session = str(trained[0])
    for bad in (str(tmp_path), str(tmp_path / "missing" / "m.csv"), "/dev/full", session):
        assert main(["export", session, "--csv", bad]) == 2, bad
        err = capsys.readouterr().err
        assert err.startswith("error: --csv") and err.count("\n") == 1, err
    assert loads == []
    assert main(["export", str(tmp_path / "none.rnnviz"), "--csv", str(tmp_path / "m.csv")]) == 2
    assert "no such session" in capsys.readouterr().err
    assert not (tmp_path / "m.csv").exists()
