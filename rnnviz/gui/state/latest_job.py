"""A thread that computes one job at a time, the newest first: the probe's, the learning
film's and the gate-saturation panel's threads are one of these.

A job submitted while another computes replaces any job still waiting (nothing queues
behind a slow one); what the one computing does about it is the subclass's (``_on_submit``:
the probe thread cancels a probe of another text, the film stops between two rows). Threads:
``submit``, ``idle`` and ``stop`` are called from the GUI thread, ``work`` runs on this one.
QtCore only.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

from PySide6.QtCore import QObject, QThread

Job = TypeVar("Job")


class LatestJobThread(QThread, Generic[Job]):
    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self._cond = threading.Condition()
        self._waiting: Job | None = None
        self._running: Job | None = None
        self._stopping = False
        self._busy = False

    def submit(self, job: Job) -> None:
        """Queue ``job``, replacing one still waiting (GUI thread)."""
        with self._cond:
            if self._stopping:
                return
            self._waiting = job
            self._on_submit(job)
            self._cond.notify()
        if not self.isRunning():
            self.start()

    def idle(self) -> bool:
        """Nothing computing and nothing waiting."""
        with self._cond:
            return self._waiting is None and not self._busy

    def stop(self) -> None:
        """Drop what waits, let the job computing end (``_on_stop`` may hurry it), end the
        thread (GUI thread)."""
        with self._cond:
            self._stopping = True
            self._waiting = None
            self._on_stop()
            self._cond.notify()
        self.wait()

    def run(self) -> None:
        while True:
            with self._cond:
                while self._waiting is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job, self._waiting = self._waiting, None
                assert job is not None  # the loop above waits for one
                self._busy = True
                self._running = job
                self._on_take(job)
            try:
                self.work(job)
            finally:
                with self._cond:
                    self._busy = False
                    self._running = None

    # ---------------------------------------------------------------- for subclasses

    def work(self, job: Job) -> None:
        """Compute ``job`` on this thread and emit what it gives; never raise for bad data."""
        raise NotImplementedError

    def _on_submit(self, job: Job) -> None:
        """Under the lock, ``job`` just replaced what waited (``self._running`` computes)."""

    def _on_take(self, job: Job) -> None:
        """Under the lock, on this thread: ``job`` starts now."""

    def _on_stop(self) -> None:
        """Under the lock: the thread is asked to end."""
