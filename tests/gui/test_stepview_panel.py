"""StepViewPanel: the strips show the StepDetail's numbers, the softmax's top characters and the
concatenation identity's difference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from rnnviz.core.config import ModelConfig
from rnnviz.core.model import ScratchRNN
from rnnviz.core.probe import step_detail
from rnnviz.core.vocab import Vocab
from rnnviz.gui.panels import stepview as sv
from rnnviz.gui.panels.stepview import StepViewPanel

TEXT = "hello world " * 4
PROBE = "hello world"


@pytest.fixture(scope="module")
def model_and_vocab():
    torch.manual_seed(0)
    vocab = Vocab.from_text(TEXT)
    model = ScratchRNN(len(vocab), ModelConfig(kind="scratch", hidden_size=8))
    return model, vocab


@pytest.fixture
def panel(qtbot):
    widget = StepViewPanel()
    widget.resize(900, 600)
    qtbot.addWidget(widget)
    return widget


def test_strips_show_the_step_detail(panel, model_and_vocab):
    model, vocab = model_and_vocab
    detail = step_detail(model, vocab, PROBE, 4)
    panel.set_detail(detail, vocab.tokens)
    assert panel.placeholder_text() is None
    assert set(sv.ROW_KEYS) == {
        "X_t",
        "H_prev",
        "xW",
        "hW",
        "b_h",
        "pre_activation",
        "H_t",
        "O_t",
        "softmax",
    }
    for key in sv.ROW_KEYS:
        np.testing.assert_array_equal(panel.row_values(key), getattr(detail, key))
    first = float(detail.H_t[0])
    assert f"{abs(first):.2f}" in panel.row_text("H_t")
    assert panel.rows["H_t"].label.text().count("1×H=8") == 1
    assert "1×V=" + str(len(vocab)) in panel.rows["O_t"].label.text()
    assert f"token {detail.token_id}" in panel.row_text("X_t")
    assert f"row {detail.token_id} of W" in panel.rows["xW"].label.text()


def test_softmax_top_k_and_true_next_char(panel, model_and_vocab):
    model, vocab = model_and_vocab
    detail = step_detail(model, vocab, PROBE, 4)
    panel.set_detail(detail, vocab.tokens)
    top = panel.top_k()
    order = np.argsort(-detail.softmax, kind="stable")[: sv.TOP_K]
    assert [p for _, p in top] == pytest.approx(detail.softmax[order].tolist())
    assert [name for name, _ in top] == [sv.quoted(vocab.tokens[i]) for i in order]
    assert panel.rows["softmax"].strip._marked == vocab.tokens.index(detail.next_char)
    assert sv.theme.HIGHLIGHT in panel.row_text("softmax") or detail.next_char is None


def test_concat_identity_difference_shown(panel, model_and_vocab):
    model, vocab = model_and_vocab
    detail = step_detail(model, vocab, PROBE, 6)
    panel.set_detail(detail, vocab.tokens)
    text = panel.concat_text()
    assert "max |difference|" in text
    assert f"{detail.concat_max_abs_diff:.1e}" in text
    assert detail.concat_max_abs_diff < 1e-5


def test_first_and_last_step(panel, model_and_vocab):
    model, vocab = model_and_vocab
    first = step_detail(model, vocab, PROBE, 0)
    panel.set_detail(first, vocab.tokens)
    assert not panel.row_values("H_prev").any()
    assert "starts from H = 0" in panel.row_text("H_prev")
    last = step_detail(model, vocab, PROBE, len(PROBE) - 1)
    panel.set_detail(last)  # the vocabulary is kept from the call before
    assert last.next_char is None
    assert "no next one" in panel.step_label.text()
    assert panel.rows["softmax"].strip._marked is None
    assert panel.top_k()[0][0].startswith("'")


def test_placeholders(panel, model_and_vocab):
    assert panel.placeholder_text() == sv.PLACEHOLDER_NO_TEXT
    model, vocab = model_and_vocab
    panel.set_detail(step_detail(model, vocab, PROBE, 2), vocab.tokens)
    panel.set_detail(None, placeholder=sv.PLACEHOLDER_GATED)
    assert panel.placeholder_text() == "step view needs the scratch or fast RNN"


def test_nonfinite_values_are_drawn_grey(panel, model_and_vocab, qtbot):
    model, vocab = model_and_vocab
    detail = step_detail(model, vocab, PROBE, 3)
    bad = np.array(detail.pre_activation)
    bad[0], bad[1] = np.nan, np.inf
    detail = dataclasses.replace(detail, pre_activation=bad)
    panel.set_detail(detail, vocab.tokens)
    strip = panel.rows["pre_activation"].strip
    assert strip._colours[0] == sv.theme.MISSING_VALUE
    assert "nan" in panel.row_text("pre_activation")
    panel.show()
    qtbot.waitExposed(panel)
    panel.grab()  # paints without error


def test_relu_uses_positive_scale(panel):
    torch.manual_seed(1)
    vocab = Vocab.from_text(TEXT)
    model = ScratchRNN(len(vocab), ModelConfig(kind="scratch", hidden_size=8, activation="relu"))
    detail = step_detail(model, vocab, PROBE, 5)
    panel.set_detail(detail, vocab.tokens)
    assert "φ = ReLU" in panel.step_label.text()
    assert "H 0…3" in panel.scale_note.text()
    np.testing.assert_array_equal(panel.row_values("H_t"), detail.H_t)


def test_grab_with_real_data(panel, model_and_vocab, tmp_path):
    model, vocab = model_and_vocab
    panel.set_detail(step_detail(model, vocab, PROBE, 5), vocab.tokens)
    path = tmp_path / "stepview.png"
    assert panel.grab().save(str(path))
    image = panel.grab().toImage()
    colours = {
        image.pixel(x, y) for x in range(0, image.width(), 17) for y in range(0, image.height(), 17)
    }
    assert len(colours) > 20


def test_the_numbers_shown_fit_the_rows_width(qtbot):
    # in a 640-px dock at 1920x1080 the rows showed 7 of 8 fixed values, the last cut off
    # at the right edge; now as many whole values as fit, and how many of how many
    from PySide6.QtGui import QFontMetrics

    torch.manual_seed(0)
    vocab = Vocab.from_text(TEXT)
    model = ScratchRNN(len(vocab), ModelConfig(kind="scratch", hidden_size=32))
    detail = step_detail(model, vocab, PROBE, 4)
    widget = StepViewPanel()
    qtbot.addWidget(widget)
    widget.resize(640, 700)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_detail(detail, vocab.tokens)
    qtbot.wait(1)
    numbers = widget.rows["H_t"].numbers
    text = widget.row_text("H_t")
    assert QFontMetrics(numbers.font()).horizontalAdvance(text) <= numbers.width()
    shown = text.split(" … ")[0].split()
    assert 2 <= len(shown) < 32
    assert text.endswith(f"({len(shown)} of 32)")
    assert shown[0] == sv.format_numbers(detail.H_t, 1).split()[0]
    widget.resize(2400, 700)
    qtbot.wait(1)
    assert "of 32" not in widget.row_text("H_t")  # room for every value
    assert len(widget.row_text("H_t").split()) == 32
