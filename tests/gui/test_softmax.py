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
    panel.resize(250, 400)  # too narrow for every letter of the vocabulary
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
