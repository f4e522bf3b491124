"""Issue 4 in the window, driven as a user: gradient flow and step view docks, compare runs,
and a divergence explained (banner, roll back, resume with clipping on)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import Qt

from rnnviz.core.config import RunConfig
from rnnviz.core.messages import (
    CloseRun,
    Divergence,
    MetricsBatch,
    ParamSnapshot,
    Rollback,
    RunInfo,
    SetHyper,
    Start,
    StateChanged,
)
from rnnviz.gui.window.docks import DOCKS
from rnnviz.gui.window.main_window import MainWindow

ENGINE_WAIT_MS = 30_000  # as conftest: a spawned engine imports torch first
LEFT = Qt.MouseButton.LeftButton


def plotted(item) -> tuple[np.ndarray, np.ndarray]:
    x, y = item.getOriginalDataset()
    return (np.empty(0), np.empty(0)) if x is None else (np.asarray(x), np.asarray(y))


def model_of(snapshot: ParamSnapshot):
    from rnnviz.core.probe import model_from_params
    from rnnviz.core.vocab import Vocab

    model = model_from_params(
        snapshot.config.model, len(snapshot.vocab_tokens), dict(snapshot.params)
    )
    return model, Vocab(snapshot.vocab_tokens)


def step_once(qtbot, window: MainWindow) -> None:
    expected = window.app_state.main.step + 1
    if not window.isActiveWindow():  # a dialog was on top (offscreen Qt does not hand back)
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow, timeout=2000)
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: window.app_state.main.step == expected, timeout=ENGINE_WAIT_MS)


def raise_dock(qtbot, window: MainWindow, name: str) -> None:
    window.docks[name].raise_()
    qtbot.waitUntil(lambda: window.docks[name].widget().isVisible(), timeout=2000)


# ------------------------------------------------------------------ docks and layout


BEHIND_SOFTMAX = {
    "dock_gradflow",
    "dock_stepview",
    "dock_unrolled",
    "dock_film",
    "dock_generation",
    "dock_saturation",
}


# offscreen Qt cannot raise a floating dock (nor propagate size hints): harmless warnings
@pytest.mark.qt_log_ignore(r"This plugin does not support (raise|propagateSizeHints)\(\)")
def test_docks_exist_in_the_default_layout_with_view_toggles(make_window):
    window = make_window(start=False)
    titles = dict(DOCKS)
    assert titles["dock_gradflow"] == "Gradient flow"
    assert titles["dock_stepview"] == "Step view"
    assert titles["dock_unrolled"] == "Unrolled network"
    for name in ("dock_gradflow", "dock_stepview", "dock_unrolled"):
        dock = window.docks[name]
        assert dock.objectName() == name
        assert window.dockWidgetArea(dock) == Qt.DockWidgetArea.RightDockWidgetArea
        assert not dock.isFloating()
    group = window.tabifiedDockWidgets(window.docks["dock_softmax"])
    assert {d.objectName() for d in group} == BEHIND_SOFTMAX
    view_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    toggles = {a.text() for a in view_menu.actions()}
    assert {"Gradient flow", "Step view", "Unrolled network"} <= toggles
    # a layout moved around comes back, tab group included
    window.docks["dock_gradflow"].setFloating(True)
    window.docks["dock_stepview"].hide()
    window.actions_by_name["act_reset_layout"].trigger()
    group = window.tabifiedDockWidgets(window.docks["dock_softmax"])
    assert {d.objectName() for d in group} == BEHIND_SOFTMAX
    assert not window.docks["dock_gradflow"].isFloating()
    assert window.docks["dock_stepview"].toggleViewAction().isChecked()


# ------------------------------------------------------------------ probe string


def test_gradient_flow_and_step_view_show_core_probe_on_the_same_snapshot(make_window, qtbot):
    from rnnviz.core.probe import probe, step_detail

    window = make_window()
    step_once(qtbot, window)
    qtbot.waitUntil(lambda: window.app_state.snapshot.step == 1, timeout=ENGINE_WAIT_MS)
    # while its tab is behind the softmax, the probe skips the gradient flow
    qtbot.waitUntil(lambda: window.probe_result.grad_flow is None, timeout=ENGINE_WAIT_MS)
    assert not window.probes.with_grad_flow()
    with qtbot.waitSignal(window.probe_shown, timeout=ENGINE_WAIT_MS):
        raise_dock(qtbot, window, "dock_gradflow")
    assert window.probes.with_grad_flow()
    result = window.probe_result
    assert result.grad_flow is not None
    model, vocab = model_of(window.app_state.snapshot)
    expected = probe(model, vocab, result.text, with_grad_flow=True)
    G = np.asarray(expected.grad_flow, dtype=np.float64)
    shown = window.panels.gradflow.probe_image_array()
    lower = np.tril(np.ones_like(G, dtype=bool)) & (G > 0)
    np.testing.assert_allclose(shown[lower], np.log10(G[lower]), rtol=1e-5, atol=1e-6)
    assert np.isnan(shown[~lower]).all()

    # the cursor moves the gradient-flow row and the step view, computed on that same model
    raise_dock(qtbot, window, "dock_stepview")
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Home)
    for _ in range(3):
        qtbot.keyClick(window, Qt.Key.Key_Right, Qt.KeyboardModifier.AltModifier)
    t = window.panels.time_cursor.cursor()
    assert t == 3
    detail = step_detail(model, vocab, result.text, t)
    shown_detail = window.panels.stepview.detail()
    assert shown_detail is not None and shown_detail.t == t
    for key in ("X_t", "H_prev", "xW", "hW", "b_h", "pre_activation", "H_t", "O_t", "softmax"):
        np.testing.assert_allclose(
            window.panels.stepview.row_values(key), getattr(detail, key), rtol=1e-5, atol=1e-6
        )
    assert window.panels.stepview.top_k()  # vocabulary names the softmax's top characters
    assert window.panels.gradflow.selected_row() == t


def test_the_step_view_shows_a_grus_own_equations(make_window, qtbot, tiny_config):
    window = make_window(config=tiny_config.replace(model={"kind": "gru"}))
    raise_dock(qtbot, window, "dock_stepview")
    panel = window.panels.stepview
    qtbot.waitUntil(lambda: panel.form() == "gru", timeout=ENGINE_WAIT_MS)
    assert panel.gate_note_text()  # where PyTorch's reset gate acts, unlike d2l's


def test_the_training_heatmap_and_sigma_receive_the_records(make_window, qtbot):
    window = make_window()
    for _ in range(3):
        step_once(qtbot, window)
    window.redraw.redraw_all()
    records = window.event_log.records()
    assert [r.step for r in records] == [1, 2, 3]
    np.testing.assert_array_equal(window.panels.gradflow.training_steps(), [1, 2, 3])
    flow = np.stack([np.asarray(r.grad_flow, dtype=np.float64) for r in records], axis=1)
    np.testing.assert_allclose(
        window.panels.gradflow.training_image_array(), np.log10(flow), rtol=1e-6
    )
    steps, sigma = window.panels.gradflow.sigma_curve_data(0)
    np.testing.assert_array_equal(steps, [1, 2, 3])
    np.testing.assert_allclose(sigma, [r.w_hh_sigma_max for r in records])


# ------------------------------------------------------------------ clipping, live


def test_theta_line_moves_when_theta_changes_before_any_step(make_window, qtbot):
    window = make_window()
    step_once(qtbot, window)
    window.redraw.redraw_all()
    assert window.panels.gradnorms.theta == 1.0
    window.panels.controls.theta_spin.setValue(0.5)
    assert window.panels.gradnorms.theta == 0.5  # at once: no step has used it yet
    assert window.panels.gradnorms.theta_line.value() == pytest.approx(math.log10(0.5))
    last = window.event_log.records()[-1]
    _, ratio = window.panels.gradnorms.clip_stats(0)
    assert ratio == pytest.approx(last.grad_norm_before_clip / 0.5)
    step_once(qtbot, window)
    window.redraw.redraw_all()
    assert window.event_log.records()[-1].clip_theta == 0.5
    assert window.panels.gradnorms.theta == 0.5


# ------------------------------------------------------------------ compare runs


def test_compare_run_from_the_menu_shows_both_runs_then_closes(make_window, qtbot):
    window = make_window()
    qtbot.keyClick(window, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    dialog = window.compare_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.reset_check.isHidden()  # at step 0 there is nothing to reset
    assert dialog.preset_buttons["clip"].text() == "Clipping off"
    assert dialog.preset_buttons["activation"].text() == "ReLU instead of tanh"
    qtbot.mouseClick(dialog.preset_buttons["clip"], LEFT)
    qtbot.waitUntil(
        lambda: window.app_state.compare_runs() == {1: "clip off"}, timeout=ENGINE_WAIT_MS
    )
    info = [e for e in window.event_log.of(RunInfo) if e.run_id == 1][-1]
    assert info.label == "clip off" and not info.config.train.clip_enabled

    for _ in range(3):
        step_once(qtbot, window)
    qtbot.waitUntil(lambda: len(window.event_log.records(1)) == 3, timeout=ENGINE_WAIT_MS)
    main, fork = window.event_log.records(0), window.event_log.records(1)
    # same initial parameters and data order: the first step's loss and ‖g‖ are the same
    assert fork[0].loss == main[0].loss
    assert fork[0].grad_norm_before_clip == main[0].grad_norm_before_clip
    assert not fork[0].clip_enabled and main[0].clip_enabled
    window.redraw.redraw_all()
    for run_id, records in ((0, main), (1, fork)):
        x, y = plotted(window.panels.curves.curve_items(run_id).train)
        np.testing.assert_array_equal(x, [r.step for r in records])
        np.testing.assert_allclose(y, [r.ppl for r in records])
        _, g = plotted(window.panels.gradnorms.curve_items(run_id).before)
        np.testing.assert_allclose(g, [r.grad_norm_before_clip for r in records])
        assert window.panels.gradflow.sigma_curve_data(run_id)[0].size == 3
    colours = {window.panels.curves.curve_items(r).train.opts["pen"].color().name() for r in (0, 1)}
    assert len(colours) == 2
    assert window.panels.curves.key_run_names() == ["main", "clip off"]
    assert "main" in window.panels.gradflow.sigma_key_text()
    assert "clip off" in window.panels.gradflow.sigma_key_text()
    assert "clip off step 3" in window.status.runs_label.text().replace("&nbsp;", " ")
    assert window.probe_result is not None and window.app_state.snapshot.run_id == 0  # probes: main

    # close compare runs: the engine confirms, the curves go
    qtbot.keyClick(window, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    dialog = window.compare_dialog
    qtbot.mouseClick(dialog.close_all_button, LEFT)
    qtbot.waitUntil(lambda: not window.app_state.compare_runs(), timeout=ENGINE_WAIT_MS)
    window.redraw.redraw_all()
    assert window.panels.curves.run_ids() == [0] and window.panels.gradnorms.run_ids() == [0]
    assert window.panels.gradflow.run_ids() == [0]
    assert window.panels.curves.key_run_names() == []
    assert window.status.runs_label.isHidden()
    step_once(qtbot, window)  # the main run trains on alone


def test_compare_another_lr_after_training_restarts_every_run_together(make_window, qtbot):
    window = make_window()
    for _ in range(2):
        step_once(qtbot, window)
    dialog = window.open_compare_dialog()
    assert dialog.reset_check.isChecked()  # the fairest comparison: both from step 0
    dialog.lr_spin.setValue(0.1)
    window.event_log.clear()
    qtbot.mouseClick(dialog.preset_buttons["lr"], LEFT)
    qtbot.waitUntil(
        lambda: window.app_state.compare_runs() == {1: "lr=0.1"}, timeout=ENGINE_WAIT_MS
    )
    qtbot.waitUntil(lambda: window.app_state.main.step == 0, timeout=ENGINE_WAIT_MS)
    window.redraw.redraw_all()
    assert window.panels.curves.run_ids() in ([], [0])  # the reset cleared the curves
    for _ in range(2):
        step_once(qtbot, window)
    qtbot.waitUntil(lambda: len(window.event_log.records(1)) == 2, timeout=ENGINE_WAIT_MS)
    main, fork = window.event_log.records(0), window.event_log.records(1)
    assert [r.step for r in main] == [r.step for r in fork] == [1, 2]
    assert fork[0].loss == main[0].loss  # same start
    assert fork[1].loss != main[1].loss  # then the other learning rate shows
    assert fork[0].lr == 0.1 and main[0].lr == 1.0


# ------------------------------------------------------------------ divergence


def diverging(tiny_config: RunConfig) -> RunConfig:
    # ReLU, no clipping, lr 10: the tiny model's loss becomes non-finite at step 8, every time
    return tiny_config.replace(
        model={"activation": "relu"}, train={"lr": 10.0, "clip_enabled": False}
    )


def wait_divergence(qtbot, window: MainWindow, count: int) -> Divergence:
    qtbot.waitUntil(lambda: len(window.event_log.of(Divergence)) >= count, timeout=ENGINE_WAIT_MS)
    qtbot.waitUntil(lambda: window.app_state.main.state == "paused", timeout=ENGINE_WAIT_MS)
    return window.event_log.of(Divergence)[-1]


def test_a_divergence_is_explained_rolled_back_and_resumed_with_clipping(
    make_window, qtbot, tiny_config
):
    window = make_window(config=diverging(tiny_config))
    qtbot.keyClick(window, Qt.Key.Key_Space)
    event = wait_divergence(qtbot, window, 1)
    assert event.step == 8 and event.run_id == 0 and event.reason == "nonfinite"
    assert not window.panels.controls.training
    text = window.banner_text()
    assert "step 8: the loss became non-finite" in text
    assert "‖g‖ before clipping = " in text
    assert "clipping is off" in text and "Training is paused" in text
    assert window.banner_bar.banner.actions_shown() == [
        window.banner_bar.rollback_button,
        window.banner_bar.resume_clip_button,
    ]
    assert window.banner_bar.rollback_button.text() == "Roll back to step 0"
    assert window.banner_bar.resume_clip_button.text() == "Resume with clipping on (θ = 1)"

    # the curves: the finite steps drawn, the bad one marked, nothing non-finite plotted
    qtbot.waitUntil(lambda: window.app_state.main.step == 8, timeout=ENGINE_WAIT_MS)
    window.redraw.redraw_all()
    x, y = plotted(window.panels.curves.curve_items(0).train)
    assert np.all(np.isfinite(y)) and 8 not in x and len(x) >= 1
    mx, my = plotted(window.panels.curves.curve_items(0).nonfinite)
    assert 8 in mx and np.all(np.isfinite(my))
    for item in (
        window.panels.gradnorms.curve_items(0).before,
        window.panels.gradnorms.curve_items(0).after,
    ):
        _, g = plotted(item)
        assert np.all(np.isfinite(g)) and np.all(g > 0)
    view = window.panels.curves.ppl_plot.viewRange()
    assert all(math.isfinite(v) for pair in view for v in pair)

    # roll back: the step goes back, the abandoned steps leave the curves
    sent: list[object] = []
    real_send = window.controller.send

    def record_send(command):
        sent.append(command)
        return real_send(command)

    window.controller.send = record_send  # type: ignore[method-assign]
    qtbot.mouseClick(window.banner_bar.rollback_button, LEFT)
    assert sent == [Rollback(0, run_id=0)]
    qtbot.waitUntil(lambda: window.app_state.main.step == 0, timeout=ENGINE_WAIT_MS)
    assert window.banner_text() == ""
    window.redraw.redraw_all()
    assert len(plotted(window.panels.curves.curve_items(0).train)[0]) == 0

    # the same steps replay and diverge again (same batches, same parameters)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    again = wait_divergence(qtbot, window, 2)
    assert again.step == 8
    window.event_log.clear()
    sent.clear()
    qtbot.mouseClick(window.banner_bar.resume_clip_button, LEFT)
    # from the last good snapshot, not from the blown-up parameters (issue 13)
    assert sent == [Rollback(0, run_id=0), SetHyper(clip_theta=1.0, clip_enabled=True), Start()]
    assert window.panels.controls.clip_check.isChecked()
    assert window.app_state.config.train.clip_enabled
    assert window.panels.gradnorms.clip_enabled
    qtbot.waitUntil(
        lambda: (
            any(e.state == "training" for e in window.event_log.of(StateChanged))
            and len(window.event_log.records()) >= 2
        ),
        timeout=ENGINE_WAIT_MS,
    )
    assert all(r.clip_enabled and r.clip_theta == 1.0 for r in window.event_log.records())
    if window.panels.controls.training:
        qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: not window.panels.controls.training, timeout=ENGINE_WAIT_MS)


def test_a_divergence_in_a_compare_run_names_it(make_window, qtbot, tiny_config):
    window = make_window(start=False)
    sent: list[object] = []
    window.controller.send = sent.append  # type: ignore[method-assign]
    config = tiny_config.replace(train={"clip_enabled": False})
    window.app_state.apply(
        RunInfo(1, config, ("<unk>", "a"), "repeat", 2000, ("W_hh",), label="clip off")
    )
    window.app_state.apply(
        Divergence(
            run_id=1,
            step=37,
            reason="loss_spike",
            loss=12.3,
            grad_norm_before_clip=4.2e5,
            likely_cause="clipping is off: ||g|| before clipping was 4.2e+05; turn clipping "
            "on (theta = 1)",
            rollback_steps=(0, 50),
            recent_median_loss=0.88,
        )
    )
    text = window.banner_text()
    assert "run 'clip off', step 37: the loss jumped to 12.3, 14× its recent median" in text
    assert "‖g‖ before clipping = 4.2·10⁵" in text
    assert "(θ = 1)" in text  # core's ASCII, shown with the slides' symbols
    shown = window.banner_bar.banner.actions_shown()
    assert shown == [
        window.banner_bar.rollback_button,
        window.banner_bar.resume_button,
        window.banner_bar.close_run_button,
    ]
    # the snapshot at 50 is after the divergence: the newest one before it is 0
    assert window.banner_bar.rollback_button.text() == "Roll back 'clip off' to step 0"
    qtbot.mouseClick(window.banner_bar.rollback_button, LEFT)
    assert sent == [Rollback(0, run_id=1)]
    window.app_state.apply(
        Divergence(1, 40, "nonfinite", math.nan, math.inf, "clipping is off", (0,))
    )
    sent.clear()
    qtbot.mouseClick(window.banner_bar.close_run_button, LEFT)
    assert sent == [CloseRun(1)]
    window.app_state.apply(StateChanged("stopped", 40, 0, run_id=1, message="closed"))
    assert window.app_state.compare_runs() == {}
    assert window.banner_text() == ""
    # the last steps of a closed run that were still on their way are dropped
    window.app_state.apply(MetricsBatch(1, ()))
    assert window.panels.curves.run_ids() == []


def test_the_no_recurrence_compare_run_is_the_slides_mlp(make_window, qtbot):
    """Issue 14: the compare run that holds W_hh at 0 trains beside the RNN, from the same
    start; its W_hh gradient is 0 at every step."""
    window = make_window()
    qtbot.keyClick(window, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    dialog = window.compare_dialog
    assert dialog.preset_buttons["recurrence"].text() == "No recurrence (the MLP)"
    qtbot.mouseClick(dialog.preset_buttons["recurrence"], LEFT)
    qtbot.waitUntil(
        lambda: window.app_state.compare_runs() == {1: "no recurrence (MLP)"},
        timeout=ENGINE_WAIT_MS,
    )
    info = [e for e in window.event_log.of(RunInfo) if e.run_id == 1][-1]
    assert not info.config.model.recurrence and window.app_state.config.model.recurrence
    for _ in range(3):
        step_once(qtbot, window)
    qtbot.waitUntil(lambda: len(window.event_log.records(1)) == 3, timeout=ENGINE_WAIT_MS)
    main, mlp = window.event_log.records(0), window.event_log.records(1)
    assert all(r.param_grad_norms["W_hh"] == 0.0 for r in mlp)
    assert all(r.param_grad_norms["W_hh"] > 0.0 for r in main)
    assert mlp[0].loss != main[0].loss  # the same start, but without H_{t-1} W_hh
