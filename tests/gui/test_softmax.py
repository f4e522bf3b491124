"""The softmax panel draws exactly the probabilities core.probe computed."""

from __future__ import annotations

import numpy as np
import pytest
from probe_helpers import TEXT, make_result, settle, show

from rnnviz.gui.panels.softmax import SoftmaxPanel


def test_softmax_bars_follow_the_cursor(qtbot):
    panel = show(qtbot, SoftmaxPanel())
    result = make_result()
    panel.set_result(result)
    np.testing.assert_array_equal(panel.heatmap_array(), result.probs.T)
    assert panel.heatmap_item.getLevels() is not None
    assert tuple(panel.heatmap_item.getLevels()) == (0.0, 1.0)
    for t in (0, 6, 10):
        panel.set_cursor(t)
        np.testing.assert_array_equal(panel.bar_heights(), result.probs[t])
        assert panel.highlight_index() == int(result.tokens[t + 1])
        assert panel.cursor_line.value() == pytest.approx(t + 0.5)
    panel.set_cursor(6)
    assert panel.title_text() == "P(next char | 'the tim') at t = 6"
    assert "true next 'e'" in panel.readout_text()


def test_a_crowded_vocabulary_axis_labels_the_true_next_and_top_bars(qtbot):
    panel = show(qtbot, SoftmaxPanel())
    # too narrow for every letter of the vocabulary (at 250 px the bars were once laid out
    # wider than the panel, and these are the ticks they had then)
    panel.resize(300, 400)
    settle()
    result = make_result()
    panel.set_result(result)
    settle()
    for t in (0, 6, 10):
        panel.set_cursor(t)
        ticks = panel.bar_plot.getAxis("bottom")._tickLevels[0]
        assert len(ticks) < len(result.vocab_tokens)  # crowded: not every letter
        labelled = {int(x) for x, _ in ticks}
        assert int(result.tokens[t + 1]) in labelled  # the orange bar has its letter
        assert int(result.topk_ids[t][0]) in labelled or any(
            abs(int(result.topk_ids[t][0]) - i) < 2 for i in labelled
        )


def test_softmax_last_step_has_no_true_next(qtbot):
    panel = show(qtbot, SoftmaxPanel())
    result = make_result()
    panel.set_result(result)
    panel.set_cursor(len(TEXT) - 1)
    assert panel.highlight_index() is None
    np.testing.assert_array_equal(panel.bar_heights(), result.probs[-1])
    assert "last character: next one unknown" in panel.readout_text()


def test_softmax_marks_unknown_as_question_mark(qtbot):
    panel = show(qtbot, SoftmaxPanel())
    result = make_result("the Time")  # 'T' is not in the vocabulary
    panel.set_result(result)
    panel.set_cursor(3)
    assert panel.highlight_index() == 0  # the true next char is <unk>
    labels = [label for _, label in panel.bar_plot.getAxis("bottom")._tickLevels[0]]
    assert labels[0] == "?"


def test_softmax_none_clears(qtbot):
    panel = show(qtbot, SoftmaxPanel())
    panel.set_result(make_result())
    panel.set_result(None)
    assert panel.heatmap_array() is None
    assert panel.bar_heights().size == 0
    assert panel.highlight_index() is None
    assert panel.placeholder_shown()


def _sized(qtbot, width: int, height: int) -> SoftmaxPanel:
    panel = show(qtbot, SoftmaxPanel())
    panel.resize(width, height)
    settle()
    panel.set_result(make_result())
    panel.set_cursor(3)
    settle()
    return panel


def _axis_names_fit(panel) -> None:
    """Every axis name shown is no longer than its axis: none runs into the next plot's."""
    import pyqtgraph as pg
    from PySide6.QtGui import QFontMetricsF

    from rnnviz.gui import theme

    metrics = QFontMetricsF(theme.font())
    for item in panel.graphics_view().scene().items():
        if not isinstance(item, pg.AxisItem) or not item.isVisible():
            continue
        if not item.label.isVisible() or not item.labelText:
            continue
        size = item.size()
        length = size.width() if item.orientation in ("top", "bottom") else size.height()
        assert metrics.horizontalAdvance(item.labelText) <= length, (item.labelText, length)


def test_the_plots_get_the_panels_height(qtbot):
    # the softmax dock of a 1920x1080 window: the bars were about 80 px tall under a title
    # and over an axis name, the heatmap about 100 px
    panel = _sized(qtbot, 640, 390)
    assert panel.heatmap_shown()
    assert panel.bar_plot.getViewBox().boundingRect().height() >= 100
    assert panel.heatmap_plot.getViewBox().boundingRect().height() >= 130
    assert panel.title_text() == "P(next char | 'the ') at t = 3"
    assert panel.readout_text().startswith(panel.title_text())  # the title is the readout's
    assert "top 5:" in panel.readout_tooltip()
    _axis_names_fit(panel)


def test_a_short_panel_shows_the_bars_alone_and_no_name_overlaps(qtbot):
    # on a 960x540 screen (1920x1080 at QT_SCALE_FACTOR=2) the dock is about 320x220: two
    # plots there were two strips of axes, and "probability" ran over "next character"
    panel = _sized(qtbot, 320, 220)
    assert not panel.heatmap_shown()
    assert panel.bar_plot.getViewBox().boundingRect().height() >= 60
    _axis_names_fit(panel)
    panel.resize(320, 460)
    settle()
    assert panel.heatmap_shown()
    assert panel.heatmap_plot.getViewBox().boundingRect().height() >= 100
    _axis_names_fit(panel)


def test_the_heatmap_labels_the_row_of_the_true_next_character(qtbot):
    panel = _sized(qtbot, 640, 390)
    result = make_result()
    for t in (0, 3, 6):
        panel.set_cursor(t)
        ticks = panel.heatmap_plot.getAxis("left")._tickLevels[0]
        assert len(ticks) < len(result.vocab_tokens)  # crowded
        assert int(result.tokens[t + 1]) + 0.5 in {x for x, _ in ticks}


@pytest.mark.qt_log_ignore(r"This plugin does not support (raise|propagateSizeHints)\(\)")
def test_the_probe_panels_exports_are_guarded(qtbot):
    """The softmax and hidden-state plots' Export... goes through the guarded dialog too (an
    SVG export there printed a traceback and wrote nothing), and a failure reaches
    export_failed, which the window shows in its banner."""
    from rnnviz.gui.exports import GuardedExportDialog
    from rnnviz.gui.panels.hidden_states import HiddenStatesPanel

    for panel in (SoftmaxPanel(), HiddenStatesPanel()):
        qtbot.addWidget(panel)
        scene = panel._graphics.scene()
        scene.contextMenuItem = scene.items()[0]
        scene.contextMenu[0].trigger()
        dialog = scene.exportDialog
        assert isinstance(dialog, GuardedExportDialog)
        failures: list[str] = []
        panel.export_failed.connect(failures.append)
        dialog._report("cannot write /nowhere/x.svg")
        assert failures == ["cannot write /nowhere/x.svg"]
        dialog.close()
