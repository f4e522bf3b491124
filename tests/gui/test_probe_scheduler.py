"""The probe scheduler alone: a fake clock, snapshots built here, no engine and no window.

Training is ``set_training(True)``; a snapshot from the engine is ``snapshot_arrived``; a key in
the probe text is ``text_edited``. Results are read from the ``shown`` signal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from _state_helpers import FakeClock
from pytestqt.qtbot import QtBot

from rnnviz.core import probe as core_probe_module
from rnnviz.core.config import ModelConfig, RunConfig
from rnnviz.core.messages import ParamSnapshot
from rnnviz.core.model import build_model
from rnnviz.core.probe import Prober, ProbeResult, model_from_params, params_to_numpy, probe
from rnnviz.core.vocab import Vocab
from rnnviz.gui.state.probe_scheduler import ProbeScheduler, ProbeTiming, ShownProbe
from rnnviz.gui.state.probe_worker import ProbeJob

WAIT_MS = 10_000
CORPUS = "the time machine by h g wells "
# hidden 16 as the GUI tests' tiny config: a 300-character re-probe with the gradient flow is
# ~23 M multiply-adds, above ProbeTiming.inline_work; one key at its end is ~0.1 M
CONFIG = RunConfig(model=ModelConfig(kind="fast", hidden_size=16))
LONG_TEXT = ("the time machine " * 20)[:300]
TIMING = ProbeTiming()


def make_snapshot(step: int, seed: int | None = None) -> ParamSnapshot:
    """As the engine's ``Session._snapshot``; another seed stands for the parameters a few
    training steps later."""
    vocab = Vocab.from_text(CORPUS)
    model = build_model(len(vocab), CONFIG.model, seed=step if seed is None else seed)
    return ParamSnapshot(
        run_id=0,
        step=step,
        config=CONFIG,
        vocab_tokens=vocab.tokens,
        params=params_to_numpy(model),
    )


def core_probe(snapshot: ParamSnapshot, text: str) -> ProbeResult:
    model = model_from_params(
        snapshot.config.model, len(snapshot.vocab_tokens), dict(snapshot.params)
    )
    return probe(model, Vocab(snapshot.vocab_tokens), text, with_grad_flow=False)


class ProbeLog:
    """Wraps ``core.probe.Prober.probe`` (the class the scheduler builds its probers from):
    records how many leading steps each result reused, and holds probes on the probe thread
    while ``gate`` is clear."""

    def __init__(self) -> None:
        self.results: list[tuple[ProbeResult, int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def reused(self, result: ProbeResult) -> int:
        with self._lock:
            for r, steps in self.results:
                if r is result:
                    return steps
        raise AssertionError(f"no probe made {result.text!r}")


@pytest.fixture
def probe_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProbeLog]:
    log = ProbeLog()
    original = core_probe_module.Prober.probe

    def recording(self: Prober, text: str, *args: Any, **kwargs: Any) -> ProbeResult:
        if threading.current_thread() is not threading.main_thread():
            assert log.gate.wait(WAIT_MS / 1000)
        result = original(self, text, *args, **kwargs)
        with log._lock:
            log.results.append((result, self.reused_steps))
        return result

    monkeypatch.setattr(core_probe_module.Prober, "probe", recording)
    yield log
    log.gate.set()  # a probe held on the thread must end before the scheduler stops


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_scheduler(clock: FakeClock) -> Iterator[Callable[..., ProbeScheduler]]:
    """``make_scheduler(timing=None)``: a scheduler on the fake clock; every one is stopped
    (its probe thread ended) at teardown."""
    made: list[ProbeScheduler] = []

    def make(timing: ProbeTiming | None = None) -> ProbeScheduler:
        scheduler = ProbeScheduler(clock=clock, timing=timing)
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        scheduler.stop()
        assert not scheduler.worker.isRunning()


def collect(scheduler: ProbeScheduler) -> list[ShownProbe]:
    shown: list[ShownProbe] = []
    scheduler.shown.connect(shown.append)
    return shown


def on_screen(scheduler: ProbeScheduler) -> ShownProbe:
    shown = scheduler.current
    assert shown is not None
    return shown


def shows_model_of(scheduler: ProbeScheduler, snapshot: ParamSnapshot) -> bool:
    return scheduler.current is not None and scheduler.current.snapshot is snapshot


def type_text(qtbot: QtBot, scheduler: ProbeScheduler, text: str) -> ShownProbe:
    """A key in the probe text, and the probe it shows in that pass of the event loop."""
    with qtbot.waitSignal(scheduler.shown, timeout=WAIT_MS) as blocker:
        scheduler.text_edited(text)
    assert blocker.args is not None
    shown: ShownProbe = blocker.args[0]
    return shown


# ------------------------------------------------------------------ keystrokes


def test_a_typed_key_reprobes_only_the_new_step_and_shows_the_same_numbers(
    make_scheduler: Callable[..., ProbeScheduler], probe_log: ProbeLog, qtbot: QtBot
) -> None:
    scheduler = make_scheduler()
    snap = make_snapshot(0)
    scheduler.snapshot_arrived(snap)
    assert type_text(qtbot, scheduler, "the time machin").result.text == "the time machin"
    shown = type_text(qtbot, scheduler, "the time machine")
    assert shown.result.text == "the time machine"
    assert shown is scheduler.current and shown.snapshot is snap
    assert probe_log.reused(shown.result) == len("the time machin")  # not the whole text again
    expected = core_probe(snap, "the time machine")
    np.testing.assert_allclose(shown.result.hidden, expected.hidden, atol=1e-5)
    np.testing.assert_allclose(shown.result.probs, expected.probs, atol=1e-5)


def test_a_key_typed_while_training_is_shown_at_once_and_the_newest_model_follows(
    make_scheduler: Callable[..., ProbeScheduler],
    clock: FakeClock,
    probe_log: ProbeLog,
    qtbot: QtBot,
) -> None:
    scheduler = make_scheduler()
    probed_on = make_snapshot(0)
    scheduler.snapshot_arrived(probed_on)
    text = "the time machine"
    scheduler.set_text(text)
    assert on_screen(scheduler).snapshot is probed_on
    scheduler.set_training(True)
    shown = collect(scheduler)
    # a snapshot newer than the model the last probe ran on, within the re-probe interval:
    # its re-probe waits
    newer = make_snapshot(1)
    scheduler.snapshot_arrived(newer)
    assert scheduler.throttled and shown == []
    key = type_text(qtbot, scheduler, text + "x")
    # the keystroke: shown on the model the scheduler had, reusing every earlier step (not
    # rebuilt from the newer snapshot, which would probe the whole text again)
    assert key.result.text == text + "x"
    assert key.snapshot is probed_on
    assert probe_log.reused(key.result) == len(text)
    # and after the re-probe interval (and a pause in the typing) the newest model takes over
    clock.advance(TIMING.typing_quiet_s + 0.1)
    qtbot.waitUntil(
        lambda: (
            scheduler.current is not None
            and scheduler.current.snapshot is not probed_on
            and scheduler.current.result.text == text + "x"
        ),
        timeout=WAIT_MS,
    )
    assert on_screen(scheduler).snapshot is newer and on_screen(scheduler).staggered
    np.testing.assert_allclose(
        on_screen(scheduler).result.probs, core_probe(newer, text + "x").probs, atol=1e-5
    )


def test_while_typing_reprobes_on_new_snapshots_wait_for_a_pause(
    make_scheduler: Callable[..., ProbeScheduler], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While training, keys are answered on the model on screen; a new snapshot's re-probe
    waits ``typing_quiet_s`` after the last key (a re-probe computing on the probe thread held
    keys back), unless the model on screen is ``max_stale_s`` old. A key stops a re-probe
    computing at once."""
    scheduler = make_scheduler()
    scheduler.snapshot_arrived(make_snapshot(0))
    scheduler.set_training(True)
    cancels: list[int] = []
    monkeypatch.setattr(scheduler.worker, "cancel", lambda: cancels.append(1))
    scheduler.text_edited("the tim")
    assert cancels == [1]
    quiet, min_interval = TIMING.typing_quiet_s, TIMING.min_interval_s
    # the last probe (here: now) costs far less than min_interval_s / cost_factor
    scheduler.probe()
    assert scheduler.reprobe_interval() == min_interval
    # a key now, the last probe min_interval_s + 0.1 ago
    clock.advance(min_interval + 0.1)
    scheduler.text_edited("the time")
    wait = scheduler.reprobe_wait()
    assert quiet - 0.1 < wait <= quiet
    assert scheduler.typing()
    # a pause in the typing: the last key quiet + 0.1 ago, the last probe min_interval + 0.1
    clock.advance(quiet - min_interval)
    scheduler.probe()
    clock.advance(min_interval + 0.1)
    assert scheduler.reprobe_wait() <= 0
    assert not scheduler.typing()
    # a stale model: a key now, the last probe max_stale_s + 0.1 ago
    scheduler.probe()
    clock.advance(TIMING.max_stale_s + 0.1)
    scheduler.text_edited("the time ")
    assert scheduler.reprobe_wait() <= 0
    # no typing: the re-probe interval alone
    untyped = make_scheduler()
    untyped.snapshot_arrived(make_snapshot(0))
    untyped.set_text("the time")
    assert untyped.reprobe_wait() == pytest.approx(min_interval, abs=0.05)


def test_a_snapshot_while_typing_is_reprobed_after_the_pause(
    make_scheduler: Callable[..., ProbeScheduler], clock: FakeClock, qtbot: QtBot
) -> None:
    """The re-probe a key held back comes once the typing pauses, on the newest snapshot."""
    scheduler = make_scheduler()
    scheduler.snapshot_arrived(make_snapshot(0))
    scheduler.set_training(True)
    type_text(qtbot, scheduler, "the tim")
    clock.advance(TIMING.min_interval_s + 0.1)
    newer = make_snapshot(1)
    scheduler.snapshot_arrived(newer)
    assert scheduler.throttled  # the key was typed within typing_quiet_s
    qtbot.wait(int(TIMING.typing_quiet_s * 1000) + 50)  # the timer fires; the fake clock stood
    assert not shows_model_of(scheduler, newer)
    assert scheduler.throttled  # still typing by the clock: the re-probe waits again
    clock.advance(TIMING.typing_quiet_s)
    qtbot.waitUntil(lambda: shows_model_of(scheduler, newer), timeout=WAIT_MS)
    assert not scheduler.throttled


# ------------------------------------------------------------------ the probe thread


def test_a_long_text_is_reprobed_on_the_probe_thread_while_training(
    make_scheduler: Callable[..., ProbeScheduler], clock: FakeClock, qtbot: QtBot
) -> None:
    """With the gradient flow, a 300-character re-probe is large: it runs on the probe thread
    and the scheduler takes its model over when the answer comes."""
    snap = make_snapshot(0)
    prober = Prober(
        model_from_params(CONFIG.model, len(snap.vocab_tokens), dict(snap.params)),
        Vocab(snap.vocab_tokens),
    )
    assert sum(prober.work(LONG_TEXT, True)) > TIMING.inline_work
    scheduler = make_scheduler()
    scheduler.set_grad_flow_wanted(True)
    scheduler.snapshot_arrived(snap)
    scheduler.set_text(LONG_TEXT)
    assert on_screen(scheduler).result.text == LONG_TEXT
    scheduler.set_training(True)
    clock.advance(10.0)  # past the re-probe interval, however long the probe above took
    with qtbot.waitSignal(scheduler.worker.done, timeout=WAIT_MS) as blocker:
        scheduler.snapshot_arrived(make_snapshot(1))
    assert blocker.args is not None
    request, result, error, _seconds = blocker.args
    assert error == "" and request.text == LONG_TEXT and request.with_grad_flow
    assert result.grad_flow is not None and result.grad_flow.shape == (300, 300)
    qtbot.waitUntil(
        lambda: (
            scheduler.current is not None
            and scheduler.current.snapshot is not None
            and scheduler.current.snapshot.step >= request.tag.snapshot.step
        ),
        timeout=WAIT_MS,
    )
    assert on_screen(scheduler).result.text == LONG_TEXT
    assert on_screen(scheduler).result is result and on_screen(scheduler).staggered


def test_a_long_paste_while_training_is_probed_on_the_probe_thread(
    make_scheduler: Callable[..., ProbeScheduler],
    probe_log: ProbeLog,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While training, an edit whose probe is large (a long paste) runs on the probe thread,
    so the window does not freeze; a key typed meanwhile waits for it and then reuses it."""
    # the 300-character paste is ~23 M multiply-adds, one key ~0.1 M
    scheduler = make_scheduler(ProbeTiming(key_thread_work=1_000_000))
    scheduler.set_grad_flow_wanted(True)
    scheduler.snapshot_arrived(make_snapshot(0))
    scheduler.set_training(True)
    submitted: list[tuple[str, bool]] = []
    submit = scheduler.worker.submit

    def record(request: ProbeJob) -> None:
        submitted.append((request.text, request.tag.keystroke))
        submit(request)

    monkeypatch.setattr(scheduler.worker, "submit", record)
    shown: list[tuple[str, int]] = []

    def on_shown(s: ShownProbe) -> None:  # with how many steps its prober reused
        if s.result is not None:
            shown.append((s.result.text, probe_log.reused(s.result)))

    scheduler.shown.connect(on_shown)
    scheduler.text_edited(LONG_TEXT)
    qtbot.waitUntil(lambda: (LONG_TEXT, True) in submitted, timeout=WAIT_MS)
    scheduler.text_edited(LONG_TEXT + "x")  # typed on, while the thread computes (or just after)
    # the key comes from the paste's cache: the thread finished the paste (no cancel)
    qtbot.waitUntil(lambda: (LONG_TEXT + "x", len(LONG_TEXT)) in shown, timeout=WAIT_MS)
    assert (LONG_TEXT + "x", True) not in submitted  # and the key was answered here


def test_an_answer_from_an_older_model_after_a_pause_is_followed_by_the_newest(
    make_scheduler: Callable[..., ProbeScheduler],
    probe_log: ProbeLog,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The probe thread answered an edit made while training, but training paused meanwhile
    with a newer snapshot, whose probe the edit held back: the scheduler probes again."""
    scheduler = make_scheduler(ProbeTiming(key_thread_work=1))  # every edit: the thread
    older = make_snapshot(0)
    scheduler.snapshot_arrived(older)
    scheduler.set_training(True)
    probe_log.gate.clear()  # the thread computes until the pause has come
    submitted: list[ProbeJob] = []
    submit = scheduler.worker.submit

    def record(request: ProbeJob) -> None:
        submitted.append(request)
        submit(request)

    monkeypatch.setattr(scheduler.worker, "submit", record)
    scheduler.text_edited("the time machine")
    qtbot.waitUntil(lambda: bool(submitted), timeout=WAIT_MS)
    assert submitted[-1].tag.snapshot is older
    scheduler.set_training(False)
    newest = make_snapshot(1)
    scheduler.snapshot_arrived(newest)  # the pause's snapshot: held back by the edit
    assert on_screen(scheduler).result is None
    shown = collect(scheduler)
    with qtbot.waitSignal(scheduler.shown, timeout=WAIT_MS):
        probe_log.gate.set()
    assert shown[0].snapshot is older and shown[0].result.text == "the time machine"
    qtbot.waitUntil(lambda: shows_model_of(scheduler, newest), timeout=WAIT_MS)
    assert on_screen(scheduler).result.text == "the time machine"
