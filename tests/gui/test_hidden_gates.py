"""The hidden-state panel's gate views: the selector, the heatmap of a gate, the unit's curves."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from probe_helpers import CORPUS, TEXT, settle, show
from PySide6.QtCore import QObject, Signal

from rnnviz.core.config import ModelConfig
from rnnviz.core.model import CharModel, build_model
from rnnviz.core.probe import ProbeResult, probe
from rnnviz.core.vocab import Vocab
from rnnviz.gui import theme
from rnnviz.gui.panels import hidden_states
from rnnviz.gui.panels.hidden_states import HiddenStatesPanel

LAYERS = {
    "scratch": ("h",),
    "fast": ("h",),
    "gru": ("h", "r", "z", "n"),
    "lstm": ("h", "c", "i", "f", "g", "o"),
}


@functools.cache
def model_and_vocab(kind: str, seed: int = 0) -> tuple[CharModel, Vocab]:
    vocab = Vocab.from_text(CORPUS)
    model = build_model(len(vocab), ModelConfig(kind=kind, hidden_size=8), seed=seed)  # type: ignore[arg-type]
    with torch.no_grad():  # saturating gates and a cell that grows past 1
        for p in model.parameters():
            p.mul_(8.0)
    return model, vocab


def result_of(kind: str, text: str = TEXT, seed: int = 0) -> ProbeResult:
    model, vocab = model_and_vocab(kind, seed)
    return probe(model, vocab, text, top_k=5)


def choose(panel: HiddenStatesPanel, name: str) -> None:
    """What a click in the selector does."""
    panel.layer_selector().setCurrentIndex(panel.layers().index(name))


# ---------------------------------------------------------------------------- the selector


@pytest.mark.parametrize("kind", ["scratch", "fast", "gru", "lstm"])
def test_the_selector_lists_the_models_layers(qtbot, kind: str) -> None:
    panel = show(qtbot, HiddenStatesPanel())
    panel.set_result(result_of(kind))
    assert panel.layers() == LAYERS[kind]
    box = panel.layer_selector()
    gated = kind in ("gru", "lstm")
    assert box.isVisible() is gated
    if gated:
        assert [box.itemData(i) for i in range(box.count())] == list(LAYERS[kind])
        assert box.itemText(0) == "H_t  hidden state"
        assert box.font().pointSizeF() == theme.font().pointSizeF()
    assert panel.layer() == "h"
    assert box.currentIndex() == (0 if gated else -1) or not gated


def test_choosing_f_shows_the_forget_gate_on_0_to_1(qtbot) -> None:
    panel = show(qtbot, HiddenStatesPanel())
    result = result_of("lstm")
    assert result.gates is not None
    trace = result.gates.trace()
    panel.set_result(result)
    choose(panel, "f")
    assert panel.layer() == "f"
    np.testing.assert_array_equal(panel.displayed_array(), trace["f"].T)
    assert panel.displayed_levels() == (0.0, 1.0)
    assert panel.colour_bar.levels() == (0.0, 1.0)
    assert panel.bar_label() == "f_t"
    settle()
    assert panel.heatmap_title() in (trace.descriptions["f"], "forget gate f_t")
    # tanh values on -1 to 1, the cell symmetric around 0 and covering all of C_t
    choose(panel, "g")
    np.testing.assert_array_equal(panel.displayed_array(), trace["g"].T)
    assert panel.displayed_levels() == (-1.0, 1.0)
    choose(panel, "c")
    np.testing.assert_array_equal(panel.displayed_array(), trace["c"].T)
    lo, hi = panel.displayed_levels()
    assert lo == -hi and hi >= np.abs(trace["c"]).max() > 1.0
    choose(panel, "h")
    np.testing.assert_array_equal(panel.displayed_array(), result.hidden.T)
    assert panel.displayed_levels() == (-1.0, 1.0)


def test_gru_gates_and_hover(qtbot) -> None:
    panel = show(qtbot, HiddenStatesPanel())
    result = result_of("gru")
    assert result.gates is not None
    panel.set_result(result)
    assert panel.set_layer("z")
    np.testing.assert_array_equal(panel.displayed_array(), result.gates.trace()["z"].T)
    assert panel.displayed_levels() == (0.0, 1.0)
    assert panel.layer_selector().currentData() == "z"  # set_layer moves the selector
    settle()
    panel.hover_at_scene_pos(panel.scene_pos_of_cell(2, 3))
    assert f"z_t = {result.gates.trace()['z'][2, 3]:+.3f}" in panel.readout_text()
    assert not panel.set_layer("f")  # no forget gate in a GRU: nothing changes
    assert panel.layer() == "z"


def test_the_selection_survives_new_results_and_falls_back_on_a_model_change(qtbot) -> None:
    panel = show(qtbot, HiddenStatesPanel())
    panel.set_result(result_of("lstm"))
    choose(panel, "f")
    typed = result_of("lstm", TEXT + " by")  # a keystroke
    panel.set_result(typed)
    assert panel.layer() == "f" and panel.layer_selector().currentData() == "f"
    assert typed.gates is not None
    np.testing.assert_array_equal(panel.displayed_array(), typed.gates.trace()["f"].T)
    trained = result_of("lstm", TEXT + " by", seed=1)  # the same kind, other weights
    panel.set_result(trained)
    assert trained.gates is not None
    np.testing.assert_array_equal(panel.displayed_array(), trained.gates.trace()["f"].T)
    panel.set_result(None)  # an emptied text keeps the choice for the next one
    panel.set_result(typed)
    assert panel.layer() == "f"
    # a GRU has no forget gate: back to H_t, and it stays there
    gru = result_of("gru")
    panel.set_result(gru)
    assert panel.layer() == "h" and panel.layer_selector().currentData() == "h"
    np.testing.assert_array_equal(panel.displayed_array(), gru.hidden.T)
    choose(panel, "z")
    panel.set_result(result_of("scratch"))
    assert panel.layer() == "h" and not panel.layer_selector().isVisible()
    panel.set_result(result_of("lstm"))
    assert panel.layer() == "h" and panel.layer_selector().isVisible()


def test_a_keystroke_draws_the_layer_shown_and_rebuilds_nothing(qtbot, monkeypatch) -> None:
    panel = show(qtbot, HiddenStatesPanel())
    panel.set_result(result_of("lstm"))
    choose(panel, "o")
    removed: list[int] = []
    panel.layer_selector().model().rowsRemoved.connect(lambda *a: removed.append(1))
    shown: list[np.ndarray] = []
    real_show = panel._heatmap.show

    def counting(array, levels, cmap):  # type: ignore[no-untyped-def]
        shown.append(array)
        real_show(array, levels, cmap)

    monkeypatch.setattr(panel._heatmap, "show", counting)
    result = result_of("lstm", TEXT + "!")
    panel.set_result(result)
    assert result.gates is not None
    assert len(shown) == 1  # the heatmap drew one layer, the one shown
    np.testing.assert_array_equal(shown[0], result.gates.trace()["o"].T)
    assert removed == []  # the selector was not rebuilt


def test_set_layer_before_any_result_is_kept_for_the_first(qtbot) -> None:
    panel = show(qtbot, HiddenStatesPanel())
    assert panel.set_layer("i")
    result = result_of("lstm")
    panel.set_result(result)
    assert panel.layer() == "i" and panel.layer_selector().currentData() == "i"
    assert result.gates is not None
    np.testing.assert_array_equal(panel.displayed_array(), result.gates.trace()["i"].T)
    other = show(qtbot, HiddenStatesPanel())
    assert other.set_layer("i")
    other.set_result(result_of("scratch"))  # the plain RNN has no gates: H_t
    assert other.layer() == "h"
    assert not other.set_layer("nope")


# ------------------------------------------------------------------------ the unit's curves


def test_the_unit_strip_draws_every_gate_of_the_selected_unit(qtbot) -> None:
    panel = show(qtbot, HiddenStatesPanel())
    result = result_of("lstm")
    assert result.gates is not None
    trace = result.gates.trace()
    panel.set_result(result)
    panel.set_unit(5)
    choose(panel, "f")
    settle()
    assert panel.unit_curves() == LAYERS["lstm"]
    x_expected = np.arange(len(TEXT)) + 0.5
    for name in LAYERS["lstm"]:
        x, y = panel.unit_curve_data(name)
        np.testing.assert_array_equal(x, x_expected)
        np.testing.assert_array_equal(y, trace[name][:, 5], err_msg=name)
    np.testing.assert_array_equal(panel.trace_data()[1], trace["f"][:, 5])
    # the heatmap's layer is the wide one; each name its own colour-blind-safe colour
    assert panel.unit_curve_pen("f").widthF() > panel.unit_curve_pen("i").widthF()
    colours = {panel.unit_curve_pen(n).color().name() for n in LAYERS["lstm"]}
    assert len(colours) == len(LAYERS["lstm"])
    assert colours <= {c.lower() for c in theme.RUN_COLOURS}
    legend = panel.unit_legend()
    for name in LAYERS["lstm"]:
        symbol = hidden_states.SYMBOLS[name]
        assert symbol.removesuffix("_t") in legend
        assert hidden_states.curve_colour(name) in legend
    assert panel.trace_plot.getAxis("left").labelText == "unit 5"
    # C_t on its own scale: an axis beside the strip, under the colour bar
    assert panel.cell_axis.isVisible()
    lo, hi = panel._cell_view.viewRange()[1]
    assert hi >= np.abs(trace["c"][:, 5]).max()
    view = panel.trace_plot.getViewBox().sceneBoundingRect()
    axis = panel.cell_axis.geometry()  # a free item: scene coordinates
    assert axis.left() == pytest.approx(view.right() + 1, abs=1) and axis.top() == view.top()
    # another unit: the same curves, its values
    panel.set_unit(2)
    for name in LAYERS["lstm"]:
        np.testing.assert_array_equal(panel.unit_curve_data(name)[1], trace[name][:, 2])


def test_the_gru_strip_and_the_plain_strip(qtbot) -> None:
    panel = show(qtbot, HiddenStatesPanel())
    gru = result_of("gru")
    assert gru.gates is not None
    panel.set_result(gru)
    panel.set_unit(1)
    assert panel.unit_curves() == LAYERS["gru"]
    for name in LAYERS["gru"]:
        np.testing.assert_array_equal(panel.unit_curve_data(name)[1], gru.gates.trace()[name][:, 1])
    assert not panel.cell_axis.isVisible()
    # the plain RNN: its one H_t curve, dotted, named as before, no key
    plain = result_of("scratch")
    panel.set_result(plain)
    assert panel.unit_curves() == ("h",)
    np.testing.assert_array_equal(panel.trace_data()[1], plain.hidden[:, 1])
    assert panel.trace_curve.opts["symbol"] == "o"
    assert panel.unit_legend() == "" and panel.heatmap_title() == ""
    assert panel.trace_plot.getAxis("left").labelText == "H_t[1]"
    assert panel.bar_label() == "H_t"


def test_a_long_title_never_pushes_the_colour_bar_out(qtbot) -> None:
    """The GRU candidate's description is longer than a narrow heatmap: a shorter title."""
    panel = show(qtbot, HiddenStatesPanel())
    panel.resize(460, 420)
    panel.set_result(result_of("gru"))
    choose(panel, "n")
    settle()
    assert panel.heatmap_title() in ("candidate n_t", "")
    right = panel.colour_bar.sceneBoundingRect().right()
    assert right <= panel.graphics_view().viewport().width()
    panel.resize(1400, 420)
    settle()
    assert panel.heatmap_title().startswith("candidate n_t = tanh(")
    assert "h_{t-1} W_hn + b_hn" in panel.heatmap_title()


def test_the_help_says_which_gru_and_what_an_integrator_is() -> None:
    from rnnviz.gui.panels.help import HELP

    text = HELP["dock_hidden"][1]
    assert "r<sub>t</sub> ⊙ (h<sub>t−1</sub> W<sub>hn</sub> + b<sub>hn</sub>)" in text
    assert "(R<sub>t</sub> ⊙ H<sub>t−1</sub>) W<sub>hh</sub>" in text
    assert "0.9" in text and "integrator" in text


# ------------------------------------------------------------------------- the command line


class _FakeWindow(QObject):
    """What choose_hidden_layer uses of the main window."""

    probe_shown = Signal()

    def __init__(self, panel: HiddenStatesPanel) -> None:
        super().__init__()
        self.panels = type("Panels", (), {"hidden": panel})()


def test_hidden_layer_is_chosen_at_the_first_probe_of_a_model_that_has_it(qtbot) -> None:
    from rnnviz.gui.app import choose_hidden_layer

    panel = show(qtbot, HiddenStatesPanel())
    window = _FakeWindow(panel)
    choose_hidden_layer(window, "f")  # type: ignore[arg-type]
    panel.set_result(result_of("scratch"))  # the default model, before a session's LSTM
    window.probe_shown.emit()
    assert panel.layer() == "h"
    panel.set_result(result_of("lstm"))
    window.probe_shown.emit()
    assert panel.layer() == "f"
    choose(panel, "i")  # the user's choice from then on
    window.probe_shown.emit()
    assert panel.layer() == "i"


def test_the_hidden_layer_option_reaches_the_window(monkeypatch, capsys) -> None:
    from rnnviz.cli import main
    from tests.window_stub import stub_window

    seen = stub_window(monkeypatch)
    assert main(["--screenshot", "s.png", "--hidden-layer", "F"]) == 0
    assert seen[-1].hidden_layer == "f"  # type: ignore[attr-defined]
    assert main(["--screenshot", "s.png"]) == 0
    assert seen[-1].hidden_layer is None  # type: ignore[attr-defined]
    assert main(["--hidden-layer", "q"]) == 2  # main turns argparse's exit into a code
    assert "invalid choice" in capsys.readouterr().err
