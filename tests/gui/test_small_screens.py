"""The default layout on a 1280x720 projector and on 1920x1080 at QT_SCALE_FACTOR=2 (960x540
logical pixels): nothing essential cut off, the probe text readable, no dock a sliver."""

from __future__ import annotations

import pytest
from probe_helpers import TEXT, make_result
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QApplication, QScrollArea

from rnnviz.gui.window import docks as dock_table
from rnnviz.gui.window.status_bar import LABEL_GAP

# a maximised window's inside: the screen less the window manager's title bar
PROJECTOR = (1280, 680)
SCALED_FULL_HD = (960, 500)


def _settle() -> None:
    for _ in range(4):
        QApplication.processEvents()


@pytest.fixture
def laid_out(make_window, tmp_path):
    def make(size: tuple[int, int]):
        window = make_window(settings_file=tmp_path / "s.json", start=False)
        window.resize(*size)
        result = make_result()
        for panel in window.panels.probe_views():
            panel.set_result(result)
        window.panels.time_cursor.set_result(result)
        window.actions_by_name["act_reset_layout"].trigger()  # the default for this size
        _settle()
        return window

    return make


def _controls_fit(window) -> None:
    controls = window.panels.controls
    scroll = controls.findChild(QScrollArea)
    assert not scroll.horizontalScrollBar().isVisible()  # "C…", "▶ Pl" behind it before
    assert window.docks["dock_controls"].width() >= controls.minimumSizeHint().width()


def test_a_1280x720_projector_shows_the_whole_probe_and_the_status(laid_out):
    window = laid_out(PROJECTOR)
    probe = window.panels.probe_text
    strip = probe.strip()
    assert strip.cell_rect(len(TEXT) - 1).top() == strip.cell_rect(0).top()  # one row
    assert strip.topk_lines_shown() >= 3  # the top-k showed one line
    window.panels.time_cursor.end()
    _settle()
    assert probe.cursor_cell_in_view()  # at End the letters had scrolled out of view
    _controls_fit(window)
    bar = window.statusBar()
    assert bar.geometry().bottom() < window.height()
    labels = [
        window.status.state_label,
        window.status.step_label,
        window.status.speed_label,
        window.status.nonfinite_label,
    ]
    spans = []  # where each label's text is drawn, in the status bar
    for label in labels:
        inner = label.label()
        left = inner.mapTo(bar, QPoint(0, 0)).x()
        spans.append((left, left + inner.fontMetrics().horizontalAdvance(inner.text())))
    assert spans[-1][1] <= bar.width()
    edges = sorted(spans)
    for (_, right), (left, _) in zip(edges, edges[1:], strict=False):
        assert left - right >= 2 * LABEL_GAP - 4  # "epoch 76 1,625,391 tokens/s" ran together


def test_1920x1080_at_scale_2_keeps_every_dock_usable(laid_out):
    window = laid_out(SCALED_FULL_HD)
    _controls_fit(window)
    probe = window.panels.probe_text
    probe.set_cursor(len(TEXT) - 1)
    _settle()
    assert probe.cursor_cell_in_view()
    assert probe.strip().topk_lines_shown() >= 2
    # the docks of this brief ask for little height, so the window fits a 540-px screen
    for name in ("dock_probe_text", "dock_hidden", "dock_softmax", "dock_stepview"):
        assert window.docks[name].minimumSizeHint().height() <= 240, name
    softmax = window.panels.softmax
    assert softmax.bar_plot.getViewBox().boundingRect().height() >= 60


def test_the_probe_dock_asks_for_its_rows_within_a_share_of_the_window(laid_out):
    window = laid_out(PROJECTOR)
    dock = window.docks["dock_probe_text"]
    hint, least = dock.sizeHint().height(), dock.minimumSizeHint().height()
    assert least < hint
    assert dock_table.probe_height(dock, 2000, compact=False) == hint
    assert dock_table.probe_height(dock, 500, compact=True) == max(least, int(500 * 0.42))
    assert dock_table.probe_height(dock, 100, compact=True) == least


@pytest.mark.parametrize("kind", ["fast", "lstm"])
def test_no_dock_behind_a_tab_makes_the_window_taller_than_a_full_hd_screen(make_window, kind):
    """A word-wrapped sentence in a dock behind another's tab (the gate saturation's, an
    LSTM's) is never laid out: at its few pixels of width it asked for 506 px, so the window
    could not be less than 1,078 px tall, and a 1080-line screen squeezed the training curves
    to nothing."""
    from tests.gui.conftest import TINY_CONFIG

    window = make_window(TINY_CONFIG.replace(model={"kind": kind}), start=False)
    window.resize(1920, 1080)
    _settle()
    assert window.docks["dock_saturation"].visibleRegion().isEmpty()  # behind another's tab
    # a 1080-line screen, less a title bar and a panel, holds it with room for the curves
    assert window.minimumSizeHint().height() <= 900
