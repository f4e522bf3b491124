"""The unrolled-network panel (issue 14): its nodes are the probe's numbers, its clicks move
every panel's cursor, play through time walks every step in order, and the MLP row is the
probe with the recurrence cut."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor

from rnnviz.core.probe import probe
from rnnviz.gui import theme
from rnnviz.gui.panels._unrolled_canvas import RNN_PHASES
from rnnviz.gui.panels.unrolled import UnrolledPanel
from tests.gui.probe_helpers import make_result, model_and_vocab, settle, show

TEXT = "machine"


@pytest.fixture
def panel(qtbot) -> UnrolledPanel:
    panel = UnrolledPanel()
    show(qtbot, panel)
    panel.resize(1200, 700)
    panel.set_result(make_result(TEXT))
    settle()
    return panel


def _pixel(panel: UnrolledPanel, row: str, t: int, unit: int) -> QColor:
    canvas = panel.canvas()
    image = canvas.grab().toImage()
    rect = canvas.node_rect(row, t)
    units = panel.canvas()._result.hidden.shape[1]  # noqa: SLF001 - the result it was given
    ratio = image.devicePixelRatio()
    y = rect.top() + (unit + 0.5) * rect.height() / units
    return image.pixelColor(int(rect.center().x() * ratio), int(y * ratio))


def test_every_node_carries_the_probes_numbers(panel: UnrolledPanel) -> None:
    result = make_result(TEXT)
    canvas = panel.canvas()
    assert canvas.rows() == ("target", "output", "hidden", "input")
    tokens = result.vocab_tokens
    for t, char in enumerate(TEXT):
        assert canvas.node_lines("input", t) == (char, f"#{int(result.tokens[t])}")
        top = tokens[int(result.topk_ids[t, 0])]
        assert canvas.node_lines("output", t) == (
            theme.display_char(top),
            f"{float(result.topk_probs[t, 0]):.2f}",
        )
        if t + 1 < len(TEXT):
            loss = -math.log(float(result.probs[t, result.tokens[t + 1]]))
            assert canvas.node_lines("target", t) == (TEXT[t + 1], f"ℓ {loss:.2f}")
        else:
            assert canvas.node_lines("target", t)[1] == "no next"
        assert f"‖H_{t}‖ = {theme.plain_number(float(np.linalg.norm(result.hidden[t])))}" in (
            canvas.node_tooltip("hidden", t)
        )
    # each strip is H_t in the hidden-state heatmap's colours (unit 0 and the last unit)
    for t in (0, 3, len(TEXT) - 1):
        for unit in (0, result.hidden.shape[1] - 1):
            expected = theme.map_colours(
                theme.activation_colormap(result.hidden_levels),
                np.array([result.hidden[t, unit]]),
                result.hidden_levels,
            )[0]
            got = _pixel(panel, "hidden", t, unit)
            assert (
                max(
                    abs(got.red() - expected.red()),
                    abs(got.green() - expected.green()),
                    abs(got.blue() - expected.blue()),
                )
                <= 3
            ), (t, unit, got.name(), expected.name())


def test_a_click_on_a_step_asks_for_the_cursor_and_the_cursor_moves_the_view(
    panel: UnrolledPanel, qtbot
) -> None:
    canvas = panel.canvas()
    with qtbot.waitSignal(panel.cursor_requested) as asked:
        qtbot.mouseClick(
            canvas, Qt.MouseButton.LeftButton, pos=canvas.node_rect("input", 4).center()
        )
    assert asked.args == [4]
    panel.set_cursor(2)
    assert panel.readout_text().startswith("t = 2: reads 'c', target 'h'")
    assert canvas.node_at(canvas.node_rect("output", 5).center()) == ("output", 5)
    assert canvas.node_at(QPoint(2, 2)) is None  # the row labels


def test_play_through_time_visits_every_step_in_order(panel: UnrolledPanel) -> None:
    visited: list[int] = []

    def follow(t: int) -> None:  # as the window does: the cursor comes back to the panel
        visited.append(t)
        panel.set_cursor(t)

    panel.cursor_requested.connect(follow)
    panel.set_cursor(len(TEXT) - 1)  # at the end: playing starts from the first step
    panel.toggle_playing()
    assert panel.is_playing() and visited == [0]
    lit: list[tuple[int, str]] = []
    while panel.is_playing():
        phase = panel.phase()
        assert phase is not None
        lit.append((visited[-1], phase.name))
        assert panel.caption_text() == f"step {visited[-1]}: {phase.name}" or visited[-1] == 0
        panel._advance()  # noqa: SLF001 - the timer's slot, without waiting for the timer
    assert visited == list(range(len(TEXT)))
    assert lit == [(t, p.name) for t in range(len(TEXT)) for p in RNN_PHASES]
    assert not panel.play_button().isChecked() and panel.caption_text() == ""


def test_play_through_time_runs_on_its_timer(panel: UnrolledPanel, qtbot) -> None:
    panel.set_result(make_result("ma"))
    panel.set_speed("fast")
    panel.cursor_requested.connect(panel.set_cursor)
    panel.set_cursor(0)
    panel.toggle_playing()
    qtbot.waitUntil(lambda: not panel.is_playing(), timeout=2 * len(RNN_PHASES) * 150 + 3000)
    assert panel.readout_text().startswith("t = 1")


def test_the_mlp_row_is_the_probe_with_the_recurrence_cut(panel: UnrolledPanel) -> None:
    model, vocab = model_and_vocab()
    panel.mlp_check().setChecked(True)
    canvas = panel.canvas()
    assert canvas.rows()[0] == "mlp"
    for t, char in enumerate(TEXT):
        alone = probe(model, vocab, char, with_grad_flow=False)  # char read from a zero state
        top = vocab.tokens[int(alone.topk_ids[0, 0])]
        assert canvas.node_lines("mlp", t) == (
            theme.display_char(top),
            f"{float(alone.topk_probs[0, 0]):.2f}",
        )
    result = make_result(TEXT)
    assert f"MLP {result.no_recurrence.mean_loss:.2f}" in panel.readout_text()
    assert f"RNN {result.mean_loss:.2f}" in panel.readout_text()


def test_the_cell_state_row_follows_the_model(qtbot) -> None:
    import torch

    from rnnviz.core.config import ModelConfig
    from rnnviz.core.model import build_model

    _, vocab = model_and_vocab()
    torch.manual_seed(0)
    lstm = build_model(len(vocab), ModelConfig(kind="lstm", hidden_size=8), seed=0)
    panel = UnrolledPanel()
    show(qtbot, panel)
    panel.set_result(probe(lstm, vocab, TEXT, with_grad_flow=False))
    assert panel.canvas().rows() == ("target", "output", "hidden", "cell", "input")
    assert "C_3" in panel.canvas().node_tooltip("cell", 3)
