"""GradFlowPanel: the probe heatmap, the distance curve and its fitted factor, the training ring,
the σ_max curves (read from the one AppState); nothing non-finite reaches pyqtgraph."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
from _state_helpers import (
    add_run,
    close_run,
    feed,
    make_state,
    new_run,
    rolled_back,
    step_record,
)

from rnnviz.core.config import ModelConfig
from rnnviz.core.messages import StepRecord
from rnnviz.core.model import ScratchRNN
from rnnviz.core.probe import probe
from rnnviz.core.vocab import Vocab
from rnnviz.gui import theme
from rnnviz.gui.panels import _gradflow_plots as plots
from rnnviz.gui.panels.gradflow import GradFlowPanel

TEXT = "hello world " * 4


@pytest.fixture
def state():
    return make_state(flow_capacity=5)


@pytest.fixture
def panel(qtbot, state):
    widget = GradFlowPanel(state)
    widget.resize(900, 600)
    qtbot.addWidget(widget)
    return widget


@pytest.fixture(scope="module")
def real_result():
    torch.manual_seed(0)
    vocab = Vocab.from_text(TEXT)
    model = ScratchRNN(len(vocab), ModelConfig(kind="scratch", hidden_size=8))
    return probe(model, vocab, "hello world hello")


def fake_result(G: np.ndarray, text: str | None = None):
    return types.SimpleNamespace(text=text or "abcdefghijklmnopqrstuvwxyz"[: len(G)], grad_flow=G)


def geometric(T: int, factor: float) -> np.ndarray:
    t, k = np.indices((T, T))
    G = np.where(k <= t, factor ** (t - k).astype(float), 0.0)
    G[-1] = 0.0  # as a probe: the last character has no loss
    return G


def record(step: int, flow, sigma: float | None = 0.9) -> StepRecord:
    return step_record(step, flow, w_hh_sigma_max=sigma)


# ------------------------------------------------------------------------ probe string


def test_probe_heatmap_is_log10_of_grad_flow_masked_above_diagonal(panel, real_result):
    panel.set_result(real_result)
    G = np.asarray(real_result.grad_flow, dtype=np.float64)  # probe's float32, as displayed
    T = len(real_result.text)
    shown = panel.probe_image_array()
    assert shown.shape == (T, T)
    t, k = np.indices((T, T))
    valid = (k <= t) & (G > 0) & np.isfinite(G)
    assert valid[: T - 1].any(axis=1).all()  # every row with a loss has values
    np.testing.assert_allclose(shown[valid], np.log10(G[valid]))
    assert np.isnan(shown[k > t]).all()
    assert np.isnan(shown[T - 1]).all()  # the last row: no next character, no loss
    rgba = panel.probe_image_rgba()
    assert rgba.shape == (T, T, 4) and rgba.dtype == np.uint8
    grey = theme.MISSING_VALUE
    assert tuple(rgba[0, T - 1, :3]) == (grey.red(), grey.green(), grey.blue())
    assert panel.probe_stack.currentIndex() == 1


def test_cursor_selects_row_and_distance_curve_is_the_row(panel, real_result):
    panel.set_result(real_result)
    G = np.asarray(real_result.grad_flow)
    for t in (3, 9):
        panel.set_cursor(t)
        assert panel.selected_row() == t
        d, values = panel.distance_curve_data()
        np.testing.assert_array_equal(d, np.arange(t + 1))
        np.testing.assert_allclose(values, G[t, t - np.arange(t + 1)])
        rect = panel.row_marker.rect()
        assert (rect.top(), rect.height(), rect.width()) == (t, 1, t + 1)
        assert panel.row_marker.isVisible()
        x, y = panel.distance_curve.getData()
        np.testing.assert_allclose(10 ** np.asarray(y), values)  # the item is in log-y mode
    fit = panel.factor_fit()
    assert fit is not None and fit.row == 9 and fit.factor > 0
    char = theme.display_char(real_result.text[9])
    assert panel.distance_plot.titleLabel.text == f"t = 9 ('{char}')"
    assert "per-step factor ×" in panel.factor_text()
    assert not panel.row_note.isVisibleTo(panel)


def test_the_distance_plot_range_is_bucketed_and_kept_while_a_key_fits_it(panel, monkeypatch):
    """x spans the next of 10, 12, 15, 20, ... steps back, y whole decades around the curves
    (log10 view units): a new row (a key typed at the end) inside them sets no range."""
    G = geometric(20, 0.5)  # row 18: values 1 .. 0.5**18 ~ 4e-6
    panel.set_result(fake_result(G))
    panel.set_cursor(18)
    (x_lo, x_hi), (y_lo, y_hi) = panel.distance_plot.viewRange()
    assert x_lo <= 0 < 18 < 20 <= x_hi < 21  # 19 points: the bucket of 20
    assert y_lo <= -6 < 0 <= y_hi < 0.5  # log10: 1e-6 .. 1
    calls: list[object] = []
    monkeypatch.setattr(panel.distance_plot, "setRange", lambda *a, **k: calls.append(a))
    G2 = geometric(21, 0.5)  # row 19, the new one: 20 points, still 1e-6 .. 1
    panel.set_result(fake_result(G2))
    panel.set_cursor(19)
    assert panel.selected_row() == 19
    assert calls == []


def test_on_another_model_of_the_same_text_and_row_the_decades_only_widen(panel):
    """Scrubbing the timeline: one row of one text on other models keeps fixed axes."""
    panel.set_result(fake_result(geometric(20, 0.5)))  # row 18 reaches 0.5**18 ~ 4e-6
    panel.set_cursor(18)
    _, (lo, hi) = panel.distance_plot.viewRange()
    assert lo <= -6 < -5 and 0 <= hi < 0.5
    panel.set_result(fake_result(geometric(20, 0.9)))  # another model: only to 0.9**18 ~ 0.15
    _, (lo2, hi2) = panel.distance_plot.viewRange()
    assert (lo2, hi2) == (lo, hi)
    panel.set_result(fake_result(geometric(20, 0.9), text="zyxwvutsrqponmlkjihg"))  # new text
    _, (lo3, _hi3) = panel.distance_plot.viewRange()
    assert lo3 > -1.1  # fitted to 0.15 .. 1 again


def test_a_new_row_keeps_the_decades_while_its_curve_nearly_fills_them(panel):
    G = geometric(20, 0.5)
    panel.set_result(fake_result(G))
    panel.set_cursor(18)  # 1 .. 0.5**18 ~ 4e-6: decades -6 .. 0
    held = panel.distance_plot.viewRange()[1]
    panel.set_cursor(15)  # 1 .. 0.5**15 ~ 3e-5: -5 .. 0, one decade empty: kept
    assert panel.distance_plot.viewRange()[1] == held
    panel.set_cursor(5)  # 1 .. 0.03: -2 .. 0, four empty: fitted again
    lo, _hi = panel.distance_plot.viewRange()[1]
    assert lo > -2.5


def test_a_new_row_or_a_longer_title_moves_no_column(panel, qtbot):
    """Each key typed into a short text is a new row with a new title ("t = 9 ('j')",
    "t = 10 ('k')") and one more character: no plot of the view may move for it (a moved
    column regenerates every axis in the view)."""
    panel.show()
    qtbot.waitExposed(panel)

    def columns():
        qtbot.wait(100)  # the layout, and the paints after which axes fit their labels
        return [
            (item.geometry().x(), item.geometry().width())
            for item in (panel.probe_plot, panel.probe_bar, panel.distance_plot)
        ] + [panel.distance_plot.getViewBox().geometry().width()]

    panel.set_result(fake_result(geometric(11, 0.5)))
    panel.set_cursor(9)
    columns()  # the axes have sized themselves to these decades' labels
    before = columns()
    panel.set_result(fake_result(geometric(12, 0.5)))  # one more character, row 10
    panel.set_cursor(10)
    assert panel.distance_plot.titleLabel.text.startswith("t = 10 ")
    assert columns() == before


def test_a_log_axis_leaves_out_minor_ticks_where_a_decade_is_short():
    from rnnviz.gui.plotting import MIN_MINOR_DECADE_PX, LogAxis

    axis = LogAxis("left")
    axis.setLogMode(False, True)
    many = axis.tickValues(-8.0, 0.0, 8 * (MIN_MINOR_DECADE_PX - 1))
    few = axis.tickValues(-2.0, 0.0, 2 * (MIN_MINOR_DECADE_PX + 1))
    assert all(spacing is not None for spacing, _ in many)  # whole decades only
    assert few[-1][0] is None and len(few[-1][1]) >= 16  # 2..9 x 10^-2 and x 10^-1


def test_a_row_near_the_start_spans_ten_steps_back(panel):
    # one point (t = 0): the range was 0..1 and its ticks 0.2, 0.4, ... ran into each other.
    # (Two characters: with more, t = 0 shows the last row with a target instead.)
    panel.set_result(fake_result(geometric(2, 0.5)))
    panel.set_cursor(0)
    assert panel.selected_row() == 0
    (x_lo, x_hi), _ = panel.distance_plot.viewRange()
    assert x_lo <= 0 and 10 <= x_hi < 11


def test_last_row_falls_back_to_t_minus_two(panel, real_result):
    panel.set_result(real_result)
    T = len(real_result.text)
    panel.set_cursor(T - 1)
    assert panel.selected_row() == T - 2
    d, values = panel.distance_curve_data()
    assert len(d) == T - 1 and np.all(values > 0)
    assert "T − 2" in panel.row_note.text() and not panel.row_note.isHidden()
    assert f"t = {T - 2} " in panel.distance_plot.titleLabel.text


@pytest.mark.parametrize(
    ("factor", "text", "verdict"),
    [(0.5, "×0.50", "vanishing"), (1.3, "×1.30", "exploding"), (1.0, "×1.00", "steady")],
)
def test_fitted_factor_of_a_geometric_flow(panel, factor, text, verdict):
    panel.set_result(fake_result(geometric(12, factor)))
    panel.set_cursor(10)
    fit = panel.factor_fit()
    assert fit is not None
    assert fit.factor == pytest.approx(factor)
    assert fit.verdict == verdict
    assert f"per-step factor {text} ({verdict})" in panel.factor_text()
    # the fitted line lies on the data for an exact geometric decay
    _, fitted_log = panel.fit_curve.getData()
    np.testing.assert_allclose(10 ** np.asarray(fitted_log), factor ** np.arange(11.0))


def test_factor_needs_two_points(panel):
    # two characters: row 0, the only one with a target, has one point (six characters would
    # show row 4 instead, see test_the_cursor_at_the_start_shows_the_last_row_with_a_target)
    panel.set_result(fake_result(geometric(2, 0.5)))
    panel.set_cursor(0)
    assert panel.factor_fit() is None
    assert "fewer than 2" in panel.factor_text()
    assert len(panel.distance_curve_data()[0]) == 1


def test_nonfinite_and_zero_flow_never_reach_pyqtgraph(panel):
    G = geometric(8, 0.5)
    G[5, 1] = np.inf
    G[5, 2] = np.nan
    G[5, 3] = 0.0
    G[5, 0] = 1e-320  # subnormal: positive and finite, so it is drawn
    panel.set_result(fake_result(G))
    shown = panel.probe_image_array()
    assert np.isnan(shown[5, 1:4]).all()
    rgba = panel.probe_image_rgba()
    assert rgba.dtype == np.uint8  # an RGBA image has no NaN to give pyqtgraph
    panel.set_cursor(5)
    d, values = panel.distance_curve_data()
    assert np.isfinite(values).all() and (values > 0).all()
    np.testing.assert_array_equal(d, [0, 1, 5])
    for item in (panel.distance_curve, panel.fit_curve):
        x, y = item.getData()
        assert np.isfinite(x).all() and np.isfinite(y).all()
    assert panel.factor_fit().points == 3


def test_placeholders(panel, real_result):
    assert panel.probe_stack.currentWidget() is panel.probe_placeholder
    assert panel.probe_placeholder.text() == plots.PROBE_PLACEHOLDER
    panel.set_result(real_result)
    # probed while the panel was off screen: the window probes again with the flow
    panel.set_result(types.SimpleNamespace(text="abc", grad_flow=None))
    assert panel.probe_stack.currentWidget() is panel.probe_placeholder
    assert panel.probe_placeholder.text() == plots.PENDING_FLOW_PLACEHOLDER
    from rnnviz.core.probe import MAX_GRAD_FLOW_CHARS

    long_text = "a" * (MAX_GRAD_FLOW_CHARS + 1)
    panel.set_result(types.SimpleNamespace(text=long_text, grad_flow=None))
    assert "over 4,096 characters" in panel.probe_placeholder.text()
    assert "this one has 4,097" in panel.probe_placeholder.text()
    panel.set_result(None)
    assert panel.probe_placeholder.text() == plots.PROBE_PLACEHOLDER
    assert panel.probe_image_array().size == 0
    panel.set_cursor(3)  # no result: nothing to select, no error


def test_the_placeholder_does_not_set_the_panels_least_width(panel):
    # unwrapped, the long sentence was the width the dock (and the softmax dock tabbed with
    # it) could not shrink below: ~820 px, most of a laptop screen
    panel.set_result(types.SimpleNamespace(text="a" * 5000, grad_flow=None))
    assert panel.minimumSizeHint().width() < 400


def test_a_narrow_dock_does_not_cut_off_the_distance_plot(qtbot):
    widget = GradFlowPanel(make_state(flow_capacity=5))
    qtbot.addWidget(widget)
    widget.resize(300, 400)  # narrower than the three plots side by side can be
    widget.show()
    qtbot.waitExposed(widget)
    G = geometric(25, 0.8)
    widget.set_result(fake_result(G, text="bzwxwxwxwxb dyyxzywyzyd a"))
    widget.set_cursor(21)
    view = widget.probe_plots

    def distance_plot_inside() -> bool:
        right = widget.distance_plot.mapRectToScene(widget.distance_plot.boundingRect()).right()
        return bool(right <= view.viewport().width() + 1)

    qtbot.waitUntil(distance_plot_inside, timeout=2000)  # after a paint and a re-layout


def test_one_character_probe(panel):
    panel.set_result(fake_result(np.zeros((1, 1)), "a"))
    assert panel.selected_row() is None
    assert "two characters" in panel.factor_text()


# ------------------------------------------------------------------------ training


def test_training_ring_keeps_the_last_steps(panel, state):
    rng = np.random.default_rng(1)
    flows = rng.uniform(1e-6, 1e-2, size=(8, 4))
    feed(state, [record(s, flows[s]) for s in range(3)])
    assert panel.dirty
    assert panel.redraw()
    assert not panel.redraw()  # nothing new: no draw
    np.testing.assert_allclose(panel.training_image_array(), np.log10(flows[:3].T))
    feed(state, [record(s, flows[s]) for s in range(3, 8)])
    panel.redraw()
    shown = panel.training_image_array()
    assert shown.shape == (4, 5)  # capacity 5: the last five steps, oldest first
    np.testing.assert_allclose(shown, np.log10(flows[3:8].T))
    np.testing.assert_array_equal(panel.training_steps(), [3, 4, 5, 6, 7])
    rect = panel.training_image.mapRectToParent(panel.training_image.boundingRect())
    assert (rect.left(), rect.width(), rect.height()) == pytest.approx((3, 5, 4))
    # the colours: each step's values over its largest, from a robust floor up to 0
    logs = np.log10(flows[3:8].T)
    np.testing.assert_allclose(panel.training_colour_array(), logs - logs.max(axis=0))
    lo, hi = panel.training_levels()
    assert hi == plots.TRAINING_TOP == 0.0
    assert lo <= np.percentile(logs - logs.max(axis=0), 2) and lo < 0
    rgba = panel.training_image_rgba()
    assert rgba.shape == (4, 5, 4) and rgba.dtype == np.uint8


def test_training_ring_resets_on_new_window_size_rollback_and_clear(panel, state):
    feed(state, [record(s, np.full(4, 1e-3)) for s in range(4)])
    feed(state, [record(4, np.full(6, 1e-3))])  # num_steps changed
    panel.redraw()
    assert panel.training_image_array().shape == (6, 1)
    feed(state, [record(2, np.full(6, 1e-4))])  # a step that goes back: a rollback
    panel.redraw()
    np.testing.assert_array_equal(panel.training_steps(), [2])
    new_run(state)  # a reset: drawn at once
    assert panel.training_image_array().size == 0
    assert panel.sigma_curve_data(0)[0].size == 0
    assert panel.run_ids() == []


def test_training_nonfinite_values_are_masked(panel, state):
    flow = np.array([np.nan, np.inf, 0.0, 1e-3])
    feed(state, [record(0, flow, sigma=math.nan), record(1, np.full(4, 1e-2), sigma=None)])
    panel.redraw()
    shown = panel.training_image_array()
    assert np.isnan(shown[:3, 0]).all()
    assert shown[3, 0] == pytest.approx(-3.0)
    assert panel.training_image_rgba().dtype == np.uint8
    steps, sigma = panel.sigma_curve_data(0)
    assert steps.size == 0 and sigma.size == 0  # NaN and None σ are skipped
    x, y = panel.sigma_item(0).getData()
    assert x is None or len(x) == 0


def test_sigma_curve_per_run(panel, state):
    feed(state, [record(s, np.full(3, 1e-3), sigma=0.8 + 0.1 * s) for s in range(4)])
    add_run(state, 1, "x")
    feed(state, [record(s, np.full(3, 1e-3), sigma=2.0 + s) for s in range(3)], run_id=1)
    feed(state, [record(4, np.full(3, 1e-3), sigma=None)])
    panel.redraw()
    steps0, sigma0 = panel.sigma_curve_data(0)
    np.testing.assert_array_equal(steps0, [0, 1, 2, 3])
    np.testing.assert_allclose(sigma0, [0.8, 0.9, 1.0, 1.1])
    steps1, sigma1 = panel.sigma_curve_data(1)
    np.testing.assert_allclose(sigma1, [2.0, 3.0, 4.0])
    x, y = panel.sigma_item(1).getOriginalDataset()
    np.testing.assert_allclose(y, sigma1)
    colours = {panel.sigma_item(r).opts["pen"].color().name() for r in (0, 1)}
    assert colours == {theme.RUN_COLOURS[0].lower(), theme.RUN_COLOURS[1].lower()}
    assert 10 ** panel.sigma_line.value() == 1.0  # on a log axis
    assert not panel.run_combo.isHidden()  # two runs: choose which heatmap
    panel.run_combo.setCurrentIndex(1)
    assert panel.training_steps().tolist() == [0, 1, 2]
    close_run(state, 1)
    assert panel.sigma_curve_data(1)[0].size == 0
    assert panel.sigma_curve_data(0)[0].size == 4


def test_the_heatmap_follows_the_states_runs_and_names(panel, state):
    feed(state, [record(s, np.full(3, 1e-3)) for s in range(4)])
    add_run(state, 1, "clip off")
    feed(state, [record(s, np.full(3, 1e-1)) for s in range(2)], run_id=1)
    assert panel.dirty and panel.redraw()
    names = [panel.run_combo.itemText(i) for i in range(panel.run_combo.count())]
    assert names == ["main", "clip off"]
    assert "clip off" in panel.sigma_key_text()
    panel.set_heatmap_run(1)
    assert panel.dirty and panel.redraw()
    assert panel.training_steps().tolist() == [0, 1]
    np.testing.assert_allclose(panel.training_image_array(), -1.0)  # the shown run's values
    np.testing.assert_allclose(panel.training_colour_array(), 0.0)  # each its step's largest
    rolled_back(state, 0, run_id=1)  # the state truncates the ring once: the panel reads it
    panel.redraw()
    assert panel.training_steps().tolist() == [0]
    close_run(state, 1)  # the shown run is closed: back to the main run, drawn at once
    assert panel.training_steps().tolist() == [0, 1, 2, 3]
    assert panel.run_combo.isHidden() and panel.sigma_key_text() == ""
    assert panel.run_ids() == [0]


def test_sigma_one_stays_in_view(panel, state, qtbot):
    panel.tabs.setCurrentIndex(1)
    panel.show()
    qtbot.waitExposed(panel)
    feed(state, [record(s, np.full(3, 1e-3), sigma=3.0 + s) for s in range(5)])
    panel.redraw()
    panel.sigma_plot.getViewBox().updateAutoRange()
    (_, _), (y_lo, y_hi) = panel.sigma_plot.viewRange()
    assert y_lo <= 0.0 <= y_hi  # log10(1): the σ_max axis is logarithmic


def test_help_explains_sigma():
    # the dock's "?" shows it (tests/gui/test_main_window.py: every panel's help)
    for phrase in ("σ_max &lt; 1", "ReLU", "clipping", "vanish", "W_hh"):
        assert phrase in plots.HELP_TEXT


def test_grab_with_real_data(panel, state, real_result, tmp_path):
    panel.set_result(real_result)
    panel.set_cursor(12)
    rng = np.random.default_rng(0)
    feed(state, [record(s, rng.uniform(1e-7, 1e-3, 12), sigma=1.0) for s in range(5)])
    panel.redraw()
    for tab in (0, 1):
        panel.tabs.setCurrentIndex(tab)
        path = tmp_path / f"gradflow_{tab}.png"
        assert panel.grab().save(str(path))
        image = panel.grab().toImage()
        assert image.width() >= 800
        colours = {
            image.pixel(x, y)
            for x in range(0, image.width(), 23)
            for y in range(0, image.height(), 23)
        }
        assert len(colours) > 20  # not a blank widget


# ------------------------------------------------------------------------ plots that mislead


def test_the_cursor_at_the_start_shows_the_last_row_with_a_target(panel):
    """At the default cursor t = 0 the row has one point, nothing to fit: the plot was empty
    ("fewer than 2 steps back to fit"). It shows the last row with a target and says so."""
    G = geometric(16, 0.5)
    panel.set_result(fake_result(G))  # the cursor is at t = 0
    assert panel.selected_row() == 14
    d, values = panel.distance_curve_data()
    np.testing.assert_array_equal(d, np.arange(15))
    np.testing.assert_allclose(values, G[14, 14 - np.arange(15)])
    fit = panel.factor_fit()
    assert fit is not None and fit.row == 14 and fit.factor == pytest.approx(0.5)
    assert "fewer than 2" not in panel.factor_text()
    note = panel.row_note.text()
    assert not panel.row_note.isHidden()
    assert "t = 0 has under 2 steps back" in note and "row t = 14" in note
    assert "last step with a target" in note
    assert panel.distance_plot.titleLabel.text.startswith("t = 14 ")
    panel.set_cursor(5)  # a row with points to fit: its own
    assert panel.selected_row() == 5 and panel.row_note.isHidden()
    panel.set_cursor(15)  # the last character: T - 2, with its own note
    assert panel.selected_row() == 14 and "T − 2" in panel.row_note.text()


def labelled_gaps(plot) -> np.ndarray:
    """Pixels between neighbouring labelled ticks of a plot's left axis, as drawn."""
    axis = plot.getAxis("left")
    lo, hi = plot.viewRange()[1]
    size = axis.size().height()
    labelled: set[float] = set()
    for spacing, values in axis.tickValues(lo, hi, size):
        strings = axis.tickStrings(values, axis.autoSIPrefixScale, spacing)
        labelled |= {float(v) for v, text in zip(values, strings, strict=True) if text}
    pixels = sorted(size * (v - lo) / (hi - lo) for v in labelled)
    return np.diff(pixels)


def test_the_distance_plots_log_ticks_do_not_stack(qtbot):
    """A row spanning about a decade in a short plot: every minor tick 2..9 was labelled, one
    on another ("9 8 7 6..."). Labels now keep a line's height apart."""
    from PySide6.QtGui import QFontMetricsF

    widget = GradFlowPanel(make_state(flow_capacity=5))
    qtbot.addWidget(widget)
    widget.resize(900, 300)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_result(fake_result(geometric(20, 0.88)))  # row 18: 1 .. 0.1
    widget.set_cursor(18)
    qtbot.wait(50)
    gaps = labelled_gaps(widget.distance_plot)
    assert len(gaps) >= 1  # the scale is still labelled
    line = QFontMetricsF(theme.font()).height()
    assert gaps.min() >= 0.9 * line


def test_a_nearly_flat_training_flow_shows_its_structure(panel, state):
    """As tanh on the built-in corpus: ~0.2 decades across the window while the overall scale
    drifts. On a fixed eight-decade scale that was one flat colour."""
    positions = np.linspace(0.0, -0.2, 8)
    flows = [10 ** (-4.5 + 0.15 * s + positions) for s in range(5)]
    feed(state, [record(s, flows[s]) for s in range(5)])
    panel.redraw()
    rgba = panel.training_image_rgba()[:, :, :3].astype(np.float64)
    first_vs_last = np.linalg.norm(rgba[0] - rgba[-1], axis=-1)  # per step
    assert first_vs_last.min() > 100  # the ends of the window are far apart in colour
    np.testing.assert_allclose(panel.training_colour_array()[:, 0], positions, atol=1e-12)
    lo, hi = panel.training_levels()
    assert (lo, hi) == (-0.2, 0.0)
    assert panel.training_bar.levels() == (-0.2, 0.0)
    for text in (panel.training_plot.getViewBox().toolTip(), plots.HELP_TEXT):
        assert "largest" in text  # the help says what the colour is


def test_the_empty_training_tab_has_a_small_range_and_a_hint(panel, state):
    """It showed −0.5…0.5 (and after a run, that run's range) with no word of what to do."""

    def assert_empty() -> None:
        (x_lo, x_hi), (y_lo, y_hi) = panel.training_plot.viewRange()
        assert -1 <= x_lo <= 0 and 10 <= x_hi <= 11
        rows = state.config.train.num_steps
        assert -1 <= y_lo <= 0 and rows <= y_hi <= rows + 1
        (_, _), (s_lo, s_hi) = panel.sigma_plot.viewRange()
        assert -1 <= s_lo < 0 < s_hi <= 1  # log10 σ_max: the σ_max = 1 line in the middle
        assert "no steps yet" in panel.empty_training_hint()

    assert_empty()
    feed(state, [record(s, np.full(4, 1e-3), sigma=1e6) for s in range(500, 505)])
    panel.redraw()
    assert panel.empty_training_hint() == ""
    panel.sigma_plot.getViewBox().updateAutoRange()
    panel.training_plot.getViewBox().updateAutoRange()
    assert panel.training_plot.viewRange()[0][0] > 400  # the data's range again
    new_run(state)  # a reset
    assert_empty()


def export_dialog(view, item):
    """Open the view's context-menu export dialog on ``item``, as a right click does."""
    scene = view.scene()
    scene.contextMenuItem = item
    scene.contextMenu[0].trigger()
    return scene.exportDialog


def choose_format(dialog, name: str):
    formats = dialog.ui.formatList
    for row in range(formats.count()):
        if name in formats.item(row).text():
            formats.setCurrentRow(row)
    exporter = dialog.currentExporter
    dialog.exportClicked()  # opens the file dialog, which calls export(fileName=...)
    if getattr(exporter, "fileDialog", None) is not None:
        exporter.fileDialog.close()
    return exporter


# the dialogs are raised over the window, which the offscreen platform cannot do
@pytest.mark.qt_log_ignore(
    r"This plugin does not support propagateSizeHints\(\)",
    r"This plugin does not support raise\(\)",
)
def test_svg_export_works_and_a_failing_export_is_shown(panel, state, tmp_path, monkeypatch):
    """SVG export raised ValueError in a slot (a traceback in the terminal, no file, no word in
    the window). It writes the file; any other failure is shown and signalled."""
    import xml.dom.minidom

    import pyqtgraph.exporters

    from rnnviz.gui.exports import GuardedExportDialog

    feed(state, [record(s, np.full(4, 1e-3)) for s in range(5)])
    panel.redraw()
    failures: list[str] = []
    panel.export_failed.connect(failures.append)
    dialog = export_dialog(panel.training_plots, panel.sigma_plot)
    assert isinstance(dialog, GuardedExportDialog)
    path = tmp_path / "sigma.svg"
    choose_format(dialog, "SVG").export(fileName=str(path))
    assert failures == []
    svg = xml.dom.minidom.parse(str(path))
    assert svg.getElementsByTagName("text")  # the axes' labels are there

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pyqtgraph.exporters.ImageExporter, "export", broken)
    choose_format(dialog, "Image")  # its export raises in the click's slot: no exception
    assert len(failures) == 1 and "disk full" in failures[0]
    assert dialog.error_box is not None and "disk full" in dialog.error_box.text()
    dialog.error_box.close()
    dialog.close()


def test_on_a_dark_scheme_the_gradient_flow_is_dark_and_its_hints_readable(qtbot):
    theme.use_dark_scheme(True)
    try:
        widget = GradFlowPanel(make_state(flow_capacity=5))
        qtbot.addWidget(widget)
    finally:
        theme.use_dark_scheme(None)
    dark = theme.DARK
    for view in (widget.probe_plots, widget.training_plots):
        assert view.backgroundBrush().color().name() == dark.plot_background.lower()
    assert widget.empty_hint.color.name() == dark.placeholder_ink.lower()
    assert dark.placeholder_ink in widget.probe_placeholder.styleSheet()
    assert widget.sigma_line.label.color.name() == dark.secondary_ink.lower()


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_a_gated_models_row_shows_its_retention_beside_the_gradient(panel, state, kind):
    from rnnviz.core.gates import CARRY_GATE
    from rnnviz.core.model import build_model

    torch.manual_seed(0)
    vocab = Vocab.from_text(TEXT)
    model = build_model(len(vocab), ModelConfig(kind=kind, hidden_size=8), seed=0).eval()
    result = probe(model, vocab, "hello world hello")
    panel.set_result(result)
    panel.set_cursor(9)
    d, kept = panel.retention_curve_data()
    carry = result.gates.trace()[CARRY_GATE[kind]].astype(np.float64)
    expect = [np.mean(np.prod(carry[9 - k + 1 : 10], axis=0)) for k in range(10)]
    np.testing.assert_array_equal(d, np.arange(10))
    np.testing.assert_allclose(kept, expect, rtol=1e-6)
    text = panel.retention_label.text()
    assert panel.retention_label.isVisibleTo(panel) and f"∏ {CARRY_GATE[kind]}_s" in text
    # the selected unit's own product beside the mean, following a click on another unit
    for unit in (0, 5):
        state.set_unit(unit)
        d, own = panel.retention_curve_data(unit=True)
        expect = [np.prod(carry[9 - k + 1 : 10, unit]) for k in range(10)]
        np.testing.assert_array_equal(d, np.arange(10))
        np.testing.assert_allclose(own, expect, rtol=1e-6)
    np.testing.assert_allclose(
        own, result.gates.trace().retention(5)[9, 9 - np.arange(10)], rtol=1e-5
    )
    panel.set_result(probe_scratch())  # the plain RNN has no gate to carry its state
    panel.set_cursor(9)
    assert panel.retention_curve_data()[0].size == 0
    assert panel.retention_curve_data(unit=True)[0].size == 0
    assert not panel.retention_label.isVisibleTo(panel)


def probe_scratch():
    torch.manual_seed(0)
    vocab = Vocab.from_text(TEXT)
    model = ScratchRNN(len(vocab), ModelConfig(kind="scratch", hidden_size=8))
    return probe(model, vocab, "hello world hello")
