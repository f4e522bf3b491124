"""StepViewPanel: the strips show the StepDetail's numbers, the softmax's top characters and the
concatenation identity's difference; for a GRU/LSTM, the GatedStepDetail's rows under that
model's equations (the GRU's with the line on where its reset gate acts)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from rnnviz.core import step_gates
from rnnviz.core.config import ModelConfig
from rnnviz.core.model import ScratchRNN, build_model
from rnnviz.core.probe import step_detail
from rnnviz.core.step_gates import gated_step_detail
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
    panel.set_detail(None, placeholder="the probe failed")
    assert panel.placeholder_text() == "the probe failed"


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


# ------------------------------------------------------------------ GRU and LSTM


def _gated(kind: str, hidden: int = 8, seed: int = 0):
    vocab = Vocab.from_text(TEXT)
    model = build_model(len(vocab), ModelConfig(kind=kind, hidden_size=hidden), seed=seed)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1.0, 1.0)  # gates away from 0.5 and |c| beyond 1: the scales matter
    return model, vocab


def _plain(text: str) -> str:
    return text.replace("&nbsp;", " ")


def _lo_hi(strip) -> tuple[float, float]:
    """The colour levels a strip was drawn with, from its tooltip."""
    scale = strip.toolTip().split("fixed at ")[1].split(";")[0]
    lo, hi = scale.split(" … ")
    return float(lo), float(hi)


def test_the_panels_gated_rows_are_the_cores():
    for kind, rows in sv.GATED_ROWS.items():
        keys = tuple(key for key, *_ in rows)
        assert keys == ("X_t", *step_gates.ROWS[kind], "O_t", "softmax")


def test_lstm_rows_show_the_core_values_on_their_scales(panel):
    model, vocab = _gated("lstm")
    detail = gated_step_detail(model, vocab, PROBE, 4)
    panel.set_detail(detail, vocab.tokens)
    assert panel.placeholder_text() is None
    assert panel.form() == "lstm"
    assert set(panel.rows) == {key for key, *_ in sv.LSTM_ROWS}
    for key in detail.rows:
        np.testing.assert_array_equal(panel.row_values(key), detail[key])
    for key in ("X_t", "O_t", "softmax"):
        np.testing.assert_array_equal(panel.row_values(key), getattr(detail, key))
    # the cell rows stacked so a student can add them: c_t = f ⊙ c_{t−1} + i ⊙ g
    np.testing.assert_allclose(
        panel.row_values("f_c_prev") + panel.row_values("i_g"), panel.row_values("c"), atol=1e-6
    )
    for key in ("i", "f", "o"):
        assert _lo_hi(panel.rows[key].strip) == (0.0, 1.0)
    for key in ("g", "tanh_c", "h", "h_prev"):
        assert _lo_hi(panel.rows[key].strip) == (-1.0, 1.0)
    top = detail.cell_levels[1]
    assert top > 1.0  # the wide weights put |c| beyond 1: the cell scale is not tanh's
    for key in ("c_prev", "f_c_prev", "i_g", "c"):
        assert _lo_hi(panel.rows[key].strip) == (-top, top)
        assert np.abs(panel.row_values(key)).max() <= top
    assert f"c ±{top:g}" in panel.bodies["lstm"].scale_note.text()
    first = float(detail["f"][0])
    assert f"{first:+.2f}" in panel.row_text("f")
    assert "forget gate" in panel.rows["f"].label.text()
    assert "1×H=8" in panel.rows["c"].label.text()
    assert "c<sub>t</sub> = f<sub>t</sub> ⊙ c<sub>t−1</sub>" in _plain(panel.gated_equation.text())
    assert panel.gated_equation.isVisibleTo(panel) and not panel.equation.isVisibleTo(panel)
    assert "gate order i, f, g, o" in panel.gate_note_text()
    assert f"{detail.fused_max_abs_diff:.1e}" in panel.check_text()
    assert "nn.LSTM" in panel.check_text()
    assert panel.rows["softmax"].strip._marked == vocab.tokens.index(detail.next_char)
    assert [p for _, p in panel.top_k()] == pytest.approx(
        np.sort(detail.softmax)[::-1][: sv.TOP_K].tolist()
    )


def test_gated_first_step_says_the_state_starts_at_zero(panel):
    model, vocab = _gated("lstm")
    panel.set_detail(gated_step_detail(model, vocab, PROBE, 0), vocab.tokens)
    assert not panel.row_values("h_prev").any() and not panel.row_values("c_prev").any()
    assert "starts from h = 0" in panel.row_text("h_prev")
    assert "c = 0" in panel.row_text("c_prev")


def test_gru_shows_where_its_reset_gate_acts(panel, qtbot):
    from PySide6.QtGui import QFontMetrics

    model, vocab = _gated("gru")
    detail = gated_step_detail(model, vocab, PROBE, 5)
    panel.resize(490, 380)  # the dock's size in a 1280x720 window
    panel.show()
    qtbot.waitExposed(panel)
    panel.set_detail(detail, vocab.tokens)
    assert panel.form() == "gru"
    note = panel.gate_note_text()
    assert note is not None and panel.gate_note.isVisible()
    assert "after the product with W<sub>hn</sub>" in note
    assert "d2l: (R<sub>t</sub> ⊙ H<sub>t−1</sub>)W<sub>hh</sub>" in note  # d2l's, named
    # one line in a 1280x720 window's dock
    metrics = QFontMetrics(panel.gate_note.font())
    assert panel.gate_note.height() < 2 * metrics.lineSpacing()
    assert panel.gate_note.height() > 0
    assert panel.gate_note.geometry().bottom() < panel.step_label.geometry().top()
    for key in detail.rows:
        np.testing.assert_array_equal(panel.row_values(key), detail[key])
    # n_t = tanh(x W_in + b_in + r ⊙ (h W_hn + b_hn)), h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}
    np.testing.assert_allclose(
        np.tanh(panel.row_values("x_n") + panel.row_values("r_h_n")),
        panel.row_values("n"),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        panel.row_values("keep_n") + panel.row_values("keep_h"), panel.row_values("h"), atol=1e-6
    )
    for key in ("r", "z"):
        assert _lo_hi(panel.rows[key].strip) == (0.0, 1.0)
    assert _lo_hi(panel.rows["x_n"].strip) == sv.SUM_LEVELS
    assert f"row {detail.token_id} of W<sub>in</sub>" in panel.rows["x_n"].label.text()
    assert "r<sub>t</sub> ⊙ (h<sub>t−1</sub>W<sub>hn</sub>" in _plain(panel.gated_equation.text())
    assert "nn.GRU" in panel.check_text()
    panel.grab()  # paints without error


def test_the_plain_rnn_is_unchanged_after_a_gated_model(panel, model_and_vocab):
    model, vocab = model_and_vocab
    plain = step_detail(model, vocab, PROBE, 4)
    panel.set_detail(plain, vocab.tokens)
    before = {key: panel.rows[key].label.text() for key in sv.ROW_KEYS}
    scale = panel.scale_note.text()
    lstm, lstm_vocab = _gated("lstm")
    panel.set_detail(gated_step_detail(lstm, lstm_vocab, PROBE, 4), lstm_vocab.tokens)
    assert panel.form() == "lstm"
    panel.set_detail(plain, vocab.tokens)
    assert panel.form() == "plain"
    assert set(panel.rows) == set(sv.ROW_KEYS)
    for key in sv.ROW_KEYS:
        np.testing.assert_array_equal(panel.row_values(key), getattr(plain, key))
        assert panel.rows[key].label.text() == before[key]
    assert panel.scale_note.text() == scale
    assert panel.equation.text() == sv.EQUATION_HTML
    assert panel.equation.isVisibleTo(panel)
    assert not panel.gated_equation.isVisibleTo(panel)
    assert panel.gate_note_text() is None
    assert panel.check_text() == panel.concat_text()
    assert "max |difference|" in panel.concat_text()
    for name, body in panel.bodies.items():
        assert body.isVisibleTo(panel) == (name == "plain")


def test_the_gated_view_fits_1280x720_and_a_narrow_dock(qtbot):
    # a 1280x720 window's step-view dock is about this size; nothing may be cut at the right
    model, vocab = _gated("gru", hidden=32)
    widget = StepViewPanel()
    qtbot.addWidget(widget)
    widget.resize(560, 420)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_detail(gated_step_detail(model, vocab, PROBE, 3), vocab.tokens)
    qtbot.wait(1)
    for label in (widget.gated_equation, widget.gate_note, widget.step_label):
        assert label.isVisible()
        assert label.geometry().right() <= widget.width()
        assert label.heightForWidth(label.width()) <= label.height() + 1  # not clipped
    for key, row in widget.rows.items():
        assert row.label.sizeHint().width() < widget.width() // 2, key  # room for the strips
        assert row.strip.width() >= 200, key
    assert widget.minimumSizeHint().height() <= 240


# ------------------------------------------------------------------ stacked layers


def _stacked(kind: str, layers: int = 2, hidden: int = 8):
    vocab = Vocab.from_text(TEXT)
    config = ModelConfig(kind=kind, hidden_size=hidden, num_layers=layers)
    model = build_model(len(vocab), config, seed=0)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1.0, 1.0)
    return model.eval(), vocab


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_stacked_layers_rows_read_the_layer_below(panel, qtbot, kind):
    model, vocab = _stacked(kind, 3)
    chosen = []
    panel.layer_chosen.connect(chosen.append)
    top = gated_step_detail(model, vocab, PROBE, 4)
    panel.set_detail(top, vocab.tokens)
    box = panel.layer_selector()
    assert box.isVisibleTo(panel) and [box.itemText(i) for i in range(3)] == [
        "layer 3",
        "layer 2",
        "layer 1",
    ]
    assert panel.layer() == 2 and panel.requested_layer() is None
    middle = gated_step_detail(model, vocab, PROBE, 4, layer=1)
    panel.set_detail(middle, vocab.tokens)
    for key in middle.rows:
        np.testing.assert_array_equal(panel.row_values(key), middle[key])
    # its input row is layer 1's h_t, H wide, where layer 1 has the one-hot x_t
    np.testing.assert_array_equal(panel.row_values("X_t"), middle.layer_input)
    assert "h<sub>t</sub><sup>(1)</sup>" in panel.rows["X_t"].label.text()
    assert "1×H=8" in panel.rows["X_t"].label.text()
    equations = _plain(panel.gated_equation.text())
    assert "x<sub>t</sub>" not in equations and "h<sub>t</sub><sup>(1)</sup>W" in equations
    assert "layer 2 of 3: input h<sub>t</sub><sup>(1)</sup>" in panel.gate_note_text()
    assert "O<sub>t</sub> reads layer 3's" in panel.gate_note_text()
    # O_t is the top layer's, and its row says so
    np.testing.assert_array_equal(panel.row_values("O_t"), top.O_t)
    assert "h<sub>t</sub><sup>(3)</sup>" in panel.rows["O_t"].label.text()
    assert panel.layer_selector().currentText() == "layer 2"
    bottom = gated_step_detail(model, vocab, PROBE, 4, layer=0)
    panel.set_detail(bottom, vocab.tokens)
    np.testing.assert_array_equal(panel.row_values("X_t"), bottom.X_t)
    assert "x<sub>t</sub>" in _plain(panel.gated_equation.text())
    assert "one-hot" in panel.gate_note_text()
    # the selector emits, set_layer does not; a layer the next model lacks is its top one
    assert box.currentText() == "layer 1"  # the layer of the rows shown
    box.setCurrentIndex(box.findData(1))
    assert chosen == [1] and panel.requested_layer() == 1
    panel.set_layer(0)
    assert chosen == [1] and panel.requested_layer() == 0
    one, one_vocab = _gated(kind)
    panel.set_detail(gated_step_detail(one, one_vocab, PROBE, 2), one_vocab.tokens)
    assert not box.isVisibleTo(panel) and panel.layer() == 0
    assert "layer" not in panel.gate_note_text()


def test_a_stacked_scratch_rnns_rows_read_the_layer_below(panel):
    model, vocab = _stacked("scratch", 2)
    detail = step_detail(model, vocab, PROBE, 3, layer=1)
    panel.set_detail(detail, vocab.tokens)
    assert panel.form() == "plain" and panel.layer_selector().isVisibleTo(panel)
    np.testing.assert_array_equal(panel.row_values("X_t"), detail.layer_input)
    np.testing.assert_array_equal(panel.row_values("xW"), detail.xW)
    np.testing.assert_array_equal(panel.row_values("H_t"), detail.H_t)
    assert "H<sub>t</sub><sup>(1)</sup> W<sub>xh</sub>" in panel.rows["xW"].label.text()
    assert "H<sub>t</sub><sup>(1)</sup>" in panel.equation.text()
    assert "layer 2 of 2: input H<sub>t</sub><sup>(1)</sup>" in panel.gate_note_text()
    bottom = step_detail(model, vocab, PROBE, 3, layer=0)
    panel.set_detail(bottom, vocab.tokens)
    assert "row" in panel.rows["xW"].label.text()  # X_t W_xh is a row of W_xh
    assert "H<sub>t</sub><sup>(2)</sup>" in panel.rows["O_t"].label.text()
    np.testing.assert_array_equal(panel.row_values("O_t"), detail.O_t)


# ------------------------------------------------------------------ the window


def test_the_window_shows_the_lstms_step(make_window, qtbot, tiny_config):
    from rnnviz.core.probe import model_from_params

    window = make_window(config=tiny_config.replace(model={"kind": "lstm", "hidden_size": 12}))
    window.docks["dock_stepview"].raise_()
    panel = window.panels.stepview
    qtbot.waitUntil(lambda: panel.isVisible(), timeout=2000)
    qtbot.waitUntil(lambda: panel.form() == "lstm", timeout=30_000)
    assert panel.placeholder_text() is None
    assert panel.gate_note_text() is not None
    window.probe_display.move_cursor(3)
    qtbot.waitUntil(lambda: panel.detail() is not None and panel.detail().t == 3, timeout=5000)
    snapshot = window.app_state.snapshot
    model = model_from_params(
        snapshot.config.model, len(snapshot.vocab_tokens), dict(snapshot.params)
    )
    expected = gated_step_detail(model, Vocab(snapshot.vocab_tokens), window.probe_result.text, 3)
    for key in expected.rows:
        np.testing.assert_allclose(panel.row_values(key), expected[key], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(panel.row_values("softmax"), expected.softmax, atol=1e-6)
    assert panel.top_k()
