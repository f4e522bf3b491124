"""The probe thread: newest request wins, errors reported, clean stop."""

from __future__ import annotations

import threading

import pytest

from rnnviz.gui.probe_worker import ProbeRequest, ProbeWorker


class FakeProber:
    """Records the texts it probes; the first probe blocks until released."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.release = threading.Event()
        self.started = threading.Event()

    def probe(self, text, with_grad_flow=True):  # type: ignore[no-untyped-def]
        self.started.set()
        self.release.wait(10)
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


def test_newest_request_wins(worker, qtbot):
    prober = FakeProber()
    answers: list[tuple[int, object]] = []
    worker.done.connect(lambda req, r, err, s: answers.append((req.ticket, r)))
    worker.submit(ProbeRequest(1, prober, "a", True))
    assert prober.started.wait(10)  # request 1 is computing
    assert not worker.idle()
    worker.submit(ProbeRequest(2, prober, "ab", True))
    worker.submit(ProbeRequest(3, prober, "abc", False))  # replaces 2, still waiting
    prober.release.set()
    qtbot.waitUntil(lambda: worker.idle() and len(answers) == 2, timeout=10_000)
    assert prober.texts == ["a", "abc"]
    assert answers == [(1, "a (whole)"), (3, "abc (whole)")]


def test_a_failing_probe_is_reported_not_raised(worker, qtbot):
    prober = FakeProber()
    prober.release.set()
    with qtbot.waitSignal(worker.done, timeout=10_000) as blocker:
        worker.submit(ProbeRequest(7, prober, "boom", True))
    request, result, error, _seconds = blocker.args
    assert request.ticket == 7 and result is None
    assert error == "ValueError: no such character"


def test_stop_ends_the_thread_and_later_requests_are_ignored(qtbot):
    worker = ProbeWorker()
    prober = FakeProber()
    prober.release.set()
    with qtbot.waitSignal(worker.done, timeout=10_000):
        worker.submit(ProbeRequest(1, prober, "a", False))
    worker.stop()
    assert not worker.isRunning()
    worker.submit(ProbeRequest(2, prober, "b", False))
    assert not worker.isRunning() and prober.texts == ["a"]
