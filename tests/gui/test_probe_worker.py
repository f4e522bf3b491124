"""The probe thread: newest request wins, cancelling, errors reported, clean stop."""

from __future__ import annotations

import threading

import pytest

from rnnviz.gui.state.probe_worker import ProbeJob, ProbeWorker


class FakeProber:
    """Records the texts it probes; the first probe blocks until released."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.cancelled: list[str] = []
        self.release = threading.Event()
        self.started = threading.Event()

    def probe(self, text, with_grad_flow=True, cancelled=None):  # type: ignore[no-untyped-def]
        from rnnviz.core.probe import ProbeCancelled

        self.started.set()
        self.release.wait(10)
        if cancelled is not None and cancelled():
            self.cancelled.append(text)
            raise ProbeCancelled
        if text == "boom":
            raise ValueError("no such character")
        self.texts.append(text)
        return f"{text} (whole)"


@pytest.fixture
def worker(qtbot):
    w = ProbeWorker()
    yield w
    w.stop()
    assert not w.isRunning()


def test_newest_request_wins_and_cancels_the_one_computing(worker, qtbot):
    prober = FakeProber()
    answers: list[tuple[int, object]] = []
    worker.done.connect(lambda req, r, err, s: answers.append((req.ticket, r)))
    worker.submit(ProbeJob(1, prober, "a", True))
    assert prober.started.wait(10)  # request 1 is computing
    assert not worker.idle()
    assert worker.current().ticket == 1
    worker.submit(ProbeJob(2, prober, "ab", True))
    worker.submit(ProbeJob(3, prober, "abc", False))  # replaces 2, still waiting
    prober.release.set()
    qtbot.waitUntil(lambda: worker.idle() and len(answers) == 1, timeout=10_000)
    assert worker.current() is None
    assert prober.cancelled == ["a"]  # 1 was obsolete once 2 came: it answers nothing
    assert prober.texts == ["abc"]
    assert answers == [(3, "abc (whole)")]


def _computing(worker: ProbeWorker, text: str) -> tuple[FakeProber, list[int]]:
    """A FakeProber whose request 1 for ``text`` is computing (blocked), and the tickets the
    worker answers."""
    prober = FakeProber()
    answers: list[int] = []
    worker.done.connect(lambda req, r, err, s: answers.append(req.ticket))
    worker.submit(ProbeJob(1, prober, text, True))
    assert prober.started.wait(10)
    return prober, answers


def test_a_request_for_the_same_text_waits_instead_of_cancelling(worker, qtbot):
    """A newer snapshot's re-probe of the same text must not starve a long probe."""
    prober, answers = _computing(worker, "same")
    worker.submit(ProbeJob(2, prober, "same", True))
    prober.release.set()
    qtbot.waitUntil(lambda: worker.idle() and len(answers) == 2, timeout=10_000)
    assert prober.cancelled == [] and answers == [1, 2]


def test_cancel_stops_the_probe_computing_and_drops_the_waiting_one(worker, qtbot):
    prober, answers = _computing(worker, "a")
    worker.cancel()
    prober.release.set()
    qtbot.waitUntil(worker.idle, timeout=10_000)
    assert prober.cancelled == ["a"] and answers == []
    with qtbot.waitSignal(worker.done, timeout=10_000):  # the next request is not cancelled
        worker.submit(ProbeJob(2, prober, "b", True))
    assert prober.texts == ["b"]


def test_a_failing_probe_is_reported_not_raised(worker, qtbot):
    prober = FakeProber()
    prober.release.set()
    with qtbot.waitSignal(worker.done, timeout=10_000) as blocker:
        worker.submit(ProbeJob(7, prober, "boom", True))
    request, result, error, _seconds = blocker.args
    assert request.ticket == 7 and result is None
    assert error == "ValueError: no such character"


def test_stop_ends_the_thread_and_later_requests_are_ignored(qtbot):
    worker = ProbeWorker()
    prober = FakeProber()
    prober.release.set()
    with qtbot.waitSignal(worker.done, timeout=10_000):
        worker.submit(ProbeJob(1, prober, "a", False))
    worker.stop()
    assert not worker.isRunning()
    worker.submit(ProbeJob(2, prober, "b", False))
    assert not worker.isRunning() and prober.texts == ["a"]
