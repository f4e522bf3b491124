from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from rnnviz.core.history import (
    FIXED_COLUMNS,
    PARAM_PREFIX,
    MetricHistory,
    MetricsCsvWriter,
    atomic_write_bytes,
    read_metrics_csv,
    write_metrics_rows,
)
from rnnviz.core.messages import StepRecord


def rec(step: int, *, val: float | None = None, loss: float | None = None) -> StepRecord:
    lo = 1.0 + 1.0 / (step + 1) if loss is None else loss
    return StepRecord(
        step=step,
        epoch=step // 10,
        loss=lo,
        ppl=math.exp(lo) if math.isfinite(lo) else math.nan,
        grad_norm_before_clip=0.1 * step + 1 / 3,
        grad_norm_after_clip=min(0.1 * step + 1 / 3, 1.0),
        clipped=0.1 * step + 1 / 3 > 1.0,
        lr=1.0,
        clip_theta=1.0,
        clip_enabled=True,
        tokens_per_s=12345.678 + step,
        nonfinite=not math.isfinite(lo),
        nonfinite_total=0,
        param_grad_norms={"W_xh": 0.1 + step * 1e-3, "W_hh": 2.0 / 7 + step},
        grad_flow=np.zeros(4),
        w_hh_sigma_max=1.0 / 3,
        val_ppl=val,
    )


def assert_columns_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for c in a:
        assert a[c].dtype == b[c].dtype, c
        np.testing.assert_array_equal(a[c], b[c], err_msg=c)  # NaN == NaN here


def test_small_history_keeps_every_step_sorted() -> None:
    h = MetricHistory(capacity=100)
    h.append(rec(s, val=5.0 if s == 3 else None) for s in range(1, 11))
    cols = h.columns()
    np.testing.assert_array_equal(cols["step"], np.arange(1, 11))
    assert cols["step"].dtype == np.int64
    assert cols["clipped"].dtype == np.bool_
    assert np.isnan(cols["val_ppl"][0]) and cols["val_ppl"][2] == 5.0
    assert PARAM_PREFIX + "W_hh" in cols
    for c in FIXED_COLUMNS:
        assert c in cols
    assert list(cols)[: len(FIXED_COLUMNS)] == list(FIXED_COLUMNS)
    assert not cols["loss"].flags.writeable
    assert len(h) == 10


def test_long_run_is_bounded_and_covers_whole_run() -> None:
    h = MetricHistory(capacity=64, tier_capacity=64, val_capacity=16)
    n = 100_000
    rows = [
        {"step": s, "loss": 1.0 / s, "val_ppl": 2.0 if s % 50 == 0 else math.nan}
        for s in range(1, n + 1)
    ]
    for row in rows:
        h.append_row(row)
    cols = h.columns()
    steps = cols["step"]
    assert len(steps) <= 64 + 64 + 16
    assert np.all(np.diff(steps) > 0)
    # the recent ring is complete
    np.testing.assert_array_equal(steps[-64:], np.arange(n - 63, n + 1))
    # the whole-run tier reaches back to the start
    assert steps[0] < n // 50
    assert h.tier_stride > 1
    # validation points kept across the whole run
    val_steps = steps[~np.isnan(cols["val_ppl"])]
    assert len(val_steps) >= 8 and val_steps[0] <= n // 4
    # numbers belong to their step
    np.testing.assert_array_equal(cols["loss"], 1.0 / steps)


def test_newest_record_of_a_step_wins_and_truncate() -> None:
    h = MetricHistory(capacity=8)
    h.append(rec(s) for s in range(1, 6))
    h.truncate_after(3)
    np.testing.assert_array_equal(h.columns()["step"], [1, 2, 3])
    h.append([rec(4, loss=9.0), rec(5, loss=9.5)])
    cols = h.columns()
    np.testing.assert_array_equal(cols["step"], [1, 2, 3, 4, 5])
    assert cols["loss"][3] == 9.0
    # a repeated step without truncation: the newest wins
    h.append([rec(5, loss=1.25)])
    assert h.columns()["loss"][-1] == 1.25
    h.clear()
    assert len(h) == 0


def test_truncate_after_a_wrapped_ring() -> None:
    h = MetricHistory(capacity=4, tier_capacity=4)
    h.append(rec(s) for s in range(1, 20))
    h.truncate_after(17)
    steps = h.columns()["step"]
    assert steps[-1] == 17 and np.all(np.diff(steps) > 0)
    h.append([rec(18)])
    assert h.columns()["step"][-1] == 18
    np.testing.assert_array_equal(h.recent(2)["step"], [17, 18])


def test_csv_round_trip_is_exact(tmp_path: Path) -> None:
    h = MetricHistory(capacity=16, tier_capacity=8)
    recs = [rec(s, val=(1 / 7 + s) if s % 5 == 0 else None) for s in range(1, 60)]
    recs.append(rec(60, loss=math.nan))
    recs.append(rec(61, loss=math.inf))
    h.append(recs)
    path = tmp_path / "m.csv"
    h.to_csv(path)
    again = MetricHistory.from_csv(path)
    assert_columns_equal(h.columns(), again.columns())
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames is not None
    required = "step loss ppl val_ppl grad_norm_before_clip grad_norm_after_clip clipped lr"
    for c in (*required.split(), "tokens_per_s", "nonfinite"):
        assert c in reader.fieldnames
    no_val = [r for r in rows if int(r["step"]) % 5]
    assert no_val and all(r["val_ppl"] == "" for r in no_val)
    assert rows[-2]["loss"] == "nan" and rows[-1]["loss"] == "inf"
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind


def test_streaming_writer_one_row_per_step(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    recs = [rec(s, val=3.5 if s == 4 else None) for s in range(1, 9)]
    with MetricsCsvWriter(path, flush_every=3) as w:
        for r in recs:
            w.write(r)
    cols = read_metrics_csv(path)
    np.testing.assert_array_equal(cols["step"], np.arange(1, 9))
    assert cols["val_ppl"][3] == 3.5 and np.isnan(cols["val_ppl"][0])
    assert cols["grad_norm_before_clip"][2] == recs[2].grad_norm_before_clip
    path2 = tmp_path / "b.csv"
    write_metrics_rows(path2, recs)
    assert path2.read_text() == path.read_text()


def test_empty_streaming_writer_has_header(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    MetricsCsvWriter(path).close()
    assert path.read_text().splitlines()[0].split(",") == list(FIXED_COLUMNS)
    assert len(read_metrics_csv(path)["step"]) == 0


def test_read_rejects_other_files(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="step"):
        read_metrics_csv(p)


def test_atomic_write_replaces(tmp_path: Path) -> None:
    p = tmp_path / "f.bin"
    atomic_write_bytes(p, b"one")
    atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"two"
    assert [q.name for q in tmp_path.iterdir()] == ["f.bin"]
