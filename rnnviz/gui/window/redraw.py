"""The redraw scheduler: one timer, one dirty panel per tick.

It ticks every ~12 ms and redraws ONE panel per tick, round robin (a re-probe's panels first,
one per tick): the metric panels then redraw at ~20 Hz or more (metrics arrive every ~40 ms),
and no pass of the event loop paints more than one panel, which keeps the loop's lag short.
While the user types, the probe panels come first: metric panels wait a moment after each key
and then redraw less often (the probe scheduler says when the user types).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from rnnviz.gui.state.probe_scheduler import ProbeScheduler

REDRAW_INTERVAL_MS = 12


class Redrawable(Protocol):
    def redraw(self) -> bool: ...


class RedrawScheduler(QObject):
    """Redraws dirty metric panels and shows probe results panel by panel."""

    drew = Signal()  # a metric panel drew (the status bar follows)

    def __init__(
        self,
        metric_panels: Sequence[Redrawable],
        probes: ProbeScheduler,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._panels = tuple(metric_panels)
        self._probes = probes
        self._next = 0  # the metric panel the next tick looks at first
        self._pending: list[Callable[[], Any]] = []  # a staggered probe result still to show
        self._last_metric_redraw = -float("inf")
        self.timer = QTimer(self)
        self.timer.setInterval(REDRAW_INTERVAL_MS)
        self.timer.timeout.connect(self.tick)
        # paused, a result's panels show back to back, yet each in its own pass of the event
        # loop with its own paint: the loop never waits on the whole set (a 100-character
        # paste held it 104 ms on CI's machine, every panel set and painted in one pass)
        self._soon = QTimer(self)
        self._soon.setSingleShot(True)
        self._soon.setInterval(0)
        self._soon.timeout.connect(self._step_soon)

    def start(self) -> None:
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        self._soon.stop()

    def show_in_steps(self, steps: Sequence[Callable[[], Any]], staggered: bool) -> None:
        """Run ``steps`` (one panel each): the first now and each next one in the event loop's
        next pass, or one per tick when ``staggered`` (while training: the metric panels
        share the ticks)."""
        self._pending = list(steps)
        if not staggered:
            self._step_soon()

    @Slot()
    def _step_soon(self) -> None:
        if self._pending:
            self._pending.pop(0)()
        if self._pending:
            self._soon.start()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> None:
        self._soon.stop()
        while self._pending:
            self._pending.pop(0)()

    @Slot()
    def tick(self) -> None:
        if self._pending:
            self._pending.pop(0)()
            return
        probes = self._probes
        now = probes.clock()
        if now < probes.typing_until:
            return
        if probes.typing() and now - self._last_metric_redraw < (
            probes.timing.typing_metric_interval_s
        ):
            return
        count = len(self._panels)
        for i in range(count):
            index = (self._next + i) % count
            if self._panels[index].redraw():
                self._next = (index + 1) % count
                self._last_metric_redraw = now
                self.drew.emit()
                return

    def redraw_all(self) -> bool:
        """Redraw every dirty metric panel now; True if any drew."""
        drew = False
        for panel in self._panels:
            drew = panel.redraw() or drew
        if drew:
            self.drew.emit()
        return drew
