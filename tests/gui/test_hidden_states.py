"""The hidden-states panel draws exactly the arrays core.probe computed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from probe_helpers import CORPUS, TEXT, make_result, settle, show
from PySide6.QtCore import Qt

from rnnviz.core.config import ModelConfig
from rnnviz.core.model import LSTMModel, ScratchRNN
from rnnviz.core.probe import probe
from rnnviz.core.vocab import Vocab
from rnnviz.gui import theme
from rnnviz.gui.panels.hidden_states import HiddenStatesPanel
from rnnviz.gui.panels.probe_text import ProbeTextPanel


def test_heatmap_draws_hidden_transposed_with_fixed_levels(qtbot):
    panel = show(qtbot, HiddenStatesPanel())
    result = make_result()
    panel.set_result(result)
    np.testing.assert_array_equal(panel.displayed_array(), result.hidden.T)
    assert panel.displayed_levels() == tuple(result.hidden_levels)
    assert panel.colour_bar.levels() == tuple(result.hidden_levels)
    # a second probe keeps the levels: colours stay comparable while training goes on
    other = make_result("machine time")
    panel.set_result(other)
    np.testing.assert_array_equal(panel.displayed_array(), other.hidden.T)
    assert panel.displayed_levels() == tuple(result.hidden_levels)
    ticks = panel.plot_item.getAxis("bottom")._tickLevels[0]
    assert [label for _, label in ticks][:3] == ["m", "a", "c"]
    assert ("\u2423" in [label for _, label in ticks]) is True


def test_cursor_moves_the_line(qtbot):
    panel = show(qtbot, HiddenStatesPanel())
    panel.set_result(make_result())
    panel.set_cursor(6)
    assert panel.cursor_line.value() == pytest.approx(6.5)
    panel.set_cursor(999)  # clamped to the last step
    assert panel.cursor_line.value() == pytest.approx(len(TEXT) - 0.5)


def test_clicking_a_cell_selects_its_unit_and_traces_it(qtbot):
    panel = show(qtbot, HiddenStatesPanel())
    result = make_result()
    panel.set_result(result)
    settle()
    view = panel.graphics_view()
    scene_pos = panel.scene_pos_of_cell(4, 5)
    click_at = view.mapFromScene(scene_pos)
    with (
        qtbot.waitSignal(panel.unit_selected) as unit_signal,
        qtbot.waitSignal(panel.cursor_requested) as cursor_signal,
    ):
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=click_at)
    assert unit_signal.args == [5]
    assert cursor_signal.args == [4]
    x, y = panel.trace_data()
    np.testing.assert_array_equal(y, result.hidden[:, 5])
    np.testing.assert_array_equal(x, np.arange(len(TEXT)) + 0.5)
    assert panel.unit_box.rect().top() == 5
    assert panel.trace_plot.getAxis("left").labelText == "H_t[5]"


def test_select_at_scene_pos_outside_the_image_does_nothing(qtbot):
    panel = show(qtbot, HiddenStatesPanel())
    panel.set_result(make_result())
    settle()
    with qtbot.assertNotEmitted(panel.unit_selected):
        assert not panel.select_at_scene_pos(panel.trace_plot.sceneBoundingRect().center())


def test_hover_reads_out_the_cell(qtbot):
    panel = show(qtbot, HiddenStatesPanel())
    result = make_result()
    panel.set_result(result)
    settle()
    panel.hover_at_scene_pos(panel.scene_pos_of_cell(2, 3))
    assert panel.readout_text().startswith("t = 2  'e'   unit 3:")
    assert f"{result.hidden[2, 3]:+.3f}" in panel.readout_text()


def test_hidden_none_clears_and_shows_placeholder(qtbot):
    panel = show(qtbot, HiddenStatesPanel())
    panel.set_result(make_result())
    panel.set_result(None)
    assert panel.displayed_array() is None
    assert panel.placeholder_shown()
    panel.set_cursor(3)  # no result: nothing to move, no error


def test_lstm_cell_state_in_the_selector(qtbot):
    torch.manual_seed(0)
    vocab = Vocab.from_text(CORPUS)
    model = LSTMModel(len(vocab), ModelConfig(kind="lstm", hidden_size=8))
    result = probe(model, vocab, TEXT, top_k=5)
    panel = show(qtbot, HiddenStatesPanel())
    panel.set_result(result)
    assert panel.layer_selector().isVisible()
    np.testing.assert_array_equal(panel.displayed_array(), result.hidden.T)
    panel.layer_selector().setCurrentIndex(panel.layers().index("c"))
    np.testing.assert_array_equal(panel.displayed_array(), result.cell.T)
    lo, hi = panel.displayed_levels()
    assert lo == -hi and hi >= np.abs(result.cell).max()  # symmetric around 0, all of C_t
    np.testing.assert_array_equal(panel.trace_data()[1], result.cell[:, 0])


def test_relu_levels_start_at_zero(qtbot):
    torch.manual_seed(0)
    vocab = Vocab.from_text(CORPUS)
    model = ScratchRNN(len(vocab), ModelConfig(kind="scratch", activation="relu", hidden_size=8))
    result = probe(model, vocab, TEXT, top_k=5)
    assert result.hidden_levels[0] == 0.0
    panel = show(qtbot, HiddenStatesPanel())
    panel.set_result(result)
    assert panel.displayed_levels() == tuple(result.hidden_levels)
    assert panel.colour_bar.colorMap() is theme.POSITIVE  # 0 is white, no blue half
    text_panel = show(qtbot, ProbeTextPanel())
    text_panel.set_result(result)
    zero = np.flatnonzero(result.hidden[:, 0] == 0.0)
    for i in zero:
        assert text_panel.cell_colours()[i] == theme.map_colours(theme.POSITIVE, [0.0], (0, 1))[0]


def test_a_short_panel_shows_the_heatmap_alone_with_names_that_fit(qtbot):
    # the hidden-state dock on a 960x540 screen (1920x1080 at QT_SCALE_FACTOR=2): the heatmap
    # and the trace were about 25 px each, "hidden unit" longer than its axis
    import pyqtgraph as pg
    from PySide6.QtGui import QFontMetricsF

    panel = show(qtbot, HiddenStatesPanel())
    panel.resize(373, 224)
    settle()
    panel.set_result(make_result())
    settle()
    assert not panel.trace_shown()
    assert panel.plot_item.getViewBox().boundingRect().height() >= 90
    metrics = QFontMetricsF(theme.font())
    for item in panel.graphics_view().scene().items():
        if isinstance(item, pg.AxisItem) and item.isVisible() and item.label.isVisible():
            size = item.size()
            vertical = item.orientation in ("left", "right")
            length = size.height() if vertical else size.width()
            assert metrics.horizontalAdvance(item.labelText) <= length, item.labelText
    panel.resize(555, 420)
    settle()
    assert panel.trace_shown()
    assert panel.trace_plot.getViewBox().boundingRect().height() >= 50
    panel.set_unit(5)  # the trace still follows the unit once back
    np.testing.assert_array_equal(panel.trace_data()[1], make_result().hidden[:, 5])
