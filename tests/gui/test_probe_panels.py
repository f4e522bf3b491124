"""The probe panels together: one probe shown by every panel, also after a divergence."""

from __future__ import annotations

import numpy as np
import torch
from probe_helpers import CORPUS, TEXT, make_result, show

from rnnviz.core.config import ModelConfig
from rnnviz.core.model import ScratchRNN
from rnnviz.core.probe import probe
from rnnviz.core.vocab import Vocab
from rnnviz.gui import theme
from rnnviz.gui.panels.hidden_states import HiddenStatesPanel
from rnnviz.gui.panels.probe_text import ProbeTextPanel
from rnnviz.gui.panels.softmax import SoftmaxPanel
from rnnviz.gui.panels.time_cursor import TimeCursor

# ------------------------------------------------------------------------------ screenshots


def test_grab_panels(qtbot, tmp_path):
    """Render every panel at a projector-ish size; the PNGs are looked at by a person."""
    result = make_result()
    text_panel = show(qtbot, ProbeTextPanel())
    text_panel.set_result(make_result("the time machine by H G Wells!"))
    text_panel.set_unit(3)
    text_panel.set_cursor(6)
    hidden = show(qtbot, HiddenStatesPanel())
    hidden.set_result(result)
    hidden.set_unit(3)
    hidden.set_cursor(6)
    softmax = show(qtbot, SoftmaxPanel())
    softmax.set_result(result)
    softmax.set_cursor(6)
    cursor = show(qtbot, TimeCursor())
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

    hidden = show(qtbot, HiddenStatesPanel())
    hidden.set_result(result)
    assert hidden.displayed_levels() == (lo, hi)
    bar_axis = hidden.colour_bar.getAxis("right")
    trace_axis = hidden.trace_plot.getAxis("left")
    for axis in (bar_axis, trace_axis):
        labels = _tick_labels(axis)
        assert labels and all("e+" not in label and "e-" not in label for label in labels)
        assert theme.plain_number(hi) in labels
        assert not axis.autoSIPrefix
    assert hidden.missing_rect.rect().width() == len(TEXT)

    text_panel = show(qtbot, ProbeTextPanel())
    text_panel.set_result(result)
    assert text_panel.legend_text()[1] == theme.plain_number(hi, sign=True)
    assert "e+" not in text_panel.legend_text()[1]

    softmax = show(qtbot, SoftmaxPanel())
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
    from rnnviz.gui.plotting import time_span

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
