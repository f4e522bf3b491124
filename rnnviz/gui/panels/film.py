"""The learning film: the probe string as every stored snapshot of training saw it.

One row per stored snapshot (the oldest at the top), one column per character read; a cell's
colour is the probability that snapshot gave the character that really follows. Read down a
column to see when the model learnt that character (the space after "the" early, the rarer
letters late). The readout spells out one row's top-1 predictions; a click on a row moves
the timeline there, and the row shown is marked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from rnnviz.gui import exports, plotting, theme
from rnnviz.gui.panels._probe_common import Heatmap, graphics_with_placeholder, readout_label

if TYPE_CHECKING:
    from rnnviz.core.film import FilmRow

PLACEHOLDER = "the film fills in as training stores snapshots: press Play"


class FilmPanel(QWidget):
    step_requested = Signal(int)  # a click on the row of this step
    export_failed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._steps: list[int] = []
        self._rows: list[FilmRow | None] = []
        self._tokens: tuple[str, ...] = ()
        self._viewed: int | None = None
        self._readout = readout_label()
        self._stack, self._graphics = graphics_with_placeholder(self, PLACEHOLDER)
        self._heatmap = Heatmap(
            self._graphics,
            0,
            cmap=theme.SEQUENTIAL,
            levels=(0.0, 1.0),
            bar_label=("P(true next char)", "P(next)"),
            left=("stored snapshot (step)", "step"),
            bottom=("character read", "t"),
        )
        self._heatmap.cursor_line.hide()  # the time cursor is the other panels' business
        self.row_line = pg.InfiniteLine(
            pos=0.5, angle=0, movable=False, pen=pg.mkPen(theme.colours().cursor, width=3)
        )
        self.row_line.setZValue(10)
        self._heatmap.plot.addItem(self.row_line)
        self._graphics.scene().sigMouseClicked.connect(self._on_click)
        self._graphics.scene().sigMouseMoved.connect(self._on_move)
        plotting.cache_axes(self._graphics)
        exports.guard_exports(self._graphics, self.export_failed.emit)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self._readout)
        layout.addWidget(self._stack, 1)
        self._update_readout(None)

    # ---------------------------------------------------------------- from the window

    def set_film(
        self,
        text: str,
        steps: Sequence[int],
        rows: Sequence[FilmRow | None],
        vocab_tokens: Sequence[str],
        viewed: int | None,
    ) -> None:
        """Rows of ``steps`` for ``text`` (None: not computed yet); ``viewed`` is the step
        of the snapshot the other panels show (None: live, the newest)."""
        self._text, self._steps, self._rows = text, list(steps), list(rows)
        self._tokens = tuple(vocab_tokens)
        self._viewed = viewed
        if not text or not self._steps:
            self._stack.setCurrentIndex(0)
            self._heatmap.clear()
            self._update_readout(None)
            return
        self._stack.setCurrentIndex(1)
        self._heatmap.x_ticks.set_chars(text)
        self._heatmap.y_ticks.set_chars([f"{s:,}" for s in self._steps])
        self._heatmap.show(self.matrix(), (0.0, 1.0), theme.SEQUENTIAL)
        row = self.viewed_row()
        self.row_line.setPos(row + 0.5)
        self._update_readout(row)

    def matrix(self) -> np.ndarray:
        """(snapshots, characters): P(true next char); NaN where there is none yet."""
        out = np.full((len(self._steps), len(self._text)), np.nan)
        for i, row in enumerate(self._rows):
            if row is not None and len(row.p_true) == len(self._text):
                out[i] = row.p_true
        return out

    def viewed_row(self) -> int:
        if self._viewed is not None and self._viewed in self._steps:
            return self._steps.index(self._viewed)
        return len(self._steps) - 1

    def readout_text(self) -> str:
        return self._readout.text()

    # ---------------------------------------------------------------- the mouse

    def row_at(self, scene_pos: QPointF) -> int | None:
        cell = self._heatmap.cell_at(scene_pos)
        return None if cell is None else cell[1]

    def scene_pos_of(self, col: int, row: int) -> QPointF:
        return self._heatmap.scene_pos_of(col, row)

    def _on_click(self, event: object) -> None:
        row = self.row_at(event.scenePos())  # type: ignore[attr-defined]
        if row is not None and row < len(self._steps):
            self.step_requested.emit(self._steps[row])

    def _on_move(self, scene_pos: QPointF) -> None:
        row = self.row_at(scene_pos)
        self._update_readout(row if row is not None else self.viewed_row() if self._steps else None)

    def _update_readout(self, row: int | None) -> None:
        if row is None or not self._steps or not self._text:
            self._readout.setText(
                "One row per stored snapshot, oldest at the top: the colour is the probability "
                "each snapshot gave the character that really comes next."
            )
            return
        film_row = self._rows[row] if row < len(self._rows) else None
        step = self._steps[row]
        if film_row is None or len(film_row.top1) != len(self._text):
            self._readout.setText(f"step {step:,}: computing…")
            return
        guesses = "".join(theme.display_char(self._tokens[i]) for i in film_row.top1[:-1])
        right = int(np.sum(np.asarray(film_row.top1[:-1]) == _ids_of(self._text[1:], self._tokens)))
        self._readout.setText(
            f"step {step:,} predicts: <tt>{_escape(guesses)}</tt>  "
            f"({right} of {len(self._text) - 1} next characters right)"
        )


def _ids_of(text: str, tokens: Sequence[str]) -> np.ndarray:
    index = {t: i for i, t in enumerate(tokens)}
    return np.array([index.get(c, 0) for c in text], dtype=np.int64)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
