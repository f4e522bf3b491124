"""The probe thread: runs the large re-probes of ``core.probe.Prober`` off the GUI thread.

While training, the window re-probes the typed text on every new parameter snapshot (a few
times a second). With the gradient-flow matrix that is T^2 H^2 / 2 multiply-adds, which for a
long text froze the window at every snapshot on the GUI thread; here the GUI keeps painting
and reading keys meanwhile. Small probes (a keystroke at the end of a text, anything small
while paused) stay on the GUI thread: handing them over and back costs more than they do, and
two Python threads computing at once slow each other (they share the GIL).

One request at a time, the newest wins: a request submitted while another is computing
replaces any request still waiting, and cancels the one computing if that is for another text
(``core.probe`` looks at the cancel flag every few steps of the gradient-flow sweep); one for
the same text (a newer snapshot) waits, so snapshots arriving faster than a long probe never
starve it. ``cancel`` stops the computing one when the window answers a newer text itself.
A cancelled probe answers nothing. Each request carries a ticket (an increasing number) so the
window can ignore an answer older than what it shows.

Threads: ``submit``, ``idle`` and ``stop`` are called from the GUI thread; ``run`` is the
probe thread; ``done`` is queued to the GUI thread (its receiver lives there). A request's
Prober is used by this thread only: the window makes a new Prober for each request it hands
over and takes it back only from ``done``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from rnnviz.gui.state.latest_job import LatestJobThread


@dataclass(frozen=True)
class ProbeJob:
    ticket: int
    prober: Any  # core.probe.Prober
    text: str
    with_grad_flow: bool
    tag: Any = None  # the window's own note on the request, handed back with the answer


class ProbeWorker(LatestJobThread[ProbeJob]):
    """Computes probes one at a time, the newest request first (see module doc)."""

    # (request, ProbeResult or None, error message or "", seconds the probe took)
    done = Signal(object, object, str, float)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__("rnnviz probe thread", parent)
        self._cancel = threading.Event()

    def _on_submit(self, job: ProbeJob) -> None:
        if self._running is not None and self._running.text != job.text:
            self._cancel.set()  # the text changed: what computes will not be shown

    def _on_take(self, job: ProbeJob) -> None:
        self._cancel.clear()

    def cancel(self) -> None:
        """Drop what waits and stop what computes: the window has a newer answer (GUI thread)."""
        with self._cond:
            self._waiting = None
            self._cancel.set()

    def current(self) -> ProbeJob | None:
        """The request computing, else the one waiting, else None."""
        with self._cond:
            return self._running or self._waiting

    def work(self, job: ProbeJob) -> None:
        from rnnviz.core.probe import ProbeCancelled

        started = time.perf_counter()
        try:
            result = job.prober.probe(
                job.text, with_grad_flow=job.with_grad_flow, cancelled=self._cancel.is_set
            )
        except ProbeCancelled:
            return
        except Exception as exc:  # a probe must never take the window down
            self.done.emit(job, None, f"{type(exc).__name__}: {exc}", 0.0)
            return
        self.done.emit(job, result, "", time.perf_counter() - started)
