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
    QPalette,
    QPen,
    QResizeEvent,
    QStaticText,
)
from PySide6.QtWidgets import QScrollArea, QSizePolicy, QToolTip, QWidget

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
        # on the window's background: its text colour, light on a dark desktop
        painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
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

    How many top-k lines a cell shows follows the height it is seen at (``set_view_height``,
    from the scroll area): every row of cells with at least MIN_TOPK_LINES lines where they
    fit, else one whole row with as many lines as fit. A row cut through the middle showed
    the top-k numbers of the cursor's character but not the character.
    """

    clicked = Signal(int)

    MARGIN = 4
    GAP = 2
    MIN_TOPK_LINES = 2

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
        self._view_height: int | None = None  # None: not in a scroll area, every line shown
        self._set_fonts()
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

    def _set_fonts(self) -> None:
        self._char_font = theme.font(1.7)
        self._small_font = theme.font(0.85, mono=True)
        self._small_bold = theme.font(0.85, mono=True, bold=True)
        self._char_h = QFontMetrics(self._char_font).height() + 8
        self._line_h = QFontMetrics(self._small_font).height()

    def rezoom(self) -> None:
        """The fonts at the new zoom (``gui.rescale``), and the cells sized for them."""
        self._set_fonts()
        self._static_text.clear()
        self._update_geometry()
        self.update()

    def fonts(self) -> tuple[QFont, ...]:
        """The fonts it paints with (the lecture-mode size test reads them)."""
        return (self._char_font, self._small_font, self._small_bold)

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

    def set_view_height(self, height: int) -> None:
        """The height the strip is seen at (its scroll area's viewport): the top-k lines shown
        are as many as let the rows of cells fit it (see the class doc)."""
        if height != self._view_height:
            self._view_height = height
            self._update_geometry()

    def time_step(self) -> int:
        """The cell the cursor marks."""
        return self._cursor

    def count(self) -> int:
        return len(self._chars)

    def topk_lines_shown(self) -> int:
        """How many top-k lines each cell shows now."""
        return self._rows_per_cell

    # -- geometry
    def _update_geometry(self) -> None:
        old = (self._cell_w, self._rows_per_cell)
        char_w = QFontMetrics(self._char_font).horizontalAdvance("W") + 10
        have = max((len(lines) for lines in self._topk), default=0) if self._show_topk else 0
        # a little padding only: 16 cells ("the time machine") fit a 1280-px projector's row
        topk_w = QFontMetrics(self._small_bold).horizontalAdvance("W 0.00") + 3 if have else 0
        self._cell_w = max(char_w, topk_w)
        self._rows_per_cell = self._fitting_lines(have)
        self.setMinimumHeight(self._needed_height(self.width()))
        self.updateGeometry()
        if (self._cell_w, self._rows_per_cell) != old:
            self.update()

    def _fitting_lines(self, have: int) -> int:
        view = self._view_height
        if view is None or have == 0:
            return have
        least = min(have, self.MIN_TOPK_LINES)
        for lines in range(have, least - 1, -1):  # every row of cells, most lines first
            if self._needed_height(self.width(), lines) <= view:
                return lines
        for lines in range(have, 0, -1):  # one whole row, scrolled to the cursor's
            if self.row_height(lines) + 2 * self.MARGIN <= view:
                return lines
        return min(have, 1)

    def row_height(self, lines: int | None = None) -> int:
        """One row of cells with ``lines`` top-k lines (default: those shown), gaps included."""
        lines = self._rows_per_cell if lines is None else lines
        return self._char_h + lines * self._line_h + (4 if lines else 0) + 3 * self.GAP

    def least_view_height(self) -> int:
        """The least height that shows one whole row of cells with MIN_TOPK_LINES lines."""
        return self.row_height(self.MIN_TOPK_LINES if self._show_topk else 0) + 2 * self.MARGIN

    def _cell_h(self) -> int:
        return self.row_height() - 3 * self.GAP

    def _per_row(self, width: int) -> int:
        return max(1, (width - 2 * self.MARGIN + self.GAP) // (self._cell_w + self.GAP))

    def _needed_height(self, width: int, lines: int | None = None) -> int:
        if not self._chars:
            return 3 * self._char_h
        rows = math.ceil(len(self._chars) / self._per_row(width))
        return 2 * self.MARGIN + rows * self.row_height(lines)

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
        """One row of cells with every top-k line: what a layout should give the strip."""
        have = max((len(lines) for lines in self._topk), default=5) if self._show_topk else 0
        return QSize(600, self.row_height(have) + 2 * self.MARGIN)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():  # another count of cells a row
            self._update_geometry()

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
        scheme = theme.colours()
        painter.fillRect(self.rect(), QColor(scheme.plot_background))
        if not self._chars:
            painter.setFont(theme.font(1.3))
            painter.setPen(QColor(scheme.placeholder_ink))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, PLACEHOLDER)
            painter.end()
            return
        exposed = event.rect()
        per_row = self._per_row(self.width())
        row_h = self._cell_h() + 3 * self.GAP
        first = max(0, (exposed.top() - self.MARGIN) // row_h) * per_row
        last = min(len(self._chars), ((exposed.bottom() - self.MARGIN) // row_h + 1) * per_row)
        # the pens and inks every cell shares, made once per paint: ~50 cells a paint, and
        # their Qt objects made per cell were a third of the strip's paint at each scrub
        inks = _CellInks(scheme)
        for i in range(first, last):
            self._paint_cell(painter, i, inks)
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

    def _paint_cell(self, painter: QPainter, i: int, inks: _CellInks) -> None:
        rect = self.cell_rect(i)
        char_rect = QRect(rect.left(), rect.top(), rect.width(), self._char_h)
        fill = self._colours[i] if i < len(self._colours) else inks.background
        painter.fillRect(char_rect, fill)
        painter.setPen(inks.border)
        painter.drawRect(char_rect.adjusted(0, 0, -1, -1))
        char = self._chars[i]
        painter.setFont(self._char_font)
        painter.setPen(inks.on(fill, muted_black=char == "\u2423"))
        self._draw_centred(painter, char_rect, char, self._char_font)
        if i in self._unknown:
            painter.setPen(inks.unknown_dash)
            painter.drawRect(char_rect.adjusted(1, 1, -2, -2))
            mid = char_rect.center().y()
            painter.setPen(inks.unknown_line)
            painter.drawLine(char_rect.left() + 4, mid, char_rect.right() - 4, mid)
        if self._rows_per_cell and i < len(self._topk):
            y = char_rect.bottom() + 3
            true_no = self._topk_true[i]
            left, width, line_h = rect.left(), rect.width(), self._line_h
            for line_no, line in enumerate(self._topk[i][: self._rows_per_cell]):
                true_line = line_no == true_no
                font = self._small_bold if true_line else self._small_font
                painter.setFont(font)
                painter.setPen(inks.highlight if true_line else inks.ink)
                line_rect = QRect(left, y + line_no * line_h, width, line_h)
                self._draw_centred(painter, line_rect, line, font)
        if i == self._cursor:
            painter.setPen(inks.cursor)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(rect.adjusted(-1, -1, 0, 0))


class _CellInks:
    """The colours and pens of one paint of the strip; a cell's text ink by its fill."""

    def __init__(self, scheme: theme.Colours) -> None:
        self.background = QColor(scheme.plot_background)
        self.border = QPen(QColor(scheme.cell_border), 1)
        self.ink = QColor(scheme.ink)
        self.highlight = QColor(theme.HIGHLIGHT)
        self.cursor = QPen(QColor(scheme.cursor), theme.line_width(3))
        self.unknown_dash = QPen(QColor(theme.UNKNOWN), 3, Qt.PenStyle.DashLine)
        self.unknown_line = QPen(QColor(theme.UNKNOWN), 2)
        self._black = QColor("#000000")
        self._muted = QColor(theme.MUTED)
        self._on: dict[int, QColor] = {}

    def on(self, fill: QColor, muted_black: bool = False) -> QColor:
        """``theme.text_colour_on(fill)``; black turns muted for the space sign (␣)."""
        key = fill.rgba()
        ink = self._on.get(key)
        if ink is None:
            ink = self._on[key] = theme.text_colour_on(fill)
        if muted_black and ink == self._black:
            return self._muted
        return ink


class StripScroll(QScrollArea):
    """The strip's scroll area: it tells the strip the height it is seen at, is never lower
    than one whole row of cells, and scrolls the cursor's whole cell into view."""

    def __init__(self, strip: CharStrip, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._strip = strip
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(strip)
        self._update_minimum()

    def set_show_topk(self, show: bool) -> None:
        self._strip.set_show_topk(show)
        self._update_minimum()

    def rezoom(self) -> None:
        self._strip.rezoom()
        self._update_minimum()

    def _update_minimum(self) -> None:
        self.setMinimumHeight(self._strip.least_view_height() + 2 * self.frameWidth())

    def show_cell(self, i: int) -> None:
        """Scroll so that cell ``i`` (the character and its top-k lines) is in view."""
        rect = self._strip.cell_rect(i)
        margin = self._strip.GAP + 2  # the cursor's frame is drawn just outside the cell
        self.ensureVisible(rect.center().x(), rect.center().y(), 0, rect.height() // 2 + margin)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        hint = self._strip.sizeHint()
        return QSize(hint.width(), hint.height() + 2 * self.frameWidth())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._strip.set_view_height(self.viewport().height())
        if self._strip.count():  # fewer lines or rows of another width: find the cursor again
            self.show_cell(self._strip.time_step())
