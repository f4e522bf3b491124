"""The time cursor: set from outside silently, moved by the user with a signal."""

from __future__ import annotations

from probe_helpers import TEXT

from rnnviz.gui.panels.time_cursor import TimeCursor


def test_time_cursor(qtbot):
    cursor = TimeCursor()
    qtbot.addWidget(cursor)
    cursor.set_text(TEXT)
    assert cursor.label_text() == "t = 0 / 15   't' → 'h'"
    with qtbot.assertNotEmitted(cursor.cursor_changed):
        cursor.set_cursor(3)
    assert cursor.cursor() == 3
    assert cursor.label_text() == "t = 3 / 15   '\u2423' → 't'"
    with qtbot.waitSignal(cursor.cursor_changed) as moved:
        cursor.step(+1)
    assert moved.args == [4]
    with qtbot.waitSignal(cursor.cursor_changed) as moved:
        cursor.end()
    assert moved.args == [15]
    assert cursor.label_text().endswith("'e' → end")
    with qtbot.assertNotEmitted(cursor.cursor_changed):
        cursor.step(+1)  # already at the end
    cursor.set_length(5)
    assert cursor.cursor() == 4
    with qtbot.waitSignal(cursor.cursor_changed) as moved:
        cursor.home()
    assert moved.args == [0]
    cursor.set_result(None)
    assert cursor.label_text() == "t = –"
