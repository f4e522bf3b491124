"""The timeline: stored snapshots, scrubbing, the learning film (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest
from _state_helpers import make_state, new_run, rolled_back
from _timeline_helpers import shown_on, train_in_steps
from PySide6.QtCore import Qt

from rnnviz.core.film import film_row
from rnnviz.core.messages import ParamSnapshot
from rnnviz.core.probe import model_from_params, probe
from rnnviz.core.vocab import Vocab

ENGINE_WAIT_MS = 30_000
TEXT = "abcabcab"


def core_probe(window, step: int):
    """The probe of the parameters stored for ``step``, computed directly in core."""
    stored = window.app_state.snapshots.nearest(step)
    assert stored is not None and stored.step == step
    snap = window.app_state.snapshot
    model = model_from_params(snap.config.model, len(snap.vocab_tokens), dict(stored.params))
    return probe(model, Vocab(snap.vocab_tokens), window.app_state.probe_text)


@pytest.fixture
def window(make_window, qtbot):
    w = make_window()
    w.set_probe_text(TEXT)
    w.show_panel("gradflow")  # the gradient flow is probed too, and compared
    train_in_steps(qtbot, w, 4)
    return w


def test_scrubbing_to_a_step_shows_exactly_that_snapshots_probe(window, qtbot):
    steps = window.app_state.snapshots.steps()
    assert len(steps) >= 5 and steps[0] == 0
    target = steps[2]
    window.panels.timeline.slider().setValue(2)  # the user drags the slider
    qtbot.waitUntil(lambda: shown_on(window, target), timeout=5000)
    expect = core_probe(window, target)
    got = window.probe_result
    np.testing.assert_allclose(got.probs, expect.probs, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.hidden, expect.hidden, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got.topk_ids, expect.topk_ids)
    assert got.grad_flow is not None
    np.testing.assert_allclose(got.grad_flow, expect.grad_flow, rtol=1e-4, atol=1e-8)
    newest = window.app_state.main.step
    label = f"model at step {target:,} of {newest:,}"
    assert window.panels.timeline.label_text() == label
    assert window.panels.timeline.shown_label() == f"step {target:,} of {newest:,}"
    for name in ("dock_probe_text", "dock_softmax", "dock_hidden", "dock_unrolled"):
        note = window.docks[name].titleBarWidget().note
        assert note.isVisibleTo(window.docks[name]) and label in note.text()
    # the step view recomputes on the same model
    detail, why = window.probes.step_detail(1)
    assert why == ""
    np.testing.assert_allclose(detail.softmax.ravel(), expect.probs[1], rtol=1e-5, atol=1e-7)


def test_keys_move_between_snapshots_and_live_returns(window, qtbot):
    steps = window.app_state.snapshots.steps()
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_BracketLeft)  # live -> the snapshot before the newest
    qtbot.waitUntil(lambda: shown_on(window, steps[-2]), timeout=5000)
    qtbot.keyClick(window, Qt.Key.Key_BracketLeft)
    qtbot.waitUntil(lambda: shown_on(window, steps[-3]), timeout=5000)
    qtbot.keyClick(window, Qt.Key.Key_BracketRight)
    qtbot.waitUntil(lambda: shown_on(window, steps[-2]), timeout=5000)
    assert not window.app_state.live
    assert window.panels.timeline.live_button().isEnabled()
    qtbot.mouseClick(window.panels.timeline.live_button(), Qt.MouseButton.LeftButton)
    assert window.app_state.live
    qtbot.waitUntil(lambda: shown_on(window, steps[-1]), timeout=5000)
    assert window.panels.timeline.label_text() == f"live: step {steps[-1]:,}"
    assert window.panels.timeline.shown_label() == "training time"
    assert not window.docks["dock_softmax"].titleBarWidget().note.isVisibleTo(window)


def test_brackets_typed_in_the_probe_text_are_text(window, qtbot):
    edit = window.panels.probe_text.line_edit()
    edit.setFocus()
    qtbot.keyClicks(edit, "[")
    assert edit.text().endswith("[")
    assert window.app_state.live


def test_training_goes_on_while_an_old_model_is_shown(window, qtbot):
    steps = window.app_state.snapshots.steps()
    window.app_state.view_step(steps[1])
    qtbot.waitUntil(lambda: shown_on(window, steps[1]), timeout=5000)
    before = window.app_state.main.step
    train_in_steps(qtbot, window, 2)
    assert window.app_state.main.step > before
    assert shown_on(window, steps[1])  # the new snapshots did not replace the one chosen
    newest = f"of {window.app_state.main.step:,}"
    qtbot.waitUntil(lambda: window.panels.timeline.label_text().endswith(newest), timeout=2000)
    note = window.docks["dock_softmax"].titleBarWidget().note
    assert note.text().endswith(newest)
    window.app_state.go_live()
    qtbot.waitUntil(lambda: shown_on(window, window.app_state.main.step), timeout=5000)


def test_the_film_has_one_row_per_snapshot_and_a_click_scrubs(window, qtbot):
    window.show_panel("film")
    qtbot.waitUntil(window.timeline.film_done, timeout=10_000)
    window.timeline.show_film()
    film = window.panels.film
    steps = window.app_state.snapshots.steps()
    matrix = film.matrix()
    assert matrix.shape == (len(steps), len(TEXT))
    snap = window.app_state.snapshot
    vocab = Vocab(snap.vocab_tokens)
    for i, stored in enumerate(window.app_state.snapshots.snapshots()):
        row = film_row(snap.config.model, vocab, stored.step, stored.params, TEXT)
        np.testing.assert_allclose(matrix[i], row.p_true, rtol=1e-6)
    assert not np.allclose(matrix[-1], matrix[0], equal_nan=True)  # the model moved
    assert film.viewed_row() == len(steps) - 1
    # a click on row 1 shows that snapshot everywhere
    film_view = film._graphics  # noqa: SLF001 - the view the user clicks in
    pos = film_view.mapFromScene(film.scene_pos_of(2, 1))
    qtbot.mouseClick(film_view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.waitUntil(lambda: shown_on(window, steps[1]), timeout=5000)
    assert film.viewed_row() == 1
    assert f"step {steps[1]:,} predicts" in film.readout_text()
    # a new text: every row again
    window.set_probe_text("cab")
    qtbot.waitUntil(
        lambda: window.timeline.film_done() and film.matrix().shape[1] == 3, timeout=10_000
    )
    window.timeline.show_film()
    assert film.matrix().shape == (len(steps), 3)


def test_a_rollback_drops_the_later_snapshots_and_a_view_of_them():
    state = make_state()
    new_run(state)
    params = {"b": np.zeros(2, dtype=np.float32)}
    for step in (0, 10, 20, 30):
        state.apply(ParamSnapshot(0, step, state.config, ("a", "b"), params))
    chosen = []
    state.view_changed.connect(chosen.append)
    state.view_step(20)
    assert state.viewed_step == 20 and chosen[-1].step == 20
    rolled_back(state, 15)
    assert state.snapshots.steps() == [0, 10]
    assert state.live and chosen[-1].step == 30  # back to the newest model the state has


def test_generation_follows_the_timeline_with_a_fixed_seed(window, qtbot):
    from rnnviz.core.generation import generate_detail

    gen = window.panels.generation
    window.show_panel("generation")
    gen.set_prefix(window.app_state.snapshot.vocab_tokens[1] * 2)  # known to the model
    steps = window.app_state.snapshots.steps()

    def generated_on(step: int) -> bool:
        return (
            gen.generation() is not None
            and not gen.is_generating()
            and gen.model_text().startswith(f"step {step:,}")
        )

    def show(step: int) -> None:
        window.app_state.view_step(step)
        qtbot.waitUntil(lambda: shown_on(window, step) and generated_on(step), timeout=10_000)

    for step in (steps[1], steps[3]):
        show(step)
        shown = window.probes.current
        expect = generate_detail(shown.model, shown.vocab, gen.prefix(), gen.generation().ids.size)
        assert gen.generation().text == expect.text  # greedy, from that snapshot's model
    gen.set_mode("sample")
    qtbot.waitUntil(lambda: not gen.is_generating() and gen.generation().temperature > 0)
    sampled = gen.generated_text()
    show(steps[1])
    show(steps[3])  # back: the fixed seed gives the same sample of the same model
    assert gen.generation().temperature > 0 and gen.generated_text() == sampled
    gen.new_sample()
    qtbot.waitUntil(lambda: not gen.is_generating() and gen.generated_text() != sampled)


def test_the_neighbours_of_a_chosen_snapshot_are_probed_ahead(window, qtbot):
    s = window.app_state
    steps = s.snapshots.steps()
    s.view_step(steps[2])
    qtbot.waitUntil(lambda: shown_on(window, steps[2]), timeout=5000)
    before, after = s.neighbour_messages(window.probes.current.snapshot)
    assert (before.step, after.step) == (steps[1], steps[3])
    qtbot.waitUntil(
        lambda: window.probes.kept(before) and window.probes.kept(after), timeout=10_000
    )
    shown = []
    window.probes.shown.connect(shown.append)
    qtbot.keyClick(window, Qt.Key.Key_BracketLeft)  # answered from what was computed ahead
    qtbot.waitUntil(lambda: shown_on(window, steps[1]), timeout=5000)
    assert [p.snapshot.step for p in shown] == [steps[1]]  # no prefetch was ever shown
    expect = core_probe(window, steps[1])
    np.testing.assert_allclose(window.probe_result.probs, expect.probs, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        window.probe_result.grad_flow, expect.grad_flow, rtol=1e-4, atol=1e-8
    )


def test_once_scrubbed_every_stored_snapshot_is_probed_ahead(window, qtbot):
    s = window.app_state
    steps = s.snapshots.steps()
    s.view_step(steps[2])
    qtbot.waitUntil(lambda: shown_on(window, steps[2]), timeout=5000)
    stored = s.fill_messages(window.probes.current.snapshot)
    assert [m.step for m in stored][:3] == [steps[2], steps[1], steps[3]]  # nearest first
    assert sorted(m.step for m in stored) == steps[:-1]  # all but the newest (live)
    qtbot.waitUntil(lambda: all(window.probes.kept(m) for m in stored), timeout=20_000)
    shown = []
    window.probes.shown.connect(shown.append)
    window.panels.timeline.slider().setValue(0)  # a jump to the far end: computed already
    qtbot.waitUntil(lambda: shown_on(window, steps[0]), timeout=5000)
    assert [p.snapshot.step for p in shown] == [steps[0]]
    expect = core_probe(window, steps[0])
    np.testing.assert_allclose(window.probe_result.probs, expect.probs, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        window.probe_result.grad_flow, expect.grad_flow, rtol=1e-4, atol=1e-8
    )


def test_scrubbed_while_training_the_stored_snapshots_are_probed_ahead_until_live(window, qtbot):
    """While training nothing re-probes the live model once the panels show a past one:
    the probe thread fills the kept Probers then too; back on Live it stops."""
    s, probes = window.app_state, window.probes
    probes.set_training(True)  # as the window does while the engine trains
    steps = s.snapshots.steps()
    s.view_step(steps[1])
    qtbot.waitUntil(lambda: shown_on(window, steps[1]), timeout=5000)
    stored = s.fill_messages(probes.current.snapshot)
    qtbot.waitUntil(lambda: all(probes.kept(m) for m in stored), timeout=20_000)
    assert probes.ahead_done()
    s.go_live()
    qtbot.waitUntil(lambda: shown_on(window, s.snapshot.step), timeout=5000)
    assert probes.ahead_done() and probes._next_ahead() is None  # nothing past is wanted


def test_probing_ahead_stops_at_the_byte_budget(window, qtbot, monkeypatch):
    from rnnviz.gui.state import probe_scheduler

    probes, s = window.probes, window.app_state
    steps = s.snapshots.steps()
    one = probe_scheduler._prober_bytes(s.snapshot, TEXT)
    monkeypatch.setattr(probe_scheduler, "KEPT_BYTES", probes.kept_bytes + 2 * one)
    s.view_step(steps[3])
    qtbot.waitUntil(lambda: shown_on(window, steps[3]), timeout=5000)
    qtbot.wait(1500)  # time enough to probe every snapshot ahead, were there room
    stored = s.fill_messages(probes.current.snapshot)
    kept = [m.step for m in stored if probes.kept(m)]
    assert steps[3] in kept and len(kept) < len(stored)
    assert probes.kept_bytes <= probe_scheduler.KEPT_BYTES + one


def test_the_models_of_kept_probers_share_the_stored_arrays(window):
    from rnnviz.gui.state.probe_scheduler import snapshot_model

    s = window.app_state
    message = s.fill_messages(s.snapshot)[0]
    model = snapshot_model(message)
    for name, tensor in model.state_dict().items():
        assert np.shares_memory(tensor.numpy(), message.params[name]), name
    expect = core_probe(window, message.step)
    got = probe(model, Vocab(message.vocab_tokens), TEXT)
    np.testing.assert_array_equal(got.probs, expect.probs)
    np.testing.assert_array_equal(got.grad_flow, expect.grad_flow)


def test_a_new_run_starts_a_new_timeline():
    state = make_state()
    new_run(state)
    params = {"b": np.zeros(2, dtype=np.float32)}
    for step in (0, 10, 20):
        state.apply(ParamSnapshot(0, step, state.config, ("a", "b"), params))
    state.view_step(10)
    assert state.viewed_step == 10
    changed = []
    state.view_changed.connect(changed.append)
    new_run(state)  # a reset, a load: the old model's snapshots are not this run's
    assert len(state.snapshots) == 0 and state.live and changed == [None]
    assert state.timeline_label() == "live: step 0"
