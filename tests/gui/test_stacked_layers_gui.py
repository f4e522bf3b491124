"""Stacked layers in the window: the controls' layers, the hidden-state panel's layer
selector, the gradient flow's retention of the top layer, the step view and the saturation
scatter of each layer, one layer choice shared by the three (issue 16, issue 18)."""

from __future__ import annotations

import numpy as np
import torch
from probe_helpers import CORPUS, show

from rnnviz.core.config import ModelConfig
from rnnviz.core.model import build_model
from rnnviz.core.probe import probe
from rnnviz.core.vocab import Vocab
from rnnviz.gui.panels.controls import ControlsPanel
from rnnviz.gui.panels.hidden_states import HiddenStatesPanel

ENGINE_WAIT_MS = 30_000
TEXT = "the machine"


def stacked_result(kind: str = "lstm", layers: int = 3):
    torch.manual_seed(0)
    vocab = Vocab.from_text(CORPUS)
    model = build_model(len(vocab), ModelConfig(kind=kind, hidden_size=8, num_layers=layers), 1)
    model.eval()
    return probe(model, vocab, TEXT)


def test_the_layer_selector_shows_each_stacked_layers_states_and_gates(qtbot) -> None:
    panel = show(qtbot, HiddenStatesPanel())
    panel.set_result(stacked_result("lstm", 3))
    box = panel.depth_selector()
    assert box.isVisibleTo(panel) and box.count() == 3
    assert box.itemText(0) == "layer 3" and box.itemText(2) == "layer 1"  # the top one first
    result = panel._result
    assert panel.depth() == 2  # the top one first: what the output layer reads
    np.testing.assert_array_equal(panel.displayed_array(), result.hidden.T)
    for layer in (0, 1):
        box.setCurrentIndex(box.findData(layer))
        assert panel.depth() == layer
        np.testing.assert_array_equal(panel.displayed_array(), result.gates.trace(layer)["h"].T)
        assert panel.set_layer("f")
        np.testing.assert_array_equal(panel.displayed_array(), result.gates.trace(layer)["f"].T)
        assert f"layer {layer + 1} of 3" in panel.heatmap_title()
        _, unit_curve = panel.unit_curve_data("c")
        np.testing.assert_allclose(unit_curve, result.gates.trace(layer)["c"][:, 0])
        panel.set_layer("h")
    # the layer stays across results of the same depth; a one-layer model has no selector
    panel.set_result(stacked_result("lstm", 3))
    assert panel.depth() == 1
    panel.set_result(stacked_result("gru", 1))
    assert not box.isVisibleTo(panel) and panel.depth() == 0
    np.testing.assert_array_equal(panel.displayed_array(), panel._result.hidden.T)


def test_a_stacked_scratch_rnns_layers_are_in_the_selector(qtbot) -> None:
    panel = show(qtbot, HiddenStatesPanel())
    chosen: list[int] = []
    panel.depth_chosen.connect(chosen.append)
    result = stacked_result("scratch", 2)
    assert result.gates is None and result.layer_hidden is not None
    panel.set_result(result)
    box = panel.depth_selector()
    assert box.isVisibleTo(panel) and box.count() == 2 and panel.depth() == 1
    np.testing.assert_array_equal(panel.displayed_array(), result.hidden.T)
    box.setCurrentIndex(box.findData(0))
    assert chosen == [0]
    np.testing.assert_array_equal(panel.displayed_array(), result.layer_hidden[0].T)
    assert "layer 1 of 2" in panel.heatmap_title()
    panel.set_depth(1)  # silent: from another panel's selector
    assert chosen == [0]
    np.testing.assert_array_equal(panel.displayed_array(), result.layer_hidden[1].T)


def test_the_controls_offer_layers_for_every_kind_but_the_fast_rnn(qtbot) -> None:
    from rnnviz.core.config import RunConfig

    panel = show(qtbot, ControlsPanel(RunConfig()))
    seen = []
    panel.config_changed.connect(seen.append)
    assert not panel.layers_spin.isEnabled()  # the default fast RNN is one layer
    panel.model_combo.setCurrentIndex(panel.model_combo.findData("lstm"))
    assert panel.layers_spin.isEnabled()
    panel.layers_spin.setValue(3)
    assert seen[-1].model.kind == "lstm" and seen[-1].model.num_layers == 3
    panel.set_config(seen[-1])
    panel.model_combo.setCurrentIndex(panel.model_combo.findData("scratch"))
    assert seen[-1].model.kind == "scratch" and seen[-1].model.num_layers == 3
    assert panel.layers_spin.isEnabled()
    panel.set_config(seen[-1])
    panel.model_combo.setCurrentIndex(panel.model_combo.findData("fast"))
    assert seen[-1].model.kind == "fast" and seen[-1].model.num_layers == 1
    assert not panel.layers_spin.isEnabled() and panel.layers_spin.value() == 1


def test_a_stacked_lstm_trains_and_probes_in_the_window(make_window, qtbot, tiny_config) -> None:
    config = tiny_config.replace(model={"kind": "lstm", "num_layers": 2})
    window = make_window(config)
    window.docks["dock_gradflow"].raise_()
    window.set_probe_text(TEXT)
    window.controller.step(2)
    qtbot.waitUntil(lambda: window.app_state.main.step == 2, timeout=ENGINE_WAIT_MS)

    def probed() -> bool:
        result = window.probe_result
        snapshot = window.app_state.shown_snapshot
        return (
            result is not None
            and result.text == TEXT
            and result.grad_flow is not None
            and snapshot is not None
            and snapshot.step == 2
        )

    qtbot.waitUntil(probed, timeout=ENGINE_WAIT_MS)
    result = window.probe_result
    assert result.gates.num_layers == 2
    p = window.panels
    window.docks["dock_hidden"].raise_()
    qtbot.waitUntil(lambda: p.hidden.depth_selector().count() == 2, timeout=5000)
    assert p.controls.layers_spin.value() == 2 and p.controls.layers_spin.isEnabled()
    # the gradient flow's retention is the top layer's, and says so
    qtbot.waitUntil(lambda: "top layer of 2" in p.gradflow.retention_label.text(), timeout=5000)
    # every layer's parameters are named in the gradient norms
    names = set(window.app_state.run_info.param_names)
    assert {"W_x(gates) l0", "W_x(gates) l1", "W_hq"} <= names
    # the step view shows each layer's equations; None, or a layer the model lacks, the top
    for layer, want in ((None, 1), (0, 0), (1, 1), (3, 1)):
        detail, why = window.probes.step_detail(1, layer)
        assert why == "" and detail.layer == want and detail.num_layers == 2
        np.testing.assert_allclose(detail["h"], result.gates.trace(want)["h"][1], atol=1e-6)
    # one layer choice: chosen in the hidden panel, the step view and the saturation follow
    window.docks["dock_stepview"].raise_()
    stepview = p.stepview
    qtbot.waitUntil(lambda: stepview.layer_selector().count() == 2, timeout=5000)
    assert stepview.layer() == 1 and p.hidden.depth() == 1  # the top one first, in both
    p.hidden.depth_selector().setCurrentIndex(p.hidden.depth_selector().findData(0))
    assert stepview.layer() == 0 and p.saturation.layer() == 0
    qtbot.waitUntil(lambda: stepview.detail().layer == 0, timeout=5000)
    np.testing.assert_allclose(
        stepview.row_values("h"), result.gates.trace(0)["h"][p.time_cursor.cursor()], atol=1e-6
    )
    # and back from the step view's own selector
    stepview.layer_selector().setCurrentIndex(stepview.layer_selector().findData(1))
    assert p.hidden.depth() == 1 and p.saturation.layer() == 1
    qtbot.waitUntil(lambda: stepview.detail().layer == 1, timeout=5000)


def test_the_no_recurrence_preset_is_offered_to_one_layer_only() -> None:
    from rnnviz.core.config import RunConfig
    from rnnviz.gui.panels.compare_dialog import recurrence_preset

    one = RunConfig().replace(model={"kind": "scratch"})
    assert recurrence_preset(one) is not None
    # ModelConfig refuses a stacked run without recurrence: no button that cannot work
    assert recurrence_preset(one.replace(model={"num_layers": 2})) is None


def test_a_stacked_scratch_rnn_trains_and_probes_in_the_window(
    make_window, qtbot, tiny_config
) -> None:
    config = tiny_config.replace(model={"kind": "scratch", "num_layers": 2})
    window = make_window(config)
    window.set_probe_text(TEXT)
    window.controller.step(2)
    qtbot.waitUntil(lambda: window.app_state.main.step == 2, timeout=ENGINE_WAIT_MS)

    def probed() -> bool:
        result = window.probe_result
        snapshot = window.app_state.shown_snapshot
        return (
            result is not None
            and result.text == TEXT
            and snapshot is not None
            and snapshot.step == 2
            and result.layer_hidden is not None
        )

    qtbot.waitUntil(probed, timeout=ENGINE_WAIT_MS)
    result = window.probe_result
    p = window.panels
    assert p.controls.layers_spin.value() == 2 and p.controls.layers_spin.isEnabled()
    assert {"W_xh l0", "W_hh l1", "W_hq"} <= set(window.app_state.run_info.param_names)
    window.docks["dock_hidden"].raise_()
    qtbot.waitUntil(lambda: p.hidden.depth_selector().count() == 2, timeout=5000)
    detail, why = window.probes.step_detail(3, 0)
    assert why == "" and detail.layer == 0 and detail.num_layers == 2
    np.testing.assert_allclose(detail.H_t, result.layer_hidden[0][3], atol=1e-6)
    detail, _ = window.probes.step_detail(3)
    np.testing.assert_allclose(detail.H_t, result.hidden[3], atol=1e-6)
