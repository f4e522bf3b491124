"""The learning film's thread: one forward pass per stored snapshot, off the GUI thread.

A new text recomputes every row (a few hundred milliseconds for 160 snapshots of a
100-character text at hidden 256): on the GUI thread that froze typing. Here rows come back
one at a time; a newer job (another text, new snapshots) replaces the one waiting and stops
the one computing between two rows. QtCore only.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from rnnviz.gui.state.latest_job import LatestJobThread


@dataclass(frozen=True)
class FilmJob:
    key: object  # handed back with each row: the feed ignores rows of an older key
    config: Any  # core.config.ModelConfig
    vocab: Any  # core.vocab.Vocab
    text: str
    items: Sequence[tuple[int, Mapping[str, np.ndarray]]]  # (step, params), in this order


class FilmWorker(LatestJobThread[FilmJob]):
    row_done = Signal(object, object)  # (job key, core.film.FilmRow)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__("rnnviz film thread", parent)
        self._newer = threading.Event()  # a job came after the one computing

    def _on_submit(self, job: FilmJob) -> None:
        self._newer.set()

    def _on_take(self, job: FilmJob) -> None:
        self._newer.clear()

    def _on_stop(self) -> None:
        self._newer.set()

    def work(self, job: FilmJob) -> None:
        from rnnviz.core.film import film_row

        try:
            for step, params in job.items:
                if self._newer.is_set():
                    break
                row = film_row(job.config, job.vocab, step, params, job.text)
                self.row_done.emit(job.key, row)
        except Exception as exc:  # a film row must never take the window down
            self.failed.emit(f"{type(exc).__name__}: {exc}")
