"""Lecture (issue 14): each shipped lesson step sets the state it declares, presets start their
runs, PageDown / PageUp move through a lesson, B blanks the window."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from rnnviz.core.lessons import KEEP, load_lesson, shipped_path
from rnnviz.core.presets import preset

ENGINE_WAIT_MS = 30_000


def _wait_for_step(window, qtbot, step, before_full) -> None:
    """Until the window shows what ``step`` declares (the engine answers a preset's reset)."""
    p = preset(step.preset) if step.preset else None
    text = step.probe or (p.probe if p else None)

    def shown() -> bool:
        state = window.app_state
        if p is not None:
            if state.config != p.config():
                return False
            if set(state.compare_runs().values()) != {run.label for run in p.compare}:
                return False
        if text is not None and window.panels.probe_text.text() != text:
            return False
        result = window.probe_result
        if result is None or result.text != window.panels.probe_text.text():
            return False
        if step.cursor is not None and window.panels.time_cursor.cursor() != step.cursor:
            return False
        if step.train is True and state.main.state != "training":
            return False
        if step.play_time and not window.panels.unrolled.is_playing():
            return False  # it starts on the new run's first probe
        return not (step.train is False and state.training)

    qtbot.waitUntil(shown, timeout=ENGINE_WAIT_MS)
    expected_full = before_full if step.full == KEEP else step.full
    assert window.focus_view.focused() == expected_full
    if expected_full is not None:
        visible = [n for n, d in window.docks.items() if d.isVisible()]
        assert visible == [f"dock_{expected_full}"]
    for name in step.show:
        assert window.docks[f"dock_{name}"].isVisible()
    if step.mlp is not None:
        assert window.panels.unrolled.mlp_check().isChecked() == step.mlp


def test_each_step_of_the_shipped_lesson_sets_what_it_declares(make_window, qtbot):
    window = make_window()
    lesson = load_lesson(shipped_path("chapter"))
    player = window.lecture.player
    window.setFocus()
    window.actions_by_name["act_lesson_chapter"].trigger()
    assert player.lesson() is not None and player.index() == 0
    bar = window.lecture.bar
    full = None
    for i, step in enumerate(lesson.steps):
        if i:
            qtbot.keyClick(window, Qt.Key.Key_PageDown)  # the remote's key
        assert player.index() == i
        assert bar.heading_text() == f"{i + 1} / {len(lesson.steps)}  {step.title}"
        assert bar.narration_text() == step.narration
        _wait_for_step(window, qtbot, step, full)
        full = window.focus_view.focused()
    assert not bar.next_button.isEnabled()
    qtbot.keyClick(window, Qt.Key.Key_PageUp)
    assert player.index() == len(lesson.steps) - 2
    window.controller.pause()
    qtbot.waitUntil(lambda: not window.app_state.training, timeout=ENGINE_WAIT_MS)


def test_a_preset_from_the_lecture_menu_starts_its_run_and_compare_run(make_window, qtbot):
    window = make_window()
    window.actions_by_name["act_preset_exploding"].trigger()
    expected = preset("exploding")
    qtbot.waitUntil(
        lambda: (
            window.app_state.config == expected.config()
            and window.app_state.compare_runs() == {1: "clip θ=1"}
        ),
        timeout=ENGINE_WAIT_MS,
    )
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Lecture")
    assert "Exploding without clipping" in {a.text() for a in menu.actions()}
    assert window.lecture.presets_bar is not None


def test_a_malformed_lesson_file_is_refused_with_its_line(make_window, tmp_path: Path):
    window = make_window(start=False)
    bad = tmp_path / "bad.json"
    bad.write_text('{"title": "x",\n "steps": [\n  {"title": "a", "narration": "b", "full": 3}\n]}')
    assert not window.lecture.start_lesson(str(bad))
    assert f"{bad}, line 3: step 1: 'full' must be str" in window.banner_text()
    assert window.lecture.player.lesson() is None


def test_a_lesson_file_opens_from_the_file_menu_and_the_lecture_menu(make_window):
    window = make_window(start=False)
    open_lesson = window.actions_by_name["act_open_lesson"]
    for title in ("&File", "&Lecture"):
        menu = next(a.menu() for a in window.menuBar().actions() if a.text() == title)
        assert open_lesson in menu.actions(), title


@pytest.mark.parametrize("key", [Qt.Key.Key_B, Qt.Key.Key_Period])
def test_the_blank_key_blanks_the_window_and_back(make_window, qtbot, key):
    window = make_window(start=False)
    blank = window.lecture.blank
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)  # shortcuts go to the active window
    qtbot.keyClick(window, key)
    assert blank.isVisible() and blank.geometry() == window.rect()
    image = window.grab().toImage()
    centre = image.pixelColor(image.width() // 2, image.height() // 2)
    assert centre.lightness() == 0
    qtbot.keyClick(window, key)
    assert not blank.isVisible()


def test_every_shipped_narration_fits_its_bar_at_1280_px(make_window, qtbot):
    from PySide6.QtCore import QRect
    from PySide6.QtGui import QFontMetrics

    window = make_window(start=False)
    window.resize(1280, 720)
    lesson = load_lesson(shipped_path("chapter"))
    bar = window.lecture.bar
    window.lecture.player.drives_training = False
    window.lecture.player.start(lesson)
    qtbot.waitUntil(lambda: bar.isVisible() and bar.width() > 1000, timeout=5000)
    label = bar._narration  # noqa: SLF001 - the label whose room is measured
    metrics = QFontMetrics(label.font())
    for step in lesson.steps:
        room = QRect(0, 0, label.width(), 10_000)
        needed = metrics.boundingRect(room, int(Qt.TextFlag.TextWordWrap), step.narration)
        assert needed.height() <= label.height(), step.title
