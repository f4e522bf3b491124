"""The softmax panel: P(next character) at the cursor step as bars, over all steps as a heatmap.

The panel draws a ``core.probe.ProbeResult``; it computes nothing from the model. Plot items
are created once in ``__init__`` and updated with ``setImage`` / ``setOpts``; the heatmap's
levels are fixed at 0 .. 1. Every method runs in the GUI thread; ``set_cursor`` never emits.

The height goes to the plots: the bars' title is the first words of the readout line above
them, the bars have no axis name under their letters (the heatmap's "next character" names
both), and an axis name longer than its axis gives way to a short one. A title and an axis
name inside the plots left the bars about 50 px on a 1920×1080 screen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QRectF, Signal
from PySide6.QtGui import QPainterPath
from PySide6.QtWidgets import QGraphicsPathItem, QVBoxLayout, QWidget

from rnnviz.gui import plotting, theme
from rnnviz.gui.exports import guard_exports
from rnnviz.gui.panels._probe_common import (
    PLACEHOLDER,
    Heatmap,
    clamp,
    graphics_with_placeholder,
    quoted,
    readout_label,
)

if TYPE_CHECKING:
    from rnnviz.core.probe import ProbeResult

# the true-next outlines are at least this many pixels across
MARK_MIN_PX = 9
# below this height of the plots' area only the bars show: two plots in less were two strips
# of axes with no data between them (a 1920x1080 screen at QT_SCALE_FACTOR=2)
BOTH_PLOTS_MIN_PX = 260


class SoftmaxPanel(QWidget):
    """P(next character) at the cursor step as bars, and over all steps as a heatmap.

    Row t of ``probs`` is the prediction after reading character t, so the true next
    character is ``text[t + 1]`` (its bar orange); at the last step there is none.
    """

    export_failed = Signal(str)  # a plot's context-menu export failed (why)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._result: ProbeResult | None = None
        self._cursor = 0
        self._drawn_for: ProbeResult | None = None  # the result whose cursor step is drawn
        self._highlight: int | None = None

        self._readout = readout_label()
        # one line at a dock's usual width: each line of it is taken from the bars' height
        self._readout.label().setFont(theme.font())
        self._stack, self._graphics = graphics_with_placeholder(
            self, f"{PLACEHOLDER}: the model's next-character probabilities appear here"
        )
        guard_exports(self._graphics, self.export_failed.emit)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self._readout)
        layout.addWidget(self._stack, 1)

        # across the colour bar's column too: the bars need the width more than the heatmap
        self.bar_plot: pg.PlotItem = self._graphics.addPlot(row=0, col=0, colspan=2)
        self.bar_plot.setMouseEnabled(x=False, y=False)
        self.bar_plot.setMenuEnabled(False)
        self.bar_plot.hideButtons()
        self.bar_plot.setYRange(0.0, 1.0, padding=0.02)
        plotting.set_level_ticks(self.bar_plot.getAxis("left"), (0.0, 1.0))
        self._bar_brush = pg.mkBrush(theme.run_colour(0))
        self._true_brush = pg.mkBrush(theme.HIGHLIGHT)
        self.bar_item = pg.BarGraphItem(x=[], height=[], width=0.8, pen=None, brush=self._bar_brush)
        self.bar_plot.addItem(self.bar_item)
        plotting.style_plot(self.bar_plot, left=("probability", "p"))
        self._title = ""
        self._bar_ticks = plotting.TickSource(
            self.bar_plot.getAxis("bottom"), theme.BASE_POINT_SIZE * 1.6
        )
        self.bar_plot.getViewBox().sigResized.connect(self._on_bar_view_resized)

        self._heatmap = Heatmap(
            self._graphics,
            1,
            cmap=theme.SEQUENTIAL,
            levels=(0.0, 1.0),
            bar_label=("P(next char)", "P"),
            left=("next character", "next"),
            bottom=("time step t (character read)", "t"),
        )
        self.heatmap_item = self._heatmap.image
        self.heatmap_plot = self._heatmap.plot
        self.cursor_line = self._heatmap.cursor_line
        # the character that really came next, outlined in each column of the heatmap: one
        # path of cell outlines, far cheaper to redraw each keystroke than a scatter of squares
        self.true_next_marks = QGraphicsPathItem()
        mark_pen = pg.mkPen(theme.HIGHLIGHT, width=2)
        mark_pen.setCosmetic(True)
        self.true_next_marks.setPen(mark_pen)
        self.true_next_marks.setZValue(5)
        self._heatmap.plot.addItem(self.true_next_marks)
        self._heatmap.plot.getViewBox().sigResized.connect(self._draw_true_next_marks)
        self._set_row_stretch()
        self._heatmap_shown = True
        self._graphics.installEventFilter(self)
        plotting.cache_axes(self._graphics)
        self.set_result(None)

    # -- public API
    def set_result(self, result: ProbeResult | None) -> None:
        self._result = result
        if result is None:
            self._heatmap.clear()
            self.bar_item.setOpts(x=[], height=[], brushes=None, brush=self._bar_brush)
            self.true_next_marks.setPath(QPainterPath())
            self._highlight = None
            self._drawn_for = None
            self._title = ""
            self._readout.setText("")
            self._readout.setToolTip("")
            self._stack.setCurrentIndex(0)
            return
        self._stack.setCurrentIndex(1)
        V = len(result.vocab_tokens)
        T = len(result.text)
        self.bar_plot.setXRange(0, V, padding=0)
        self._bar_ticks.set_chars(result.vocab_tokens)
        self._on_bar_view_resized()
        self._heatmap.x_ticks.set_chars(result.text)
        self._heatmap.y_ticks.set_chars(result.vocab_tokens)
        self._heatmap.show(result.probs.T, (0.0, 1.0), theme.SEQUENTIAL)
        self._draw_true_next_marks()
        self._cursor = clamp(self._cursor, T)
        self.set_cursor(self._cursor)

    def set_cursor(self, t: int) -> None:
        r = self._result
        if r is None:
            self._cursor = max(0, int(t))
            return
        T, V = len(r.text), len(r.vocab_tokens)
        t = clamp(int(t), T)
        if self._drawn_for is r and t == self._cursor:
            return  # set_result drew this step already
        self._cursor, self._drawn_for = t, r
        self._heatmap.set_cursor(t)
        self._highlight = int(r.tokens[t + 1]) if t + 1 < T else None
        brushes = [self._bar_brush] * V
        if self._highlight is not None:
            brushes[self._highlight] = self._true_brush
        # a diverged model's probabilities may be NaN: no bar rather than a NaN rectangle
        heights = np.where(np.isfinite(r.probs[t]), r.probs[t], 0.0)
        self.bar_item.setOpts(x=np.arange(V) + 0.5, height=heights, brushes=brushes)
        # when the vocabulary does not fit as labels, the true next character and the top-k
        # are the ones labelled (every other letter would skip the tall bars)
        first = [] if self._highlight is None else [self._highlight]
        self._bar_ticks.set_first(first + r.topk_ids[t].tolist())
        # the heatmap's rows too: the character that came next and the likeliest one
        self._heatmap.y_ticks.set_first(first + r.topk_ids[t][:1].tolist())
        prefix = r.text[: t + 1]
        if len(prefix) > 24:
            prefix = "…" + prefix[-23:]
        self._title = f"P(next char | '{prefix}') at t = {t}"
        top = ",  ".join(
            f"{theme.display_char(r.vocab_tokens[v])} {theme.fixed_or_plain(p)}"
            for v, p in zip(r.topk_ids[t].tolist(), r.topk_probs[t].tolist(), strict=True)
        )
        if self._highlight is None:
            truth = "last character: next one unknown"
        else:
            p_true = float(r.probs[t, self._highlight])
            p_text = theme.fixed_or_plain(p_true, 3)
            bits = theme.fixed_or_plain(float(r.surprisal_bits[t]))
            truth = f"true next {quoted(r.text[t + 1])} (orange): p = {p_text}, {bits} bits"
        self._readout.setText(f"{self._title}:  {truth}")
        self._readout.setToolTip(f"top {r.topk_ids.shape[1]}: {top}")

    def bar_heights(self) -> np.ndarray:
        height = self.bar_item.opts.get("height")
        return np.asarray([] if height is None else height, dtype=np.float64)

    def highlight_index(self) -> int | None:
        """Vocabulary index of the highlighted bar (the true next character), None at the end."""
        return self._highlight

    def heatmap_array(self) -> np.ndarray | None:
        """What the heatmap draws: probs.T (V, T), None when cleared."""
        image: np.ndarray | None = self.heatmap_item.image
        return image

    def title_text(self) -> str:
        """What the bars show, the readout's first words: ``P(next char | 'the') at t = 2``."""
        return self._title

    def readout_text(self) -> str:
        return self._readout.text()

    def readout_tooltip(self) -> str:
        """The readout's tooltip: the top-k at the cursor step."""
        return self._readout.toolTip()

    def graphics_view(self) -> pg.GraphicsLayoutWidget:
        return self._graphics

    def heatmap_shown(self) -> bool:
        """Whether the heatmap is on screen (the panel is tall enough for it)."""
        return self._heatmap_shown

    def placeholder_shown(self) -> bool:
        """Whether the placeholder sentence shows instead of the plots (no result)."""
        return self._stack.currentIndex() == 0

    # -- internals
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self._graphics and event.type() == QEvent.Type.Resize:
            self._show_heatmap(self._plots_height() >= BOTH_PLOTS_MIN_PX)
        return False

    def _plots_height(self) -> int:
        return int(self._graphics.height())

    def _show_heatmap(self, show: bool) -> None:
        if show == self._heatmap_shown:
            return
        self._heatmap_shown = show
        layout, heatmap = self._graphics.ci, self._heatmap
        if show:
            layout.addItem(heatmap.plot, row=1, col=0)
            layout.addItem(heatmap.bar, row=1, col=1)
            self._set_row_stretch()  # an emptied row lost its stretch
        else:
            layout.removeItem(heatmap.plot)
            layout.removeItem(heatmap.bar)
        heatmap.plot.setVisible(show)
        heatmap.bar.setVisible(show)

    def _set_row_stretch(self) -> None:
        # the heatmap has a row per vocabulary entry, the bars one bar height: 3 to 2
        self._graphics.ci.layout.setRowStretchFactor(0, 2)
        self._graphics.ci.layout.setRowStretchFactor(1, 3)

    def _draw_true_next_marks(self) -> None:
        """An outline around the cell of the character that came next, in every column: the
        cell, or a square of MARK_MIN_PX where the cells are smaller than that."""
        r = self._result
        marks = QPainterPath()
        if r is not None and len(r.text) > 1:
            # the heatmap spans T x V cells (its view's range, which pyqtgraph applies late)
            view = self._heatmap.plot.getViewBox().boundingRect()
            cells_per_px_x = len(r.text) / max(1.0, view.width())
            cells_per_px_y = len(r.vocab_tokens) / max(1.0, view.height())
            w = max(0.84, MARK_MIN_PX * cells_per_px_x)
            h = max(0.84, MARK_MIN_PX * cells_per_px_y)
            for t, v in enumerate(r.tokens[1:].tolist()):
                marks.addRect(QRectF(t + 0.5 - w / 2, v + 0.5 - h / 2, w, h))
        self.true_next_marks.setPath(marks)

    def _on_bar_view_resized(self) -> None:
        self._bar_ticks.refresh(self.bar_plot.getViewBox().boundingRect().width())
