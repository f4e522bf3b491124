"""The probe text panel's two painted widgets: the strip of coloured characters, the legend.

Helpers of ``probe_text`` only, kept apart so that each file stays short: the strip paints
every cell itself, which is most of the panel's code.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPoint, QPointF, QRect, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QHelpEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QResizeEvent,
    QStaticText,
)
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from rnnviz.gui import theme
from rnnviz.gui.panels._probe_common import PLACEHOLDER, clamp


class ColourLegend(QWidget):
    """A small horizontal colour scale: ``lo [gradient] hi``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._cmap: pg.ColorMap = theme.DIVERGING
        self._lo = self._hi = ""
        self.setFont(theme.font(0.9))
        self.setFixedHeight(QFontMetrics(self.font()).height() + 6)
        self.setMinimumWidth(200)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

    def set_scale(self, cmap: pg.ColorMap, lo: str, hi: str) -> None:
        if (cmap, lo, hi) == (self._cmap, self._lo, self._hi):
            return  # every probe sets it; a repaint here repaints the panel beneath
        self._cmap, self._lo, self._hi = cmap, lo, hi
        self.update()

    def ends(self) -> tuple[str, str]:
        return self._lo, self._hi

    def sizeHint(self) -> QSize:
        return QSize(240, self.height())

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        metrics = QFontMetrics(self.font())
        lo_w = metrics.horizontalAdvance(self._lo) + 6
        hi_w = metrics.horizontalAdvance(self._hi) + 6
        bar = QRect(lo_w, 3, max(self.width() - lo_w - hi_w, 10), self.height() - 6)
        painter.setPen(QColor("#000"))
        painter.drawText(QRect(0, 0, lo_w, self.height()), Qt.AlignmentFlag.AlignCenter, self._lo)
        painter.drawText(
            QRect(bar.right() + 1, 0, hi_w, self.height()), Qt.AlignmentFlag.AlignCenter, self._hi
        )
        painter.fillRect(
            bar, self._cmap.getGradient(QPointF(bar.left(), 0), QPointF(bar.right(), 0))
        )
        painter.setPen(QColor(theme.MUTED))
        painter.drawRect(bar)
        painter.end()


class CharStrip(QWidget):
    """The probed string as coloured cells that wrap like text, with top-k lines under each.

    One widget painting every cell with QPainter (only the cells in the exposed rectangle),
    so a 500-character probe costs one widget, not 500 labels.
    """

    clicked = Signal(int)

    MARGIN = 6
    GAP = 2

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._chars: list[str] = []  # display strings, '␣' for a space
        self._colours: list[QColor] = []
        self._topk: list[list[str]] = []  # per step, "e 0.41" lines
        self._topk_true: list[int] = []  # per step, which top-k line is the true next char, -1
        self._tooltip: Callable[[int], str] | None = None  # cell -> its tooltip, made on hover
        self._unknown: frozenset[int] = frozenset()
        self._cursor = 0
        self._show_topk = True
        self._char_font = theme.font(1.7)
        self._small_font = theme.font(0.85, mono=True)
        self._small_bold = theme.font(0.85, mono=True, bold=True)
        self._char_h = QFontMetrics(self._char_font).height() + 8
        self._line_h = QFontMetrics(self._small_font).height()
        self._cell_w = 10
        self._rows_per_cell = 0
        # laid-out text by (string, font): a keystroke repaints the same labels ("e 0.04")
        # again and again, and laying text out is the dear part of painting a cell
        self._static_text: dict[tuple[str, int], QStaticText] = {}
        self.setMouseTracking(False)
        # paintEvent fills every pixel: Qt need not repaint the scroll area and dock beneath
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        self._update_geometry()

    # -- content
    def set_content(
        self,
        chars: list[str],
        topk: list[list[str]],
        topk_true: list[int],
        tooltip: Callable[[int], str] | None,
        unknown: frozenset[int],
    ) -> None:
        old = (self._chars, self._topk, self._topk_true, self._unknown)
        old_layout = (self._cell_w, self._rows_per_cell, self.minimumHeight())
        self._chars, self._topk, self._topk_true = chars, topk, topk_true
        self._tooltip, self._unknown = tooltip, unknown
        self._cursor = clamp(self._cursor, len(chars))
        self._update_geometry()
        if (self._cell_w, self._rows_per_cell, self.minimumHeight()) != old_layout:
            self.update()
            return
        # a keystroke changes the cells from the edited one on: repaint only those
        n = max(len(old[0]), len(chars))
        first = next(
            (
                i
                for i in range(n)
                if i >= len(old[0])
                or i >= len(chars)
                or old[0][i] != chars[i]
                or old[1][i] != topk[i]
                or old[2][i] != topk_true[i]
                or (i in old[3]) != (i in unknown)
            ),
            n,
        )
        self._update_from(first, n)

    def tooltip_text(self, i: int) -> str:
        return "" if self._tooltip is None else self._tooltip(i)

    def colours(self) -> list[QColor]:
        return list(self._colours)

    def topk_lines(self, i: int) -> list[str]:
        return list(self._topk[i])

    def set_colours(self, colours: list[QColor]) -> None:
        old = self._colours
        self._colours = colours
        n = max(len(old), len(colours))
        first = next(
            (i for i in range(n) if i >= len(old) or i >= len(colours) or old[i] != colours[i]),
            n,
        )
        self._update_from(first, n)

    def _update_from(self, first: int, end: int) -> None:
        """Repaint cells ``first`` .. ``end``-1 (with their whole rows: cells wrap like text)."""
        if first >= end:
            return
        top = self.cell_rect(first).top() - 3
        bottom = self.cell_rect(end - 1).bottom() + 3
        self.update(QRect(0, top, self.width(), bottom - top + 1))

    def set_cursor(self, t: int) -> None:
        t = clamp(t, len(self._chars))
        if t != self._cursor:
            old = self._cursor
            self._cursor = t
            self.update(self.cell_rect(old).adjusted(-3, -3, 3, 3))
            self.update(self.cell_rect(t).adjusted(-3, -3, 3, 3))

    def set_show_topk(self, show: bool) -> None:
        self._show_topk = show
        self._update_geometry()
        self.update()

    # -- geometry
    def _update_geometry(self) -> None:
        char_w = QFontMetrics(self._char_font).horizontalAdvance("W") + 10
        rows = max((len(lines) for lines in self._topk), default=0) if self._show_topk else 0
        self._rows_per_cell = rows
        topk_w = QFontMetrics(self._small_bold).horizontalAdvance("W 0.00") + 8 if rows else 0
        self._cell_w = max(char_w, topk_w)
        self.setMinimumHeight(self._needed_height(self.width()))
        self.updateGeometry()

    def _cell_h(self) -> int:
        return self._char_h + self._rows_per_cell * self._line_h + (4 if self._rows_per_cell else 0)

    def _per_row(self, width: int) -> int:
        return max(1, (width - 2 * self.MARGIN + self.GAP) // (self._cell_w + self.GAP))

    def _needed_height(self, width: int) -> int:
        if not self._chars:
            return 3 * self._char_h
        lines = math.ceil(len(self._chars) / self._per_row(width))
        return 2 * self.MARGIN + lines * (self._cell_h() + 3 * self.GAP)

    def cell_rect(self, i: int) -> QRect:
        per_row = self._per_row(self.width())
        row, col = divmod(i, per_row)
        x = self.MARGIN + col * (self._cell_w + self.GAP)
        y = self.MARGIN + row * (self._cell_h() + 3 * self.GAP)
        return QRect(x, y, self._cell_w, self._cell_h())

    def index_at(self, pos: QPoint) -> int | None:
        for_row = self._cell_h() + 3 * self.GAP
        row = (pos.y() - self.MARGIN) // for_row
        col = (pos.x() - self.MARGIN) // (self._cell_w + self.GAP)
        if row < 0 or col < 0 or col >= self._per_row(self.width()):
            return None
        i = row * self._per_row(self.width()) + col
        if i >= len(self._chars) or not self.cell_rect(i).contains(pos):
            return None
        return i

    def sizeHint(self) -> QSize:
        return QSize(600, self._needed_height(600))

    def resizeEvent(self, event: QResizeEvent) -> None:
        needed = self._needed_height(self.width())
        if needed != self.minimumHeight():
            self.setMinimumHeight(needed)
        super().resizeEvent(event)

    # -- events
    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            i = self.index_at(event.pos())
            if i is not None and self._tooltip is not None:
                QToolTip.showText(event.globalPos(), self._tooltip(i), self)
            else:
                QToolTip.hideText()
            return True
        return super().event(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            i = self.index_at(event.position().toPoint())
            if i is not None:
                self.clicked.emit(i)
        super().mousePressEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#FFFFFF"))
        if not self._chars:
            painter.setFont(theme.font(1.3))
            painter.setPen(QColor(theme.PLACEHOLDER_INK))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, PLACEHOLDER)
            painter.end()
            return
        exposed = event.rect()
        per_row = self._per_row(self.width())
        row_h = self._cell_h() + 3 * self.GAP
        first = max(0, (exposed.top() - self.MARGIN) // row_h) * per_row
        last = min(len(self._chars), ((exposed.bottom() - self.MARGIN) // row_h + 1) * per_row)
        for i in range(first, last):
            self._paint_cell(painter, i)
        painter.end()

    def _draw_centred(self, painter: QPainter, rect: QRect, text: str, font: QFont) -> None:
        """``drawText(rect, AlignCenter, text)`` from a cached layout (QStaticText)."""
        key = (text, id(font))  # the strip's own three fonts, alive as long as it is
        static = self._static_text.get(key)
        if static is None:
            if len(self._static_text) > 4096:
                self._static_text.clear()
            static = QStaticText(text)
            static.setTextFormat(Qt.TextFormat.PlainText)
            static.prepare(painter.transform(), font)
            self._static_text[key] = static
        size = static.size()
        painter.drawStaticText(
            QPointF(
                rect.left() + (rect.width() - size.width()) / 2,
                rect.top() + (rect.height() - size.height()) / 2,
            ),
            static,
        )

    def _paint_cell(self, painter: QPainter, i: int) -> None:
        rect = self.cell_rect(i)
        char_rect = QRect(rect.left(), rect.top(), rect.width(), self._char_h)
        fill = self._colours[i] if i < len(self._colours) else QColor("#FFFFFF")
        painter.fillRect(char_rect, fill)
        painter.setPen(QPen(QColor("#C8C8C8"), 1))
        painter.drawRect(char_rect.adjusted(0, 0, -1, -1))
        char = self._chars[i]
        ink = theme.text_colour_on(fill)
        if char == "\u2423" and ink == QColor("#000000"):
            ink = QColor(theme.MUTED)
        painter.setFont(self._char_font)
        painter.setPen(ink)
        self._draw_centred(painter, char_rect, char, self._char_font)
        if i in self._unknown:
            pen = QPen(QColor(theme.UNKNOWN), 3, Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawRect(char_rect.adjusted(1, 1, -2, -2))
            mid = char_rect.center().y()
            painter.setPen(QPen(QColor(theme.UNKNOWN), 2))
            painter.drawLine(char_rect.left() + 4, mid, char_rect.right() - 4, mid)
        if self._rows_per_cell and i < len(self._topk):
            y = char_rect.bottom() + 3
            for line_no, line in enumerate(self._topk[i]):
                true_line = line_no == self._topk_true[i]
                font = self._small_bold if true_line else self._small_font
                painter.setFont(font)
                painter.setPen(QColor(theme.HIGHLIGHT if true_line else "#303030"))
                line_rect = QRect(
                    rect.left(), y + line_no * self._line_h, rect.width(), self._line_h
                )
                self._draw_centred(painter, line_rect, line, font)
        if i == self._cursor:
            painter.setPen(QPen(QColor(theme.CURSOR), 3))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(rect.adjusted(-1, -1, 0, 0))
