"""Metric panels on synthetic StepRecords fed through the one AppState: what is plotted equals
what was recorded."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from _state_helpers import (
    PARAMS,
    add_run,
    close_run,
    feed,
    make_state,
    new_run,
    rolled_back,
    set_theta,
)
from PySide6.QtCore import Qt

from rnnviz.core.analysis import CLIP_RATE_WINDOW
from rnnviz.core.messages import StepRecord
from rnnviz.gui.panels.grad_norms import GradNormPanel
from rnnviz.gui.panels.training_curves import (
    D2L_REFERENCE_LABEL,
    D2L_REFERENCE_PPL,
    SPEED_SCALE,
    TrainingCurvesPanel,
)


def make_record(
    step: int,
    *,
    ppl: float | None = None,
    before: float | None = None,
    theta: float = 1.0,
    clip_enabled: bool = True,
    nonfinite: bool = False,
    val_ppl: float | None = None,
) -> StepRecord:
    ppl = 30.0 / (1 + 0.05 * step) if ppl is None else ppl
    before = 0.5 + (step % 7) * 0.3 if before is None else before
    clipped = clip_enabled and math.isfinite(before) and before > theta
    after = min(before, theta) if clip_enabled else before
    return StepRecord(
        step=step,
        epoch=step // 10,
        loss=math.log(ppl) if ppl > 0 else math.nan,
        ppl=ppl,
        grad_norm_before_clip=before,
        grad_norm_after_clip=after,
        clipped=clipped,
        lr=1.0,
        clip_theta=theta,
        clip_enabled=clip_enabled,
        tokens_per_s=1000.0 + step,
        nonfinite=nonfinite,
        nonfinite_total=0,
        param_grad_norms={name: before / (i + 1) for i, name in enumerate(PARAMS)},
        grad_flow=np.ones(4),
        val_ppl=val_ppl,
    )


def curve_xy(item) -> tuple[np.ndarray, np.ndarray]:
    x, y = item.getOriginalDataset()
    if x is None:
        return np.empty(0), np.empty(0)
    return np.asarray(x), np.asarray(y)


@pytest.fixture
def state():
    return make_state()


@pytest.fixture
def curves(qtbot, state):
    panel = TrainingCurvesPanel(state)
    qtbot.addWidget(panel)
    return panel


@pytest.fixture
def grads(qtbot, state):
    panel = GradNormPanel(state)
    qtbot.addWidget(panel)
    panel.set_param_names(PARAMS)
    return panel


def test_training_curves_plot_the_records(curves, state):
    records = [make_record(s, val_ppl=12.0 if s % 10 == 0 else None) for s in range(1, 51)]
    feed(state, records[:20])
    feed(state, records[20:])
    assert curves.dirty
    assert curves.redraw()
    assert not curves.redraw()  # nothing new: no work
    x, y = curve_xy(curves.curve_items(0).train)
    np.testing.assert_array_equal(x, [r.step for r in records])
    np.testing.assert_allclose(y, [r.ppl for r in records])
    vx, vy = curve_xy(curves.curve_items(0).val)
    np.testing.assert_array_equal(vx, [10, 20, 30, 40, 50])
    np.testing.assert_allclose(vy, 12.0)
    sx, sy = curve_xy(curves.curve_items(0).speed)
    np.testing.assert_allclose(sy * SPEED_SCALE, [r.tokens_per_s for r in records])
    assert curves.ppl_plot.getAxis("left").labelText == "perplexity"
    assert curves.speed_plot.getAxis("bottom").labelText == "optimizer step"
    assert curves.ppl_plot.ctrl.logYCheck.isChecked()


def test_before_the_first_step_the_curves_say_how_to_start(curves, state):
    """The hint sits where the key goes (not as a plot title, which shrank both plots), and the
    empty speed plot has no crammed 0.2-step labels; both turn normal with the first steps."""
    speed_axis = curves.speed_plot.getAxis("left")
    assert "no steps yet" in curves.key_label.text()
    assert curves.ppl_plot.titleLabel.text in ("", None)
    assert speed_axis._tickSpacing == [(1.0, 0.0), (1.0, 0.0)]
    feed(state, [make_record(s) for s in range(1, 6)])
    assert curves.redraw()
    assert "no steps yet" not in curves.key_label.text()
    assert speed_axis._tickSpacing is None  # pyqtgraph picks the ticks again


def test_reference_line_toggles(curves):
    line = curves.reference_line
    assert line.isVisible()
    assert line.value() == pytest.approx(math.log10(D2L_REFERENCE_PPL))  # view units: log10
    assert D2L_REFERENCE_LABEL in line.label.format
    curves.reference_check.setChecked(False)
    assert not line.isVisible()


def test_nonfinite_steps_are_masked_and_marked(curves, grads, state):
    records = [make_record(s) for s in range(1, 11)]
    records[4] = make_record(5, ppl=math.inf, before=math.nan, nonfinite=True)
    records[6] = make_record(7, ppl=math.nan, before=math.inf, nonfinite=True)
    feed(state, records)
    for panel in (curves, grads):
        panel.redraw()
    x, y = curve_xy(curves.curve_items(0).train)
    assert np.all(np.isfinite(y)) and 5 not in x and 7 not in x and len(x) == 8
    mx, my = curve_xy(curves.curve_items(0).nonfinite)
    np.testing.assert_array_equal(mx, [5, 7])
    assert np.all(np.isfinite(my)) and np.all(my > 0)
    gx, gy = curve_xy(grads.curve_items(0).before)
    assert np.all(np.isfinite(gy)) and len(gx) == 8
    nx, _ = curve_xy(grads.curve_items(0).nonfinite)
    np.testing.assert_array_equal(nx, [5, 7])


def test_all_nonfinite_never_blank_or_crash(curves, grads, state):
    records = [make_record(s, ppl=math.nan, before=math.nan, nonfinite=True) for s in range(3)]
    feed(state, records)
    for panel in (curves, grads):
        panel.redraw()
    assert len(curve_xy(curves.curve_items(0).nonfinite)[0]) == 3
    assert len(curve_xy(curves.curve_items(0).train)[0]) == 0


def test_grad_norms_before_after_and_clip_markers(grads, state):
    records = [make_record(s) for s in range(1, 41)]
    feed(state, records)
    grads.redraw()
    bx, by = curve_xy(grads.curve_items(0).before)
    np.testing.assert_allclose(by, [r.grad_norm_before_clip for r in records])
    ax, ay = curve_xy(grads.curve_items(0).after)
    np.testing.assert_allclose(ay, [r.grad_norm_after_clip for r in records])
    cx, _ = curve_xy(grads.curve_items(0).clipped)
    np.testing.assert_array_equal(cx, [r.step for r in records if r.clipped])
    rate, ratio = grads.clip_stats(0)
    assert rate == pytest.approx(np.mean([r.clipped for r in records]))
    assert ratio == pytest.approx(records[-1].grad_norm_before_clip / records[-1].clip_theta)
    assert f"{rate:.0%}" in grads.stats_label.text()
    assert grads.theta_line.isVisible()
    assert grads.theta_line.value() == pytest.approx(0.0)  # log10(1)


def test_clip_rate_uses_the_last_window(grads, state):
    records = [make_record(s, before=5.0) for s in range(1, 201)]  # all clipped
    records += [make_record(s, before=0.1) for s in range(201, 201 + CLIP_RATE_WINDOW // 2)]
    feed(state, records)
    grads.redraw()
    rate, _ = grads.clip_stats(0)
    assert rate == pytest.approx(0.5)


def test_theta_line_follows_the_configured_theta(grads, state):
    feed(state, [make_record(1, theta=1.0)])
    grads.redraw()
    set_theta(state, 5.0)
    feed(state, [make_record(2, theta=5.0)])
    grads.redraw()
    assert grads.theta == 5.0
    assert grads.theta_line.value() == pytest.approx(math.log10(5.0))
    assert "θ = 5" in grads.theta_line.label.format
    set_theta(state, 5.0, clip_enabled=False)
    feed(state, [make_record(3, theta=5.0, clip_enabled=False)])
    grads.redraw()
    assert "clipping off" in grads.stats_label.text()


def test_per_parameter_curves_are_off_by_default_and_switch_on(grads, state):
    records = [make_record(s) for s in range(1, 21)]
    feed(state, records)
    grads.redraw()
    assert grads.shown_params() == []
    assert not any(c.isVisible() for c in grads.curve_items(0).params.values())
    grads.param_check("W_hh").setChecked(True)
    curve = grads.curve_items(0).params["W_hh"]
    x, y = curve_xy(curve)
    np.testing.assert_allclose(y, [r.param_grad_norms["W_hh"] for r in records])
    grads.param_check("W_hh").setChecked(False)
    assert not curve.isVisible()


def test_runs_are_keyed_and_coloured_apart(curves, state):
    feed(state, [make_record(s) for s in range(1, 11)], run_id=0)
    add_run(state, 1, "x")
    feed(state, [make_record(s, ppl=5.0) for s in range(1, 6)], run_id=1)
    curves.redraw()
    a, b = curves.curve_items(0).train, curves.curve_items(1).train
    assert a.opts["pen"].color() != b.opts["pen"].color()
    assert len(curve_xy(b)[0]) == 5
    close_run(state, 1)
    curves.redraw()
    assert curves.run_ids() == [0]


def test_buffers_are_bounded(qtbot):
    state = make_state(capacity=64)
    panel = TrainingCurvesPanel(state)
    qtbot.addWidget(panel)
    for start in range(0, 20_000, 500):
        feed(state, [make_record(s) for s in range(start, start + 500)])
    panel.redraw()
    x, _ = curve_xy(panel.curve_items(0).train)
    assert len(x) < 20_000 // 4  # thinned, not every step
    assert x[0] == 0 and x[-1] == 19_999  # but still the whole run


def test_clear_forgets_everything(curves, state):
    feed(state, [make_record(s) for s in range(5)])
    curves.redraw()
    new_run(state)  # a reset: the engine sends the new run's RunInfo
    curves.redraw()
    assert curves.run_ids() == []


# --------------------------------------------------------------------------- gradient debugging


def test_nonfinite_losses_keep_finite_data_visible_and_a_sane_y_range(curves, grads, state):
    """A divergence: NaN and inf losses and norms among huge finite ones. No NaN reaches
    pyqtgraph, the finite steps stay drawn, the crosses mark the rest, the view is finite."""
    records = [make_record(s) for s in range(1, 21)]
    records += [
        make_record(21, ppl=1e30, before=1e12, clip_enabled=False),
        make_record(22, ppl=math.inf, before=math.inf, clip_enabled=False, nonfinite=True),
        make_record(23, ppl=math.nan, before=math.nan, clip_enabled=False, nonfinite=True),
    ]
    feed(state, records)
    for panel in (curves, grads):
        panel.redraw()
    for item in (curves.curve_items(0).train, grads.curve_items(0).before):
        x, y = curve_xy(item)
        assert np.all(np.isfinite(y)) and np.all(y > 0)
        assert list(x) == list(range(1, 22))  # every finite step stays
    mx, my = curve_xy(curves.curve_items(0).nonfinite)
    np.testing.assert_array_equal(mx, [22, 23])
    assert np.all(my == my.max()) and np.isfinite(my).all()
    for plot in (curves.ppl_plot, grads.plot):
        plot.getViewBox().updateAutoRange()
        (x_lo, x_hi), (y_lo, y_hi) = plot.viewRange()
        assert all(math.isfinite(v) for v in (x_lo, x_hi, y_lo, y_hi))
        assert y_hi > y_lo
    assert "perplexity not finite" in curves.key_label.text()


def test_theta_line_moves_at_once_and_stale_records_do_not_move_it_back(grads, state):
    feed(state, [make_record(s, before=2.0, theta=1.0) for s in range(1, 5)])
    grads.redraw()
    assert grads.theta == 1.0
    set_theta(state, 0.25)  # the user's new θ, before any step used it: no redraw needed
    assert grads.theta == 0.25
    assert grads.theta_line.value() == pytest.approx(math.log10(0.25))
    assert "θ = 0.25" in grads.theta_line.label.format
    _, ratio = grads.clip_stats(0)
    assert ratio == pytest.approx(2.0 / 0.25)  # ‖g‖/θ against the new θ at once
    assert "8" in grads.stats_label.text()
    feed(state, [make_record(5, before=2.0, theta=1.0)])  # a step from before the change
    grads.redraw()
    assert grads.theta == 0.25
    feed(state, [make_record(6, before=2.0, theta=0.25)])  # the records catch up
    grads.redraw()
    assert grads.theta == 0.25
    set_theta(state, 3.0)  # e.g. a checkpoint was loaded: its RunInfo carries its θ
    feed(state, [make_record(7, before=2.0, theta=3.0)])
    grads.redraw()
    assert grads.theta == 3.0
    set_theta(state, 3.0, clip_enabled=False)
    assert "clipping off" in grads.theta_line.label.format


def test_compare_runs_are_named_with_steps_and_their_own_theta(curves, grads, state):
    feed(state, [make_record(s) for s in range(1, 6)], run_id=0)
    for panel in (curves, grads):
        panel.redraw()
    assert curves.key_run_names() == []  # one run: no names needed
    add_run(state, 1, "θ=0.1")
    feed(state, [make_record(s, theta=0.1) for s in range(1, 4)], run_id=1)
    for panel in (curves, grads):
        panel.redraw()
    assert curves.key_run_names() == ["main", "θ=0.1"]
    key = curves.key_label.text()
    assert "main" in key and "θ=0.1" in key
    assert "step 5" in grads.run_stats_text(0) and "step 3" in grads.run_stats_text(1)
    assert "main" in grads.stats_label.text() and "θ=0.1" in grads.stats_label.text()
    line = grads.theta_line_of(1)
    assert line is not None and line.isVisible()
    assert line.value() == pytest.approx(math.log10(0.1))
    assert grads.theta_line_of(0) is None
    x, _ = curve_xy(curves.curve_items(1).train)
    np.testing.assert_array_equal(x, [1, 2, 3])
    close_run(state, 1)  # the compare run is closed
    for panel in (curves, grads):
        panel.redraw()
    assert curves.run_ids() == [0] and curves.key_run_names() == []
    assert "θ=0.1" not in grads.stats_label.text()


def test_rollback_truncates_the_abandoned_steps(curves, state):
    feed(state, [make_record(s) for s in range(1, 11)])
    rolled_back(state, 5)
    curves.redraw()
    np.testing.assert_array_equal(curve_xy(curves.curve_items(0).train)[0], [1, 2, 3, 4, 5])
    feed(state, [make_record(s) for s in range(3, 5)])  # a step that goes back, unannounced
    curves.redraw()
    np.testing.assert_array_equal(curve_xy(curves.curve_items(0).train)[0], [1, 2, 3, 4])


def test_step_axis_grows_in_steps_with_room_after_the_last_step() -> None:
    from rnnviz.gui.panels._metric_base import x_range_top

    assert [x_range_top(s) for s in (0, 9, 10, 95, 96, 100, 143, 190, 480, 1000)] == [
        10,
        10,
        15,
        100,
        150,
        150,
        200,
        200,
        700,
        1500,
    ]
    tops = set()
    for step in range(0, 5000, 7):
        top = x_range_top(step)
        assert top >= step * 1.05 and top >= 10
        assert step < 10 or top <= step * 1.05 * 1.5 + 1  # the curve fills >= 2/3 of the axis
        tops.add(top)
    assert len(tops) <= 20  # the axis changes rarely


# --------------------------------------------------------------------------- one state


def test_both_panels_read_the_one_history(curves, grads, state):
    feed(state, [make_record(s) for s in range(1, 6)])
    assert curves.history(0) is state.histories.metrics(0) is grads.history(0)
    assert curves.history(7) is None and not state.histories.has(7)  # reading adds no run
    assert curves.last_step(0) == 5 and grads.run_ids() == [0]


def test_redraw_draws_only_what_changed(curves, grads, state):
    feed(state, [make_record(s) for s in range(1, 6)])
    assert curves.redraw() and grads.redraw()
    assert not curves.dirty and not grads.redraw()
    set_theta(state, 0.5)  # θ is drawn by the grad norms only
    assert grads.dirty and not curves.dirty
    assert grads.redraw() and not curves.redraw()
    old = curves.curve_items(0)
    add_run(state, 1, "other")  # the main run is "main" in the legends now: new items
    assert curves.redraw()
    assert curves.curve_items(0) is not old and curves.curve_items(0).suffix == " (main)"
    grads.param_check("W_hh").setChecked(True)  # drawn at once
    assert not grads.dirty and "W_hh" in grads.curve_items(0).params


def test_param_names_come_with_the_main_runs_info(qtbot, state):
    new_run(state)
    panel = GradNormPanel(state)  # made after the RunInfo: it reads it
    qtbot.addWidget(panel)
    assert panel.param_check("W_hh").text() == "W_hh"
    other = GradNormPanel(make_state())
    qtbot.addWidget(other)
    assert other.shown_params() == []
    new_run(other.state)  # the RunInfo's names, without the window calling set_param_names
    assert other.param_check("b_q") is not None


# --------------------------------------------------------------------------- plots that mislead


def test_after_a_divergence_and_reset_the_axes_are_small_again(curves, state, qtbot):
    """After Reset the empty tokens/s axis was a smear of overlapping ticks (one per unit over
    the last run's 0..3000) and the perplexity axis kept a divergence's 10⁻¹⁰…10¹⁰."""
    curves.resize(700, 450)
    curves.show()
    qtbot.waitExposed(curves)
    records = [make_record(s) for s in range(1, 30)]
    records += [make_record(s, ppl=10.0 ** (s - 20), clip_enabled=False) for s in range(30, 45)]
    records += [make_record(45, ppl=math.inf, nonfinite=True)]
    records = [replace(r, tokens_per_s=3e6 * r.step / 45) for r in records]
    feed(state, records)
    curves.redraw()
    for plot in (curves.ppl_plot, curves.speed_plot):
        plot.getViewBox().updateAutoRange()
    assert curves.ppl_plot.viewRange()[1][1] > 20  # the divergence is in view (log10)
    assert curves.speed_plot.viewRange()[1][1] > 2000
    new_run(state)  # Reset
    curves.redraw()
    (_, _), (p_lo, p_hi) = curves.ppl_plot.viewRange()
    assert -0.3 <= p_lo <= 0.0 and 2.0 <= p_hi <= 2.3  # perplexity 1..100 and a margin
    speed_axis = curves.speed_plot.getAxis("left")
    (_, _), (s_lo, s_hi) = curves.speed_plot.viewRange()
    assert -0.5 <= s_lo < 0 and 1 < s_hi <= 1.5
    ticks = speed_axis.tickValues(s_lo, s_hi, speed_axis.size().height())
    assert sorted({v for _, values in ticks for v in values}) == [0.0, 1.0]  # not a smear
    assert "no steps yet" in curves.key_label.text()
    feed(state, [make_record(s, ppl=500.0) for s in range(1, 6)])  # the next run: its range
    curves.redraw()
    curves.ppl_plot.getViewBox().updateAutoRange()
    assert curves.ppl_plot.viewRange()[1][1] > math.log10(500.0)


@pytest.mark.parametrize(
    ("source", "preprocess", "applies"),
    [
        ("builtin", "d2l", True),
        ("time-machine", "d2l", True),
        ("time-machine", "keep", False),
        ("synthetic:delay", "d2l", False),
        ("/tmp/my-text.txt", "d2l", False),
    ],
)
def test_the_d2l_reference_appears_only_where_it_applies(
    curves, state, source, preprocess, applies
):
    corpus = replace(state.config.corpus, source=source, preprocess=preprocess)
    state.set_config(replace(state.config, corpus=corpus))
    assert curves.reference_line.isVisible() is applies
    assert curves.reference_applies() is applies
    assert curves.reference_check.isEnabled() is applies
    assert ("not comparable" in curves.reference_check.toolTip()) is not applies
    state.set_config(
        replace(state.config, corpus=replace(corpus, source="builtin", preprocess="d2l"))
    )
    assert curves.reference_line.isVisible()  # back on a corpus it applies to


def test_per_parameter_curves_take_the_runs_colour_and_their_own_dashes(grads, state):
    """With a compare run, W_hh's orange was the "clip off" run's orange: colour is the run's,
    the dash pattern the parameter's, and the check boxes and the key say so."""
    feed(state, [make_record(s) for s in range(1, 11)], run_id=0)
    add_run(state, 1, "clip off")
    feed(state, [make_record(s, clip_enabled=False) for s in range(1, 11)], run_id=1)
    for name in ("W_hh", "W_xh", "b_q"):
        grads.param_check(name).setChecked(True)
    grads.redraw()
    seen = set()
    for run_id in (0, 1):
        items = grads.curve_items(run_id)
        run = items.before.opts["pen"].color().name()
        for name in ("W_hh", "W_xh", "b_q"):
            pen = items.params[name].opts["pen"]
            assert pen.color().name() == run  # the run's colour, whatever the parameter
            assert pen.style() == Qt.PenStyle.CustomDashLine
            seen.add((run, tuple(pen.dashPattern())))
        dashes = {tuple(items.params[n].opts["pen"].dashPattern()) for n in ("W_hh", "W_xh", "b_q")}
        after = items.after.opts["pen"]
        assert len(dashes) == 3 and tuple(after.dashPattern()) not in dashes
    assert len(seen) == 6  # every curve told apart
    assert not grads.param_check("W_hh").icon().isNull()  # its line style is its legend
    assert "colour = run, line style = parameter" in grads.key_text()
    for name in ("W_hh", "W_xh", "b_q"):
        grads.param_check(name).setChecked(False)
    assert "line style = parameter" not in grads.key_text()


@pytest.mark.qt_log_ignore(
    r"This plugin does not support propagateSizeHints\(\)",
    r"This plugin does not support raise\(\)",
)
def test_svg_export_of_the_metric_plots_writes_a_file(curves, grads, state, tmp_path):
    """It printed a ValueError traceback and wrote nothing (pyqtgraph cannot read Qt 6's closed
    SVG paths); a failure now reaches the panel's export_failed."""
    import xml.dom.minidom

    feed(state, [make_record(s) for s in range(1, 21)])
    failures: list[str] = []
    for panel, view, plot in (
        (curves, curves.plot_widget, curves.ppl_plot),
        (grads, grads.plot_widget, grads.plot),
    ):
        panel.redraw()
        scene = view.scene()
        scene.contextMenuItem = plot
        scene.contextMenu[0].trigger()  # "Export..." in the plot's context menu
        dialog = scene.exportDialog
        formats = dialog.ui.formatList
        for row in range(formats.count()):
            if "SVG" in formats.item(row).text():
                formats.setCurrentRow(row)
        exporter = dialog.currentExporter
        panel.export_failed.connect(failures.append)
        dialog.exportClicked()
        exporter.fileDialog.close()
        path = tmp_path / f"{type(panel).__name__}.svg"
        exporter.export(fileName=str(path))  # what the file dialog does when a name is chosen
        assert xml.dom.minidom.parse(str(path)).getElementsByTagName("path")
        dialog.close()
    assert failures == []


def test_on_a_dark_scheme_the_panels_texts_and_plots_are_dark_and_readable(qtbot):
    """The plots stayed white and the "no steps yet" hint a fixed grey on a dark window."""
    from rnnviz.gui import theme

    # Colours are read when drawn (the scheme switches live), so the scheme stays dark
    # until the last run is drawn.
    theme.use_dark_scheme(True)
    try:
        state = make_state()
        curves, grads = TrainingCurvesPanel(state), GradNormPanel(state)
        for panel in (curves, grads):
            qtbot.addWidget(panel)
        dark = theme.DARK
        for view in (curves.plot_widget, grads.plot_widget):
            assert view.backgroundBrush().color().name() == dark.plot_background.lower()
        assert curves.reference_line.pen.color().name() == dark.secondary_ink.lower()
        assert "color" not in curves.key_label.text()  # the hint in the label's (palette's) ink
        feed(state, [make_record(s) for s in range(1, 5)])
        curves.redraw()
        brush = curves.curve_items(0).val.opts["symbolBrush"]
        assert brush.color().name() == dark.plot_background.lower()
    finally:
        theme.use_dark_scheme(None)


def test_a_short_plot_names_its_axes_without_overlap(curves, grads, qtbot):
    """A plot shorter than its axis name (a 720-line screen, QT_SCALE_FACTOR=2) shows the
    short name, or none, never a name longer than its axis: "10³ tok/s" ran into
    "perplexity" beside it (issue 13)."""
    from rnnviz.gui.plotting import label_fits

    for panel, plots in ((curves, (curves.ppl_plot, curves.speed_plot)), (grads, (grads.plot,))):
        panel.resize(500, 200)
        panel.show()
        qtbot.waitExposed(panel)
        qtbot.wait(50)
        for plot in plots:
            axis = plot.getAxis("left")
            shown = axis.labelText if axis.label.isVisible() else ""
            assert shown == "" or label_fits(shown, axis.size().height()), shown
        if panel is curves:  # no name fits the speed axis: the name is in the plot's corner
            speed_axis = curves.speed_plot.getAxis("left")
            assert not speed_axis.label.isVisible() and curves.speed_corner.isVisible()
        panel.resize(500, 900)
        qtbot.wait(50)
        assert curves.ppl_plot.getAxis("left").labelText == "perplexity" or panel is grads
        if panel is curves:
            assert curves.speed_plot.getAxis("left").label.isVisible()
            assert not curves.speed_corner.isVisible()
