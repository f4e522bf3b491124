"""The probe panels draw exactly the arrays core.probe computed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from rnnviz.core.config import ModelConfig
from rnnviz.core.model import LSTMModel, ScratchRNN
from rnnviz.core.probe import probe
from rnnviz.core.vocab import Vocab
from rnnviz.gui import theme
from rnnviz.gui.probe_panels import (
    HiddenStatesPanel,
    ProbeTextPanel,
    SoftmaxPanel,
    TimeCursor,
)

CORPUS = "the time machine by h g wells " * 4
TEXT = "the time machine"
PANEL_SIZE = (900, 400)


@pytest.fixture(scope="module")
def model_and_vocab():
    torch.manual_seed(0)
    vocab = Vocab.from_text(CORPUS)
    model = ScratchRNN(len(vocab), ModelConfig(kind="scratch", hidden_size=8))
    with torch.no_grad():  # larger weights than the init so the units saturate visibly
        model.W_xh.mul_(6.0)
        model.W_hq.mul_(4.0)
    return model, vocab


@pytest.fixture
def make_result(model_and_vocab):
    model, vocab = model_and_vocab

    def make(text: str = TEXT):
        return probe(model, vocab, text, top_k=5)

    return make


def _show(qtbot, widget):
    qtbot.addWidget(widget)
    widget.resize(*PANEL_SIZE)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def _settle():
    """Let pending layouts and view transforms apply, as they have before any real click."""
    QApplication.processEvents()


# --------------------------------------------------------------------------- hidden states


def test_heatmap_draws_hidden_transposed_with_fixed_levels(qtbot, make_result):
    panel = _show(qtbot, HiddenStatesPanel())
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


def test_cursor_moves_the_line(qtbot, make_result):
    panel = _show(qtbot, HiddenStatesPanel())
    panel.set_result(make_result())
    panel.set_cursor(6)
    assert panel.cursor_line.value() == pytest.approx(6.5)
    panel.set_cursor(999)  # clamped to the last step
    assert panel.cursor_line.value() == pytest.approx(len(TEXT) - 0.5)


def test_clicking_a_cell_selects_its_unit_and_traces_it(qtbot, make_result):
    panel = _show(qtbot, HiddenStatesPanel())
    result = make_result()
    panel.set_result(result)
    _settle()
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


def test_select_at_scene_pos_outside_the_image_does_nothing(qtbot, make_result):
    panel = _show(qtbot, HiddenStatesPanel())
    panel.set_result(make_result())
    _settle()
    with qtbot.assertNotEmitted(panel.unit_selected):
        assert not panel.select_at_scene_pos(panel.trace_plot.sceneBoundingRect().center())


def test_hover_reads_out_the_cell(qtbot, make_result):
    panel = _show(qtbot, HiddenStatesPanel())
    result = make_result()
    panel.set_result(result)
    _settle()
    panel._on_scene_mouse_moved(panel.scene_pos_of_cell(2, 3))
    assert panel.readout_text().startswith("t = 2  'e'   unit 3:")
    assert f"{result.hidden[2, 3]:+.3f}" in panel.readout_text()


def test_hidden_none_clears_and_shows_placeholder(qtbot, make_result):
    panel = _show(qtbot, HiddenStatesPanel())
    panel.set_result(make_result())
    panel.set_result(None)
    assert panel.displayed_array() is None
    assert panel._stack.currentIndex() == 0
    panel.set_cursor(3)  # no result: nothing to move, no error


def test_lstm_cell_state_toggle(qtbot):
    torch.manual_seed(0)
    vocab = Vocab.from_text(CORPUS)
    model = LSTMModel(len(vocab), ModelConfig(kind="lstm", hidden_size=8))
    result = probe(model, vocab, TEXT, top_k=5)
    panel = _show(qtbot, HiddenStatesPanel())
    panel.set_result(result)
    assert panel._cell_check.isVisible()
    np.testing.assert_array_equal(panel.displayed_array(), result.hidden.T)
    panel._cell_check.setChecked(True)
    np.testing.assert_array_equal(panel.displayed_array(), result.cell.T)
    assert panel.displayed_levels() == theme.CELL_STATE_LEVELS
    np.testing.assert_array_equal(panel.trace_data()[1], result.cell[:, 0])


def test_relu_levels_start_at_zero(qtbot):
    torch.manual_seed(0)
    vocab = Vocab.from_text(CORPUS)
    model = ScratchRNN(len(vocab), ModelConfig(kind="scratch", activation="relu", hidden_size=8))
    result = probe(model, vocab, TEXT, top_k=5)
    assert result.hidden_levels[0] == 0.0
    panel = _show(qtbot, HiddenStatesPanel())
    panel.set_result(result)
    assert panel.displayed_levels() == tuple(result.hidden_levels)
    assert panel.colour_bar.colorMap() is theme.POSITIVE  # 0 is white, no blue half
    text_panel = _show(qtbot, ProbeTextPanel())
    text_panel.set_result(result)
    zero = np.flatnonzero(result.hidden[:, 0] == 0.0)
    for i in zero:
        assert text_panel.cell_colours()[i] == theme.map_colours(theme.POSITIVE, [0.0], (0, 1))[0]


# --------------------------------------------------------------------------------- softmax


def test_softmax_bars_follow_the_cursor(qtbot, make_result):
    panel = _show(qtbot, SoftmaxPanel())
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


def test_a_crowded_vocabulary_axis_labels_the_true_next_and_top_bars(qtbot, make_result):
    panel = _show(qtbot, SoftmaxPanel())
    panel.resize(250, 400)  # too narrow for every letter of the vocabulary
    _settle()
    result = make_result()
    panel.set_result(result)
    _settle()
    for t in (0, 6, 10):
        panel.set_cursor(t)
        ticks = panel.bar_plot.getAxis("bottom")._tickLevels[0]
        assert len(ticks) < len(result.vocab_tokens)  # crowded: not every letter
        labelled = {int(x) for x, _ in ticks}
        assert int(result.tokens[t + 1]) in labelled  # the orange bar has its letter
        assert int(result.topk_ids[t][0]) in labelled or any(
            abs(int(result.topk_ids[t][0]) - i) < 2 for i in labelled
        )


def test_softmax_last_step_has_no_true_next(qtbot, make_result):
    panel = _show(qtbot, SoftmaxPanel())
    result = make_result()
    panel.set_result(result)
    panel.set_cursor(len(TEXT) - 1)
    assert panel.highlight_index() is None
    np.testing.assert_array_equal(panel.bar_heights(), result.probs[-1])
    assert "last character: next one unknown" in panel.readout_text()


def test_softmax_marks_unknown_as_question_mark(qtbot, make_result):
    panel = _show(qtbot, SoftmaxPanel())
    result = make_result("the Time")  # 'T' is not in the vocabulary
    panel.set_result(result)
    panel.set_cursor(3)
    assert panel.highlight_index() == 0  # the true next char is <unk>
    labels = [label for _, label in panel.bar_plot.getAxis("bottom")._tickLevels[0]]
    assert labels[0] == "?"


def test_softmax_none_clears(qtbot, make_result):
    panel = _show(qtbot, SoftmaxPanel())
    panel.set_result(make_result())
    panel.set_result(None)
    assert panel.heatmap_array() is None
    assert panel.bar_heights().size == 0
    assert panel.highlight_index() is None
    assert panel._stack.currentIndex() == 0


# ------------------------------------------------------------------------------ probe text


def test_text_panel_colours_follow_the_selected_unit(qtbot, make_result):
    panel = _show(qtbot, ProbeTextPanel())
    result = make_result()
    panel.set_result(result)
    for unit in (0, 3):
        panel.set_unit(unit)
        colours = panel.cell_colours()
        assert len(colours) == len(TEXT)
        activation = result.hidden[:, unit]
        # redder (a larger share of red) exactly where the activation is higher
        redness = np.array([c.red() / (c.red() + c.green() + c.blue()) for c in colours])
        order = np.argsort(activation, kind="stable")
        assert np.all(np.diff(redness[order]) >= 0)
        hi, lo = int(np.argmax(activation)), int(np.argmin(activation))
        assert colours[hi].red() > colours[hi].blue()
        assert colours[lo].blue() > colours[lo].red()
    assert panel._unit_label.text() == "unit 3"


def test_text_panel_surprisal_mode(qtbot, make_result):
    panel = _show(qtbot, ProbeTextPanel())
    result = make_result()
    panel.set_result(result)
    panel.set_colour_mode("surprisal")
    assert panel.colour_mode() == "surprisal"
    assert panel._mode_combo.currentData() == "surprisal"
    colours = panel.cell_colours()
    assert colours[0] == theme.MISSING_VALUE  # nothing before the first character
    seen = result.surprisal_bits[:-1]  # character j is coloured by row j-1
    whiteness = np.array([c.green() + c.blue() for c in colours[1:]])
    order = np.argsort(seen, kind="stable")
    assert np.all(np.diff(whiteness[order]) <= 0)  # more surprise, less white
    with pytest.raises(ValueError):
        panel.set_colour_mode("rainbow")


def test_text_panel_topk_and_unknown(qtbot, make_result):
    panel = _show(qtbot, ProbeTextPanel())
    result = make_result("the TIME!")
    panel.set_result(result)
    ids, probs = result.topk_ids[0], result.topk_probs[0]
    expected = [
        f"{theme.display_char(result.vocab_tokens[v])} {p:.2f}"
        for v, p in zip(ids, probs, strict=True)
    ]
    assert panel.topk_text(0).split("\n") == expected
    assert result.unknown == (4, 5, 6, 7, 8)
    assert panel.unknown_text().startswith(
        "5 characters not in the vocabulary: 'T', 'I', 'M', 'E', '!'"
    )
    assert "maps to <unk>" in panel._strip._tooltip(4)


def test_text_panel_signals(qtbot, make_result):
    panel = _show(qtbot, ProbeTextPanel())
    assert panel.text() == TEXT
    with qtbot.waitSignal(panel.text_edited) as edited:
        panel.line_edit().setText("hello")
    assert edited.args == ["hello"]
    panel.set_result(make_result())
    strip = panel.strip()
    centre = strip.cell_rect(7).center()
    with qtbot.waitSignal(panel.cursor_requested) as requested:
        qtbot.mouseClick(strip, Qt.MouseButton.LeftButton, pos=centre)
    assert requested.args == [7]
    assert strip.index_at(QPoint(-5, -5)) is None


def test_text_panel_long_string_and_none(qtbot, make_result):
    panel = _show(qtbot, ProbeTextPanel())
    long_text = ("the time traveller for so it will be convenient to speak of him " * 8)[:500]
    result = make_result(long_text)
    panel.set_result(result)
    panel.set_cursor(450)
    panel.grab()  # paints every visible cell
    assert len(panel.cell_colours()) == 500
    assert panel.strip().minimumHeight() > panel.height()  # wrapped, scrolls
    panel.set_result(None)
    assert panel.cell_colours() == []
    panel.grab()


# ------------------------------------------------------------------------------ the cursor


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


# ------------------------------------------------------------------------------ screenshots


def test_grab_panels(qtbot, make_result, tmp_path):
    """Render every panel at a projector-ish size; the PNGs are looked at by a person."""
    result = make_result()
    text_panel = _show(qtbot, ProbeTextPanel())
    text_panel.set_result(make_result("the time machine by H G Wells!"))
    text_panel.set_unit(3)
    text_panel.set_cursor(6)
    hidden = _show(qtbot, HiddenStatesPanel())
    hidden.set_result(result)
    hidden.set_unit(3)
    hidden.set_cursor(6)
    softmax = _show(qtbot, SoftmaxPanel())
    softmax.set_result(result)
    softmax.set_cursor(6)
    cursor = _show(qtbot, TimeCursor())
    cursor.set_result(result)
    cursor.set_cursor(6)
    for name, widget in [
        ("text", text_panel),
        ("hidden", hidden),
        ("softmax", softmax),
        ("cursor", cursor),
    ]:
        image = widget.grab()
        assert not image.isNull()
        assert image.save(str(tmp_path / f"panel_{name}.png"))


# --------------------------------------------------------------------------- after a divergence


def _tick_labels(axis) -> list[str]:
    levels = axis._tickLevels or []
    return [label for level in levels for _, label in level]


def test_huge_activations_keep_fixed_levels_and_readable_labels(qtbot):
    """ReLU activations of ~10¹⁹ (a run that diverged): 1-2-5 levels, labels like 10²⁰ and
    no "e+20" or "(x1e+20)"; NaN cells grey, never the colour of 0; no NaN bar heights."""
    torch.manual_seed(0)
    vocab = Vocab.from_text(CORPUS)
    model = ScratchRNN(len(vocab), ModelConfig(kind="scratch", activation="relu", hidden_size=16))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(40.0)
    result = probe(model, vocab, TEXT, top_k=5)
    top = float(np.nanmax(result.hidden))
    assert top > 1e15
    lo, hi = result.hidden_levels
    assert lo == 0.0 and hi >= top
    assert hi / 10.0 ** np.floor(np.log10(hi)) in (1.0, 2.0, 5.0)

    hidden = _show(qtbot, HiddenStatesPanel())
    hidden.set_result(result)
    assert hidden.displayed_levels() == (lo, hi)
    bar_axis = hidden.colour_bar.getAxis("right")
    trace_axis = hidden.trace_plot.getAxis("left")
    for axis in (bar_axis, trace_axis):
        labels = _tick_labels(axis)
        assert labels and all("e+" not in label and "e-" not in label for label in labels)
        assert theme.plain_number(hi) in labels
        assert not axis.autoSIPrefix
    assert hidden._heatmap.missing_rect.rect().width() == len(TEXT)

    text_panel = _show(qtbot, ProbeTextPanel())
    text_panel.set_result(result)
    assert text_panel._legend._hi == theme.plain_number(hi, sign=True)
    assert "e+" not in text_panel._legend._hi

    softmax = _show(qtbot, SoftmaxPanel())
    softmax.set_result(result)
    for t in range(len(TEXT)):
        softmax.set_cursor(t)
        assert np.all(np.isfinite(softmax.bar_heights()))
        assert "e+" not in softmax.readout_text()


def test_plain_number():
    assert theme.plain_number(0.25) == "0.25"
    assert theme.plain_number(430.0) == "430"
    assert theme.plain_number(6.5e16) == "6.5·10¹⁶"
    assert theme.plain_number(1e17) == "10¹⁷"
    assert theme.plain_number(9.97e16) == "10¹⁷"
    assert theme.plain_number(1.04e17) == "10¹⁷"
    assert theme.plain_number(-2e-5) == "−2·10⁻⁵"
    assert theme.plain_number(3.0, sign=True) == "+3"
    assert theme.plain_number(float("inf")) == "∞"
    assert theme.plain_number(float("nan")) == "NaN"
    assert theme.fixed_or_plain(3.14159) == "3.14"
    assert theme.fixed_or_plain(4.15e21) == "4.2·10²¹"


def test_time_span_is_the_text_while_it_fits_then_grows_in_steps() -> None:
    from rnnviz.gui.theme import time_span

    # characters fit as labels: the axis spans exactly the text
    assert time_span(16, pixels=1000, char_px=10) == 16
    # crowded: the next of 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, ...
    assert [time_span(n, pixels=100, char_px=10) for n in (11, 13, 99, 100, 101, 501)] == [
        12,
        15,
        100,
        100,
        120,
        600,
    ]
    spans = [time_span(n, pixels=50, char_px=10) for n in range(6, 3000)]
    assert all(s >= n for s, n in zip(spans, range(6, 3000), strict=True))
    assert all(s < 1.34 * n for s, n in zip(spans, range(6, 3000), strict=True))
    assert len(set(spans)) < 40  # a key typed rarely changes it
