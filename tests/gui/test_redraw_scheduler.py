"""The redraw scheduler alone: fake metric panels, a probe scheduler on a fake clock, no window.

The test ticks the scheduler itself (its timer is not started unless a test says so).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from _state_helpers import FakeClock
from PySide6.QtCore import QTimer
from pytestqt.qtbot import QtBot

from rnnviz.gui.state.probe_scheduler import ProbeScheduler, ProbeTiming
from rnnviz.gui.window.redraw import REDRAW_INTERVAL_MS, RedrawScheduler

TIMING = ProbeTiming()


class FakePanel:
    """A metric panel: ``redraw`` is called on every look, and draws (True) when dirty."""

    def __init__(self, name: str, calls: list[str], dirty: bool = True) -> None:
        self.name = name
        self.calls = calls
        self.dirty = dirty

    def redraw(self) -> bool:
        self.calls.append(self.name)
        return self.dirty


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def probes(clock: FakeClock) -> Iterator[ProbeScheduler]:
    scheduler = ProbeScheduler(clock=clock)
    yield scheduler
    scheduler.stop()


@pytest.fixture
def make_redraw(probes: ProbeScheduler) -> Iterator[Callable[..., RedrawScheduler]]:
    made: list[RedrawScheduler] = []

    def make(panels: list[FakePanel]) -> RedrawScheduler:
        redraw = RedrawScheduler(panels, probes)
        made.append(redraw)
        return redraw

    yield make
    for redraw in made:
        redraw.stop()


def panels_named(calls: list[str], *names: str) -> list[FakePanel]:
    return [FakePanel(name, calls) for name in names]


def test_typing_holds_the_metric_redraws_back(
    make_redraw: Callable[..., RedrawScheduler], probes: ProbeScheduler, clock: FakeClock
) -> None:
    """A key in the probe text: the curves wait ``typing_priority_s``, then redraw at most every
    ``typing_metric_interval_s`` while the typing goes on, and at every tick once it pauses."""
    calls: list[str] = []
    redraw = make_redraw(panels_named(calls, "curves", "gradnorms", "gradflow"))
    assert redraw.pending == 0
    probes.text_edited("x")
    assert probes.typing_until > clock.now
    redraw.tick()
    assert calls == []
    clock.advance(TIMING.typing_priority_s + 0.02)
    assert redraw.pending == 0
    redraw.tick()
    assert len(calls) == 1  # one panel per tick
    redraw.tick()
    assert len(calls) == 1  # typing: not again within the interval
    clock.advance(TIMING.typing_metric_interval_s + 0.02)
    assert probes.typing()  # still within typing_quiet_s of the key
    redraw.tick()
    assert len(calls) == 2
    clock.advance(TIMING.typing_quiet_s)  # the typing paused
    assert not probes.typing()
    redraw.tick()
    redraw.tick()
    assert len(calls) == 4
    assert sorted(calls[:3]) == ["curves", "gradflow", "gradnorms"]  # round robin


def test_each_tick_redraws_the_next_dirty_panel_round_robin(
    make_redraw: Callable[..., RedrawScheduler],
) -> None:
    """A clean panel is looked at and passed over; ``drew`` follows only a panel that drew."""
    calls: list[str] = []
    a, b, c = panels_named(calls, "a", "b", "c")
    a.dirty = False
    redraw = make_redraw([a, b, c])
    drew: list[int] = []
    redraw.drew.connect(lambda: drew.append(1))
    redraw.tick()
    assert calls == ["a", "b"] and len(drew) == 1
    calls.clear()
    redraw.tick()
    assert calls == ["c"] and len(drew) == 2  # starts after the one that drew
    calls.clear()
    redraw.tick()
    assert calls == ["a", "b"] and len(drew) == 3
    for panel in (a, b, c):
        panel.dirty = False
    calls.clear()
    redraw.tick()
    assert sorted(calls) == ["a", "b", "c"] and len(drew) == 3  # nothing dirty: no draw


def test_a_staggered_probe_result_is_shown_one_panel_per_tick_first(
    make_redraw: Callable[..., RedrawScheduler], qtbot: QtBot
) -> None:
    calls: list[str] = []
    redraw = make_redraw(panels_named(calls, "curves", "gradnorms"))
    shown: list[str] = []
    steps = [lambda n=name: shown.append(n) for name in ("text", "hidden", "softmax")]
    redraw.show_in_steps(steps, staggered=True)
    assert redraw.pending == 3 and shown == []
    redraw.tick()
    assert shown == ["text"] and calls == []  # the probe's panels come before the metrics
    redraw.tick()
    redraw.tick()
    assert shown == ["text", "hidden", "softmax"] and calls == [] and redraw.pending == 0
    redraw.tick()
    assert calls == ["curves"]
    # not staggered (a keystroke, anything while paused): the first panel now, each next one
    # in the event loop's next pass, not waiting for a tick
    beat = QTimer()
    beat.timeout.connect(lambda: shown.append("beat"))
    beat.start(0)
    redraw.show_in_steps(steps, staggered=False)
    assert shown[3:] == ["text"] and redraw.pending == 2
    qtbot.waitUntil(lambda: redraw.pending == 0, timeout=1000)
    beat.stop()
    panels = [s for s in shown[3:] if s != "beat"]
    assert panels == ["text", "hidden", "softmax"]
    between = shown[3:][: shown[3:].index("softmax")]
    assert between.count("beat") >= 2  # the loop ran between one panel and the next
    del shown[3:]
    shown.extend(panels)
    # a newer result replaces the steps still to show of an older one
    redraw.show_in_steps(steps[:2], staggered=True)
    redraw.show_in_steps(steps[2:], staggered=True)
    assert redraw.pending == 1
    redraw.flush()
    assert shown[6:] == ["softmax"] and redraw.pending == 0


def test_scrubbing_holds_the_metric_redraws_back_as_typing_does(
    make_redraw: Callable[..., RedrawScheduler], probes: ProbeScheduler, clock: FakeClock
) -> None:
    """A timeline move: the curves wait, then redraw at most every typing_metric_interval_s
    while the scrubbing goes on (a metric paint under way delayed most scrubs while training)."""
    calls: list[str] = []
    redraw = make_redraw(panels_named(calls, "curves", "gradnorms"))
    probes.snapshot_chosen(None)  # back to live: a move of the timeline all the same
    assert probes.typing()
    redraw.tick()
    assert calls == []
    clock.advance(TIMING.typing_priority_s + 0.02)
    redraw.tick()
    redraw.tick()
    assert calls == ["curves"]
    clock.advance(TIMING.typing_quiet_s)
    assert not probes.typing()
    redraw.tick()
    assert calls == ["curves", "gradnorms"]


def test_shown_panels_hold_the_metric_redraws_until_they_are_painted(
    make_redraw: Callable[..., RedrawScheduler], probes: ProbeScheduler, clock: FakeClock
) -> None:
    calls: list[str] = []
    redraw = make_redraw(panels_named(calls, "curves"))
    probes.hold_metric_redraws()
    assert probes.typing_until == pytest.approx(clock.now + TIMING.shown_paint_s)
    redraw.tick()
    assert calls == []
    probes.text_edited("x")  # a longer hold is never shortened
    held = probes.typing_until
    probes.hold_metric_redraws()
    assert probes.typing_until == held
    clock.advance(TIMING.typing_priority_s + 0.01)
    redraw.tick()
    assert calls == ["curves"]


def test_redraw_all_redraws_every_dirty_panel_now(
    make_redraw: Callable[..., RedrawScheduler], probes: ProbeScheduler
) -> None:
    calls: list[str] = []
    a, b, c = panels_named(calls, "a", "b", "c")
    b.dirty = False
    redraw = make_redraw([a, b, c])
    drew: list[int] = []
    redraw.drew.connect(lambda: drew.append(1))
    probes.text_edited("x")  # typing does not hold an explicit redraw back
    assert redraw.redraw_all()
    assert calls == ["a", "b", "c"] and drew == [1]
    a.dirty = c.dirty = False
    assert not redraw.redraw_all()
    assert drew == [1]


def test_the_timer_ticks_while_started(
    make_redraw: Callable[..., RedrawScheduler], qtbot: QtBot
) -> None:
    calls: list[str] = []
    redraw = make_redraw(panels_named(calls, "curves"))
    assert redraw.timer.interval() == REDRAW_INTERVAL_MS and not redraw.timer.isActive()
    redraw.start()
    qtbot.waitUntil(lambda: len(calls) >= 2, timeout=5000)
    redraw.stop()
    assert not redraw.timer.isActive()
