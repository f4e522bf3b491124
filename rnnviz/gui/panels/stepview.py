"""The "step view" dock: one time step of the scratch RNN, term by term, next to the equation.

    H_t = φ(X_t W_xh + H_{t−1} W_hh + b_h),   O_t = H_t W_hq + b_q,   P = softmax(O_t)

Every vector of :class:`rnnviz.core.probe.StepDetail` is a row: its formula and shape, a strip
of coloured cells (one per entry, fixed colour levels) and its first values as numbers. The
H-wide rows share one column, so the cells of unit j line up from ``X_t W_xh`` down to ``H_t``
and a student can add them up with their eyes. Under them, the slides' identity
``[X_t, H_{t−1}] [W_xh; W_hh] = X_t W_xh + H_{t−1} W_hh`` with the largest difference between
the two sides, as core computed it.

For a GRU or LSTM the panel shows that model's equations instead, with the numbers of
:class:`rnnviz.core.step_gates.GatedStepDetail` in the same kind of rows: the LSTM's gates
i, f, g, o, then c_{t−1}, f ⊙ c_{t−1}, i ⊙ g and c_t (one above the other, to be added up),
tanh(c_t) and h_t; the GRU's r, z, the two terms of its candidate n_t (PyTorch's: the reset
gate multiplies h_{t−1} W_hn + b_hn, which a line under the equations says, since d2l's
candidate puts it before the product), then (1 − z) ⊙ n and z ⊙ h_{t−1}, which add up to h_t.
Gates are on (0, 1), tanh values on (−1, 1), the cell state on the core's symmetric levels.

Of a stacked model (scratch RNN, GRU, LSTM) the rows are one layer's, chosen in the layer
selector (the top one first, as in the hidden-state panel): above the bottom layer the input
x_t (X_t) of every equation and of the first row is the layer below's h_t (H_t), written
h_t^(l−1), and the O_t row says it is
the top layer's h_t times W_hq, whichever layer the rows show. The selector emits
``layer_chosen``; the window moves the other panels' layer with it, so the heatmap, the
saturation scatter and these rows show one layer.

Of a bidirectional model (d2l 10.4; an opened nn.GRU/LSTM(bidirectional=True), a scratch RNN
of ``ModelConfig.bidirectional``) a direction selector beside the layer selector picks the
forward or the backward recurrence. The backward one reads the text from its end: its step t
reads h_{t+1} (its state after characters T−1 .. t+1), which every formula and label then
says in place of h_{t−1}, with its own weights (PyTorch's ``_reverse``). O_t reads both
directions of the top layer, [h_t^→ ; h_t^←] W_hq + b_q: a row above O_t shows that 2H-wide
row, its two halves split by a gap, whichever direction the rows show. Above the bottom
layer the input h_t^(l) is [h_t^→ ; h_t^←] of layer l, 2H wide. The selector emits
``direction_chosen``; the window moves the hidden-state panel's, the saturation scatter's
and the gradient-flow panel's direction with it.

The main window computes the detail on each cursor move (``core.probe.step_detail`` or
``core.step_gates.gated_step_detail``) and passes it in; this panel only draws. All methods run
in the GUI thread.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSize, Qt, Signal
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
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from rnnviz.gui import theme
from rnnviz.gui.widgets import direction_value, fill_layers, select_data, selector

if TYPE_CHECKING:
    from rnnviz.core.probe import StepDetail
    from rnnviz.core.step_gates import GatedStepDetail

PLACEHOLDER_NO_TEXT = "type a string to probe"

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


# The gated models' rows: (key, formula, width symbol, colour scale, note after the shape).
# The keys are core.step_gates' LSTM_ROWS / GRU_ROWS between X_t and O_t. Scales: "gate"
# sigmoid (0, 1), "tanh" (−1, 1), "cell" the detail's cell_levels, "term" SUM_LEVELS.
_H_PREV = "h<sub>t−1</sub>"
_OUTPUT_ROWS: tuple[tuple[str, str, str, str, str], ...] = (
    ("O_t", "O<sub>t</sub> = h<sub>t</sub> W<sub>hq</sub> + b<sub>q</sub>", "V", "logit", ""),
    ("softmax", "P = softmax(O<sub>t</sub>)", "V", "prob", ""),
)


def _gate(name: str, fn: str = "σ") -> str:
    # the whole formula is in the equations above the rows: a short label leaves the strips room
    return f"{name}<sub>t</sub> = {fn}(…)"


LSTM_ROWS: tuple[tuple[str, str, str, str, str], ...] = (
    ("X_t", "x<sub>t</sub>", "V", "onehot", ""),
    ("h_prev", _H_PREV, "H", "tanh", ""),
    ("i", _gate("i"), "H", "gate", " input gate"),
    ("f", _gate("f"), "H", "gate", " forget gate"),
    ("g", _gate("g", "tanh"), "H", "tanh", " candidate C̃<sub>t</sub>"),
    ("o", _gate("o"), "H", "gate", " output gate"),
    ("c_prev", "c<sub>t−1</sub>", "H", "cell", ""),
    ("f_c_prev", "f<sub>t</sub> ⊙ c<sub>t−1</sub>", "H", "cell", " what is kept"),
    ("i_g", "i<sub>t</sub> ⊙ g<sub>t</sub>", "H", "cell", " what is written"),
    (
        "c",
        "c<sub>t</sub> = f<sub>t</sub> ⊙ c<sub>t−1</sub> + i<sub>t</sub> ⊙ g<sub>t</sub>",
        "H",
        "cell",
        " cell state",
    ),
    ("tanh_c", "tanh(c<sub>t</sub>)", "H", "tanh", ""),
    ("h", "h<sub>t</sub> = o<sub>t</sub> ⊙ tanh(c<sub>t</sub>)", "H", "tanh", ""),
    *_OUTPUT_ROWS,
)
_HN = f"{_H_PREV}W<sub>hn</sub> + b<sub>hn</sub>"
GRU_ROWS: tuple[tuple[str, str, str, str, str], ...] = (
    ("X_t", "x<sub>t</sub>", "V", "onehot", ""),
    ("h_prev", _H_PREV, "H", "tanh", ""),
    ("r", _gate("r"), "H", "gate", " reset gate"),
    ("z", _gate("z"), "H", "gate", " update gate"),
    ("x_n", "x<sub>t</sub>W<sub>in</sub> + b<sub>in</sub>", "H", "term", ""),
    ("h_n", _HN, "H", "term", ""),
    ("r_h_n", f"r<sub>t</sub> ⊙ ({_HN})", "H", "term", " reset after W<sub>hn</sub>"),
    (
        "n",
        "n<sub>t</sub> = tanh(x<sub>t</sub>W<sub>in</sub> + b<sub>in</sub><br>"
        f"&nbsp;&nbsp;&nbsp;&nbsp;+ r<sub>t</sub> ⊙ ({_HN}))",
        "H",
        "tanh",
        " candidate",
    ),
    ("keep_n", "(1 − z<sub>t</sub>) ⊙ n<sub>t</sub>", "H", "tanh", ""),
    ("keep_h", f"z<sub>t</sub> ⊙ {_H_PREV}", "H", "tanh", ""),
    (
        "h",
        "h<sub>t</sub> = (1 − z<sub>t</sub>) ⊙ n<sub>t</sub><br>"
        f"&nbsp;&nbsp;&nbsp;&nbsp;+ z<sub>t</sub> ⊙ {_H_PREV}",
        "H",
        "tanh",
        "",
    ),
    *_OUTPUT_ROWS,
)
GATED_ROWS: dict[str, tuple[tuple[str, str, str, str, str], ...]] = {
    "lstm": LSTM_ROWS,
    "gru": GRU_ROWS,
}


def _equations(*parts: str) -> str:
    """Equations side by side; a line may break between two equations, never inside one."""
    return "&nbsp;&nbsp; ".join(part.replace(" ", "&nbsp;") for part in parts)


_SIGMOID = (
    f"a<sub>t</sub> = σ(x<sub>t</sub>W<sub>ia</sub> + {_H_PREV}W<sub>ha</sub> + b<sub>a</sub>)"
)
LSTM_EQUATION_HTML = _equations(
    f"{_SIGMOID} for a = i, f, o",
    f"g<sub>t</sub> = tanh(x<sub>t</sub>W<sub>ig</sub> + {_H_PREV}W<sub>hg</sub> + b<sub>g</sub>)",
    "c<sub>t</sub> = f<sub>t</sub> ⊙ c<sub>t−1</sub> + i<sub>t</sub> ⊙ g<sub>t</sub>",
    "h<sub>t</sub> = o<sub>t</sub> ⊙ tanh(c<sub>t</sub>)",
    "O<sub>t</sub> = h<sub>t</sub>W<sub>hq</sub> + b<sub>q</sub>",
)
GRU_EQUATION_HTML = _equations(
    f"{_SIGMOID} for a = r, z",
    f"n<sub>t</sub> = tanh(x<sub>t</sub>W<sub>in</sub> + b<sub>in</sub> + r<sub>t</sub> ⊙ ({_HN}))",
    f"h<sub>t</sub> = (1 − z<sub>t</sub>) ⊙ n<sub>t</sub> + z<sub>t</sub> ⊙ {_H_PREV}",
    "O<sub>t</sub> = h<sub>t</sub>W<sub>hq</sub> + b<sub>q</sub>",
)
GATED_EQUATION_HTML = {"lstm": LSTM_EQUATION_HTML, "gru": GRU_EQUATION_HTML}
# the line under the equations; the GRU's says which candidate is shown (PyTorch's, not d2l's)
LSTM_NOTE_HTML = "PyTorch's gate order i, f, g, o = d2l's I, F, C̃, O"
GRU_NOTE_HTML = (
    "PyTorch: r<sub>t</sub> after the product with W<sub>hn</sub>; d2l: "
    "(R<sub>t</sub> ⊙ H<sub>t−1</sub>)W<sub>hh</sub>"
)
GATED_NOTE_HTML = {"lstm": LSTM_NOTE_HTML, "gru": GRU_NOTE_HTML}
GATE_LEVELS: tuple[float, float] = (0.0, 1.0)
_X_T = "x<sub>t</sub>"


_PLAIN_X_T = "X<sub>t</sub>"


def layer_input_html(layer: int, plain: bool = False) -> str:
    """What layer ``layer`` (from 0) reads, as the equations write it: x_t (the scratch RNN's
    X_t), or h_t^(l) of the layer below (numbered from 1, as the selectors number them)."""
    if layer == 0:
        return _PLAIN_X_T if plain else _X_T
    return f"{'H' if plain else 'h'}<sub>t</sub><sup>({layer})</sup>"


def for_layer(formula: str, layer: int, plain: bool = False) -> str:
    """A formula with the layer's own input in place of the one-hot x_t (X_t)."""
    if layer == 0:
        return formula
    return formula.replace(_PLAIN_X_T if plain else _X_T, layer_input_html(layer, plain))


def directed(formula: str, reverse: bool) -> str:
    """A formula of the backward direction: its step reads the state of step t+1 (the one it
    read before, from the text's end), where the forward one reads t−1."""
    return formula.replace("t−1", "t+1") if reverse else formula


# the row above O_t of a bidirectional model: both directions of the top layer, side by side
BOTH_KEY = "O_input"
ARROWS = {"forward": "→", "reverse": "←"}
DIRECTION_CHOICES: tuple[tuple[str, str], ...] = (("forward", "forward"), ("backward", "reverse"))
DIRECTION_WORDS = {"forward": "forward", "reverse": "backward"}


def both_html(h: str, top: str = "") -> str:
    """[h_t^→ ; h_t^←] (``top``: a layer number over each, as "(2)")."""
    return f"[{h}<sub>t</sub><sup>{top}→</sup> ; {h}<sub>t</sub><sup>{top}←</sup>]"


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
        self._divider: int | None = None  # a cell index with a thick line before it
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
        divider: int | None = None,
    ) -> None:
        self._values = np.asarray(values, dtype=np.float64).copy()
        self._colours = theme.map_colours(cmap, self._values, levels)
        self._marked = marked
        self._divider = divider
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
        if self._divider is not None and 0 < self._divider < n:
            painter.setPen(QPen(QColor(theme.colours().ink), 3))
            x = int(self._divider * cell)
            painter.drawLine(x, 0, x, height)
        if self._marked is not None and 0 <= self._marked < n:
            pen = QPen(QColor(theme.HIGHLIGHT), 3)
            painter.setPen(pen)
            painter.drawRect(QRectF(self._marked * cell + 1.5, 1.5, max(cell - 3, 2.0), height - 3))
        painter.end()


class _Row:
    """One vector: label (formula + shape), strip, and a line of numbers or a readout."""

    def __init__(
        self, grid: QGridLayout, index: int, key: str, formula: str, prefix: str = "stepview_"
    ) -> None:
        self.key = key
        self.formula = formula
        self.label = QLabel()
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setFont(theme.font(1.0))
        self.strip = VectorStrip()
        self.strip.setObjectName(f"{prefix}strip_{key}")
        self.numbers = NumbersLabel()
        self.numbers.setObjectName(f"{prefix}numbers_{key}")
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
        self._widgets: tuple[QWidget, ...] = (self.label, self.strip, self.numbers, line)

    def set_visible(self, visible: bool) -> None:
        """Show or hide the whole row (a hidden one takes no room in the grid)."""
        for widget in self._widgets:
            if widget.isHidden() == visible:
                widget.setVisible(visible)

    def set_shape(self, width_symbol: str, width: int, note: str = "") -> None:
        self.label.setText(
            f"{self.formula}<br><span style='color:{theme.colours().secondary_ink}'>"
            f"(1×{width_symbol}={width}){note}</span>"
        )


class _Body(QWidget):
    """The rows of one model's equations in one grid, then a check line and a scale note."""

    def __init__(
        self,
        rows: Sequence[tuple[str, str]],
        prefix: str,
        check_name: str,
        scale_name: str,
    ) -> None:
        super().__init__()
        grid = QGridLayout(self)
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(3)
        grid.setColumnStretch(1, 1)
        # a bidirectional model's [h_fwd ; h_rev] before O_t, kept out of ``rows`` (the rows
        # of the model's equations, the same for one direction or two); hidden until needed
        keys = [key for key, _ in rows]
        at = keys.index("O_t") if "O_t" in keys else len(keys)
        laid = [*rows[:at], (BOTH_KEY, ""), *rows[at:]]
        built = {key: _Row(grid, i, key, formula, prefix) for i, (key, formula) in enumerate(laid)}
        self.both = built.pop(BOTH_KEY)
        self.both.set_visible(False)
        self.rows: dict[str, _Row] = built
        rows = laid
        self.check = QLabel()
        self.check.setObjectName(check_name)
        self.check.setTextFormat(Qt.TextFormat.RichText)
        self.check.setFont(theme.font(1.05))
        self.check.setWordWrap(True)
        grid.addWidget(self.check, 2 * len(rows), 0, 1, 2)
        self.scale_note = QLabel()
        self.scale_note.setObjectName(scale_name)
        self.scale_note.setTextFormat(Qt.TextFormat.RichText)
        self.scale_note.setFont(theme.font(0.85))
        self.scale_note.setStyleSheet(f"color: {theme.colours().secondary_ink};")
        self.scale_note.setWordWrap(True)
        grid.addWidget(self.scale_note, 2 * len(rows) + 1, 0, 1, 2)
        grid.setRowStretch(2 * len(rows) + 2, 1)


class StepViewPanel(QWidget):
    """The numbers of one step of the model, in the order of its equations: the scratch RNN's
    (the chapter's), or a GRU's or LSTM's (PyTorch's), one layer of a stacked one."""

    layer_chosen = Signal(int)  # the user chose a stacked layer (from 0); set_layer is silent
    # the user chose a direction of a bidirectional model ("forward" | "reverse"); silent
    # set_direction
    direction_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._detail: Any = None
        self._direction = "forward"  # kept for the next bidirectional model
        self._bidirectional = False
        self._layer = -1  # the stacked layer shown; -1: the top one, whatever the depth
        self._layers = 1
        self._vocab_tokens: tuple[str, ...] | None = None
        self._top: list[tuple[str, float]] = []
        self._form = "plain"  # "plain" (the scratch RNN), "lstm" or "gru"

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
        # the gated equations are three times as long: the rows' size keeps them to about
        # three lines in a 1280x720 window's dock, with room for rows under them
        self.gated_equation = QLabel()
        self.gated_equation.setObjectName("stepview_gated_equation")
        self.gated_equation.setTextFormat(Qt.TextFormat.RichText)
        self.gated_equation.setFont(theme.font(1.0))
        self.gated_equation.setWordWrap(True)
        self.gated_equation.setToolTip(
            "PyTorch's equations, in row vectors as in d2l. Each bias b_a is PyTorch's two "
            "added, b_ia + b_ha; x_t is one-hot, so x_t W_ia is a column of weight_ih."
        )
        self.gate_note = QLabel()
        self.gate_note.setObjectName("stepview_gate_note")
        self.gate_note.setTextFormat(Qt.TextFormat.RichText)
        self.gate_note.setFont(theme.font(0.95))
        self.gate_note.setWordWrap(True)
        self.gate_note.setToolTip(
            "The Step view shows the model that runs, PyTorch's nn.LSTM / nn.GRU. PyTorch's "
            "GRU candidate is tanh(x W_in + b_in + r ⊙ (h W_hn + b_hn)); d2l's is "
            "tanh(X W_xh + (R ⊙ H) W_hh + b_h): a different function of the same weights."
        )
        self.step_label = QLabel()
        self.step_label.setObjectName("stepview_step")
        self.step_label.setTextFormat(Qt.TextFormat.RichText)
        self.step_label.setFont(theme.font(1.15, bold=True))
        self.step_label.setWordWrap(True)
        self._layer_box = selector(
            "stepview_layer_box",
            "which of the stacked layers these rows are: layer 1 reads the one-hot x_t, each "
            "layer above reads the h_t of the one below; O_t is always the top layer's h_t W_hq",
        )
        self._layer_box.currentIndexChanged.connect(self._on_layer_chosen)
        self._direction_box = selector(
            "stepview_direction_box",
            "which direction of a bidirectional model these rows are: the forward one reads "
            "the text from its start (h_t from h_t−1), the backward one from its end (h_t "
            "from h_t+1), each with its own weights; O_t reads both, side by side",
            DIRECTION_CHOICES,
        )
        self._direction_box.currentIndexChanged.connect(self._on_direction_chosen)

        plain = _Body(
            [(key, formula) for key, formula, _ in ROWS],
            "stepview_",
            "stepview_concat",
            "stepview_scale_note",
        )
        self.bodies: dict[str, _Body] = {"plain": plain}
        for kind, rows in GATED_ROWS.items():
            self.bodies[kind] = _Body(
                [(key, formula) for key, formula, *_ in rows],
                f"stepview_{kind}_",
                f"stepview_{kind}_check",
                f"stepview_{kind}_scale_note",
            )
        self.rows: dict[str, _Row] = plain.rows  # the rows of the form shown
        self.concat_label = plain.check
        self.concat_label.setToolTip(
            "The slides write the two products as one: concatenate X_t and H_{t−1} into one "
            "row and W_xh over W_hh into one matrix. Core computes both sides; the difference "
            "is floating-point rounding."
        )
        self.scale_note = plain.scale_note

        # one body shown at a time; a hidden one takes no room, so the plain view's scroll
        # range is its own
        bodies = QWidget()
        bodies_layout = QVBoxLayout(bodies)
        bodies_layout.setContentsMargins(0, 0, 0, 0)
        bodies_layout.setSpacing(0)
        for body in self.bodies.values():
            bodies_layout.addWidget(body)
            body.setVisible(body is plain)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(bodies)

        page = QWidget()
        page_layout = QVBoxLayout(page)
        page_layout.setContentsMargins(6, 4, 6, 4)
        page_layout.addWidget(self.equation)
        page_layout.addWidget(self.gated_equation)
        page_layout.addWidget(self.gate_note)
        step_row = QHBoxLayout()
        step_row.addWidget(self.step_label, 1)
        step_row.addWidget(self._direction_box, 0, Qt.AlignmentFlag.AlignTop)
        step_row.addWidget(self._layer_box, 0, Qt.AlignmentFlag.AlignTop)
        page_layout.addLayout(step_row)
        page_layout.addWidget(scroll, 1)
        self.gated_equation.hide()
        self.gate_note.hide()

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
        detail: StepDetail | GatedStepDetail | None,
        vocab_tokens: Sequence[str] | None = None,
        *,
        placeholder: str = PLACEHOLDER_NO_TEXT,
    ) -> None:
        """Show one step: a StepDetail (the scratch RNN) or a GatedStepDetail (GRU/LSTM);
        None shows ``placeholder``."""
        if vocab_tokens is not None:
            self._vocab_tokens = tuple(vocab_tokens)
        self._detail = detail
        if detail is None:
            self.placeholder.setText(placeholder)
            self.stack.setCurrentWidget(self.placeholder)
            self._top = []
            return
        self.stack.setCurrentIndex(1)
        kind = getattr(detail, "kind", "")
        self._set_layers(getattr(detail, "num_layers", 1))
        self._set_bidirectional(bool(getattr(detail, "bidirectional", False)))
        select_data(self._direction_box, getattr(detail, "direction", "forward"))
        # the selector names the layer of the rows shown (the choice stays for a deeper model)
        select_data(self._layer_box, getattr(detail, "layer", 0))
        self._show_form(
            kind if kind in GATED_ROWS else "plain",
            getattr(detail, "layer", 0),
            getattr(detail, "direction", "forward") == "reverse",
        )
        if kind in GATED_ROWS:
            self._set_gated(cast("GatedStepDetail", detail))
        else:
            self._set_plain(cast("StepDetail", detail))

    def _show_form(self, form: str, layer: int = 0, reverse: bool = False) -> None:
        self._form = form
        for name, body in self.bodies.items():
            body.setVisible(name == form)
        self.rows = self.bodies[form].rows
        gated = form != "plain"
        both = self._bidirectional
        self.equation.setVisible(not gated)
        self.gated_equation.setVisible(gated)
        self.gate_note.setVisible(gated or self._layers > 1 or both)
        if not gated:
            equation = EQUATION_HTML
            if self._layers > 1 or both:  # longer: a line may break between equations only
                parts = EQUATION_HTML.split("&nbsp;&nbsp;&nbsp;")
                equation = _equations(*(for_layer(part, layer, plain=True) for part in parts))
            if both:
                equation = equation.replace(
                    "O<sub>t</sub>&nbsp;=&nbsp;H<sub>t</sub>",
                    "O<sub>t</sub>&nbsp;=&nbsp;" + both_html("H").replace(" ", "&nbsp;"),
                )
            self.equation.setText(directed(equation, reverse))
            notes = [self._layer_note(layer, "H")] if self._layers > 1 else []  # the chapter's
            if both:
                notes.append(self._direction_note(reverse, "H"))
            if notes:
                self.gate_note.setText("<br>".join(notes))
        if gated:
            equation = for_layer(GATED_EQUATION_HTML[form], layer)
            if both:
                equation = equation.replace(
                    "O<sub>t</sub>&nbsp;=&nbsp;h<sub>t</sub>",
                    "O<sub>t</sub>&nbsp;=&nbsp;" + both_html("h").replace(" ", "&nbsp;"),
                )
            self.gated_equation.setText(directed(equation, reverse))
            lines = [GATED_NOTE_HTML[form]]
            if both:  # a line of its own: the model's note stays one line
                lines.insert(0, self._direction_note(reverse, "h"))
            if self._layers > 1:
                lines.insert(0, self._layer_note(layer, "h"))
            self.gate_note.setText("<br>".join(lines))

    def _direction_note(self, reverse: bool, h: str) -> str:
        """What the direction shown reads, and that O_t reads both."""
        # short: the rows under it need the dock's height (O_t's equation says it reads both)
        if reverse:
            return (
                f"backward: from the text's end, {h}<sub>t+1</sub> after characters "
                "T−1 … t+1; own _reverse weights"
            )
        return f"forward: from the text's start, {h}<sub>t−1</sub> after characters 0 … t−1"

    def _layer_note(self, layer: int, h_symbol: str) -> str:
        """Of stacked layers: what the layer shown reads, and which layer O_t reads."""
        plain = h_symbol == "H"
        h = "H" if plain else "h"
        if layer == 0:
            below = f"the one-hot {layer_input_html(0, plain)}"
        elif self._bidirectional:  # both directions of the layer below, side by side
            below = f"{layer_input_html(layer, plain)} = {both_html(h, f'({layer})')}, 2H"
        else:
            below = f"{layer_input_html(layer, plain)}, layer {layer}'s {h}<sub>t</sub>"
        note = f"layer {layer + 1} of {self._layers}: input {below}"
        if layer < self._layers - 1:
            note += f"; O<sub>t</sub> reads layer {self._layers}'s {h}<sub>t</sub>"
        return note

    def _step_text(self, detail: Any, after: str) -> None:
        next_text = (
            f", next {quoted(detail.next_char)}"
            if detail.next_char is not None
            else " (the last character: no next one to predict)"
        )
        self.step_label.setText(
            f"t = {detail.t}: reads {html.escape(quoted(detail.char))}"
            f"{html.escape(next_text)}&nbsp;&nbsp;&nbsp;{after}"
        )

    def _set_input(self, detail: Any) -> None:
        """The one-hot row X_t: its strip, the token it is."""
        token = detail.token_id
        self._set_row("X_t", detail.X_t, ONE_HOT_LEVELS, theme.POSITIVE, marked=token)
        token_name = (
            "unknown character → <unk>"
            if detail.token == "<unk>"
            else (f"one-hot: 1 at index {token}, 0 elsewhere")
        )
        self.rows["X_t"].numbers.show_text(
            html.escape(f"{quoted(detail.char)} = token {token}  ({token_name})")
        )

    def _set_output(self, detail: Any) -> None:
        """O_t and the softmax row with its top characters, the true next one marked."""
        softmax = np.asarray(detail.softmax, dtype=np.float64)
        self._set_row("O_t", detail.O_t, LOGIT_LEVELS, theme.DIVERGING)
        next_id = self._token_index(detail.next_char)
        self._set_row("softmax", softmax, PROB_LEVELS, theme.SEQUENTIAL, marked=next_id)
        self.rows["softmax"].numbers.show_text(self._top_k_html(softmax, next_id))

    def _set_plain(self, detail: StepDetail) -> None:
        V = len(detail.X_t)
        H = len(detail.H_t)
        layer, top = detail.layer, detail.num_layers - 1
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
        reverse = detail.direction == "reverse"
        self._step_text(detail, f"φ = {phi}")  # the layer: the selector beside it says it
        token = detail.token_id
        W_xh = "W<sub>xh</sub>" + ("<sup>←</sup>" if reverse else "")
        notes = {"xW": f" = row {token} of {W_xh}"} if layer == 0 else {}
        if layer > 0:
            notes["X_t"] = f" layer {layer}'s H<sub>t</sub>"
        if layer < top:
            notes["O_t"] = " top layer's"  # short: a wide label narrows every strip
        for key, formula, width_symbol in ROWS:
            row = self.rows[key]
            row.formula = directed(for_layer(formula, layer, plain=True), reverse)
            if key == "O_t" and detail.bidirectional:
                row.formula = formula.replace("H<sub>t</sub>", both_html("H"))
            elif key == "O_t" and layer < top:
                row.formula = formula.replace(
                    "H<sub>t</sub>", f"H<sub>t</sub><sup>({top + 1})</sup>"
                )
            wide = key == "X_t" and layer > 0
            row.set_shape("H" if wide else width_symbol, H if wide or width_symbol == "H" else V,
                          notes.get(key, ""))  # fmt: skip
        self._set_both(detail, "H", h_levels, h_cmap)

        if layer == 0 or detail.layer_input is None:
            self._set_input(detail)
        else:  # the layer below's H_t: an H-wide row on the hidden state's scale
            self._set_row("X_t", detail.layer_input, h_levels, h_cmap)
        self._set_row("H_prev", detail.H_prev, h_levels, h_cmap)
        if self._starts_here(detail):
            self.rows["H_prev"].numbers.show_values(detail.H_prev, self._zeros_note(detail, "H"))
        self._set_row("xW", detail.xW, SUM_LEVELS, sum_cmap)
        self._set_row("hW", detail.hW, SUM_LEVELS, sum_cmap)
        self._set_row("b_h", detail.b_h, SUM_LEVELS, sum_cmap)
        self._set_row("pre_activation", detail.pre_activation, SUM_LEVELS, sum_cmap)
        self._set_row("H_t", detail.H_t, h_levels, h_cmap)
        self._set_output(detail)

        diff = float(detail.concat_max_abs_diff)
        self.concat_label.setText(
            f"{directed(for_layer(CONCAT_HTML, layer, plain=True), reverse)}&nbsp;&nbsp;&nbsp;"
            f"max |difference| = <b>{diff:.1e}</b>"
        )

    def _set_gated(self, detail: GatedStepDetail) -> None:
        kind = detail.kind
        body = self.bodies[kind]
        V = len(detail.X_t)
        H = len(detail.vectors["h"])
        layer, top = detail.layer, detail.num_layers - 1
        cell = detail.cell_levels if detail.cell_levels is not None else TANH_LEVELS
        levels = {"gate": GATE_LEVELS, "tanh": TANH_LEVELS, "cell": cell, "term": SUM_LEVELS}
        name = "LSTM" if kind == "lstm" else "GRU"
        reverse = detail.direction == "reverse"
        both = detail.bidirectional
        self._step_text(detail, name)  # the layer: the selector beside it says it
        token = detail.token_id
        W_in = "W<sub>in</sub>" + ("<sup>←</sup>" if reverse else "")
        notes = {"x_n": f" row {token} of {W_in}"} if layer == 0 else {}
        if layer > 0:
            # of two directions: both of the layer below, 2H wide
            notes["X_t"] = f" layer {layer}'s " + (
                both_html("h", f"({layer})") if both else "h<sub>t</sub>"
            )
        if layer < top:
            notes["O_t"] = " top layer's"
        for key, formula, width_symbol, _, note in GATED_ROWS[kind]:
            row = self.rows[key]
            row.formula = directed(for_layer(formula, layer), reverse)
            if key == "O_t" and both:
                top_sup = f"({top + 1})" if layer < top else ""
                row.formula = formula.replace("h<sub>t</sub>", both_html("h", top_sup))
            elif key == "O_t" and layer < top:
                row.formula = formula.replace(
                    "h<sub>t</sub>", f"h<sub>t</sub><sup>({top + 1})</sup>"
                )
            below = key == "X_t" and layer > 0
            wide = (
                V if width_symbol == "V" and not below else len(detail.layer_input) if below else H
            )
            shown = ("2H" if both else "H") if below else width_symbol
            row.set_shape(shown, wide, notes.get(key, note))
        self._set_both(detail, "h", TANH_LEVELS, theme.DIVERGING)
        if layer == 0:
            self._set_input(detail)
        else:  # the layer below's h_t: an H-wide (2H: both directions) tanh row, not a one-hot
            split = H if both else None  # a line where the backward half starts
            self._set_row("X_t", detail.layer_input, TANH_LEVELS, theme.DIVERGING, divider=split)
        for key, _, _, scale, _ in GATED_ROWS[kind]:
            if scale in levels:
                lo_hi = levels[scale]
                self._set_row(key, detail.vectors[key], lo_hi, theme.activation_colormap(lo_hi))
        if self._starts_here(detail):
            self.rows["h_prev"].numbers.show_values(
                detail.vectors["h_prev"], self._zeros_note(detail, "h")
            )
            if kind == "lstm":
                self.rows["c_prev"].numbers.show_values(
                    detail.vectors["c_prev"], "(zeros: and from c = 0)"
                )
        self._set_output(detail)

        diff = float(detail.fused_max_abs_diff)
        half = f" ({DIRECTION_WORDS[detail.direction]} half)" if both else ""
        body.check.setText(
            f"h<sub>t</sub> of these rows = h<sub>t</sub>{half} of PyTorch's fused nn.{name}"
            f"&nbsp;&nbsp;&nbsp;max |difference| = <b>{diff:.1e}</b>"
        )
        cell_scale = f" · c ±{cell[1]:g}" if kind == "lstm" else ""
        terms = f" · terms ±{SUM_LEVELS[1]:g}" if kind == "gru" else ""
        body.scale_note.setText(
            f"fixed colour scales: gates 0…1 · tanh values and h ±{TANH_LEVELS[1]:g}"
            f"{cell_scale}{terms} · O<sub>t</sub> ±{LOGIT_LEVELS[1]:g} · P 0…1"
        )

    @staticmethod
    def _starts_here(detail: Any) -> bool:
        """The step reads a zero state: the first character forward, the last backward."""
        if getattr(detail, "direction", "forward") == "reverse":
            return detail.next_char is None
        return bool(detail.t == 0)

    @staticmethod
    def _zeros_note(detail: Any, h: str) -> str:
        if getattr(detail, "direction", "forward") == "reverse":
            return f"(zeros: the backward direction starts at the last character, {h} = 0)"
        return f"(zeros: a probe starts from {h} = 0)"

    def _set_both(
        self, detail: Any, h: str, levels: tuple[float, float], cmap: pg.ColorMap
    ) -> None:
        """The row above O_t of a bidirectional model: [h_fwd_t ; h_rev_t], what W_hq reads;
        hidden for one direction."""
        row = self.bodies[self._form].both
        values = getattr(detail, "output_input", None)
        shown = bool(getattr(detail, "bidirectional", False)) and values is not None
        row.set_visible(shown)
        if not shown or values is None:
            return
        values = np.asarray(values)
        H = len(values) // 2
        top = detail.num_layers - 1
        top_sup = f"({top + 1})" if detail.layer < top else ""
        row.formula = both_html(h, top_sup)
        row.set_shape("2H", len(values), " what O<sub>t</sub> reads: forward | backward")
        # a gap between the halves, so the eye finds where the backward one starts
        row.strip.set_values(values, levels, cmap, divider=H)
        part = max(1, NUMBERS_SHOWN // 2)
        fwd = format_numbers(values[:H], part)
        bwd = format_numbers(values[H:], part)
        row.numbers.show_text(
            html.escape(f"→ {fwd}") + "&nbsp;&nbsp;|&nbsp;&nbsp;" + html.escape(f"← {bwd}")
        )

    def _set_row(
        self,
        key: str,
        values: np.ndarray,
        levels: tuple[float, float],
        cmap: pg.ColorMap,
        marked: int | None = None,
        divider: int | None = None,
    ) -> None:
        row = self.rows[key]
        row.strip.set_values(values, levels, cmap, marked, divider)
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

    # ------------------------------------------------------------------ stacked layers

    def _set_layers(self, layers: int) -> None:
        """The selector's entries for a model of ``layers`` stacked layers (shown only for
        more than one), the top one first; the layer chosen stays while the model has it."""
        if layers == self._layers:
            return
        self._layers = layers
        if self._layer >= layers:
            self._layer = -1
        fill_layers(self._layer_box, layers, self.layer())

    def layer(self) -> int:
        """The stacked layer shown, from 0 (the bottom one); 0 for a one-layer model."""
        return self._layers - 1 if self._layer < 0 else self._layer

    def requested_layer(self) -> int | None:
        """The layer to compute the detail for: None while it is the top one by default (the
        next model may be deeper or shallower), else the layer chosen."""
        return None if self._layer < 0 else self._layer

    def set_layer(self, layer: int) -> None:
        """Show stacked layer ``layer`` (0: the bottom one) from the next detail on, as the
        selector does, without ``layer_chosen``. Kept for a deeper model when this one has
        fewer layers."""
        self._layer = max(0, int(layer))
        if self._layer < self._layers:
            select_data(self._layer_box, self._layer)

    def layer_selector(self) -> QComboBox:
        """The selector of the stacked layer shown: visible only for more than one layer."""
        return self._layer_box

    def _on_layer_chosen(self, index: int) -> None:
        if index >= 0:
            self.set_layer(int(self._layer_box.itemData(index)))
            self.layer_chosen.emit(self._layer)

    # ------------------------------------------------------------------ two directions

    def _set_bidirectional(self, bidirectional: bool) -> None:
        """The direction selector, shown only for a bidirectional model's detail."""
        self._bidirectional = bidirectional
        self._direction_box.setVisible(bidirectional)

    def direction(self) -> str:
        """The direction of the rows shown: "forward", or "reverse" (the backward one) of a
        bidirectional model; before any detail, the one chosen."""
        if self._detail is not None:
            return str(getattr(self._detail, "direction", "forward"))
        return self._direction

    def requested_direction(self) -> str:
        """The direction to compute the detail for: the one chosen (the scheduler asks a
        one-direction model for its forward one whatever this says)."""
        return self._direction

    def set_direction(self, direction: str) -> None:
        """Show ``direction`` ("forward", or "reverse"/"backward") from the next detail on, as
        the selector does, without ``direction_chosen``; kept for the next bidirectional
        model while this one has one direction."""
        value = direction_value(direction)
        if value is None:
            return
        self._direction = value
        select_data(self._direction_box, value)

    def direction_selector(self) -> QComboBox:
        """The selector of the direction shown: visible only for a bidirectional model."""
        return self._direction_box

    def _on_direction_chosen(self, index: int) -> None:
        if index >= 0:
            self.set_direction(str(self._direction_box.itemData(index)))
            self.direction_chosen.emit(self._direction)

    def both_values(self) -> np.ndarray | None:
        """The [h_fwd ; h_rev] row above O_t as drawn (None while it is hidden)."""
        row = self.bodies[self._form].both
        return row.strip.values() if row.strip.isVisibleTo(self) else None

    def both_text(self) -> str:
        return self.bodies[self._form].both.numbers.text()

    def row_label(self, key: str) -> str:
        """The label of row ``key`` (its formula and shape), as rich text."""
        return self.rows[key].label.text()

    # ------------------------------------------------------------------ for tests / export

    def detail(self) -> Any:
        return self._detail

    def form(self) -> str:
        """The equations shown: "plain" (the scratch RNN), "lstm" or "gru"."""
        return self._form

    def gate_note_text(self) -> str | None:
        """The line under a gated model's equations (None while it is not on screen)."""
        return self.gate_note.text() if self.gate_note.isVisibleTo(self) else None

    def check_text(self) -> str:
        """The check line under the rows of the form shown."""
        return self.bodies[self._form].check.text()

    def row_values(self, key: str) -> np.ndarray:
        """The values the strip of row ``key`` shows (keys: ROW_KEYS, or the keys of
        GATED_ROWS[form] while a GRU/LSTM is shown)."""
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
