"""Panels that show one probe of the typed string: coloured text, hidden states, softmax.

Each panel draws a ``core.probe.ProbeResult``; it computes nothing from the model, it slices
the result's arrays and maps them to colours. Plot items are created once in ``__init__`` and
updated with ``setImage`` / ``setData`` / ``setOpts``; heatmaps have fixed colour levels, so
the same activation has the same colour in every probe while training goes on.

Every method runs in the GUI thread. ``set_cursor`` / ``set_unit`` never emit: the signals
report what the user did, so wiring panels to each other cannot loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPoint, QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QHelpEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QResizeEvent,
    QStaticText,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGraphicsPathItem,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QStackedWidget,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from rnnviz.gui import theme

if TYPE_CHECKING:
    from rnnviz.core.probe import ProbeResult

ColourMode = Literal["unit", "surprisal"]
DEFAULT_PROBE_TEXT = "the time machine"
PLACEHOLDER = "type a string to probe"


def quoted(char: str) -> str:
    """A character as the panels write it in prose: ``'e'``, ``'␣'``."""
    return f"'{theme.display_char(char)}'"


def _clamp(value: int, length: int) -> int:
    return min(max(value, 0), max(length - 1, 0))


def _placeholder_label(text: str) -> QLabel:
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setFont(theme.font(1.3))
    label.setStyleSheet(f"color: {theme.PLACEHOLDER_INK};")
    return label


def _same_leading_rows(old: tuple[np.ndarray, ...], new: tuple[np.ndarray, ...]) -> int:
    """How many leading rows are equal (NaN equal to NaN) in every pair of arrays."""
    n = min(min(len(a) for a in old), min(len(b) for b in new))
    same = np.ones(n, dtype=bool)
    for a, b in zip(old, new, strict=True):
        equal = a[:n] == b[:n]
        if a.dtype.kind == "f":  # a NaN (a diverged model) equals a NaN here
            equal |= np.isnan(a[:n]) & np.isnan(b[:n])
        same &= equal.reshape(n, -1).all(axis=1)
    return n if same.all() else int(np.argmin(same))


def _tooltip(r: ProbeResult, t: int) -> str:
    """The tooltip of character t of a probe: its surprise and the probability of the next."""
    text, T = r.text, len(r.text)
    lines = [f"t = {t}  {quoted(text[t])}"]
    if t in r.unknown:
        lines.append("not in the vocabulary: maps to <unk>")
    if t > 0:
        bits = theme.fixed_or_plain(float(r.surprisal_bits[t - 1]))
        lines.append(f"surprise on seeing it: {bits} bits")
    if t + 1 < T:
        p_next = r.probs[t, r.tokens[t + 1]]
        lines.append(f"P(next = {quoted(text[t + 1])}) = {p_next:.3f}")
    else:
        lines.append("last character: next one unknown")
    return "\n".join(lines)


def _readout_label() -> theme.SteadyLabel:
    # its text changes with every probe and cursor move: it must not re-lay out the window
    label = theme.SteadyLabel(wrap=True)
    label.label().setFont(theme.font(1.1))
    return label


# ------------------------------------------------------------------------------- time cursor


class TimeCursor(QWidget):
    """A slider over the time steps of the probe string and a label ``t = 5 / 15  'i' → 'm'``.

    ``cursor_changed`` is emitted when the user moves the slider or the main window calls
    ``step`` / ``home`` / ``end`` (its keyboard shortcuts); ``set_cursor`` is silent.
    """

    cursor_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._length = 0
        self._slider = QSlider(Qt.Orientation.Horizontal)
        self._slider.setRange(0, 0)
        self._slider.setPageStep(5)
        self._slider.setEnabled(False)
        self._slider.setToolTip("time step of the probe string (Alt+← / Alt+→, Home, End)")
        self._label = QLabel()
        self._label.setFont(theme.font(1.2, mono=True))
        self._label.setMinimumWidth(QFontMetrics(self._label.font()).horizontalAdvance("x" * 26))
        caption = QLabel("time step")
        caption.setFont(theme.font())
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addWidget(caption)
        layout.addWidget(self._slider, 1)
        layout.addWidget(self._label)
        self._slider.valueChanged.connect(self._on_slider_value_changed)
        self._update_label()

    # -- state
    def cursor(self) -> int:  # type: ignore[override]
        """The time step (shadows QWidget.cursor, the mouse cursor, which this widget never sets;
        Qt's C++ side does not call it through Python)."""
        return int(self._slider.value())

    def length(self) -> int:
        return self._length

    def label_text(self) -> str:
        return self._label.text()

    # -- set from outside (silent)
    def set_result(self, result: ProbeResult | None) -> None:
        self.set_text("" if result is None else result.text)

    def set_text(self, text: str) -> None:
        """The probe string: its length bounds the cursor, its characters name the steps."""
        self._text = text
        self.set_length(len(text))

    def set_length(self, length: int) -> None:
        """Bound the cursor to ``0 .. length-1`` (clamped silently)."""
        self._length = max(0, int(length))
        if len(self._text) != self._length:
            self._text = ""
        self._slider.blockSignals(True)
        self._slider.setRange(0, max(self._length - 1, 0))
        self._slider.blockSignals(False)
        self._slider.setEnabled(self._length > 1)
        self._update_label()

    def set_cursor(self, t: int) -> None:
        self._slider.blockSignals(True)
        self._slider.setValue(_clamp(int(t), self._length))
        self._slider.blockSignals(False)
        self._update_label()

    # -- user actions (emit cursor_changed when the cursor moves)
    def step(self, delta: int = 1) -> None:
        self._move_to(self.cursor() + delta)

    def home(self) -> None:
        self._move_to(0)

    def end(self) -> None:
        self._move_to(self._length - 1)

    def _move_to(self, t: int) -> None:
        if self._length:
            self._slider.setValue(_clamp(t, self._length))  # emits through valueChanged

    def _on_slider_value_changed(self, value: int) -> None:
        self._update_label()
        self.cursor_changed.emit(value)

    def _update_label(self) -> None:
        if self._length == 0:
            self._label.setText("t = –")
            return
        t = self.cursor()
        text = f"t = {t} / {self._length - 1}"
        if self._text:
            following = quoted(self._text[t + 1]) if t + 1 < self._length else "end"
            text += f"   {quoted(self._text[t])} → {following}"
        self._label.setText(text)


# ------------------------------------------------------------------------ probe text panel


class _ColourLegend(QWidget):
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


class _CharStrip(QWidget):
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
        # again and again, and laying them out was a third of the strip's paint
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
        self._cursor = _clamp(self._cursor, len(chars))
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
        t = _clamp(t, len(self._chars))
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


class ProbeTextPanel(QWidget):
    """The typed string, and the probed string as coloured characters (Karpathy's view).

    Colour mode ``unit``: each character is coloured by the selected hidden unit's
    activation H_t[unit] after reading it (fixed levels, blue negative, red positive).
    Colour mode ``surprisal``: each character is coloured by how surprised the model was to
    see it, -log2 p(char | the characters before it), white 0 bits to red 8 bits; the first
    character has nothing before it and stays grey. Under each character: the k most likely
    next characters, the true next one in bold orange.
    """

    text_edited = Signal(str)
    cursor_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._result: ProbeResult | None = None
        self._topk_lines: list[list[str]] = []  # the strip's top-k lines, made from _topk_of
        self._topk_of: ProbeResult | None = None
        # the strip's colours, made from these values, levels and colour map
        self._colours_of: tuple[np.ndarray, tuple[float, float], pg.ColorMap] | None = None
        self._colours: list[QColor] = []
        self._mode: ColourMode = "unit"
        self._unit = 0
        self._cursor = 0

        self._edit = QLineEdit(DEFAULT_PROBE_TEXT)
        self._edit.setPlaceholderText("type a string to probe the model with")
        self._edit.setFont(theme.font(1.4))
        self._edit.setClearButtonEnabled(True)
        self._mode_combo = QComboBox()
        self._mode_combo.setFont(theme.font())
        self._mode_combo.addItem("colour: hidden unit", "unit")
        self._mode_combo.addItem("colour: surprisal (bits)", "surprisal")
        self._unit_label = QLabel()
        self._unit_label.setFont(theme.font(1.1, bold=True))
        self._topk_check = QCheckBox("top-k")
        self._topk_check.setFont(theme.font())
        self._topk_check.setChecked(True)
        self._topk_check.setToolTip("show the most likely next characters under each character")
        self._legend = _ColourLegend()
        self._legend_caption = QLabel()
        self._legend_caption.setFont(theme.font(0.9))
        self._strip = _CharStrip()
        self._scroll = QScrollArea()
        self._scroll.setWidgetResizable(True)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._scroll.setWidget(self._strip)
        self._unknown_label = QLabel()
        self._unknown_label.setFont(theme.font(1.0, bold=True))
        self._unknown_label.setStyleSheet(f"color: {theme.UNKNOWN};")
        self._unknown_label.setWordWrap(True)
        self._unknown_label.hide()

        controls = QHBoxLayout()
        controls.addWidget(self._edit, 1)
        controls.addWidget(self._mode_combo)
        controls.addWidget(self._unit_label)
        controls.addWidget(self._topk_check)
        legend_row = QHBoxLayout()
        legend_row.addWidget(self._legend)
        legend_row.addWidget(self._legend_caption, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(controls)
        layout.addLayout(legend_row)
        layout.addWidget(self._scroll, 1)
        layout.addWidget(self._unknown_label)

        self._edit.textChanged.connect(self._on_edit_text_changed)
        self._mode_combo.currentIndexChanged.connect(self._on_mode_combo_changed)
        self._topk_check.toggled.connect(self._strip.set_show_topk)
        self._strip.clicked.connect(self._on_strip_clicked)
        self._update_unit_label()
        self._recolour()

    # -- public API
    def text(self) -> str:
        """The typed string (what the main window probes)."""
        return self._edit.text()

    def line_edit(self) -> QLineEdit:
        return self._edit

    def colour_mode(self) -> ColourMode:
        return self._mode

    def unit(self) -> int:
        return self._unit

    def set_result(self, result: ProbeResult | None) -> None:
        self._result = result
        if result is None:
            self._strip.set_content([], [], [], None, frozenset())
            self._unknown_label.hide()
            self._recolour()
            return
        text, vocab = result.text, result.vocab_tokens
        T = len(text)
        self._cursor = _clamp(self._cursor, T)
        chars = [theme.display_char(c) for c in text]
        shown_vocab = [theme.display_char(tok) for tok in vocab]
        # after a keystroke the rows before the edit are the same numbers: keep their lines
        keep = self._same_topk_rows(result)
        topk_ids = result.topk_ids[keep:].tolist()
        topk_probs = result.topk_probs[keep:].tolist()
        topk = self._topk_lines[:keep] + [
            [f"{shown_vocab[v]} {theme.fixed_or_plain(p)}" for v, p in zip(ids, probs, strict=True)]
            for ids, probs in zip(topk_ids, topk_probs, strict=True)
        ]
        self._topk_lines, self._topk_of = topk, result
        topk_ids = result.topk_ids.tolist()
        tokens = result.tokens.tolist()
        true_next = tokens[1:] + [-1]
        topk_true = [
            ids.index(nxt) if nxt in ids else -1
            for ids, nxt in zip(topk_ids, true_next, strict=True)
        ]
        unknown = frozenset(result.unknown)
        self._strip.set_content(chars, topk, topk_true, partial(_tooltip, result), unknown)
        self._strip.set_cursor(self._cursor)
        self._update_unknown_label(result)
        self._recolour()

    def set_cursor(self, t: int) -> None:
        length = 0 if self._result is None else len(self._result.text)
        self._cursor = _clamp(int(t), length)
        self._strip.set_cursor(self._cursor)
        if length:
            rect = self._strip.cell_rect(self._cursor)
            self._scroll.ensureVisible(rect.center().x(), rect.center().y(), 0, rect.height())

    def set_unit(self, unit: int) -> None:
        self._unit = max(0, int(unit))
        self._update_unit_label()
        if self._mode == "unit":
            self._recolour()

    def set_colour_mode(self, mode: ColourMode) -> None:
        if mode not in ("unit", "surprisal"):
            raise ValueError(f"colour mode must be 'unit' or 'surprisal', not {mode!r}")
        self._mode = mode
        self._mode_combo.blockSignals(True)
        self._mode_combo.setCurrentIndex(self._mode_combo.findData(mode))
        self._mode_combo.blockSignals(False)
        self._update_unit_label()
        self._recolour()

    # -- for tests and the screenshot
    def cell_colours(self) -> list[QColor]:
        return list(self._strip._colours)

    def topk_text(self, t: int) -> str:
        """The top-k lines under character t, one per line: ``"e 0.41\\na 0.20..."``."""
        return "\n".join(self._strip._topk[t])

    def unknown_text(self) -> str:
        return self._unknown_label.text() if not self._unknown_label.isHidden() else ""

    def strip(self) -> QWidget:
        return self._strip

    # -- internals
    def _same_topk_rows(self, result: ProbeResult) -> int:
        """How many leading rows of top-k ids and probabilities ``result`` shares with the
        result the current top-k lines were made from."""
        old = self._topk_of
        if old is None or old.vocab_tokens != result.vocab_tokens:
            return 0
        return _same_leading_rows(
            (old.topk_ids, old.topk_probs), (result.topk_ids, result.topk_probs)
        )

    def _shown_unit(self) -> int:
        if self._result is None:
            return self._unit
        return min(self._unit, int(self._result.hidden.shape[1]) - 1)

    @staticmethod
    def _levels(r: ProbeResult) -> tuple[float, float]:
        return float(r.hidden_levels[0]), float(r.hidden_levels[1])

    def _colour_values(self) -> tuple[np.ndarray, tuple[float, float], pg.ColorMap]:
        assert self._result is not None
        r = self._result
        if self._mode == "unit":
            levels = self._levels(r)
            return r.hidden[:, self._shown_unit()], levels, theme.activation_colormap(levels)
        # character j is coloured by the surprise of seeing it: row j-1 predicted it
        seen = np.concatenate(([np.nan], np.asarray(r.surprisal_bits, dtype=np.float64)[:-1]))
        return seen, (0.0, theme.SURPRISAL_MAX_BITS), theme.SURPRISAL

    def _recolour(self) -> None:
        if self._mode == "unit":
            levels = (-1.0, 1.0) if self._result is None else self._levels(self._result)
            cmap = theme.activation_colormap(levels)
            self._legend.set_scale(
                cmap, theme.plain_number(levels[0]), theme.plain_number(levels[1], sign=True)
            )
            self._legend_caption.setText(
                f"H_t[{self._shown_unit()}] after reading each character"
                + (f" ({self._result.activation})" if self._result is not None else "")
            )
        else:
            self._legend.set_scale(theme.SURPRISAL, "0", f"{theme.SURPRISAL_MAX_BITS:g} bits")
            self._legend_caption.setText(
                "surprisal of each character given those before it, −log₂ p"
            )
        if self._result is None:
            self._colours_of, self._colours = None, []
            self._strip.set_colours([])
            return
        values, levels, cmap = self._colour_values()
        keep = 0
        if self._colours_of is not None:
            old_values, old_levels, old_cmap = self._colours_of
            if (old_levels, old_cmap) == (levels, cmap):
                keep = _same_leading_rows((old_values,), (values,))
        self._colours = self._colours[:keep] + theme.map_colours(cmap, values[keep:], levels)
        self._colours_of = (values, levels, cmap)
        self._strip.set_colours(self._colours)

    def _update_unit_label(self) -> None:
        self._unit_label.setText(f"unit {self._shown_unit()}")
        self._unit_label.setEnabled(self._mode == "unit")

    def _update_unknown_label(self, result: ProbeResult) -> None:
        if not result.unknown:
            self._unknown_label.hide()
            return
        distinct = list(dict.fromkeys(result.text[i] for i in result.unknown))
        n = len(result.unknown)
        self._unknown_label.setText(
            f"{n} character{'s' if n != 1 else ''} not in the vocabulary: "
            + ", ".join(repr(c) for c in distinct)
            + " (the model reads <unk>)"
        )
        self._unknown_label.show()

    def _on_edit_text_changed(self, text: str) -> None:
        self.text_edited.emit(text)

    def _on_mode_combo_changed(self, index: int) -> None:
        self.set_colour_mode(self._mode_combo.itemData(index))

    def _on_strip_clicked(self, t: int) -> None:
        self.cursor_requested.emit(t)


# --------------------------------------------------------------------------------- heatmaps


class _Heatmap:
    """A plot with one row-major ImageItem over cells [0, cols) × [0, rows), row 0 at the top,
    a fixed-level colour bar beside it, a cursor line and tick labels at cell centres."""

    def __init__(
        self,
        layout: pg.GraphicsLayoutWidget,
        row: int,
        *,
        cmap: pg.ColorMap,
        levels: tuple[float, float],
        bar_label: str,
        left: str,
        bottom: str,
    ) -> None:
        self.plot: pg.PlotItem = layout.addPlot(row=row, col=0)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.plot.invertY(True)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.levels = levels
        self._shape = (0, 0)  # (rows, time steps) of the array shown
        self.bar = pg.ColorBarItem(
            values=levels,
            colorMap=cmap,
            label=bar_label,
            interactive=False,
            colorMapMenu=False,
            width=18,
        )
        self.bar.setImageItem(self.image)
        layout.addItem(self.bar, row=row, col=1)
        self.cursor_line = pg.InfiniteLine(
            pos=0.5, angle=90, movable=False, pen=pg.mkPen(theme.CURSOR, width=3)
        )
        self.cursor_line.setZValue(10)
        self.plot.addItem(self.cursor_line)
        # NaN cells (a diverged model) are transparent in the image: this grey shows through,
        # so a missing value never reads as the colour of 0
        self.missing_rect = QGraphicsRectItem(0.0, 0.0, 0.0, 0.0)
        self.missing_rect.setBrush(pg.mkBrush(theme.MISSING_VALUE))
        self.missing_rect.setPen(pg.mkPen(None))
        self.missing_rect.setZValue(-20)
        self.plot.addItem(self.missing_rect)
        theme.style_plot(self.plot, left=left, bottom=bottom)
        theme.style_colour_bar(self.bar, bar_label)
        self.x_ticks = theme.TickSource(
            self.plot.getAxis("bottom"), *theme.STEP_TICK_PX, numbers_when_crowded=True
        )
        self.y_ticks = theme.TickSource(self.plot.getAxis("left"), theme.BASE_POINT_SIZE * 1.9)
        self.plot.getViewBox().sigResized.connect(self._on_view_resized)

    def show(self, array: np.ndarray, levels: tuple[float, float], cmap: pg.ColorMap) -> None:
        """Draw ``array`` (rows, cols) with fixed ``levels``."""
        if cmap is not self.bar.colorMap():
            self.bar.setColorMap(cmap)
        if levels != self.levels:
            self.levels = levels
            theme.set_colour_bar_levels(self.bar, levels)
        self.image.setImage(np.ascontiguousarray(array), levels=levels, autoLevels=False)
        rows, cols = array.shape
        self.missing_rect.setRect(0.0, 0.0, float(cols), float(rows))
        self._shape = (rows, cols)
        self._on_view_resized()

    def clear(self) -> None:
        self._shape = (0, 0)
        self.image.clear()
        self.missing_rect.setRect(0.0, 0.0, 0.0, 0.0)

    def set_bar_label(self, text: str) -> None:
        theme.style_colour_bar(self.bar, text)

    def set_cursor(self, t: int) -> None:
        self.cursor_line.setPos(t + 0.5)

    def cell_at(self, scene_pos: QPointF) -> tuple[int, int] | None:
        """(col, row) of the cell under a scene position, or None outside the image."""
        image = self.image.image
        if image is None or not self.plot.getViewBox().sceneBoundingRect().contains(scene_pos):
            return None
        p = self.image.mapFromScene(scene_pos)
        col, row = math.floor(p.x()), math.floor(p.y())
        rows, cols = image.shape[:2]
        if 0 <= row < rows and 0 <= col < cols:
            return col, row
        return None

    def scene_pos_of(self, col: int, row: int) -> QPointF:
        """The scene position of the centre of cell (col, row)."""
        scene_pos: QPointF = self.image.mapToScene(QPointF(col + 0.5, row + 0.5))
        return scene_pos

    def _on_view_resized(self) -> None:
        rect = self.plot.getViewBox().boundingRect()
        rows, cols = self._shape
        if cols:  # the time axis's span depends on how many characters fit its width
            span = theme.time_span(cols, rect.width())
            if theme.changed(self.plot, "span", (span, rows)):
                self.plot.setRange(xRange=(0, span), yRange=(0, rows), padding=0)
        self.x_ticks.refresh(rect.width())
        self.y_ticks.refresh(rect.height())


def _graphics_with_placeholder(
    parent: QWidget, placeholder: str
) -> tuple[QStackedWidget, pg.GraphicsLayoutWidget]:
    """A stack: page 0 a placeholder sentence, page 1 the plots (shown once there is data)."""
    stack = QStackedWidget(parent)
    stack.addWidget(_placeholder_label(placeholder))
    graphics = pg.GraphicsLayoutWidget()
    graphics.setBackground(theme.PLOT_BACKGROUND)
    stack.addWidget(graphics)
    return stack, graphics


# the softmax heatmap's true-next outlines are at least this many pixels across
MARK_MIN_PX = 9

# the hidden-state trace marks each step with a dot up to this many steps
TRACE_DOTS_MAX_STEPS = 60


class HiddenStatesPanel(QWidget):
    """Heatmap of the hidden state H_t: units (rows) × time steps (columns), fixed levels.

    Clicking a cell selects its unit (``unit_selected``) and asks to move the time cursor
    there (``cursor_requested``); the selected unit's trace over t is drawn below.
    For an LSTM a check box shows the cell state C_t instead.
    """

    unit_selected = Signal(int)
    cursor_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._result: ProbeResult | None = None
        self._cursor = 0
        self._unit = 0
        self._show_cell = False

        self._readout = _readout_label()
        self._cell_check = QCheckBox("show C_t (LSTM cell state)")
        self._cell_check.setFont(theme.font())
        self._cell_check.hide()
        top = QHBoxLayout()
        top.addWidget(self._readout, 1)
        top.addWidget(self._cell_check)
        self._stack, self._graphics = _graphics_with_placeholder(
            self, f"{PLACEHOLDER}: its hidden states H_t appear here"
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self._stack, 1)

        self._heatmap = _Heatmap(
            self._graphics,
            0,
            cmap=theme.DIVERGING,
            levels=(-1.0, 1.0),
            bar_label="H_t",
            left="hidden unit",
            bottom="time step t (character)",
        )
        self.plot_item = self._heatmap.plot
        self.image_item = self._heatmap.image
        self.colour_bar = self._heatmap.bar
        self.cursor_line = self._heatmap.cursor_line
        self.unit_box = QGraphicsRectItem()
        unit_pen = pg.mkPen("#000000", width=2.5, style=Qt.PenStyle.DashLine)
        unit_pen.setCosmetic(True)
        self.unit_box.setPen(unit_pen)
        self.unit_box.setZValue(9)
        self.unit_box.hide()
        self.plot_item.addItem(self.unit_box)

        self.trace_plot: pg.PlotItem = self._graphics.addPlot(row=1, col=0)
        self.trace_plot.setXLink(self.plot_item)
        self.trace_plot.setMouseEnabled(x=False, y=False)
        self.trace_plot.setMenuEnabled(False)
        self.trace_plot.hideButtons()
        self.trace_curve = pg.PlotDataItem(
            pen=pg.mkPen(theme.RUN_COLOURS[0], width=3),
            symbol="o",
            symbolSize=7,
            symbolBrush=theme.RUN_COLOURS[0],
            symbolPen=None,
            **theme.SMOOTH,
        )
        self.trace_plot.addItem(self.trace_curve)
        self.trace_plot.addItem(
            pg.InfiniteLine(pos=0.0, angle=0, movable=False, pen=pg.mkPen(theme.MUTED, width=1))
        )
        self.trace_cursor_line = pg.InfiniteLine(
            pos=0.5, angle=90, movable=False, pen=pg.mkPen(theme.CURSOR, width=2)
        )
        self.trace_plot.addItem(self.trace_cursor_line)
        theme.style_plot(self.trace_plot, left="H_t[0]", bottom="time step t (character)")
        # the same left-axis width keeps the trace's steps under the heatmap's columns
        for plot in (self.plot_item, self.trace_plot):
            plot.getAxis("left").setWidth(theme.LEFT_AXIS_WIDTH)
        self._trace_x_ticks = theme.TickSource(
            self.trace_plot.getAxis("bottom"), *theme.STEP_TICK_PX, numbers_when_crowded=True
        )
        self._graphics.ci.layout.setRowStretchFactor(0, 3)
        self._graphics.ci.layout.setRowStretchFactor(1, 1)

        scene = self._graphics.scene()
        scene.sigMouseClicked.connect(self._on_scene_clicked)
        scene.sigMouseMoved.connect(self._on_scene_mouse_moved)
        self.plot_item.getViewBox().sigResized.connect(self._on_view_resized)
        self._cell_check.toggled.connect(self._on_cell_check_toggled)
        theme.cache_axes(self._graphics)
        self.set_result(None)

    # -- public API
    def set_result(self, result: ProbeResult | None) -> None:
        self._result = result
        if result is None:
            self._heatmap.clear()
            self.trace_curve.setData([], [])
            self.unit_box.hide()
            self._cell_check.hide()
            self._readout.setText("")
            self._stack.setCurrentIndex(0)
            return
        has_cell = result.cell is not None
        self._cell_check.setVisible(has_cell)
        if not has_cell:
            self._show_cell = False
        self._stack.setCurrentIndex(1)
        self._heatmap.x_ticks.set_chars(result.text)
        self._heatmap.y_ticks.set_count(result.hidden.shape[1])
        self._trace_x_ticks.set_chars(result.text)
        self._cursor = _clamp(self._cursor, len(result.text))
        self._draw()
        self._on_view_resized()  # the trace's ticks for this text (not only on a resize)
        self._readout.setText("click a row to trace that unit over time")

    def set_cursor(self, t: int) -> None:
        length = 0 if self._result is None else len(self._result.text)
        self._cursor = _clamp(int(t), length)
        self._heatmap.set_cursor(self._cursor)
        self.trace_cursor_line.setPos(self._cursor + 0.5)

    def set_unit(self, unit: int) -> None:
        """Select a unit row (silent: no unit_selected)."""
        self._unit = max(0, int(unit))
        if self._result is not None:
            self._draw_unit()

    def unit(self) -> int:
        return self._unit

    def displayed_array(self) -> np.ndarray | None:
        """What the heatmap draws: hidden.T (H, T) (or cell.T), None when cleared."""
        image: np.ndarray | None = self.image_item.image
        return image

    def displayed_levels(self) -> tuple[float, float]:
        levels = self.image_item.getLevels()
        return float(levels[0]), float(levels[1])

    def trace_data(self) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.trace_curve.getData()
        return (np.array([]) if x is None else x), (np.array([]) if y is None else y)

    def scene_pos_of_cell(self, t: int, unit: int) -> QPointF:
        return self._heatmap.scene_pos_of(t, unit)

    def graphics_view(self) -> pg.GraphicsLayoutWidget:
        return self._graphics

    def readout_text(self) -> str:
        return self._readout.text()

    def select_at_scene_pos(self, scene_pos: QPointF) -> bool:
        """What a click does: select the unit under the position, request its time step."""
        cell = self._heatmap.cell_at(scene_pos)
        if cell is None:
            return False
        t, unit = cell
        self.set_unit(unit)
        self.unit_selected.emit(unit)
        self.cursor_requested.emit(t)
        return True

    # -- internals
    def _shown(self) -> tuple[np.ndarray, tuple[float, float], str]:
        assert self._result is not None
        if self._show_cell and self._result.cell is not None:
            return self._result.cell, theme.CELL_STATE_LEVELS, "C_t"
        lo, hi = self._result.hidden_levels
        return self._result.hidden, (float(lo), float(hi)), "H_t"

    def _draw(self) -> None:
        values, levels, name = self._shown()
        self._heatmap.show(values.T, levels, theme.activation_colormap(levels))
        self._heatmap.set_bar_label(name)
        self.trace_plot.setYRange(levels[0], levels[1], padding=0.05)
        theme.set_level_ticks(self.trace_plot.getAxis("left"), levels)
        self._draw_unit()
        self.set_cursor(self._cursor)

    def _draw_unit(self) -> None:
        values, _, name = self._shown()
        T, H = values.shape
        unit = min(self._unit, H - 1)
        # a dot per step while the dots are apart; past that they are a blur and cost
        # a scatter item (a millisecond a keystroke at 100 characters)
        symbol = "o" if T <= TRACE_DOTS_MAX_STEPS else None
        if theme.changed(self.trace_curve, "symbol", symbol):
            self.trace_curve.setSymbol(symbol)
        self.trace_curve.setData(np.arange(T) + 0.5, values[:, unit])
        theme.set_axis_label(self.trace_plot, "left", f"{name}[{unit}]")
        self.unit_box.setRect(0, unit, T, 1)
        self.unit_box.show()

    def _on_view_resized(self) -> None:
        self._trace_x_ticks.refresh(self.plot_item.getViewBox().boundingRect().width())

    def _on_cell_check_toggled(self, checked: bool) -> None:
        self._show_cell = checked
        if self._result is not None:
            self._draw()

    def _on_scene_clicked(self, event: object) -> None:
        if self._result is None or event.button() != Qt.MouseButton.LeftButton:  # type: ignore[attr-defined]
            return
        if self.select_at_scene_pos(event.scenePos()):  # type: ignore[attr-defined]
            event.accept()  # type: ignore[attr-defined]

    def _on_scene_mouse_moved(self, scene_pos: QPointF) -> None:
        if self._result is None:
            return
        cell = self._heatmap.cell_at(scene_pos)
        if cell is None:
            return
        t, unit = cell
        values, _, name = self._shown()
        self._readout.setText(
            f"t = {t}  {quoted(self._result.text[t])}   unit {unit}:  "
            f"{name} = {values[t, unit]:+.3f}"
        )


class SoftmaxPanel(QWidget):
    """P(next character) at the cursor step as bars, and over all steps as a heatmap.

    Row t of ``probs`` is the prediction after reading character t, so the true next
    character is ``text[t + 1]`` (its bar orange); at the last step there is none.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._result: ProbeResult | None = None
        self._cursor = 0
        self._drawn_for: ProbeResult | None = None  # the result whose cursor step is drawn
        self._highlight: int | None = None

        self._readout = _readout_label()
        self._stack, self._graphics = _graphics_with_placeholder(
            self, f"{PLACEHOLDER}: the model's next-character probabilities appear here"
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self._readout)
        layout.addWidget(self._stack, 1)

        self.bar_plot: pg.PlotItem = self._graphics.addPlot(row=0, col=0)
        self.bar_plot.setMouseEnabled(x=False, y=False)
        self.bar_plot.setMenuEnabled(False)
        self.bar_plot.hideButtons()
        self.bar_plot.setYRange(0.0, 1.0, padding=0.02)
        theme.set_level_ticks(self.bar_plot.getAxis("left"), (0.0, 1.0))
        self._bar_brush = pg.mkBrush(theme.RUN_COLOURS[0])
        self._true_brush = pg.mkBrush(theme.HIGHLIGHT)
        self.bar_item = pg.BarGraphItem(x=[], height=[], width=0.8, pen=None, brush=self._bar_brush)
        self.bar_plot.addItem(self.bar_item)
        theme.style_plot(self.bar_plot, left="probability", bottom="next character (vocabulary)")
        self.bar_plot.setTitle("", size=f"{theme.BASE_POINT_SIZE * 1.15:.0f}pt", color="#000")
        self._bar_ticks = theme.TickSource(
            self.bar_plot.getAxis("bottom"), theme.BASE_POINT_SIZE * 1.6
        )
        self.bar_plot.getViewBox().sigResized.connect(self._on_bar_view_resized)

        self._heatmap = _Heatmap(
            self._graphics,
            1,
            cmap=theme.SEQUENTIAL,
            levels=(0.0, 1.0),
            bar_label="P(next char)",
            left="next character",
            bottom="time step t (character read)",
        )
        self.heatmap_item = self._heatmap.image
        self.cursor_line = self._heatmap.cursor_line
        # the character that really came next, outlined in each column of the heatmap
        # one path of cell outlines: a scatter item of squares cost ~1.5 ms a keystroke
        self.true_next_marks = QGraphicsPathItem()
        mark_pen = pg.mkPen(theme.HIGHLIGHT, width=2)
        mark_pen.setCosmetic(True)
        self.true_next_marks.setPen(mark_pen)
        self.true_next_marks.setZValue(5)
        self._heatmap.plot.addItem(self.true_next_marks)
        self._heatmap.plot.getViewBox().sigResized.connect(self._draw_true_next_marks)
        self._graphics.ci.layout.setRowStretchFactor(0, 1)
        self._graphics.ci.layout.setRowStretchFactor(1, 1)
        theme.cache_axes(self._graphics)
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
            self._readout.setText("")
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
        self._cursor = _clamp(self._cursor, T)
        self.set_cursor(self._cursor)

    def set_cursor(self, t: int) -> None:
        r = self._result
        if r is None:
            self._cursor = max(0, int(t))
            return
        T, V = len(r.text), len(r.vocab_tokens)
        t = _clamp(int(t), T)
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
        prefix = r.text[: t + 1]
        if len(prefix) > 24:
            prefix = "…" + prefix[-23:]
        theme.set_title(self.bar_plot, f"P(next char | '{prefix}') at t = {t}")
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
        self._readout.setText(f"{truth}     top {r.topk_ids.shape[1]}: {top}")

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
        return str(self.bar_plot.titleLabel.text)

    def readout_text(self) -> str:
        return self._readout.text()

    # -- internals
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
