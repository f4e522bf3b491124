"""The "step view" dock: one time step of the scratch RNN, term by term, next to the equation.

    H_t = φ(X_t W_xh + H_{t−1} W_hh + b_h),   O_t = H_t W_hq + b_q,   P = softmax(O_t)

Every vector of :class:`rnnviz.core.probe.StepDetail` is a row: its formula and shape, a strip
of coloured cells (one per entry, fixed colour levels) and its first values as numbers. The
H-wide rows share one column, so the cells of unit j line up from ``X_t W_xh`` down to ``H_t``
and a student can add them up with their eyes. Under them, the slides' identity
``[X_t, H_{t−1}] [W_xh; W_hh] = X_t W_xh + H_{t−1} W_hh`` with the largest difference between
the two sides, as core computed it.

The main window computes the StepDetail on each cursor move (``core.probe.step_detail``) and
passes it in; this panel only draws. All methods run in the GUI thread.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFontMetrics,
    QPainter,
    QPaintEvent,
    QPen,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from rnnviz.gui import theme

if TYPE_CHECKING:
    from rnnviz.core.probe import StepDetail

PLACEHOLDER_NO_TEXT = "type a string to probe"
PLACEHOLDER_GATED = "step view needs the scratch or fast RNN"

NUMBERS_SHOWN = 8  # the first values of each vector, as numbers, before the row is laid out
TOP_K = 5
# Fixed colour levels, so a colour means the same number at every step and every probe.
# The three terms and their sum share one scale: which term dominates is then visible.
SUM_LEVELS: tuple[float, float] = (-3.0, 3.0)
TANH_LEVELS: tuple[float, float] = (-1.0, 1.0)
RELU_LEVELS: tuple[float, float] = (0.0, 3.0)
LOGIT_LEVELS: tuple[float, float] = (-8.0, 8.0)
PROB_LEVELS: tuple[float, float] = (0.0, 1.0)
ONE_HOT_LEVELS: tuple[float, float] = (0.0, 1.0)

# row key -> (formula as rich text, width symbol ("V" or "H"))
ROWS: tuple[tuple[str, str, str], ...] = (
    ("X_t", "X<sub>t</sub>", "V"),
    ("H_prev", "H<sub>t−1</sub>", "H"),
    ("xW", "X<sub>t</sub> W<sub>xh</sub>", "H"),
    ("hW", "H<sub>t−1</sub> W<sub>hh</sub>", "H"),
    ("b_h", "b<sub>h</sub>", "H"),
    (
        "pre_activation",
        "A<sub>t</sub> = X<sub>t</sub>W<sub>xh</sub> + H<sub>t−1</sub>W<sub>hh</sub>"
        " + b<sub>h</sub>",
        "H",
    ),
    ("H_t", "H<sub>t</sub> = φ(A<sub>t</sub>)", "H"),
    ("O_t", "O<sub>t</sub> = H<sub>t</sub> W<sub>hq</sub> + b<sub>q</sub>", "V"),
    ("softmax", "P = softmax(O<sub>t</sub>)", "V"),
)
ROW_KEYS: tuple[str, ...] = tuple(key for key, _, _ in ROWS)
EQUATION_HTML = (
    "H<sub>t</sub> = φ(X<sub>t</sub> W<sub>xh</sub> + H<sub>t−1</sub> W<sub>hh</sub> "
    "+ b<sub>h</sub>)&nbsp;&nbsp;&nbsp;O<sub>t</sub> = H<sub>t</sub> W<sub>hq</sub> "
    "+ b<sub>q</sub>&nbsp;&nbsp;&nbsp;P = softmax(O<sub>t</sub>)"
)
CONCAT_HTML = (
    "[X<sub>t</sub>, H<sub>t−1</sub>] · [W<sub>xh</sub>; W<sub>hh</sub>] = "
    "X<sub>t</sub> W<sub>xh</sub> + H<sub>t−1</sub> W<sub>hh</sub>"
)


def quoted(char: str | None) -> str:
    return "–" if char is None else f"'{theme.display_char(char)}'"


def format_numbers(values: np.ndarray, count: int = NUMBERS_SHOWN) -> str:
    """The first ``count`` values, signed, 2 decimals (``+0.12 −0.53 … (2 of 32)``)."""
    values = np.asarray(values, dtype=np.float64)
    shown = []
    for v in values[:count]:
        if not math.isfinite(v):
            shown.append(f"{v:>5}")
        elif abs(v) >= 100:
            shown.append(f"{v:+.0e}".replace("-", "−"))
        else:
            shown.append(f"{v:+.2f}".replace("-", "−"))
    more = f" … ({count} of {len(values)})" if len(values) > count else ""
    return " ".join(shown) + more


class NumbersLabel(QLabel):
    """A vector's first values as numbers, as many as fit the label's width; or a sentence.

    A fixed count was cut at the right edge of a narrow dock (7 of 8 values shown, the last
    one halved); the strip above shows every value as a colour, this line the first ones.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._values: np.ndarray | None = None
        self._note = ""

    def show_values(self, values: np.ndarray, note: str = "") -> None:
        """The values that fit, then ``note`` (rich text), e.g. "(zeros: ...)"."""
        self._values = np.asarray(values, dtype=np.float64)
        self._note = note
        self.setWordWrap(bool(note))  # a note wraps under the numbers, the numbers never
        self._refit()

    def show_text(self, text: str) -> None:
        """A sentence (rich text) instead of numbers, wrapped at the label's width."""
        self._values = None
        self.setWordWrap(True)
        self.setText(text)

    def fitting_count(self, width: int) -> int:
        """How many values fit ``width`` px with the "… (k of n)" after them (at least 1)."""
        assert self._values is not None
        metrics = QFontMetrics(self.font())
        n = len(self._values)
        for count in range(n, 1, -1):
            if metrics.horizontalAdvance(format_numbers(self._values, count)) <= width:
                return count
        return min(n, 1)

    def _refit(self) -> None:
        if self._values is None:
            return
        laid_out = self.isVisible() and self.width() > 60  # else: not given its width yet
        count = self.fitting_count(self.width() - 4) if laid_out else NUMBERS_SHOWN
        text = html.escape(format_numbers(self._values, count))
        self.setText(text + (f"  {self._note}" if self._note else ""))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self._refit()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self._refit()  # set while hidden: NUMBERS_SHOWN values, whatever the width


class VectorStrip(QWidget):
    """A 1×N row of coloured cells (fixed levels); non-finite values are the missing grey.

    Painted directly: one QPainter pass, no per-cell widgets, whatever N is.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._values = np.empty(0)
        self._colours: list[QColor] = []
        self._marked: int | None = None
        self.setMinimumHeight(22)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(320, 24)

    def values(self) -> np.ndarray:
        return self._values.copy()

    def set_values(
        self,
        values: np.ndarray,
        levels: tuple[float, float],
        cmap: pg.ColorMap,
        marked: int | None = None,
    ) -> None:
        self._values = np.asarray(values, dtype=np.float64).copy()
        self._colours = theme.map_colours(cmap, self._values, levels)
        self._marked = marked
        lo, hi = levels
        self.setToolTip(f"colour scale fixed at {lo:g} … {hi:g}; {len(self._values)} values")
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        n = len(self._colours)
        if n == 0:
            return
        painter = QPainter(self)
        width = self.width() - 1
        height = self.height() - 1
        cell = width / n
        for i, colour in enumerate(self._colours):
            painter.fillRect(QRectF(i * cell, 0.0, cell + 0.5, height), colour)
        if cell >= 6:  # cell borders only where cells are wide enough to need them
            painter.setPen(QPen(QColor(theme.colours().plot_background), 1))
            for i in range(1, n):
                x = i * cell
                painter.drawLine(int(x), 0, int(x), height)
        painter.setPen(QPen(QColor(theme.colours().secondary_ink), 1))
        painter.drawRect(0, 0, width, height)
        if self._marked is not None and 0 <= self._marked < n:
            pen = QPen(QColor(theme.HIGHLIGHT), 3)
            painter.setPen(pen)
            painter.drawRect(QRectF(self._marked * cell + 1.5, 1.5, max(cell - 3, 2.0), height - 3))
        painter.end()


class _Row:
    """One vector: label (formula + shape), strip, and a line of numbers or a readout."""

    def __init__(self, grid: QGridLayout, index: int, key: str, formula: str) -> None:
        self.key = key
        self.formula = formula
        self.label = QLabel()
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setFont(theme.font(1.0))
        self.strip = VectorStrip()
        self.strip.setObjectName(f"stepview_strip_{key}")
        self.numbers = NumbersLabel()
        self.numbers.setObjectName(f"stepview_numbers_{key}")
        self.numbers.setTextFormat(Qt.TextFormat.RichText)
        self.numbers.setFont(theme.font(0.95, mono=True))
        self.numbers.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # a narrow dock clips the numbers instead of growing a horizontal scroll bar
        self.numbers.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.numbers.setMinimumWidth(40)
        column = QVBoxLayout()
        column.setSpacing(1)
        column.addWidget(self.strip)
        column.addWidget(self.numbers)
        row = 2 * index
        grid.addWidget(self.label, row, 0, Qt.AlignmentFlag.AlignTop)
        grid.addLayout(column, row, 1)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setStyleSheet(f"color: {theme.colours().rule};")
        grid.addWidget(line, row + 1, 0, 1, 2)

    def set_shape(self, width_symbol: str, width: int, note: str = "") -> None:
        self.label.setText(
            f"{self.formula}<br><span style='color:{theme.colours().secondary_ink}'>"
            f"(1×{width_symbol}={width}){note}</span>"
        )


class StepViewPanel(QWidget):
    """The numbers of one step of the scratch RNN, in the order of the chapter's equation."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._detail: Any = None
        self._vocab_tokens: tuple[str, ...] | None = None
        self._top: list[tuple[str, float]] = []

        self.placeholder = QLabel(PLACEHOLDER_NO_TEXT)
        self.placeholder.setObjectName("stepview_placeholder")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setFont(theme.font(1.3))
        self.placeholder.setStyleSheet(f"color: {theme.colours().placeholder_ink};")

        self.equation = QLabel(EQUATION_HTML)
        self.equation.setObjectName("stepview_equation")
        self.equation.setTextFormat(Qt.TextFormat.RichText)
        self.equation.setFont(theme.font(1.3))
        self.equation.setWordWrap(True)
        self.step_label = QLabel()
        self.step_label.setObjectName("stepview_step")
        self.step_label.setTextFormat(Qt.TextFormat.RichText)
        self.step_label.setFont(theme.font(1.15, bold=True))
        self.step_label.setWordWrap(True)

        body = QWidget()
        grid = QGridLayout(body)
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(3)
        grid.setColumnStretch(1, 1)
        self.rows: dict[str, _Row] = {
            key: _Row(grid, i, key, formula) for i, (key, formula, _) in enumerate(ROWS)
        }
        self.concat_label = QLabel()
        self.concat_label.setObjectName("stepview_concat")
        self.concat_label.setTextFormat(Qt.TextFormat.RichText)
        self.concat_label.setFont(theme.font(1.05))
        self.concat_label.setWordWrap(True)
        self.concat_label.setToolTip(
            "The slides write the two products as one: concatenate X_t and H_{t−1} into one "
            "row and W_xh over W_hh into one matrix. Core computes both sides; the difference "
            "is floating-point rounding."
        )
        grid.addWidget(self.concat_label, 2 * len(ROWS), 0, 1, 2)
        self.scale_note = QLabel()
        self.scale_note.setObjectName("stepview_scale_note")
        self.scale_note.setTextFormat(Qt.TextFormat.RichText)
        self.scale_note.setFont(theme.font(0.85))
        self.scale_note.setStyleSheet(f"color: {theme.colours().secondary_ink};")
        self.scale_note.setWordWrap(True)
        grid.addWidget(self.scale_note, 2 * len(ROWS) + 1, 0, 1, 2)
        grid.setRowStretch(2 * len(ROWS) + 2, 1)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(body)

        page = QWidget()
        page_layout = QVBoxLayout(page)
        page_layout.setContentsMargins(6, 4, 6, 4)
        page_layout.addWidget(self.equation)
        page_layout.addWidget(self.step_label)
        page_layout.addWidget(scroll, 1)

        self.stack = QStackedWidget()
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(page)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)
        self.set_detail(None)

    # ------------------------------------------------------------------ drawing

    def set_vocab_tokens(self, tokens: Sequence[str] | None) -> None:
        """The vocabulary, to name the entries of O_t and the softmax (kept across steps)."""
        self._vocab_tokens = None if tokens is None else tuple(tokens)
        if self._detail is not None:
            self.set_detail(self._detail)

    def set_detail(
        self,
        detail: StepDetail | None,
        vocab_tokens: Sequence[str] | None = None,
        *,
        placeholder: str = PLACEHOLDER_NO_TEXT,
    ) -> None:
        """Show one step (None: ``placeholder``, e.g. PLACEHOLDER_GATED for a GRU/LSTM)."""
        if vocab_tokens is not None:
            self._vocab_tokens = tuple(vocab_tokens)
        self._detail = detail
        if detail is None:
            self.placeholder.setText(placeholder)
            self.stack.setCurrentWidget(self.placeholder)
            self._top = []
            return
        self.stack.setCurrentIndex(1)
        V = len(detail.X_t)
        H = len(detail.H_t)
        relu = detail.activation == "relu"
        h_levels = RELU_LEVELS if relu else TANH_LEVELS
        h_cmap = theme.activation_colormap(h_levels)
        sum_cmap = theme.activation_colormap(SUM_LEVELS)
        phi = "ReLU" if relu else "tanh"
        h_scale = f"0…{RELU_LEVELS[1]:g}" if relu else f"±{TANH_LEVELS[1]:g}"
        self.scale_note.setText(
            f"fixed colour scales: terms and A<sub>t</sub> ±{SUM_LEVELS[1]:g} · "
            f"H {h_scale} · O<sub>t</sub> ±{LOGIT_LEVELS[1]:g} · P 0…1"
        )
        next_text = (
            f", next {quoted(detail.next_char)}"
            if detail.next_char is not None
            else " (the last character: no next one to predict)"
        )
        self.step_label.setText(
            f"t = {detail.t}: reads {html.escape(quoted(detail.char))}"
            f"{html.escape(next_text)}&nbsp;&nbsp;&nbsp;φ = {phi}"
        )
        token = detail.token_id
        notes = {"xW": f" = row {token} of W<sub>xh</sub>"}
        for key, _, width_symbol in ROWS:
            self.rows[key].set_shape(
                width_symbol, V if width_symbol == "V" else H, notes.get(key, "")
            )

        self._set_row("X_t", detail.X_t, ONE_HOT_LEVELS, theme.POSITIVE, marked=token)
        token_name = (
            "unknown character → <unk>"
            if detail.token == "<unk>"
            else (f"one-hot: 1 at index {token}, 0 elsewhere")
        )
        self.rows["X_t"].numbers.show_text(
            html.escape(f"{quoted(detail.char)} = token {token}  ({token_name})")
        )
        self._set_row("H_prev", detail.H_prev, h_levels, h_cmap)
        if detail.t == 0:
            self.rows["H_prev"].numbers.show_values(
                detail.H_prev, "(zeros: a probe starts from H = 0)"
            )
        self._set_row("xW", detail.xW, SUM_LEVELS, sum_cmap)
        self._set_row("hW", detail.hW, SUM_LEVELS, sum_cmap)
        self._set_row("b_h", detail.b_h, SUM_LEVELS, sum_cmap)
        self._set_row("pre_activation", detail.pre_activation, SUM_LEVELS, sum_cmap)
        self._set_row("H_t", detail.H_t, h_levels, h_cmap)
        softmax = np.asarray(detail.softmax, dtype=np.float64)
        self._set_row("O_t", detail.O_t, LOGIT_LEVELS, theme.DIVERGING)
        next_id = self._token_index(detail.next_char)
        self._set_row("softmax", softmax, PROB_LEVELS, theme.SEQUENTIAL, marked=next_id)
        self.rows["softmax"].numbers.show_text(self._top_k_html(softmax, next_id))

        diff = float(detail.concat_max_abs_diff)
        self.concat_label.setText(
            f"{CONCAT_HTML}&nbsp;&nbsp;&nbsp;max |difference| = <b>{diff:.1e}</b>"
        )

    def _set_row(
        self,
        key: str,
        values: np.ndarray,
        levels: tuple[float, float],
        cmap: pg.ColorMap,
        marked: int | None = None,
    ) -> None:
        row = self.rows[key]
        row.strip.set_values(values, levels, cmap, marked)
        row.numbers.show_values(values)

    def _token_name(self, index: int) -> str:
        tokens = self._vocab_tokens
        if tokens is None or not 0 <= index < len(tokens):
            return f"#{index}"
        return quoted(tokens[index])

    def _token_index(self, char: str | None) -> int | None:
        if char is None or self._vocab_tokens is None:
            return None
        try:
            return self._vocab_tokens.index(char)
        except ValueError:
            return 0  # an unknown character is predicted as <unk>

    def _top_k_html(self, softmax: np.ndarray, next_id: int | None) -> str:
        probs = np.where(np.isfinite(softmax), softmax, -1.0)
        order = np.argsort(-probs, kind="stable")[:TOP_K]
        self._top = [(self._token_name(int(i)), float(softmax[i])) for i in order]
        parts = []
        for i, (name, p) in zip(order, self._top, strict=True):
            text = html.escape(f"{name} {p:.2f}")
            if next_id is not None and int(i) == next_id:
                text = f"<b style='color:{theme.HIGHLIGHT}'>{text}</b>"
            parts.append(text)
        line = "&nbsp;&nbsp;".join(parts)
        if next_id is not None and next_id not in set(int(i) for i in order):
            p_next = float(softmax[next_id])
            line += (
                f"&nbsp;&nbsp;…&nbsp;<b style='color:{theme.HIGHLIGHT}'>"
                f"{html.escape(self._token_name(next_id))} {p_next:.3f}</b>"
            )
        return f"top {TOP_K}: {line}"

    # ------------------------------------------------------------------ for tests / export

    def detail(self) -> Any:
        return self._detail

    def row_values(self, key: str) -> np.ndarray:
        """The values the strip of row ``key`` shows (keys: ROW_KEYS)."""
        return self.rows[key].strip.values()

    def row_text(self, key: str) -> str:
        return self.rows[key].numbers.text()

    def top_k(self) -> list[tuple[str, float]]:
        """The softmax row's top characters (as shown, quoted) and their probabilities."""
        return list(self._top)

    def concat_text(self) -> str:
        return self.concat_label.text()

    def placeholder_text(self) -> str | None:
        return self.placeholder.text() if self.stack.currentIndex() == 0 else None
