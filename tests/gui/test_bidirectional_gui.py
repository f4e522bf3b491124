"""Bidirectional models in the window: the controls' greyed checkbox and the reason from core,
the hidden-state panel's direction selector, an opened bidirectional model (issues 16, 18)."""

from __future__ import annotations

import numpy as np
import torch
from probe_helpers import CORPUS, show

from rnnviz.core.config import (
    BIDIRECTIONAL_LM_REFUSAL,
    BIDIRECTIONAL_LM_SHORT,
    ModelConfig,
    RunConfig,
)
from rnnviz.core.model import build_model
from rnnviz.core.probe import probe
from rnnviz.core.vocab import Vocab
from rnnviz.gui.panels.controls import ControlsPanel
from rnnviz.gui.panels.hidden_states import HiddenStatesPanel

ENGINE_WAIT_MS = 30_000
TEXT = "the machine"


def result_of(kind: str, layers: int = 1, bidirectional: bool = True):
    torch.manual_seed(0)
    vocab = Vocab.from_text(CORPUS)
    config = ModelConfig(
        kind=kind,  # type: ignore[arg-type]
        hidden_size=8,
        num_layers=layers,
        bidirectional=bidirectional,
    )
    model = build_model(len(vocab), config, 1)
    model.eval()
    return probe(model, vocab, TEXT)


def test_the_bidirectional_checkbox_is_greyed_out_for_the_language_model(qtbot) -> None:
    panel = show(qtbot, ControlsPanel(RunConfig()))
    check, why = panel.bidirectional_check, panel.bidirectional_why
    for kind in ("fast", "scratch", "gru", "lstm"):
        panel.model_combo.setCurrentIndex(panel.model_combo.findData(kind))
        assert not check.isEnabled() and not check.isChecked(), kind
        assert check.toolTip() == BIDIRECTIONAL_LM_REFUSAL
        assert why.isVisibleTo(panel) and why.text() == BIDIRECTIONAL_LM_SHORT
        assert "next character" in why.text()
    # an opened bidirectional model's configuration: shown checked, still greyed out
    opened = RunConfig().replace(model={"kind": "gru", "bidirectional": True})
    panel.set_config(opened)
    assert check.isChecked() and not check.isEnabled()
    # a change in the controls asks for a model to train: one direction
    seen = []
    panel.config_changed.connect(seen.append)
    panel.hidden_spin.setValue(panel.hidden_spin.value() + 1)
    assert seen and seen[-1].model.bidirectional is False and seen[-1].model.kind == "gru"


def test_the_direction_selector_shows_each_direction_of_a_bidirectional_result(qtbot) -> None:
    panel = show(qtbot, HiddenStatesPanel())
    box = panel.direction_selector()
    panel.set_result(result_of("lstm", 2))
    result = panel._result
    assert box.isVisibleTo(panel) and panel.direction() == "forward"  # the default view
    assert [box.itemText(i) for i in range(box.count())] == ["forward", "backward"]
    np.testing.assert_array_equal(panel.displayed_array(), result.hidden.T)
    box.setCurrentIndex(box.findData("reverse"))
    assert panel.direction() == "reverse"
    np.testing.assert_array_equal(panel.displayed_array(), result.hidden_reverse.T)
    assert not np.allclose(result.hidden_reverse, result.hidden)
    assert "backward" in panel.heatmap_title() or panel.heatmap_title() == ""
    # a gate and a lower layer of the backward direction
    panel.set_depth(0)
    assert panel.set_layer("f")
    np.testing.assert_array_equal(panel.displayed_array(), result.gates.trace(0, "reverse")["f"].T)
    panel.set_layer("h")
    panel.set_depth(1)
    # the scratch RNN's two directions, with no gates
    panel.set_result(result_of("scratch"))
    assert box.isVisibleTo(panel) and panel.direction() == "reverse"  # the choice stays
    np.testing.assert_array_equal(panel.displayed_array(), panel._result.hidden_reverse.T)
    # a one-direction result: no selector, its one direction, exactly as before
    panel.set_result(result_of("gru", bidirectional=False))
    assert not box.isVisibleTo(panel) and panel.direction() == "forward"
    assert not panel.set_direction("backward")
    np.testing.assert_array_equal(panel.displayed_array(), panel._result.hidden.T)


def test_an_opened_bidirectional_model_gets_the_selector_and_direction_backward(
    make_window, qtbot, tmp_path
) -> None:
    from rnnviz.gui.app import choose_direction
    from tests.core.test_bidirectional import BiNet, bi_reference
    from tests.core.test_torch_model import HIDDEN, TOL, save, spec_of
    from tests.core.test_torch_model import TEXT as MODEL_TEXT  # in the module's vocabulary

    torch.manual_seed(0)
    net = BiNet("gru", 1, embedding=True)
    weights, spec = save(tmp_path, net.state_dict(), spec_of("gru", True))
    window = make_window()
    window.set_probe_text(MODEL_TEXT)
    window.docks["dock_hidden"].raise_()
    choose_direction(window, "backward")  # what --direction backward does
    window.files.open_model_file(str(weights), str(spec))

    def opened() -> bool:
        info, result = window.app_state.run_info, window.probe_result
        return (
            info is not None
            and bool(info.opened)
            and result is not None
            and result.bidirectional
            and result.text == MODEL_TEXT
        )

    qtbot.waitUntil(opened, timeout=ENGINE_WAIT_MS)
    p = window.panels
    qtbot.waitUntil(lambda: p.hidden.direction() == "reverse", timeout=5000)
    assert p.hidden.direction_selector().isVisibleTo(p.hidden)
    ref = bi_reference(net, MODEL_TEXT)
    result = window.probe_result
    np.testing.assert_allclose(result.hidden_reverse, ref["out"][:, HIDDEN:], atol=TOL, rtol=0)
    qtbot.waitUntil(
        lambda: np.array_equal(p.hidden.displayed_array(), result.hidden_reverse.T), timeout=5000
    )
    controls = p.controls
    assert controls.bidirectional_check.isChecked()
    assert not controls.bidirectional_check.isEnabled()
    # the step view shows either direction of it: the one --direction chose
    detail, why = window.probes.step_detail(1)
    assert why == "" and detail is not None and detail.bidirectional
    assert detail.direction == "forward"
    window.docks["dock_stepview"].raise_()
    stepview = p.stepview

    def backward_shown() -> bool:
        shown = stepview.detail()
        return shown is not None and shown.direction == "reverse"

    qtbot.waitUntil(backward_shown, timeout=5000)
    assert stepview.direction_selector().isVisibleTo(stepview)
    t = p.time_cursor.cursor()
    np.testing.assert_allclose(
        stepview.row_values("h"), result.gates.trace(0, "reverse")["h"][t], atol=1e-6
    )
    np.testing.assert_allclose(stepview.both_values(), ref["out"][t], atol=TOL)
    assert window.app_state.last_failure is None


def test_rnnviz_open_direction_backward_reaches_the_window(monkeypatch, tmp_path) -> None:
    from rnnviz.cli import main
    from tests.core.test_bidirectional import BiNet
    from tests.core.test_torch_model import save, spec_of
    from tests.window_stub import stub_window

    seen = stub_window(monkeypatch)
    weights, spec = save(tmp_path, BiNet("lstm", 2).state_dict(), spec_of("lstm", True))
    assert main(["open", str(weights), "--spec", str(spec), "--direction", "backward"]) == 0
    assert seen[-1].direction == "backward"
    assert main(["open", str(weights), "--spec", str(spec)]) == 0
    assert seen[-1].direction is None
