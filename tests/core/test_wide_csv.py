"""The wide CSV of every run, and the wall-time column it starts with."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnviz.core.checkpoint import load_checkpoint, restore_run, save_run
from rnnviz.core.config import RunConfig
from rnnviz.core.history import (
    MetricHistory,
    parse_runs_csv,
    read_metrics_csv,
    read_runs_csv,
    unique_labels,
    write_runs_csv,
)
from rnnviz.core.messages import StepRecord
from rnnviz.core.runs import build_run

torch.set_num_threads(1)


def rec(
    step: int, params: dict[str, float], *, wall: float | None, val: float | None = None
) -> StepRecord:
    loss = 1.0 + 1.0 / (step + 3)
    return StepRecord(
        step=step,
        epoch=step // 7,
        loss=loss,
        ppl=math.exp(loss),
        grad_norm_before_clip=0.1 * step + 1 / 3,
        grad_norm_after_clip=min(0.1 * step + 1 / 3, 1.0),
        clipped=0.1 * step + 1 / 3 > 1.0,
        lr=0.1 / 3,
        clip_theta=1.0,
        clip_enabled=True,
        tokens_per_s=12345.678 + step / 7,
        nonfinite=False,
        nonfinite_total=0,
        param_grad_norms=params,
        grad_flow=np.zeros(3),
        w_hh_sigma_max=None if "W_hh" not in params else 1 / 7,
        val_ppl=val,
        wall_s=wall,
    )


def histories() -> list[tuple[str, MetricHistory]]:
    main = MetricHistory(capacity=16, tier_capacity=8)  # thinned: not every step is kept
    main.append(
        rec(
            s,
            {"W_xh": s / 3, "W_hh": 2 / 7 + s},
            wall=s * 0.1 / 3,
            val=1 / 7 + s if s % 5 == 0 else None,
        )
        for s in range(1, 40)
    )
    lstm = MetricHistory()
    lstm.append(rec(s, {"rnn.weight_ih_l0": s / 9}, wall=s / 11) for s in range(1, 6))
    old = MetricHistory()  # a run of records from before wall time was measured
    old.append(rec(s, {"W_xh": s / 5}, wall=None) for s in range(1, 3))
    return [("main", main), ("lstm", lstm), ("old", old)]


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for c in a:
        assert a[c].dtype == b[c].dtype, c
        np.testing.assert_array_equal(a[c], b[c], err_msg=c)  # NaN == NaN here


def test_write_read_equal_bit_for_bit(tmp_path: Path) -> None:
    runs = histories()
    path = tmp_path / "runs.csv"
    write_runs_csv(path, runs)
    again = read_runs_csv(path)
    assert [label for label, _ in again] == ["main", "lstm", "old"]
    for (_, history), (_, columns) in zip(runs, again, strict=True):
        assert_same(history.columns(), columns)
    # bit for bit: the float64 bits, not only the values
    main = runs[0][1].columns()
    assert again[0][1]["wall_s"].tobytes() == main["wall_s"].tobytes()
    assert not list(tmp_path.glob(".*tmp"))


def test_the_columns_are_the_issues_in_its_order(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    write_runs_csv(path, histories())
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    first = [
        "run",
        "step",
        "wall_s",
        "loss",
        "ppl",
        "val_ppl",
        "grad_norm_before_clip",
        "grad_norm_after_clip",
        "clipped",
        "lr",
        "clip_theta",
        "nonfinite",
    ]
    assert header[: len(first)] == first
    params = header[len(first) : len(first) + 3]
    assert params == ["grad_norm:W_xh", "grad_norm:W_hh", "grad_norm:rnn.weight_ih_l0"]
    by_run = {r[0]: r for r in rows[1:]}
    lstm, old = by_run["lstm"], by_run["old"]
    assert lstm[header.index("grad_norm:W_hh")] == ""  # a parameter the LSTM has not
    assert old[header.index("wall_s")] == ""  # not measured
    assert lstm[header.index("wall_s")] == repr(5 / 11)
    assert len(rows) == 1 + len(histories()[0][1]) + 5 + 2


def test_repeated_labels_are_made_distinct() -> None:
    assert unique_labels(["main", "fork", "fork", "fork (2)", "fork"]) == [
        "main", "fork", "fork (2)", "fork (2) (2)", "fork (3)"
    ]  # fmt: skip
    runs = histories()[:2]
    text = write_bytes(runs[0], runs[0])
    assert [label for label, _ in parse_runs_csv(io.StringIO(text, newline=""), "x")] == [
        "main",
        "main (2)",
    ]


def write_bytes(*runs: tuple[str, MetricHistory]) -> str:
    from rnnviz.core.history import runs_csv_bytes

    return runs_csv_bytes(list(runs)).decode()


def test_a_csv_that_is_not_one_of_runs(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    histories()[0][1].to_csv(path)
    with pytest.raises(ValueError, match="not a CSV of runs"):
        read_runs_csv(path)
    path.write_text("run,step,loss\nmain,1,x\n")
    with pytest.raises(ValueError, match=r"m.csv:2: column loss: 'x' is not a value"):
        read_runs_csv(path)


def test_the_metrics_csv_has_wall_time_empty_when_absent(tmp_path: Path) -> None:
    history = histories()[2][1]
    path = tmp_path / "old.csv"
    history.to_csv(path)
    header, first = path.read_text().splitlines()[:2]
    assert header.split(",")[:3] == ["step", "epoch", "wall_s"]
    assert first.split(",")[2] == ""
    assert np.isnan(read_metrics_csv(path)["wall_s"]).all()


def tiny() -> RunConfig:
    return RunConfig().replace(
        corpus={"source": "synthetic:repeat", "synthetic_length": 2000},
        model={"hidden_size": 8},
        train={"batch_size": 4, "num_steps": 6, "windows_per_epoch": 16, "val_windows": 8},
    )


def test_wall_time_counts_steps_and_validations_and_survives_a_checkpoint(tmp_path: Path) -> None:
    run = build_run(tiny().replace(train={"val_every": 2}))
    trainer = run.trainer
    walls = [trainer.train_step().wall_s for _ in range(4)]
    assert all(w is not None for w in walls)
    assert walls[0] is not None and walls[0] > 0 and walls == sorted(walls)
    before = trainer.wall_s
    trainer.evaluate()  # a validation outside a step (the CLI's at an epoch's end) counts too
    assert trainer.wall_s > before
    assert walls[-1] == before
    # a rollback gives no time back: the time was spent
    trainer.rollback(0)
    assert trainer.wall_s > before
    spent = trainer.wall_s
    path = tmp_path / "ck.safetensors"
    save_run(path, run)
    ckpt = load_checkpoint(path)
    assert ckpt.trainer_meta["wall_s"] == spent
    resumed = restore_run(ckpt)
    assert resumed.trainer.wall_s == spent
    record = resumed.trainer.train_step()
    assert record.wall_s is not None and record.wall_s > spent
