"""The step view, the saturation scatter and the gradient flow of a bidirectional model: each
direction's numbers as core computed them (core's own tests compare those with torch.nn), the
backward direction's h_{t+1} in its labels, [h_fwd ; h_rev] above O_t, the reverse
direction's saturation against a direct count, its retention row against core.gates'
matrix, and one direction chosen anywhere moving every panel's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from rnnviz.core.config import ModelConfig, RunConfig
from rnnviz.core.model import build_model
from rnnviz.core.probe import params_to_numpy, probe, step_detail
from rnnviz.core.step_gates import gated_step_detail
from rnnviz.core.vocab import Vocab
from rnnviz.gui.panels.gradflow import GradFlowPanel
from rnnviz.gui.panels.saturation import SaturationPanel
from rnnviz.gui.panels.stepview import BOTH_KEY, StepViewPanel

TEXT = "hello world " * 4
PROBE = "hello world"
HIDDEN = 6


def _bi(kind: str, layers: int = 1, seed: int = 0):
    vocab = Vocab.from_text(TEXT)
    config = ModelConfig(kind=kind, hidden_size=HIDDEN, num_layers=layers, bidirectional=True)
    model = build_model(len(vocab), config, seed=seed)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1.0, 1.0)
    model.eval()
    return model, vocab


@pytest.fixture
def panel(qtbot):
    widget = StepViewPanel()
    widget.resize(900, 700)
    qtbot.addWidget(widget)
    widget.show()
    return widget


def _plain(text: str) -> str:
    return text.replace("&nbsp;", " ")


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_the_backward_rows_are_the_cores_and_read_h_t_plus_1(panel, kind):
    model, vocab = _bi(kind, layers=2)
    chosen: list[str] = []
    panel.direction_chosen.connect(chosen.append)
    for t in (0, 4, len(PROBE) - 1):
        for layer in (0, 1):
            detail = gated_step_detail(model, vocab, PROBE, t, layer=layer, direction="reverse")
            panel.set_detail(detail, vocab.tokens)
            assert panel.direction() == "reverse"
            box = panel.direction_selector()
            assert box.isVisibleTo(panel) and box.currentText() == "backward"
            for key in detail.rows:
                np.testing.assert_array_equal(panel.row_values(key), detail[key])
            np.testing.assert_array_equal(panel.row_values("X_t"), detail.layer_input)
            np.testing.assert_array_equal(panel.row_values("O_t"), detail.O_t)
            # both directions of the top layer above O_t, as W_hq reads them
            np.testing.assert_array_equal(panel.both_values(), detail.output_input)
            assert "→" in panel.both_text() and "←" in panel.both_text()
            assert "1×2H=12" in panel.bodies[kind].both.label.text()
            # the backward step reads the state after t: h_{t+1}, never h_{t−1}
            assert "h<sub>t+1</sub>" in panel.row_label("h_prev")
            assert "t−1" not in panel.gated_equation.text()
            assert "h<sub>t+1</sub>" in panel.gated_equation.text()
            assert "backward" in panel.gate_note_text()
            assert "h<sub>t</sub><sup>→</sup>" in panel.gated_equation.text()  # O_t reads both
            if layer == 1:  # the layer below's both directions, 2H wide
                assert "1×2H=12" in panel.row_label("X_t")
                assert "2H" in panel.gate_note_text()
            if t == len(PROBE) - 1:  # where the backward direction starts
                assert "starts at the last character" in panel.row_text("h_prev")
            if kind == "lstm":
                assert "c<sub>t+1</sub>" in panel.row_label("c_prev")
    assert chosen == []  # set_detail never emits
    # the forward direction of the same model: h_{t−1}, the same O_t row of both
    forward = gated_step_detail(model, vocab, PROBE, 4)
    panel.set_detail(forward, vocab.tokens)
    assert "h<sub>t−1</sub>" in panel.row_label("h_prev")
    np.testing.assert_array_equal(panel.both_values(), forward.output_input)
    panel.direction_selector().setCurrentIndex(panel.direction_selector().findData("reverse"))
    assert chosen == ["reverse"] and panel.requested_direction() == "reverse"


def test_a_one_direction_model_shows_no_selector_and_no_both_row(panel):
    vocab = Vocab.from_text(TEXT)
    model = build_model(len(vocab), ModelConfig(kind="lstm", hidden_size=HIDDEN), seed=0)
    panel.set_direction("backward")  # kept for a bidirectional model, ignored here
    panel.set_detail(gated_step_detail(model, vocab, PROBE, 3), vocab.tokens)
    assert not panel.direction_selector().isVisibleTo(panel)
    assert panel.both_values() is None and panel.direction() == "forward"
    assert "h<sub>t−1</sub>" in panel.row_label("h_prev")
    assert BOTH_KEY not in panel.rows


def test_a_bidirectional_scratch_rnn_backward(panel):
    model, vocab = _bi("scratch")
    detail = step_detail(model, vocab, PROBE, 3, direction="reverse")
    panel.set_detail(detail, vocab.tokens)
    assert panel.form() == "plain"
    for key in ("H_prev", "xW", "hW", "b_h", "pre_activation", "H_t", "O_t"):
        np.testing.assert_array_equal(panel.row_values(key), getattr(detail, key))
    np.testing.assert_array_equal(panel.both_values(), detail.output_input)
    assert "H<sub>t+1</sub>" in panel.row_label("H_prev")
    assert "t+1" in _plain(panel.equation.text()) and "t−1" not in panel.equation.text()
    assert "t+1" in panel.concat_text()


# ------------------------------------------------------------------ saturation


def test_the_reverse_directions_fractions_are_a_direct_count(qtbot):
    from rnnviz.core.corpus import load_corpus
    from rnnviz.core.gates import SIGMOID_GATES, model_gates
    from rnnviz.gui.state.saturation_worker import SaturationJob, compute, validation_batch
    from tests.gui.test_saturation_panel import LSTM_CONFIG

    config = replace(
        LSTM_CONFIG,
        model=ModelConfig(kind="lstm", hidden_size=10, num_layers=2, bidirectional=True),
    )
    corpus = load_corpus(config.corpus, seed=config.train.seed)
    vocab = Vocab.from_text(corpus.text)
    model = build_model(len(vocab), config.model, seed=2)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1.5, 1.5)
    batch = validation_batch(config, vocab.tokens)
    result = compute(
        SaturationJob(0, 7, config, tuple(vocab.tokens), params_to_numpy(model)), batch
    )
    assert result.bidirectional and result.reverse is not None and len(result.reverse) == 2
    records = [model_gates(model, row) for row in np.array(batch)]
    for layer in range(2):
        for name in SIGMOID_GATES["lstm"]:
            values = np.stack([r.trace(layer, "reverse")[name] for r in records])
            count = values.shape[0] * values.shape[1]
            sat = result.layer(layer, "reverse")[name]
            np.testing.assert_allclose(sat.left, (values < 0.1).sum(axis=(0, 1)) / count)
            np.testing.assert_allclose(sat.right, (values > 0.9).sum(axis=(0, 1)) / count)
    forward, reverse = result.layer(1, "forward")["f"], result.layer(1, "reverse")["f"]
    assert not np.array_equal(forward.left, reverse.left)  # two recurrences, two counts

    panel = SaturationPanel()
    qtbot.addWidget(panel)
    chosen: list[str] = []
    panel.direction_chosen.connect(chosen.append)
    panel.show_saturation(result)
    box = panel.direction_selector()
    assert not box.isHidden() and panel.direction() == "forward"
    np.testing.assert_array_equal(panel.dots("f")[0], forward.left)
    box.setCurrentIndex(box.findData("reverse"))
    assert chosen == ["reverse"] and panel.direction() == "reverse"
    np.testing.assert_array_equal(panel.dots("f")[0], reverse.left)
    np.testing.assert_array_equal(panel.dots("f")[1], reverse.right)
    panel.set_layer(0)
    np.testing.assert_array_equal(panel.dots("i")[0], result.layer(0, "reverse")["i"].left)


# ------------------------------------------------------------------ gradient flow


def test_the_distance_plot_of_the_backward_direction_is_the_row_ahead(qtbot):
    from rnnviz.core.gates import retention
    from rnnviz.gui.state.app_state import AppState

    model, vocab = _bi("lstm", layers=2)
    result = probe(model, vocab, PROBE)
    G = result.grad_flow
    panel = GradFlowPanel(AppState(RunConfig()))
    qtbot.addWidget(panel)
    panel.resize(900, 600)
    panel.set_result(result)
    t = 3
    panel.set_cursor(t)
    d, values = panel.distance_curve_data()
    np.testing.assert_allclose(values, G[t, t - d.astype(int)])  # forward: k <= t
    panel.set_direction("backward")
    assert panel.direction() == "reverse"
    d, values = panel.distance_curve_data()
    assert d.max() == len(PROBE) - 1 - t
    np.testing.assert_allclose(values, G[t, t + d.astype(int)])  # backward: k >= t
    assert "steps ahead" in panel.factor_text()
    assert "k − t" in panel.distance_plot.getAxis("bottom").labelText
    # the retention of the backward direction's own carry gate, from core's matrix
    trace = result.gates.trace(1, "reverse")
    x, kept = panel.retention_curve_data()
    R = trace.mean_retention()
    np.testing.assert_allclose(kept, R[t, t + x.astype(int)], rtol=1e-5)
    unit = 0
    x, own = panel.retention_curve_data(unit=True)
    np.testing.assert_allclose(own, retention(trace.carry, unit, "reverse")[t, t + x.astype(int)],
                               rtol=1e-5)  # fmt: skip
    assert "backward" in panel.retention_label.text()
    # a one-direction result: its one side, whatever was chosen
    one = build_model(len(vocab), ModelConfig(kind="lstm", hidden_size=HIDDEN), seed=0)
    panel.set_result(probe(one, vocab, PROBE))
    assert panel.direction() == "forward"


def test_one_direction_chosen_moves_every_panel(make_window, qtbot):
    window = make_window()
    p = window.panels
    window.reactions.set_direction("backward")
    assert p.stepview.requested_direction() == "reverse"
    assert p.saturation._direction == "reverse" and p.gradflow._direction == "reverse"
    p.stepview.direction_chosen.emit("forward")  # as its selector does
    assert p.hidden._direction == "forward" and p.saturation._direction == "forward"
    assert p.stepview.requested_direction() == "forward"
