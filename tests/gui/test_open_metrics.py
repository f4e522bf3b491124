"""File ▸ Open metrics CSV: a run logged by rnnviz.telemetry from a plain PyTorch loop, drawn
read-only in the metric panels beside the live run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from _timeline_helpers import train_in_steps
from torch import nn
from torch.nn import functional as F

from rnnviz import telemetry
from rnnviz.core.history import PARAM_PREFIX, MetricHistory

ENGINE_WAIT_MS = 30_000


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(5, 4, batch_first=True)
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.lstm(x)[0])


def logged_run(path: Path, steps: int = 6, with_flow: bool = False) -> list:
    """A plain loop's telemetry CSV at ``path``; the StepRecords it logged (``with_flow``:
    each step's FlowProbe too)."""
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    records = []
    with telemetry.TelemetryLog(path) as log:
        for step in range(1, steps + 1):
            x = torch.randn(2, 7, 5)
            y = torch.randint(0, 5, (2, 7))
            opt.zero_grad()
            probe = telemetry.FlowProbe(model.lstm) if with_flow else None
            if probe is not None:
                with probe:
                    logits = model(x)
            else:
                logits = model(x)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
            loss.backward()
            if step == 4:
                model.fc.bias.grad[0] = math.inf
            report = telemetry.clip_grad_norm(model, max_norm=0.2)
            if not report.nonfinite:
                opt.step()
            val = 5.5 if step % 3 == 0 else None
            records.append(
                log.log(step, loss=loss.item(), report=report, lr=0.3, val_ppl=val, flow=probe)
            )
    return records


def xy(item) -> tuple[np.ndarray, np.ndarray]:
    """The data a curve was given (getData() is log10 of it on a log axis)."""
    x, y = item.xData, item.yData
    return (np.empty(0), np.empty(0)) if x is None else (np.asarray(x), np.asarray(y))


def test_an_opened_telemetry_csv_shows_its_curves(make_window, tmp_path):
    path = tmp_path / "my_lstm.csv"
    records = logged_run(path)
    window = make_window(start=False)
    (run_id,) = window.files.open_metrics(path)
    state = window.app_state
    assert state.opened_runs() == {run_id: "file: my_lstm.csv"}
    assert run_id < 0 and run_id not in state.run_ids()  # no engine run
    good = [r for r in records if not r.nonfinite]
    steps = [float(r.step) for r in good]

    curves = window.panels.curves
    curves.redraw()
    items = curves.curve_items(run_id)
    x, y = xy(items.train)  # a finite loss on the skipped step too: it has a point
    np.testing.assert_array_equal(x, [float(r.step) for r in records])
    np.testing.assert_array_equal(y, [r.ppl for r in records])
    x, y = xy(items.val)
    np.testing.assert_array_equal(x, [3.0, 6.0])
    np.testing.assert_array_equal(y, [5.5, 5.5])
    assert "file: my_lstm.csv" in items.train.name()

    norms = window.panels.gradnorms
    norms.redraw()
    items = norms.curve_items(run_id)
    x, y = xy(items.before)
    np.testing.assert_array_equal(x, steps)
    np.testing.assert_array_equal(y, [r.grad_norm_before_clip for r in good])
    x, y = xy(items.after)
    np.testing.assert_array_equal(y, [r.grad_norm_after_clip for r in good])
    assert (y <= 0.2 * (1 + 1e-5)).all()
    x, _ = xy(items.clipped)
    np.testing.assert_array_equal(x, [float(r.step) for r in records if r.clipped])
    assert len(x) > 0
    assert items.before.name() == "‖g‖ before clip (file: my_lstm.csv)"
    clipped = sum(r.clipped for r in records)
    assert f"clip rate (last 100 steps): {clipped / len(records):.0%}" in norms.stats_label.text()

    # the user's parameters have check boxes; one checked draws its norms
    name = "lstm.weight_hh_l0"
    norms.param_check(name).setChecked(True)
    norms.redraw()
    x, y = xy(norms.curve_items(run_id).params[name])
    np.testing.assert_array_equal(x, [float(r.step) for r in records])
    np.testing.assert_array_equal(y, [r.param_grad_norms[name] for r in records])
    # the skipped step is in the file (and the history) as non-finite
    cols = state.histories.metrics(run_id).columns()
    assert cols["nonfinite"].tolist() == [r.nonfinite for r in records]
    assert math.isinf(cols[PARAM_PREFIX + "fc.bias"][3])


def test_opened_runs_stay_beside_the_live_run_through_a_reset(make_window, qtbot, tmp_path):
    path = tmp_path / "run.csv"
    records = logged_run(path, steps=4)
    window = make_window()
    train_in_steps(qtbot, window, 1)
    (run_id,) = window.files.open_metrics(path)
    state = window.app_state
    assert state.legend_label(0) == "main"  # two runs drawn: both named
    window.panels.curves.redraw()
    x, _ = xy(window.panels.curves.curve_items(0).train)
    assert len(x) == 3
    main_names = list(state.run_info.param_names)
    assert norms_names(window)[: len(main_names)] == main_names
    assert "lstm.weight_ih_l0" in norms_names(window)

    window.controller.reset()
    qtbot.waitUntil(lambda: state.main.step == 0 and not state.histories.has(0), timeout=5000)
    assert state.opened_runs() == {run_id: "file: run.csv"}
    np.testing.assert_array_equal(
        state.histories.metrics(run_id).columns()["loss"], [r.loss for r in records]
    )
    qtbot.waitUntil(lambda: "lstm.weight_ih_l0" in norms_names(window), timeout=5000)
    # the window's own export leaves it out: it is the file's run, not the session's
    out = tmp_path / "export.csv"
    train_in_steps(qtbot, window, 1)
    window.files.export_metrics(out)
    assert "file: run.csv" not in out.read_text()


def norms_names(window) -> list[str]:
    return list(window.panels.gradnorms._param_checks)


def test_a_wide_export_opens_as_its_runs_and_a_bad_file_says_why(make_window, tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    logged_run(first, steps=3)
    logged_run(second, steps=2)
    from rnnviz.core.history import write_runs_csv

    wide = tmp_path / "wide.csv"
    write_runs_csv(
        wide, [("a", MetricHistory.from_csv(first)), ("b", MetricHistory.from_csv(second))]
    )
    window = make_window(start=False)
    ids = window.files.open_metrics(wide)
    state = window.app_state
    assert [state.run_name(r) for r in ids] == ["file: wide.csv / a", "file: wide.csv / b"]
    assert [len(state.histories.metrics(r)) for r in ids] == [3, 2]

    bad = tmp_path / "bad.csv"
    bad.write_text("not,a,metrics,file\n1,2,3,4\n", encoding="utf-8")
    assert window.files.open_metrics(bad) == []
    assert "Could not open" in window.banner_text() and "no 'step' column" in window.banner_text()
    assert window.files.open_metrics(tmp_path / "missing.csv") == []
    assert len(state.opened_runs()) == 2


def test_an_opened_telemetry_csv_draws_its_gradient_flow(make_window, tmp_path):
    """A plain loop's FlowProbe, logged with the step, is the gradient-flow panel's training
    heatmap of that run once the file is open: the engineer's own ||dL/dH_t|| over training."""
    path = tmp_path / "flow.csv"
    records = logged_run(path, steps=8, with_flow=True)
    window = make_window(start=False)
    (run_id,) = window.files.open_metrics(path)
    panel = window.panels.gradflow
    assert run_id in panel.run_ids()
    panel.set_heatmap_run(run_id)
    panel.redraw()
    np.testing.assert_array_equal(panel.training_steps(), [r.step for r in records])
    expected = np.log10(np.stack([r.grad_flow for r in records], axis=1))
    np.testing.assert_allclose(panel.training_image_array(), expected, rtol=1e-12)
    assert panel.empty_training_hint() == ""
