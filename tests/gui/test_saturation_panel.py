"""The gate-saturation panel (issue 16): its dots are core.gates.model_saturation of the model
shown on the run's validation batch, computed only while the panel is on screen, at most once
an interval, with trails that grow and stop growing; a click selects the unit everywhere; the
plain RNN gets a sentence, not an empty plot."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from _state_helpers import FakeClock, make_state
from _timeline_helpers import train_in_steps
from PySide6.QtCore import Qt

from rnnviz.core.batches import BatchSource
from rnnviz.core.config import CorpusConfig, ModelConfig, RunConfig, TrainConfig
from rnnviz.core.corpus import load_corpus
from rnnviz.core.gates import Saturation, model_saturation
from rnnviz.core.messages import ParamSnapshot, RunInfo
from rnnviz.core.model import build_model
from rnnviz.core.probe import model_from_params, params_to_numpy
from rnnviz.core.vocab import Vocab
from rnnviz.gui.panels.saturation import PLAIN_MESSAGE, SaturationPanel
from rnnviz.gui.state.saturation_worker import (
    TRAIL_LENGTH,
    VALIDATION_ROWS,
    SaturationFeed,
    SaturationResult,
    validation_batch,
)

# conftest's tiny run, gated
LSTM_CONFIG = RunConfig(
    corpus=CorpusConfig(source="synthetic:repeat", synthetic_length=2000),
    model=ModelConfig(kind="lstm", hidden_size=16),
    train=TrainConfig(
        batch_size=16, num_steps=8, windows_per_epoch=64, val_windows=16, val_every=10
    ),
)
GRU_CONFIG = replace(LSTM_CONFIG, model=ModelConfig(kind="gru", hidden_size=12))
ENGINE_WAIT_MS = 30_000  # as conftest: a spawned engine imports torch first
WAIT_MS = 10_000


def expected(config: RunConfig, snapshot: ParamSnapshot, step: int) -> dict[str, Saturation]:
    """core's saturation of the parameters stored for ``step``, on the same batch."""
    model = model_from_params(config.model, len(snapshot.vocab_tokens), dict(snapshot.params))
    batch = np.array(validation_batch(config, snapshot.vocab_tokens))  # torch: a writable copy
    return {key.split(".")[-1]: sat for key, sat in model_saturation(model, batch).items()}


def on_screen(window) -> bool:
    return window.panels.saturation.on_screen()


# ------------------------------------------------------------------ the batch


def test_the_batch_is_a_spread_of_the_engines_own_validation_windows():
    config = LSTM_CONFIG
    corpus = load_corpus(config.corpus, seed=config.train.seed)
    vocab = Vocab.from_text(corpus.text)
    batch = validation_batch(config, vocab.tokens)
    source = BatchSource(vocab.encode(corpus.text), config.train, config.corpus.val_fraction)
    windows = np.concatenate([x.numpy() for x, _ in source.val_batches()])
    assert batch.shape == (min(VALIDATION_ROWS, len(windows)), config.train.num_steps)
    rows = {tuple(r) for r in windows}
    assert all(tuple(r) in rows for r in batch)
    assert len({tuple(r) for r in batch}) == len(batch) or len(windows) < VALIDATION_ROWS
    assert np.array_equal(batch[0], windows[0]) and np.array_equal(batch[-1], windows[-1])
    assert np.array_equal(batch, validation_batch(config, vocab.tokens))  # the same every time
    assert not batch.flags.writeable


# ------------------------------------------------------------------ in the window


@pytest.fixture
def lstm_window(make_window):
    return make_window(LSTM_CONFIG)


def test_the_dots_are_model_saturation_of_the_model_shown(lstm_window, qtbot):
    window = lstm_window
    window.show_panel("saturation")
    panel, feed = window.panels.saturation, window.saturation
    qtbot.waitUntil(lambda: on_screen(window), timeout=WAIT_MS)
    train_in_steps(qtbot, window, 2)
    qtbot.waitUntil(lambda: feed.done() and panel.message() == "", timeout=ENGINE_WAIT_MS)
    snapshot = window.app_state.shown_snapshot
    assert panel.gates() == ("i", "f", "o") and panel.shown_gates() == ("i", "f", "o")
    want = expected(LSTM_CONFIG, snapshot, snapshot.step)
    for name in ("i", "f", "o"):
        x, y = panel.dots(name)
        np.testing.assert_array_equal(x, want[name].left)
        np.testing.assert_array_equal(y, want[name].right)
    assert f"step {snapshot.step:,}:" in panel.readout_text()
    # one gate large, as the selector does
    panel.choose_gate("f")
    assert panel.shown_gates() == ("f",)
    np.testing.assert_array_equal(panel.dots("f")[1], want["f"].right)
    # the timeline: an older model, its dots
    steps = window.app_state.snapshots.steps()
    window.app_state.view_step(steps[0])
    qtbot.waitUntil(
        lambda: feed.done() and feed.result(steps[0]) is not None, timeout=ENGINE_WAIT_MS
    )
    stored = window.app_state.shown_snapshot
    assert stored.step == steps[0]
    np.testing.assert_array_equal(panel.dots("f")[0], expected(LSTM_CONFIG, stored, 0)["f"].left)
    note = window.docks["dock_saturation"].titleBarWidget().note
    assert f"model at step {steps[0]:,}" in note.text()


def test_nothing_is_computed_while_the_panel_is_off_screen(lstm_window, qtbot):
    window = lstm_window
    feed = window.saturation
    computed: list[int] = []
    feed.worker.done.connect(lambda result: computed.append(result.step))
    assert not on_screen(window)  # behind another dock's tab in the default layout
    train_in_steps(qtbot, window, 3)
    qtbot.wait(200)
    assert computed == [] and not feed.worker.isRunning()
    window.show_panel("saturation")
    qtbot.waitUntil(lambda: bool(computed) and feed.done(), timeout=ENGINE_WAIT_MS)
    assert computed == [window.app_state.snapshot.step]  # the model shown, once
    window.show_panel("softmax")  # the front tab of its group again
    qtbot.waitUntil(lambda: not on_screen(window), timeout=WAIT_MS)
    before = list(computed)
    train_in_steps(qtbot, window, 2)
    qtbot.wait(1200)  # past the interval: a refresh would have been due
    assert computed == before


def test_a_click_on_a_dot_selects_that_unit_everywhere(lstm_window, qtbot):
    window = lstm_window
    panel = window.panels.saturation
    window.focus_view.focus("saturation")
    qtbot.waitUntil(lambda: on_screen(window), timeout=WAIT_MS)
    qtbot.waitUntil(window.saturation.done, timeout=ENGINE_WAIT_MS)  # its own dots are in
    # spread dots (a model this small and young keeps them near 0): one per place
    H = 16
    left = np.linspace(0.02, 0.6, H)
    right = np.linspace(0.9, 0.05, H)
    sat = Saturation(left, right, 100)
    step = window.app_state.shown_snapshot.step
    result = SaturationResult(0, step, "lstm", ({"i": sat, "f": sat, "o": sat},), 4, 8, 0.0)
    panel.show_saturation(result, ())
    view = panel.graphics()
    qtbot.waitUntil(lambda: view.viewport().isVisible(), timeout=WAIT_MS)
    qtbot.wait(50)  # laid out: the dots have their scene positions
    unit = 11
    pos = view.mapFromScene(panel.scene_pos_of("f", unit))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert window.app_state.unit == unit
    assert panel.unit() == unit
    assert window.panels.hidden.unit() == unit  # the hidden-state panel shows it
    assert "unit 11" in panel.readout_text()
    # and a unit chosen elsewhere is ringed here
    window.app_state.set_unit(3)
    assert panel.unit() == 3
    window.focus_view.unfocus()


def test_the_plain_rnn_gets_a_sentence_not_a_plot(make_window, qtbot):
    window = make_window()  # the fast RNN
    window.show_panel("saturation")
    panel = window.panels.saturation
    qtbot.waitUntil(lambda: on_screen(window), timeout=WAIT_MS)
    train_in_steps(qtbot, window, 1)
    assert panel.message() == PLAIN_MESSAGE
    assert "GRU or LSTM" in PLAIN_MESSAGE and "model.kind=lstm" in PLAIN_MESSAGE
    assert panel.gates() == ()
    assert window.saturation.done() and not window.saturation.worker.isRunning()


# ------------------------------------------------------------------ the feed, without an engine


def _info(config: RunConfig, tokens: tuple[str, ...]) -> RunInfo:
    return RunInfo(0, config, tokens, "test", 2000, ())


@pytest.fixture
def fed(qtbot):
    """A state fed a GRU run's snapshots by hand, a feed on a fake clock, a shown panel."""
    config = GRU_CONFIG
    corpus = load_corpus(config.corpus, seed=config.train.seed)
    tokens = Vocab.from_text(corpus.text).tokens
    state = make_state(config=config)
    state.apply(_info(config, tokens))
    clock = FakeClock()
    feed = SaturationFeed(state, clock=clock)
    feed.on_screen = lambda: True
    panel = SaturationPanel()
    qtbot.addWidget(panel)
    panel.resize(900, 400)
    panel.show()
    panel.set_kind(feed.kind())
    feed.shown.connect(panel.show_saturation)
    shown: list[tuple[SaturationResult | None, tuple[SaturationResult, ...]]] = []
    feed.shown.connect(lambda result, trail: shown.append((result, trail)))
    yield state, feed, clock, panel, tokens, shown
    feed.stop()


def _snapshot(config: RunConfig, tokens, step: int) -> ParamSnapshot:
    model = build_model(len(tokens), config.model, seed=step)  # another model every step
    return ParamSnapshot(0, step, config, tokens, params_to_numpy(model))


def test_trails_grow_with_each_refresh_and_stop_at_their_length(fed, qtbot):
    state, feed, clock, panel, tokens, shown = fed
    for n, step in enumerate(range(0, 10 * (TRAIL_LENGTH + 3), 10)):
        clock.advance(1.0)
        state.apply(_snapshot(GRU_CONFIG, tokens, step))
        qtbot.waitUntil(lambda s=step: feed.done() and shown[-1][0].step == s, timeout=WAIT_MS)
        result, trail = shown[-1]
        assert len(trail) == min(n, TRAIL_LENGTH)
        assert [r.step for r in trail] == list(range(0, step, 10))[-TRAIL_LENGTH:]
        assert panel.trail_segments("z") == min(n, TRAIL_LENGTH)
        want = expected(GRU_CONFIG, state.snapshot, step)["z"]
        np.testing.assert_array_equal(panel.dots("z")[0], want.left)
    assert panel.gates() == ("r", "z")
    # the timeline on an older step: its trail runs back from there, not from the newest
    state.view_step(30)
    assert shown[-1][0].step == 30 and [r.step for r in shown[-1][1]] == [0, 10, 20]
    assert panel.trail_segments("r") == 3


def test_at_most_one_computation_an_interval(fed, qtbot):
    state, feed, clock, panel, tokens, shown = fed
    computed: list[int] = []
    feed.worker.done.connect(lambda result: computed.append(result.step))
    state.apply(_snapshot(GRU_CONFIG, tokens, 0))
    qtbot.waitUntil(lambda: feed.done(), timeout=WAIT_MS)
    clock.advance(0.3)
    state.apply(_snapshot(GRU_CONFIG, tokens, 5))  # too soon: waits
    state.apply(_snapshot(GRU_CONFIG, tokens, 10))
    qtbot.wait(100)
    assert computed == [0] and not feed.done()
    clock.advance(0.8)
    feed.refresh()  # the interval is over (the feed's timer calls this)
    qtbot.waitUntil(lambda: feed.done() and len(computed) == 2, timeout=WAIT_MS)
    qtbot.wait(100)
    assert computed == [0, 10]  # the newest; step 5 was never computed
    # a new run forgets the old one's results and says so
    state.apply(_info(GRU_CONFIG, tokens))
    assert shown[-1] == (None, ()) and feed.result(10) is None
    assert panel.message() != ""


def test_a_validation_text_that_cannot_be_read_is_said_not_retried(qtbot, tmp_path):
    config = replace(
        GRU_CONFIG, corpus=replace(GRU_CONFIG.corpus, source=str(tmp_path / "gone.txt"))
    )
    tokens = ("<unk>", "a", "b", "c")
    state = make_state(config=config)
    state.apply(_info(config, tokens))
    clock = FakeClock()
    feed = SaturationFeed(state, clock=clock)
    feed.on_screen = lambda: True
    panel = SaturationPanel()
    qtbot.addWidget(panel)
    panel.set_kind(feed.kind())
    feed.failed.connect(panel.show_failure)
    try:
        with qtbot.waitSignal(feed.failed, timeout=WAIT_MS):
            state.apply(_snapshot(config, tokens, 0))
        assert feed.done()
        assert "could not be computed" in panel.message() and "gone.txt" in panel.message()
        computed: list[int] = []
        feed.worker.done.connect(lambda result: computed.append(result.step))
        feed.worker.failed.connect(lambda key, text: computed.append(-1))
        clock.advance(5.0)  # well past the interval
        state.apply(_snapshot(config, tokens, 10))
        qtbot.wait(100)
        assert computed == []  # not asked again for this run
    finally:
        feed.stop()


# ------------------------------------------------------------------ stacked layers


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_each_stacked_layers_fractions_are_a_direct_count(qtbot, kind):
    """The worker's per-layer fractions against counting each sequence's gates one by one
    (``model_gates``, unbatched, no chunks); the panel draws the layer chosen."""
    from rnnviz.core.gates import SIGMOID_GATES, model_gates
    from rnnviz.gui.state.saturation_worker import SaturationJob, compute

    config = replace(LSTM_CONFIG, model=ModelConfig(kind=kind, hidden_size=10, num_layers=3))
    corpus = load_corpus(config.corpus, seed=config.train.seed)
    vocab = Vocab.from_text(corpus.text)
    model = build_model(len(vocab), config.model, seed=2)
    with torch.no_grad():  # wide weights: some gates saturate, some do not
        for p in model.parameters():
            p.uniform_(-1.5, 1.5)
    batch = validation_batch(config, vocab.tokens)
    job = SaturationJob(0, 7, config, tuple(vocab.tokens), params_to_numpy(model))
    result = compute(job, batch)
    assert len(result.layers) == 3 and result.gates is result.layers[-1]
    records = [model_gates(model, row) for row in np.array(batch)]
    saturated_somewhere = False
    for layer in range(3):
        for name in SIGMOID_GATES[kind]:
            values = np.stack([r.trace(layer)[name] for r in records])  # (B, T, H)
            left = (values < 0.1).sum(axis=(0, 1)) / (values.shape[0] * values.shape[1])
            right = (values > 0.9).sum(axis=(0, 1)) / (values.shape[0] * values.shape[1])
            sat = result.layers[layer][name]
            np.testing.assert_allclose(sat.left, left, atol=1e-12, err_msg=f"{layer} {name}")
            np.testing.assert_allclose(sat.right, right, atol=1e-12, err_msg=f"{layer} {name}")
            saturated_somewhere |= bool(left.any() and right.any())
    assert saturated_somewhere  # not a comparison of zeros
    assert not np.array_equal(result.layers[0]["z" if kind == "gru" else "f"].left,
                              result.layers[1]["z" if kind == "gru" else "f"].left)  # fmt: skip

    panel = SaturationPanel()
    qtbot.addWidget(panel)
    chosen: list[int] = []
    panel.layer_chosen.connect(chosen.append)
    panel.show_saturation(result)
    box = panel.layer_selector()
    assert not box.isHidden() and box.count() == 3 and box.itemText(0) == "layer 3"
    gate = SIGMOID_GATES[kind][0]
    assert panel.layer() == 2  # the top one first, as the hidden-state panel
    np.testing.assert_array_equal(panel.dots(gate)[0], result.layers[2][gate].left)
    box.setCurrentIndex(box.findData(0))
    assert chosen == [0] and panel.layer() == 0
    np.testing.assert_array_equal(panel.dots(gate)[0], result.layers[0][gate].left)
    np.testing.assert_array_equal(panel.dots(gate)[1], result.layers[0][gate].right)
    assert box.currentText() == "layer 1" and "unit 0" in panel.readout_text()
    panel.set_layer(1)  # from another panel: silent
    assert chosen == [0]
    np.testing.assert_array_equal(panel.dots(gate)[1], result.layers[1][gate].right)
