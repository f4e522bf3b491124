"""File ▸ Open PyTorch model… and ``rnnviz open``: an engineer's own model in the window,
read-only (issue 18)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from rnnviz.cli import main
from rnnviz.gui.panels._metric_base import READ_ONLY_HINT
from tests.core.test_torch_model import TEXT, TOL, VOCAB, make_net, reference, save_net
from tests.window_stub import stub_window

ENGINE_WAIT_MS = 30_000  # as conftest: a spawned engine imports torch first


def _opened(window) -> bool:
    info = window.app_state.run_info
    result = window.probe_result
    return (
        info is not None
        and bool(info.opened)
        and result is not None
        and result.text == window.app_state.probe_text
        and result.grad_flow is not None  # the flow comes in a second, staggered probe
        and window.probes.current is not None
        and window.probes.current.snapshot is window.app_state.shown_snapshot
        and tuple(window.app_state.shown_snapshot.vocab_tokens) == tuple(info.vocab_tokens)
    )


def _open(qtbot, window, weights: Path, spec: Path | None = None) -> None:
    window.files.open_model_file(str(weights), None if spec is None else str(spec))
    qtbot.waitUntil(lambda: _opened(window), timeout=ENGINE_WAIT_MS)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_an_opened_model_is_every_probe_panels_and_the_modules_own_numbers(
    make_window, qtbot, tmp_path, kind
):
    torch.manual_seed(0)
    net = make_net(kind=kind)
    weights, spec = save_net(tmp_path, net)
    window = make_window()
    window.controller.step(2)  # a run that has trained: the opened model replaces it
    qtbot.waitUntil(lambda: window.app_state.main.step == 2, timeout=ENGINE_WAIT_MS)
    window.set_probe_text(TEXT)
    for dock in ("dock_hidden", "dock_gradflow"):  # a hidden tab's panel waits to be seen
        window.docks[dock].raise_()
    _open(qtbot, window, weights, spec)

    state, result = window.app_state, window.probe_result
    assert state.read_only and state.main.step == 0
    order = [VOCAB.index(tok) for tok in state.run_info.vocab_tokens]
    hidden, probs, G = reference(net, TEXT)
    np.testing.assert_allclose(result.hidden, hidden, atol=TOL, rtol=0)
    np.testing.assert_allclose(result.probs, probs[:, order], atol=TOL, rtol=0)
    np.testing.assert_allclose(result.grad_flow, G, atol=TOL, rtol=0)
    assert result.gates is not None
    gates = set(result.gates.trace().names)
    assert gates >= ({"i", "f", "g", "o"} if kind == "lstm" else {"r", "z", "n"})
    # the panels show that result: the heatmap, the softmax's columns, the gradient flow
    p = window.panels
    np.testing.assert_array_equal(p.hidden.displayed_array(), result.hidden.T)
    with np.errstate(divide="ignore"):
        shown = np.log10(np.where(np.tril(G) > 0, G, np.nan))
    qtbot.waitUntil(  # the panel draws at its own pace
        lambda: np.allclose(p.gradflow.probe_image_array(), shown, atol=1e-4, equal_nan=True),
        timeout=5000,
    )
    assert set(p.hidden.layers()) >= {"h"} | (gates & {"i", "f", "g", "o", "r", "z", "n"})
    if kind == "lstm":
        assert "c" in p.hidden.layers()
    window.docks["dock_softmax"].raise_()
    qtbot.waitUntil(lambda: p.softmax.heatmap_array() is not None, timeout=5000)
    np.testing.assert_array_equal(p.softmax.heatmap_array(), result.probs.T)

    # what would train it is greyed out; what is left says why
    for name in ("act_play", "act_step", "act_compare"):
        assert not window.actions_by_name[name].isEnabled(), name
    controls = p.controls
    assert not controls.play_button.isEnabled() and not controls.step_button.isEnabled()
    assert controls.reset_button.isEnabled()
    assert "read-only" in controls.info_label.text() and "model.safetensors" in (
        controls.info_label.text()
    )
    assert window.status.step_label.text() == "opened model, read-only"
    assert p.gradflow.empty_training_hint() == READ_ONLY_HINT
    window.docks["dock_curves"].raise_()
    window.redraw.redraw_all()  # what a screenshot does: the curves redraw for the new run
    assert READ_ONLY_HINT in p.curves.key_label.text()
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Space)  # Space: nothing starts, nothing complains
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.wait(300)
    assert state.main.step == 0 and state.main.state == "paused"
    assert state.last_failure is None

    # Reset leaves it: a new model of its shape trains on the corpus
    window.controller.reset()
    qtbot.waitUntil(lambda: not window.app_state.read_only, timeout=ENGINE_WAIT_MS)
    assert state.config.model.kind == kind
    assert window.actions_by_name["act_play"].isEnabled() and controls.play_button.isEnabled()
    assert "read-only" not in window.status.step_label.text()
    window.controller.step(1)
    qtbot.waitUntil(lambda: window.app_state.main.step == 1, timeout=ENGINE_WAIT_MS)


def test_a_bad_model_file_is_one_banner_line_and_the_run_stays(make_window, qtbot, tmp_path):
    window = make_window()
    window.controller.step(2)
    qtbot.waitUntil(lambda: window.app_state.main.step == 2, timeout=ENGINE_WAIT_MS)
    spec = save_net(tmp_path, make_net(kind="lstm"))[1]
    spec.rename(tmp_path / "gone.json")
    window.files.open_model_file(str(tmp_path / "gone.safetensors"), str(tmp_path / "gone.json"))
    qtbot.waitUntil(lambda: "gone.safetensors" in window.banner_text(), timeout=ENGINE_WAIT_MS)
    assert "\n" not in window.banner_text()
    assert not window.app_state.read_only and window.app_state.main.step == 2
    # a pickle is never loaded: the banner says how to convert it
    pickled = tmp_path / "model.pt"
    pickled.write_bytes(b"\x80\x04\x95not really a pickle")
    window.files.open_model_file(str(pickled), str(tmp_path / "gone.json"))
    qtbot.waitUntil(lambda: "weights_only=True" in window.banner_text(), timeout=ENGINE_WAIT_MS)
    assert not window.app_state.read_only and window.app_state.main.step == 2
    assert window.actions_by_name["act_play"].isEnabled()


def test_file_open_model_asks_for_the_spec_only_when_none_is_beside(
    make_window, qtbot, tmp_path, monkeypatch
):
    net = make_net(kind="rnn")
    weights, spec = save_net(tmp_path, net)
    window = make_window()
    window.docks["dock_gradflow"].raise_()
    file_menu = window.menuBar().actions()[0].menu()
    assert window.actions_by_name["act_open_model"] in file_menu.actions()
    asked: list[str] = []

    def answer(_parent, title, *_args):
        asked.append(title)
        return (str(weights), "") if not asked[1:] else (str(spec), "")

    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(answer))
    window.actions_by_name["act_open_model"].trigger()
    qtbot.waitUntil(lambda: _opened(window), timeout=ENGINE_WAIT_MS)
    assert len(asked) == 1  # model.json lies beside model.safetensors

    elsewhere = tmp_path / "specs"
    elsewhere.mkdir()
    spec = spec.rename(elsewhere / "any.json")
    window.controller.reset()
    qtbot.waitUntil(lambda: not window.app_state.read_only, timeout=ENGINE_WAIT_MS)
    asked.clear()
    window.actions_by_name["act_open_model"].trigger()
    qtbot.waitUntil(lambda: _opened(window), timeout=ENGINE_WAIT_MS)
    assert len(asked) == 2 and "spec" in asked[1]


def test_rnnviz_open_checks_the_files_before_the_window(monkeypatch, capsys, tmp_path):
    seen = stub_window(monkeypatch)
    weights, spec = save_net(tmp_path, make_net(kind="lstm"))
    argv = ["open", str(weights), "--screenshot", "s.png", "--size", "1280x720", "--probe", "ab"]
    assert main(argv) == 0
    options = seen[-1]
    assert options.model == (str(weights.resolve()), str(spec.resolve()))  # the .json beside
    assert (options.size, options.probe_text) == ((1280, 720), "ab")
    other = spec.rename(tmp_path / "other.json")
    assert main(["open", str(weights), "--spec", str(other)]) == 0
    assert seen[-1].model == (str(weights.resolve()), str(other.resolve()))

    capsys.readouterr()
    (tmp_path / "model.pt").write_bytes(b"\x80\x04\x95 a pickle")
    bad = [
        (["open", str(weights)], "no spec beside it"),
        (["open", str(tmp_path / "model.pt"), "--spec", str(other)], "weights_only=True"),
        (["open", str(weights), "--spec", str(other), "--session", "s"], "--session does not"),
        (["open", str(weights), "--spec", str(other), "--train-steps", "5"], "is not trained"),
    ]
    for argv, said in bad:
        count = len(seen)
        assert main(argv) == 2, argv
        assert len(seen) == count  # no window
        err = capsys.readouterr().err
        assert err.startswith("error: ") and said in err, (argv, err)
