"""Keys in fields, quitting with unsaved training, saves in flight, autosave and recovery."""

from __future__ import annotations

from PySide6.QtCore import Qt

from rnnviz.gui.window import dialogs
from rnnviz.gui.window.main_window import RECOVERY_FILE

ENGINE_WAIT_MS = 30_000


def wait_state(qtbot, window, state: str) -> None:
    qtbot.waitUntil(lambda: window.event_log.last_state() == state, timeout=ENGINE_WAIT_MS)


def test_space_trains_even_from_a_spin_box_and_enter_gives_the_focus_back(make_window, qtbot):
    window = make_window()
    spin = window.panels.controls.lr_spin
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), "0.5")
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
    assert spin.value() == 0.5
    qtbot.waitUntil(lambda: not spin.hasFocus())  # the window has the focus again
    spin.setFocus()  # and even with the focus still in the field:
    qtbot.waitUntil(spin.hasFocus)
    qtbot.keyClick(spin, Qt.Key.Key_Space)
    wait_state(qtbot, window, "training")
    assert spin.value() == 0.5  # Space trained; it did not blank the field
    qtbot.keyClick(window, Qt.Key.Key_Space)
    wait_state(qtbot, window, "paused")


def test_space_in_the_probe_text_is_a_space(make_window, qtbot):
    window = make_window()
    line = window.panels.probe_text.line_edit()
    line.setFocus()
    qtbot.waitUntil(line.hasFocus)
    line.end(False)
    qtbot.keyClick(line, Qt.Key.Key_Space)
    assert line.text().endswith(" ")
    assert window.event_log.last_state() != "training"


def test_quitting_with_unsaved_training_asks_first(make_window, qtbot, monkeypatch):
    window = make_window()
    window.close_guard.ask = True
    answers: list[str] = []
    monkeypatch.setattr(dialogs, "ask_before_quit", lambda parent, step: answers.pop(0))
    window.controller.step()
    qtbot.waitUntil(lambda: window.app_state.unsaved_training, timeout=ENGINE_WAIT_MS)
    answers.append("cancel")
    window.close()
    assert window.isVisible() and window.engine.is_running()
    answers.append("quit")
    window.close()
    assert not window.isVisible() and not window.engine.is_running()


def test_closing_waits_for_a_save_in_flight_without_blocking(make_window, qtbot, tmp_path):
    from rnnviz.core.checkpoint import load_checkpoint

    window = make_window(settings_file=tmp_path / "s.json")
    window.controller.step()
    qtbot.waitUntil(lambda: window.app_state.main.step == 1, timeout=ENGINE_WAIT_MS)
    path = tmp_path / "ck.safetensors"
    assert window.controller.save(str(path))
    window.close()
    # either the engine answered already, or the window waits for it with its loop running
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=ENGINE_WAIT_MS)
    assert load_checkpoint(path).step == 1
    assert not window.controller.pending_saves


def test_an_autosave_is_offered_after_a_crash_and_a_clean_exit_removes_it(
    make_window, qtbot, tmp_path
):
    settings = tmp_path / "s.json"
    recovery = tmp_path / RECOVERY_FILE
    first = make_window(settings_file=settings)
    first.controller.step(3)
    qtbot.waitUntil(lambda: first.app_state.main.step == 3, timeout=ENGINE_WAIT_MS)
    first.controller.autosave()
    qtbot.waitUntil(lambda: first.controller.autosaved_step == 3, timeout=ENGINE_WAIT_MS)
    assert recovery.is_file()
    first.controller.autosave()  # nothing trained since: no second save
    assert not first.controller.pending_saves
    # a crash: the engine and window go without the clean exit that deletes the file
    first.controller.discard_autosave = lambda: None
    first.close()
    assert recovery.is_file()

    second = make_window(settings_file=settings)
    assert "did not close cleanly" in second.banner_text()
    qtbot.mouseClick(second.banner_bar.recover_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: second.app_state.main.step == 3, timeout=ENGINE_WAIT_MS)
    assert second.banner_text() == ""
    second.close()
    assert not recovery.exists()  # a clean exit: nothing to recover next time


def test_a_banner_covers_the_plots_instead_of_pushing_the_docks_down(make_window, qtbot):
    from rnnviz.core.messages import Failure

    window = make_window(start=False)

    def geometry() -> dict:
        return {name: dock.geometry() for name, dock in window.docks.items()}

    def settled() -> dict:  # the first layout is applied a pass after showing
        last = None
        while last != (now := geometry()):
            last = now
            qtbot.wait(150)
        return now

    before = settled()
    window.app_state.report_failure(Failure("the corpus file is empty"))
    assert window.banner_text() == "the corpus file is empty"
    assert settled() == before
    bar = window.banner_bar.geometry()
    controls = window.docks["dock_controls"].geometry()
    assert bar.left() > controls.right() and bar.top() == window.menuBar().height()
    window.resize(window.width() - 100, window.height())  # it follows the window
    qtbot.waitUntil(lambda: window.banner_bar.geometry().right() == window.width() - 1)


def test_a_long_banner_is_only_as_tall_as_its_text(make_window, qtbot):
    from rnnviz.core.messages import Failure

    window = make_window(start=False)
    window.resize(1600, 1000)
    window.app_state.report_failure(Failure("a fairly long message " * 12))
    qtbot.wait(50)
    assert window.banner_bar.height() < 120, window.banner_bar.height()


def test_a_good_load_after_a_failed_one_takes_the_old_error_down(make_window, qtbot, tmp_path):
    window = make_window(settings_file=tmp_path / "s.json")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    window.controller.load(str(bad))
    qtbot.waitUntil(lambda: window.banner_text() != "", timeout=ENGINE_WAIT_MS)
    good = tmp_path / "good.safetensors"
    assert window.controller.save(str(good))
    qtbot.waitUntil(lambda: not window.controller.pending_saves, timeout=ENGINE_WAIT_MS)
    window.controller.load(str(good))
    qtbot.waitUntil(lambda: window.banner_text() == "", timeout=ENGINE_WAIT_MS)


def test_a_layer_of_dead_relu_units_gets_a_banner(make_window, qtbot, tiny_config):
    import types

    import numpy as np

    from rnnviz.gui.state.probe_scheduler import ShownProbe

    window = make_window(tiny_config.replace(model={"activation": "relu"}), start=False)
    snapshot = types.SimpleNamespace(config=window.app_state.config)
    window.probes.shown.disconnect(window.probe_display.show)  # stub results: no panels
    alive = types.SimpleNamespace(hidden=np.eye(4, 16), text="abcd")
    window.probes.shown.emit(ShownProbe(alive, None, None, snapshot))  # type: ignore[arg-type]
    assert window.banner_text() == ""
    dead = types.SimpleNamespace(hidden=np.zeros((4, 16)), text="abcd")
    window.probes.shown.emit(ShownProbe(dead, None, None, snapshot))  # type: ignore[arg-type]
    assert "All 16 hidden units output 0" in window.banner_text()


def test_a_synthetic_task_brings_its_own_probe_text(make_window, qtbot, tiny_config):
    from rnnviz.core import probe_defaults

    window = make_window(tiny_config.replace(corpus={"source": "synthetic:delay"}))
    line = window.panels.probe_text.line_edit()
    expected = probe_defaults.default_probe_text(window.app_state.config.corpus)
    qtbot.waitUntil(lambda: line.text() == expected, timeout=ENGINE_WAIT_MS)
    assert "delay task" in line.toolTip()
    qtbot.waitUntil(
        lambda: window.probe_result is not None and window.probe_result.text == expected,
        timeout=ENGINE_WAIT_MS,
    )
    assert window.probe_result.unknown == ()  # every character is in the task's alphabet
    line.setText("typed by hand")  # a text the user typed stays across corpora
    window.controller.apply_config(
        window.app_state.config.replace(corpus={"source": "synthetic:brackets"})
    )
    qtbot.waitUntil(lambda: "brackets" in line.toolTip(), timeout=ENGINE_WAIT_MS)
    assert line.text() == "typed by hand"


def test_a_useless_run_rolls_back_to_its_newest_good_snapshot(make_window, qtbot, tiny_config):
    """ReLU at lr 50 without clipping is worse than uniform from its first steps, with no
    divergence event, and the banner offered only Dismiss (seen in a screenshot). The trainer
    keeps no snapshot while a run is worse than uniform, so rolling back to the newest one at
    or before now returns to a good one (step 0 at worst): the banner offers it."""
    from rnnviz.core.messages import Rollback

    window = make_window(tiny_config, start=False)
    sent: list[object] = []
    window.controller.send = lambda command: (sent.append(command), True)[1]  # type: ignore[method-assign]
    assert not window.controller.can_roll_back()
    from rnnviz.core import health

    watch = window.app_state._watches[0] = health.LossWatch(28)
    for step in range(1, 201):
        watch.add(step, 50.0)  # far above ln 28
    assert window.app_state.uselessness(0)
    assert window.controller.can_roll_back()
    window.reactions.warnings.run_useless(0)
    assert "Roll back, or reset" in window.banner_text()
    shown = window.banner_bar.banner.actions_shown()
    assert shown == [window.banner_bar.rollback_button]
    shown[0].click()
    assert [c for c in sent if isinstance(c, Rollback)] == [Rollback(window.app_state.main.step)]


def test_a_dead_layer_with_nothing_to_roll_back_to_offers_reset(make_window, qtbot):
    """Where no rollback can act, the banner offers Reset (a new run at step 0)."""
    window = make_window(start=False)
    resets: list[bool] = []
    window.controller.reset = lambda: resets.append(True)  # type: ignore[method-assign]
    window.banner_bar.reset_requested.disconnect()
    window.banner_bar.reset_requested.connect(window.controller.reset)
    assert not window.controller.can_roll_back()
    window.banner_bar.show_warning_with_rollback("dead units", rollback=False)
    shown = window.banner_bar.banner.actions_shown()
    assert shown == [window.banner_bar.reset_button]
    shown[0].click()
    assert resets == [True]
    assert window.banner_text() == ""
