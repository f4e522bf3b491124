"""The main window driven as a user would: buttons, keys, typing; asserts on model and plots."""

from __future__ import annotations

import numpy as np
import psutil
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from rnnviz.core.messages import (
    Divergence,
    Failure,
    ParamSnapshot,
    RunInfo,
)
from rnnviz.gui.state.engine import EngineDied
from rnnviz.gui.state.settings import SettingsStore
from rnnviz.gui.window.docks import DOCKS
from rnnviz.gui.window.main_window import MainWindow

ENGINE_WAIT_MS = 30_000  # as conftest: a spawned engine imports torch first


@pytest.fixture
def window(make_window):
    return make_window()


def wait_state(qtbot, window: MainWindow, state: str) -> None:
    qtbot.waitUntil(lambda: window.event_log.last_state() == state, timeout=ENGINE_WAIT_MS)


def plotted(item) -> tuple[np.ndarray, np.ndarray]:
    x, y = item.getOriginalDataset()
    return (np.empty(0), np.empty(0)) if x is None else (np.asarray(x), np.asarray(y))


def core_probe(snapshot: ParamSnapshot, text: str):
    from rnnviz.core.probe import model_from_params, probe
    from rnnviz.core.vocab import Vocab

    model = model_from_params(
        snapshot.config.model, len(snapshot.vocab_tokens), dict(snapshot.params)
    )
    return probe(model, Vocab(snapshot.vocab_tokens), text, with_grad_flow=False)


# ------------------------------------------------------------------ training controls


def test_play_pause_with_buttons_and_the_curves_show_the_records(window, qtbot):
    qtbot.mouseClick(window.panels.controls.play_button, Qt.MouseButton.LeftButton)
    wait_state(qtbot, window, "training")
    assert window.panels.controls.play_button.text().endswith("Pause")
    qtbot.waitUntil(lambda: len(window.event_log.records()) >= 5, timeout=ENGINE_WAIT_MS)
    qtbot.mouseClick(window.panels.controls.play_button, Qt.MouseButton.LeftButton)
    wait_state(qtbot, window, "paused")
    records = window.event_log.records()
    qtbot.waitUntil(lambda: window.app_state.main.step == records[-1].step)
    window.redraw.redraw_all()
    x, y = plotted(window.panels.curves.curve_items(0).train)
    np.testing.assert_array_equal(x, [r.step for r in records])
    np.testing.assert_allclose(y, [r.ppl for r in records])
    gx, gy = plotted(window.panels.gradnorms.curve_items(0).before)
    np.testing.assert_allclose(gy, [r.grad_norm_before_clip for r in records])
    assert window.status.state_label.text() == "paused"
    assert f"step {records[-1].step}" in window.status.step_label.text()


def test_space_plays_and_pauses_and_right_steps_once(window, qtbot):
    qtbot.keyClick(window, Qt.Key.Key_Space)
    wait_state(qtbot, window, "training")
    qtbot.keyClick(window, Qt.Key.Key_Space)
    wait_state(qtbot, window, "paused")
    before = window.event_log.records()[-1].step if window.event_log.records() else 0
    qtbot.waitUntil(lambda: window.app_state.main.step == before)
    window.event_log.clear()
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.waitUntil(
        lambda: window.event_log.last_state() == "paused" and bool(window.event_log.records()),
        timeout=ENGINE_WAIT_MS,
    )
    assert [r.step for r in window.event_log.records()] == [before + 1]


def test_step_button_trains_one_minibatch_each(window, qtbot):
    for expected in (1, 2, 3):
        qtbot.mouseClick(window.panels.controls.step_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda e=expected: window.app_state.main.step == e, timeout=ENGINE_WAIT_MS)
    assert [r.step for r in window.event_log.records()] == [1, 2, 3]
    window.redraw.redraw_all()
    x, _ = plotted(window.panels.curves.curve_items(0).train)
    np.testing.assert_array_equal(x, [1, 2, 3])


def reset_snapshot(window) -> ParamSnapshot | None:
    """The first snapshot after the reset's RunInfo (one from before it may still come)."""
    events = window.event_log.events
    starts = [i for i, e in enumerate(events) if isinstance(e, RunInfo)]
    if not starts:
        return None
    return next((e for e in events[starts[0] :] if isinstance(e, ParamSnapshot)), None)


def test_reset_returns_to_the_same_initial_parameters(window, qtbot):
    initial = window.event_log.of(ParamSnapshot)[0]
    assert initial.step == 0
    qtbot.mouseClick(window.panels.controls.step_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.app_state.main.step == 1, timeout=ENGINE_WAIT_MS)
    for how in ("button", "key"):
        window.event_log.clear()
        if how == "button":
            qtbot.mouseClick(window.panels.controls.reset_button, Qt.MouseButton.LeftButton)
        else:
            qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: reset_snapshot(window) is not None, timeout=ENGINE_WAIT_MS)
        snap = reset_snapshot(window)
        assert snap.step == 0
        for name, value in initial.params.items():
            np.testing.assert_array_equal(snap.params[name], value)
        assert window.app_state.main.step == 0
        window.redraw.redraw_all()
        assert len(plotted(window.panels.curves.curve_items(0).train)[0]) == 0
        qtbot.keyClick(window, Qt.Key.Key_Right)
        qtbot.waitUntil(lambda: window.app_state.main.step == 1, timeout=ENGINE_WAIT_MS)


def test_lr_change_mid_run_reaches_the_following_steps(window, qtbot, tiny_config):
    qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: len(window.event_log.records()) >= 3, timeout=ENGINE_WAIT_MS)
    assert window.event_log.records()[0].lr == tiny_config.train.lr
    window.panels.controls.lr_spin.setValue(0.5)
    qtbot.waitUntil(
        lambda: any(r.lr == 0.5 for r in window.event_log.records()), timeout=ENGINE_WAIT_MS
    )
    qtbot.waitUntil(
        lambda: (
            window.event_log.records()[-1].lr == 0.5
            and sum(r.lr == 0.5 for r in window.event_log.records()) >= 3
        ),
        timeout=ENGINE_WAIT_MS,
    )
    qtbot.keyClick(window, Qt.Key.Key_Space)
    wait_state(qtbot, window, "paused")
    lrs = [r.lr for r in window.event_log.records()]
    first = lrs.index(0.5)
    assert all(lr == 1.0 for lr in lrs[:first])
    assert all(lr == 0.5 for lr in lrs[first:])
    assert window.app_state.config.train.lr == 0.5


def test_theta_and_clipping_apply_live(window, qtbot):
    window.panels.controls.theta_spin.setValue(0.01)
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: len(window.event_log.records()) == 1, timeout=ENGINE_WAIT_MS)
    record = window.event_log.records()[0]
    assert record.clip_theta == 0.01 and record.clipped
    assert record.grad_norm_after_clip == pytest.approx(0.01, rel=1e-4)
    window.redraw.redraw_all()
    assert window.panels.gradnorms.theta == 0.01
    window.panels.controls.clip_check.setChecked(False)
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: len(window.event_log.records()) == 2, timeout=ENGINE_WAIT_MS)
    record = window.event_log.records()[1]
    assert not record.clip_enabled and not record.clipped
    assert record.grad_norm_after_clip == record.grad_norm_before_clip


def test_a_setting_that_needs_a_new_model_asks_first(window, qtbot, monkeypatch):
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: window.app_state.main.step == 1, timeout=ENGINE_WAIT_MS)
    answers: list[bool] = [False]
    monkeypatch.setattr(window, "confirm_reset", lambda: answers[0])
    window.event_log.clear()
    window.panels.controls.hidden_spin.setValue(24)  # the user says no
    assert window.panels.controls.hidden_spin.value() == 16  # reverted
    assert window.app_state.main.step == 1
    answers[0] = True
    window.panels.controls.hidden_spin.setValue(24)
    qtbot.waitUntil(lambda: bool(window.event_log.of(RunInfo)), timeout=ENGINE_WAIT_MS)
    assert window.event_log.of(RunInfo)[-1].config.model.hidden_size == 24
    assert window.app_state.config.model.hidden_size == 24
    qtbot.waitUntil(lambda: window.probe_result.hidden.shape[1] == 24, timeout=ENGINE_WAIT_MS)


def test_model_combo_disables_phi_for_gated_cells(qtbot, tiny_config):
    from rnnviz.gui.panels.controls import ControlsPanel

    controls = ControlsPanel(tiny_config)
    qtbot.addWidget(controls)
    controls.activation_combo.setCurrentIndex(controls.activation_combo.findData("relu"))
    controls.model_combo.blockSignals(True)
    controls.model_combo.setCurrentIndex(controls.model_combo.findData("lstm"))
    controls.model_combo.blockSignals(False)
    controls._update_enabled()
    assert not controls.activation_combo.isEnabled()
    assert controls.config().model.activation == "tanh"


# ------------------------------------------------------------------ probing and the cursor


def test_typed_text_is_probed_on_the_latest_snapshot(window, qtbot):
    edit = window.panels.probe_text.line_edit()
    edit.clear()
    with qtbot.waitSignal(window.probe_shown, timeout=ENGINE_WAIT_MS):
        qtbot.keyClicks(edit, "machine mac")
    result = window.probe_result
    assert result.text == "machine mac"
    expected = core_probe(window.app_state.snapshot, "machine mac")
    np.testing.assert_allclose(window.panels.hidden.displayed_array(), expected.hidden.T, atol=1e-6)
    np.testing.assert_allclose(window.panels.softmax.heatmap_array(), expected.probs.T, atol=1e-6)
    t = window.panels.time_cursor.cursor()
    np.testing.assert_allclose(window.panels.softmax.bar_heights(), expected.probs[t], atol=1e-6)


def test_probe_follows_training(window, qtbot):
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.waitUntil(
        lambda: window.app_state.snapshot is not None and window.app_state.snapshot.step == 1,
        timeout=ENGINE_WAIT_MS,
    )
    qtbot.waitUntil(
        lambda: window.probes.current.snapshot is window.app_state.snapshot, timeout=ENGINE_WAIT_MS
    )
    expected = core_probe(window.app_state.snapshot, window.panels.probe_text.text())
    np.testing.assert_allclose(window.probe_result.probs, expected.probs, atol=1e-6)


def test_cursor_keys_and_slider_move_every_panel(window, qtbot):
    result = window.probe_result
    T = len(result.text)
    assert T > 4

    def check(t: int) -> None:
        assert window.panels.time_cursor.cursor() == t
        np.testing.assert_allclose(window.panels.softmax.bar_heights(), result.probs[t], atol=1e-6)
        expected_next = int(result.tokens[t + 1]) if t + 1 < T else None
        assert window.panels.softmax.highlight_index() == expected_next
        assert window.panels.hidden.cursor_line.value() == pytest.approx(t + 0.5)
        assert window.panels.probe_text.time_step() == t

    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_End)
    check(T - 1)
    qtbot.keyClick(window, Qt.Key.Key_Home)
    check(0)
    qtbot.keyClick(window, Qt.Key.Key_Right, Qt.KeyboardModifier.AltModifier)
    check(1)
    qtbot.keyClick(window, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)
    check(2)
    qtbot.keyClick(window, Qt.Key.Key_Left, Qt.KeyboardModifier.AltModifier)
    check(1)
    window.panels.time_cursor.slider().setValue(T // 2)
    check(T // 2)


def test_clicking_a_hidden_unit_selects_it_in_the_text(window):
    pos = window.panels.hidden.scene_pos_of_cell(3, 5)
    assert window.panels.hidden.select_at_scene_pos(pos)
    assert window.panels.probe_text.unit() == 5
    assert window.panels.time_cursor.cursor() == 3


# ------------------------------------------------------------------ messages


def test_divergence_pauses_and_shows_a_banner(window, qtbot):
    window.app_state.apply(
        Divergence(
            run_id=0,
            step=42,
            reason="nonfinite",
            loss=float("nan"),
            grad_norm_before_clip=float("inf"),
            likely_cause="clipping is off",
        )
    )
    text = window.banner_text()
    assert "step 42" in text and "‖g‖ before clipping = ∞" in text
    assert "the loss became non-finite" in text
    assert "clipping is off" in text
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert window.banner_text() == ""


def test_failure_is_shown_without_blocking(window):
    window.app_state.apply(Failure("the corpus file is empty"))
    assert "the corpus file is empty" in window.banner_text()
    assert window.isVisible()


def test_engine_death_is_reported_and_reset_restarts_it(window, qtbot):
    window.engine.process.kill()
    qtbot.waitUntil(lambda: bool(window.event_log.of(EngineDied)), timeout=ENGINE_WAIT_MS)
    assert window.app_state.main.state == "stopped"
    assert "stopped unexpectedly" in window.banner_text()
    window.event_log.clear()
    qtbot.mouseClick(window.panels.controls.reset_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(window.event_log.of(RunInfo)), timeout=ENGINE_WAIT_MS)
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: window.app_state.main.step == 1, timeout=ENGINE_WAIT_MS)


# ------------------------------------------------------------------ closing, settings, layout


def test_close_while_training_stops_everything(make_window, qtbot, tmp_path):
    window = make_window(settings_file=tmp_path / "s.json")
    qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: len(window.event_log.records()) > 0, timeout=ENGINE_WAIT_MS)
    pid, reader = window.engine.pid, window.engine.reader
    window.close()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert reader.isFinished()
    assert not window.engine.is_running()


def test_close_with_a_save_in_flight_keeps_the_checkpoint(
    make_window, qtbot, tmp_path, tiny_config
):
    from rnnviz.core.checkpoint import load_checkpoint
    from rnnviz.core.messages import Save

    window = make_window(settings_file=tmp_path / "s.json")
    qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: len(window.event_log.records()) > 0, timeout=ENGINE_WAIT_MS)
    path = tmp_path / "ck.safetensors"
    window.controller.send(Save(str(path)))
    window.close()
    assert load_checkpoint(path).config.model == tiny_config.model


def test_settings_and_layout_round_trip(make_window, tmp_path, tiny_config):
    path = tmp_path / "settings.json"
    first = make_window(settings_file=path, start=False)
    first.panels.controls.lr_spin.setValue(0.2)
    first.panels.probe_text.line_edit().setText("hello there")
    first.docks["dock_softmax"].hide()
    first.resize(760, 560)  # within the offscreen screen: restoreGeometry clamps
    size = (first.width(), first.height())
    first.close()

    second = make_window(settings_file=path, config=None, start=False)
    try:
        assert second.app_state.config.train.lr == 0.2
        assert second.app_state.config.corpus == tiny_config.corpus
        assert second.panels.controls.lr_spin.value() == 0.2
        assert second.panels.probe_text.text() == "hello there"
        assert not second.docks["dock_softmax"].isVisible()
        assert second.docks["dock_hidden"].isVisible()
        assert (second.width(), second.height()) == size
        assert SettingsStore(path).config() == second.app_state.config
    finally:
        second.close()


# offscreen Qt cannot raise a floating dock (nor propagate size hints): harmless warnings
@pytest.mark.qt_log_ignore(r"This plugin does not support (raise|propagateSizeHints)\(\)")
def test_reset_layout_restores_the_default(make_window, tmp_path):
    window = make_window(settings_file=tmp_path / "s.json", start=False)
    try:
        default_areas = {n: window.dockWidgetArea(d) for n, d in window.docks.items()}
        window.docks["dock_softmax"].hide()
        window.docks["dock_curves"].setFloating(True)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, window.docks["dock_controls"])
        window.actions_by_name["act_reset_layout"].trigger()
        for name, _ in DOCKS:
            dock = window.docks[name]
            assert dock.isVisible() and not dock.isFloating(), name
            assert window.dockWidgetArea(dock) == default_areas[name], name
        assert window.dockWidgetArea(window.docks["dock_controls"]) == (
            Qt.DockWidgetArea.LeftDockWidgetArea
        )
    finally:
        window.close()


def test_view_menu_toggles_docks_and_help_lists_shortcuts(make_window, tmp_path):
    window = make_window(settings_file=tmp_path / "s.json", start=False)
    try:
        toggle = window.docks["dock_gradnorms"].toggleViewAction()
        toggle.trigger()
        assert not window.docks["dock_gradnorms"].isVisible()
        toggle.trigger()
        assert window.docks["dock_gradnorms"].isVisible()
        dialog = window.show_shortcuts()
        text = "\n".join(dialog.table.item(r, 0).text() for r in range(dialog.table.rowCount()))
        for key in (
            "Space",
            "Right",
            "Ctrl+R",
            "Alt+Left",
            "Alt+Right",
            "Home",
            "End",
            "Ctrl+O",
            "Ctrl+S",
            "Ctrl+Shift+O",
            "Ctrl+Q",
            "F11",
            "F1",
        ):
            assert key in text, key
        dialog.close()
        for widget in (
            window.panels.controls.play_button,
            window.panels.controls.step_button,
            window.panels.controls.reset_button,
            window.panels.controls.lr_spin,
            window.panels.controls.theta_spin,
            window.panels.controls.clip_check,
            window.panels.controls.model_combo,
            window.panels.controls.corpus_combo,
        ):
            assert widget.toolTip(), widget.objectName()
        assert "Space" in window.panels.controls.play_button.toolTip()
    finally:
        window.close()


def test_export_metrics_csv_round_trip(window, qtbot, tmp_path):
    """The wide CSV of every run re-imports equal to each run's history, bit for bit."""
    from rnnviz.core.history import read_runs_csv

    for expected in (1, 2):
        qtbot.keyClick(window, Qt.Key.Key_Right)
        qtbot.waitUntil(lambda e=expected: window.app_state.main.step == e, timeout=ENGINE_WAIT_MS)
    window.controller.fork({"train": {"lr": 0.5}}, "lr 0.5")
    qtbot.waitUntil(lambda: len(window.app_state.run_ids()) == 2, timeout=ENGINE_WAIT_MS)
    for expected in (3, 4):
        qtbot.keyClick(window, Qt.Key.Key_Right)
        qtbot.waitUntil(lambda e=expected: window.app_state.main.step == e, timeout=ENGINE_WAIT_MS)
    qtbot.waitUntil(lambda: window.app_state.histories.has(1), timeout=ENGINE_WAIT_MS)
    path = tmp_path / "metrics.csv"
    window.files.export_metrics(path)
    runs = read_runs_csv(path)
    assert [label for label, _ in runs] == ["main", "lr 0.5"]
    for (_, columns), run_id in zip(runs, (0, 1), strict=True):
        history = window.app_state.histories.metrics(run_id).columns()
        assert set(columns) == set(history)
        for name, column in history.items():
            np.testing.assert_array_equal(columns[name], column, err_msg=name)
    np.testing.assert_array_equal(runs[0][1]["step"], [1, 2, 3, 4])
    np.testing.assert_array_equal(runs[0][1]["ppl"], [r.ppl for r in window.event_log.records()])


def test_a_corpus_that_cannot_load_is_reported_and_another_can_be_chosen(
    make_window, qtbot, tmp_path, tiny_config
):
    bad = tiny_config.replace(corpus={"source": str(tmp_path / "missing.txt")})
    window = make_window(config=bad, start=False)
    window.start_engine()
    qtbot.waitUntil(lambda: window.app_state.main.state == "stopped", timeout=ENGINE_WAIT_MS)
    assert "missing.txt" in window.banner_text()
    assert not window.event_log.of(EngineDied)  # the reason, not "stopped unexpectedly"
    window.controller.apply_config(tiny_config)
    qtbot.waitUntil(lambda: window.probe_result is not None, timeout=ENGINE_WAIT_MS)
    assert window.app_state.config == tiny_config


def test_the_window_module_does_not_import_torch():
    """Cold start: the window shows before torch loads (it is imported for the first probe)."""
    import subprocess
    import sys

    code = (
        "import sys, rnnviz.gui.app, rnnviz.gui.window.main_window; print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


def test_a_real_divergence_pauses_training_and_explains_it(make_window, qtbot, tiny_config):
    wild = tiny_config.replace(
        model={"activation": "relu"}, train={"lr": 500.0, "clip_enabled": False}
    )
    window = make_window(config=wild)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: bool(window.event_log.of(Divergence)), timeout=ENGINE_WAIT_MS)
    qtbot.waitUntil(
        lambda: window.app_state.main.state in ("paused", "diverged"), timeout=ENGINE_WAIT_MS
    )
    event = window.app_state.divergence
    assert f"step {event.step}" in window.banner_text()
    assert "‖g‖ before clipping" in window.banner_text()
    assert not window.panels.controls.training
    window.redraw.redraw_all()  # whatever the numbers did, the plots draw (no NaN reaches them)
    x, y = plotted(window.panels.gradnorms.curve_items(0).before)
    assert np.all(np.isfinite(y)) and np.all(y > 0)


REDRAWS_COUNTED = 30


def test_metric_redraws_do_not_re_lay_out_the_window(window, qtbot):
    """The labels that change with every redraw are SteadyLabels: while training, the main
    window's layout (every dock) is not redone (a QLabel's new text did that 44 times a
    second)."""
    from PySide6.QtCore import QEvent, QObject

    class LayoutRequests(QObject):
        count = 0

        def eventFilter(self, obj, event):  # noqa: N802 - Qt override
            if event.type() == QEvent.Type.LayoutRequest:
                LayoutRequests.count += 1
            return False

    qtbot.mouseClick(window.panels.controls.play_button, Qt.MouseButton.LeftButton)
    wait_state(qtbot, window, "training")
    start = window.app_state.main.step
    qtbot.waitUntil(lambda: window.app_state.main.step > start + 20, timeout=ENGINE_WAIT_MS)
    qtbot.wait(300)
    spy = LayoutRequests()
    window.installEventFilter(spy)
    statuses = []
    original = window.status.update
    window.status.update = lambda state: (statuses.append(1), original(state))[1]
    drawn = window.app_state.main.step
    qtbot.waitUntil(
        lambda: window.app_state.main.step > drawn + 20 and len(statuses) >= REDRAWS_COUNTED,
        timeout=ENGINE_WAIT_MS,
    )
    window.removeEventFilter(spy)
    del window.status.update
    assert window.status.step_label.text().startswith("step ")
    # a few: each time a label needs more room than ever before (the step count gains a
    # digit), never one per redraw (the old QLabels: 11 in 10 redraws, so ~33 here)
    assert LayoutRequests.count <= 4, (LayoutRequests.count, len(statuses))
    qtbot.mouseClick(window.panels.controls.play_button, Qt.MouseButton.LeftButton)
    wait_state(qtbot, window, "paused")


def test_the_window_fits_a_laptop_screen_after_probing(window, qtbot):
    # the first probe is made without the gradient flow (its dock is behind a tab), and the
    # gradient-flow panel's note about that once made its dock, and the softmax dock tabbed
    # with it, at least ~820 px wide: the hidden-state dock beside them was squeezed
    qtbot.waitUntil(lambda: window.probe_result is not None, timeout=ENGINE_WAIT_MS)
    assert window.probe_result.grad_flow is None
    widest = {name: dock.minimumSizeHint().width() for name, dock in window.docks.items()}
    assert max(widest.values()) <= 600, widest
    assert window.minimumSizeHint().width() <= 1366


def test_the_first_window_fits_a_smaller_screen():
    from rnnviz.gui.window.docks import DEFAULT_SIZE, first_size

    assert first_size(None) == DEFAULT_SIZE
    assert first_size((1366, 728)) == (1366, 728)
    assert first_size((2560, 1400)) == DEFAULT_SIZE
    assert first_size((1920, 1040)) == (1600, 1000)


def _tabbed_with(window, name: str) -> set[str]:
    dock = window.docks[name]
    return {d.objectName() for d in window.tabifiedDockWidgets(dock)}


def test_a_short_window_gets_two_rows_of_plots_and_a_tall_one_three(make_window, tmp_path):
    window = make_window(settings_file=tmp_path / "s.json", start=False)
    assert not _tabbed_with(window, "dock_curves")  # 1600x1000: curves beside grad norms
    window.resize(1366, 720)
    window.actions_by_name["act_reset_layout"].trigger()
    assert _tabbed_with(window, "dock_curves") == {
        "dock_hidden",
        "dock_unrolled",
        "dock_film",
        "dock_saturation",
    }
    assert _tabbed_with(window, "dock_gradnorms") == {
        "dock_softmax",
        "dock_gradflow",
        "dock_stepview",
        "dock_generation",
    }
    QApplication.processEvents()
    for shown in ("dock_curves", "dock_softmax", "dock_probe_text", "dock_controls"):
        assert not window.docks[shown].visibleRegion().isEmpty(), shown
    # the plots get the height: each shown plot dock is over half the window tall
    assert window.docks["dock_softmax"].height() > 360
    window.resize(1600, 1000)
    window.actions_by_name["act_reset_layout"].trigger()
    assert not _tabbed_with(window, "dock_curves")
    assert _tabbed_with(window, "dock_softmax") == {
        "dock_gradflow",
        "dock_stepview",
        "dock_unrolled",
        "dock_film",
        "dock_generation",
        "dock_saturation",
    }


def test_tabs_say_short_titles_whole_on_a_projector_and_bars_and_menus_the_whole_ones(
    make_window, tmp_path
):
    """At 1280x720 five tabs share a column: each says its short title uncut ("Training c…"
    and "Gate satur…" before), while the title bar and the View menu say the whole title."""
    from PySide6.QtWidgets import QTabBar

    from rnnviz.gui.window.docks import FULL_TITLES, TAB_TITLES

    window = make_window(settings_file=tmp_path / "s.json", start=False)
    window.resize(1280, 720)
    window.actions_by_name["act_reset_layout"].trigger()
    QApplication.processEvents()
    bars = [bar for bar in window.findChildren(QTabBar) if bar.isVisible() and bar.count()]
    texts = {bar.tabText(i) for bar in bars for i in range(bar.count())}
    assert set(TAB_TITLES.values()) <= texts
    for bar in bars:
        for i in range(bar.count()):  # a tab narrower than it asks for is drawn cut
            assert bar.tabRect(i).width() >= bar.tabSizeHint(i).width(), bar.tabText(i)
    for name, dock in window.docks.items():
        assert dock.windowTitle() == TAB_TITLES.get(name, FULL_TITLES[name])
        assert dock.titleBarWidget().title() == FULL_TITLES[name]
        assert dock.toggleViewAction().text() == FULL_TITLES[name]


def test_the_app_freezes_its_long_lived_objects_after_the_first_probe(
    make_window, qtbot, monkeypatch
):
    import gc

    from rnnviz.gui import app

    calls = []
    real_freeze = gc.freeze
    monkeypatch.setattr(gc, "freeze", lambda: calls.append(1) or real_freeze())
    window = make_window(start=False)
    app.freeze_after_first_probe(window)
    try:
        with qtbot.waitSignal(window.probe_shown, timeout=ENGINE_WAIT_MS):
            window.start_engine()
        assert len(calls) == 1
        assert gc.get_freeze_count() > 10_000  # torch, pyqtgraph, the panels
        window.panels.probe_text.line_edit().setText("once only")
        qtbot.waitUntil(lambda: window.probe_result.text == "once only", timeout=ENGINE_WAIT_MS)
        assert len(calls) == 1  # once
    finally:
        gc.unfreeze()  # this test process makes many windows


# ------------------------------------------------------------------ the unrolled view, lecture keys


def test_a_click_in_the_unrolled_view_moves_every_panel_and_back(window, qtbot):
    window.show_panel("unrolled")
    unrolled = window.panels.unrolled
    qtbot.waitUntil(lambda: unrolled.canvas().isVisible(), timeout=5000)
    result = window.probe_result
    canvas = unrolled.canvas()
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=canvas.node_rect("hidden", 3).center())
    assert window.panels.time_cursor.cursor() == 3
    assert window.panels.probe_text.time_step() == 3
    assert window.panels.hidden.cursor_line.value() == pytest.approx(3.5)
    np.testing.assert_allclose(window.panels.softmax.bar_heights(), result.probs[3], atol=1e-6)
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_End)  # moved anywhere else, the view follows
    assert unrolled.readout_text().startswith(f"t = {len(result.text) - 1}:")
    # the P key plays through time from the start
    qtbot.keyClick(window, Qt.Key.Key_P)
    assert unrolled.is_playing() and window.panels.time_cursor.cursor() == 0
    qtbot.keyClick(window, Qt.Key.Key_P)
    assert not unrolled.is_playing()


def test_number_keys_raise_one_panel_full_size_and_esc_returns(window, qtbot):
    docks = window.docks
    before = {name: dock.isVisible() for name, dock in docks.items()}
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_1)
    qtbot.waitUntil(lambda: docks["dock_unrolled"].isVisible(), timeout=5000)
    assert window.focus_view.focused() == "unrolled"
    assert [n for n, d in docks.items() if d.isVisible()] == ["dock_unrolled"]
    assert docks["dock_unrolled"].width() > 0.9 * window.width()
    qtbot.keyClick(window, Qt.Key.Key_3)  # another one, straight from the first
    assert [n for n, d in docks.items() if d.isVisible()] == ["dock_hidden"]
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: docks["dock_controls"].isVisible(), timeout=5000)
    assert window.focus_view.focused() is None
    assert {name: dock.isVisible() for name, dock in docks.items()} == before
