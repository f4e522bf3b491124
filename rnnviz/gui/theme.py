"""Shared look: colours, colour maps, fonts and how a character is shown.

Sizes are for a lecture-hall projector: a student in the back row reads the tick labels.
Colour maps map values to colours only; every number they colour was computed in core.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase
from PySide6.QtWidgets import QGraphicsItem, QLabel, QSizePolicy, QWidget

# Okabe & Ito's palette: told apart with every common colour-vision deficiency.
RUN_COLOURS: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
    "#000000",
)
HIGHLIGHT = "#D55E00"  # the true next character, the selected unit
CURSOR = "#000000"  # the time-step cursor
MUTED = "#9E9E9E"  # a space's '␣', a missing value
PLACEHOLDER_INK = "#6E6E6E"  # "type a string to probe" on the window background
UNKNOWN = "#C62828"  # characters outside the vocabulary
MISSING_VALUE = QColor("#D9D9D9")  # a cell with no value (nan)
PLOT_BACKGROUND = "w"  # light plots read better on a projector

BASE_POINT_SIZE = 13  # the lecture size; tick labels use it, text is larger
LEFT_AXIS_WIDTH = 76  # px; plots stacked over a shared x axis use it to line up
SURPRISAL_MAX_BITS = 8.0  # fixed top of the surprisal colour scale (p = 1/256)
CELL_STATE_LEVELS = (-3.0, 3.0)  # LSTM C_t is unbounded; fixed levels keep probes comparable

# blue - white - red, as ColorBrewer's RdBu: negative activations blue, positive red
_DIVERGING_STOPS = [(33, 102, 172), (103, 169, 207), (247, 247, 247), (239, 138, 98), (178, 24, 43)]
_SURPRISAL_STOPS = [(255, 255, 255), (254, 224, 144), (253, 174, 97), (244, 109, 67), (165, 0, 38)]

DIVERGING = pg.ColorMap(np.linspace(0.0, 1.0, 5), _DIVERGING_STOPS, name="blue-white-red")
# for non-negative activations (ReLU): the white-to-red half, 0 is white
POSITIVE = pg.ColorMap(np.linspace(0.0, 1.0, 3), _DIVERGING_STOPS[2:], name="white-red")
SURPRISAL = pg.ColorMap(np.linspace(0.0, 1.0, 5), _SURPRISAL_STOPS, name="white-orange-red")
SEQUENTIAL = pg.colormap.get("viridis")  # probabilities, log gradient flow


def activation_colormap(levels: tuple[float, float]) -> pg.ColorMap:
    """Diverging map when the levels straddle zero (tanh), white-to-red when they do not (ReLU)."""
    return DIVERGING if levels[0] < 0.0 else POSITIVE


def map_colours(cmap: pg.ColorMap, values: np.ndarray, levels: tuple[float, float]) -> list[QColor]:
    """One QColor per value, ``levels`` mapped to the ends of ``cmap``; nan gets MISSING_VALUE."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = levels
    span = hi - lo if hi > lo else 1.0
    position = np.clip((np.nan_to_num(values, nan=lo) - lo) / span, 0.0, 1.0)
    rgba = cmap.map(position, mode="byte")  # (N, 4) uint8
    missing = np.isnan(values)
    return [
        QColor(MISSING_VALUE) if missing[i] else QColor(int(r), int(g), int(b), int(a))
        for i, (r, g, b, a) in enumerate(rgba.tolist())
    ]


def text_colour_on(background: QColor) -> QColor:
    """Black on light cells, white on dark ones (relative luminance, sRGB weights)."""
    luminance = 0.2126 * background.redF() + 0.7152 * background.greenF()
    luminance += 0.0722 * background.blueF()
    return QColor("#000000") if luminance > 0.45 else QColor("#FFFFFF")


def font(scale: float = 1.0, *, bold: bool = False, mono: bool = False) -> QFont:
    """The lecture font at ``scale`` times BASE_POINT_SIZE."""
    f = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont) if mono else QFont()
    f.setPointSizeF(BASE_POINT_SIZE * scale)
    f.setBold(bold)
    return f


def display_char(token: str) -> str:
    """How one character (or vocabulary token) is shown in a cell or on an axis."""
    if token == " ":
        return "\u2423"  # ␣
    if token == "<unk>":
        return "?"
    if token == "\n":
        return "\u23ce"  # ⏎
    if token == "\t":
        return "\u21e5"  # ⇥
    if len(token) == 1 and not token.isprintable():
        return "\ufffd"
    return token


def char_ticks(
    chars: Sequence[str], max_labels: int, first: Sequence[int] = ()
) -> list[tuple[float, str]]:
    """Axis ticks at cell centres (i + 0.5), every n-th one so at most ``max_labels`` show.

    ``first``: cells to label before the regular ones, in this order, when not all fit (the
    bars a reader looks at: every other letter of the vocabulary may skip exactly those). The
    labels stay as far apart as the regular ones, so none overlap.
    """
    n = len(chars)
    every = max(1, math.ceil(n / max(1, max_labels)))
    if every == 1 or not first:
        return [(i + 0.5, display_char(chars[i])) for i in range(0, n, every)]
    chosen: list[int] = []
    for i in [*first, *range(0, n, every)]:
        if 0 <= i < n and all(abs(i - j) >= every for j in chosen):
            chosen.append(i)
    return [(i + 0.5, display_char(chars[i])) for i in sorted(chosen)]


def number_ticks(count: int, max_labels: int) -> list[tuple[float, str]]:
    """Integer ticks at cell centres, on a 1-2-5 step so at most ``max_labels`` show."""
    k, step = 0, 1
    while math.ceil(count / step) > max(1, max_labels):
        k += 1
        step = (1, 2, 5)[k % 3] * 10 ** (k // 3)  # 2, 5, 10, 20, 50, ...
    return [(i + 0.5, str(i)) for i in range(0, count, step)]


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def plain_number(x: float, *, sign: bool = False) -> str:
    """A number as a student reads it: ``0.25``, ``430``, ``6.5·10¹⁶`` (never ``6.5e+16``).

    ``sign`` puts a ``+`` before positive numbers (the end of a diverging colour scale).
    """
    if not math.isfinite(x):
        return "∞" if x > 0 else ("−∞" if x < 0 else "NaN")
    if x == 0:
        return "0"
    plus = "+" if sign and x > 0 else ""
    if 100 <= abs(x) < 1e4:
        return plus + f"{x:.0f}".replace("-", "−")  # 1234, not 1.23e+03
    if 1e-3 <= abs(x) < 100:
        return plus + f"{x:.3g}".replace("-", "−")
    exponent = int(math.floor(math.log10(abs(x))))
    mantissa = f"{abs(x) / 10.0**exponent:.2g}"
    if mantissa == "10":  # 9.97·10¹⁶ rounds up to 10¹⁷
        mantissa, exponent = "1", exponent + 1
    power = "10" + str(exponent).translate(_SUPERSCRIPT)
    minus = "−" if x < 0 else plus
    return minus + power if mantissa == "1" else f"{minus}{mantissa}·{power}"


def fixed_or_plain(x: float, decimals: int = 2) -> str:
    """``x`` with ``decimals`` decimals while that reads well (``3.14``), else plain_number
    (``4.2·10²¹`` after a divergence, not ``4152605116486912049152.00``)."""
    if math.isfinite(x) and abs(x) < 1e4:
        return f"{x:.{decimals}f}"
    return plain_number(x)


_UNSET = object()


def changed(obj: object, key: str, value: object) -> bool:
    """Whether ``value`` differs from the one last given for ``key`` on ``obj`` (remembered).

    pyqtgraph throws an axis's cached drawing away whenever its ticks or label are set, and a
    title's layout whenever it is set, even to what it was; regenerating an axis is most of a
    plot's paint. A probe sets them all on every keystroke, so the setters below skip a value
    that did not change.
    """
    attr = f"_rnnviz_{key}"
    if getattr(obj, attr, _UNSET) == value:
        return False
    setattr(obj, attr, value)
    return True


def set_ticks(axis: pg.AxisItem, ticks: list[tuple[float, str]]) -> None:
    """``axis.setTicks([ticks])`` unless those are the ticks it has."""
    if changed(axis, "ticks", ticks):
        axis.setTicks([ticks])


def set_title(plot: pg.PlotItem, title: str | None, **style: str) -> None:
    """``plot.setTitle(title, **style)`` unless the plot shows that title already."""
    if changed(plot, "title", (title, style)):
        plot.setTitle(title, **style)


def set_level_ticks(axis: pg.AxisItem, levels: tuple[float, float]) -> None:
    """Three ticks for a fixed range: both ends and the middle (0 for a symmetric range).

    Short plots would otherwise drop the end labels, which are the ones that say the scale.
    """
    if not changed(axis, "level_ticks", tuple(levels)):
        return
    setattr(axis, "_rnnviz_ticks", _UNSET)  # noqa: B010 - set_ticks must not skip after this
    lo, hi = levels
    axis.setStyle(textFillLimits=[(0, 1.0)], hideOverlappingLabels=False)
    # the labels carry the scale; "(x1e+15)" next to the axis name would be misread
    axis.enableAutoSIPrefix(False)
    values = (lo, (lo + hi) / 2, hi)
    labels = [plain_number(v) for v in values]
    if max(len(label) for label in labels) > 6:  # "2.5·10³⁷" would not fit beside the ends
        values, labels = (lo, hi), [labels[0], labels[2]]
    axis.setTicks([list(zip(values, labels, strict=True))])


def set_axis_label(plot: pg.PlotItem, side: str, text: str) -> None:
    if changed(plot.getAxis(side), "label", text):
        plot.setLabel(side, text, **{"font-size": f"{BASE_POINT_SIZE}pt", "color": "#000"})


def style_colour_bar(bar: pg.ColorBarItem, label: str) -> None:
    """Black lecture-size ticks and the label beside the numbers (the bar's right axis)."""
    if not changed(bar, "label", label):
        return
    axis = bar.getAxis("right")
    axis.setTickFont(font(0.9))
    axis.setPen("#000")
    axis.setTextPen("#000")
    axis.setWidth(int(BASE_POINT_SIZE * 5.5))
    axis.enableAutoSIPrefix(False)  # no "(x1e+15)" after the label: see set_colour_bar_levels
    axis.setLabel(label, **{"font-size": f"{BASE_POINT_SIZE}pt", "color": "#000"})
    bar.getAxis("left").setLabel(None)
    bar.getAxis("left").showLabel(False)


def style_plot(plot: pg.PlotItem, **labels: str) -> None:
    """Lecture-size tick fonts and axis labels, e.g. ``style_plot(p, left="probability")``."""
    tick_font = font()
    for name in ("left", "bottom", "right", "top"):
        axis = plot.getAxis(name)
        axis.setTickFont(tick_font)
        axis.setPen("#000")
        axis.setTextPen("#000")
        # a label at a cell centre next to the plot's edge may stick out a few pixels
        axis.setStyle(hideOverlappingLabels=False)
        # "(x1e+15)" after an axis name reads as part of the name; labels say the scale
        axis.enableAutoSIPrefix(False)
    for side, text in labels.items():
        set_axis_label(plot, side, text)


def set_colour_bar_levels(bar: pg.ColorBarItem, levels: tuple[float, float]) -> None:
    """Fixed levels on a colour bar, labelled at both ends and the middle in plain numbers.

    Needed where the levels can be huge (ReLU activations after a divergence): pyqtgraph's
    own ticks would print 20000000000000000 or a "(x1e+15)" scale instead.
    """
    bar.setLevels(levels)
    set_level_ticks(bar.getAxis("right"), levels)


class TickSource:
    """Tick labels for one axis: characters (``chars``) or cell numbers 0..count-1.

    With ``numbers_when_crowded`` an axis of characters that do not all fit shows step
    numbers instead: every 4th character of a sentence says nothing, t = 0, 10, 20 does.
    """

    def __init__(
        self,
        axis: pg.AxisItem,
        char_px: float,
        number_px: float | None = None,
        *,
        numbers_when_crowded: bool = False,
    ) -> None:
        self.axis = axis
        self.char_px = char_px  # room one label needs along the axis
        self.number_px = char_px if number_px is None else number_px
        self.numbers_when_crowded = numbers_when_crowded
        self.chars: Sequence[str] | None = None
        self.count = 0
        self.first: Sequence[int] = ()  # cells labelled first when crowded (see char_ticks)
        self._pixels = 0.0

    def set_chars(self, chars: Sequence[str]) -> None:
        self.chars, self.count = chars, len(chars)

    def set_count(self, count: int) -> None:
        self.chars, self.count = None, count

    def set_first(self, cells: Sequence[int]) -> None:
        """Label these cells first when not all fit, and refresh at the last width."""
        if list(cells) != list(self.first):
            self.first = list(cells)
            if self._pixels:
                self.refresh(self._pixels)

    def refresh(self, pixels: float) -> None:
        self._pixels = pixels
        max_chars = max(1, int(pixels // self.char_px))
        crowded = self.count > max_chars
        if self.chars is not None and not (crowded and self.numbers_when_crowded):
            ticks = char_ticks(self.chars, max_chars, self.first)
        else:
            ticks = number_ticks(self.count, max(1, int(pixels // self.number_px)))
        set_ticks(self.axis, ticks)


# pixels one tick label needs on a time-step axis: a character, a step number like "120"
STEP_TICK_PX = (BASE_POINT_SIZE * 1.1, BASE_POINT_SIZE * 3.6)
# the same up a vertical axis, where a character or a number is one line tall
STEP_TICK_PX_VERTICAL = (BASE_POINT_SIZE * 1.6, BASE_POINT_SIZE * 1.6)


def configure_pyqtgraph() -> None:
    """pyqtgraph's global options for the app, its screenshots and ``rnnviz bench`` alike.

    Row-major images (as numpy arrays are), and no antialiasing by default: antialiased
    drawing of the long training curves raised the event loop's lag while training from p99
    11 to 15.5-17 ms (max 19 to 25-32) and a keystroke's p50 by 1.5-3 ms (paired runs of
    ``bench_gui`` / ``bench_probe``, 2026-11-26). The short probe curves (a unit's trace, the
    gradient-flow distance curve and its fit) are drawn antialiased item by item (SMOOTH).
    Until then the bench set this option off while the app set it on: its figures were not
    the app's.
    """
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)


# PlotDataItem keywords for a short curve worth drawing smoothly (see configure_pyqtgraph)
SMOOTH: dict[str, Any] = {"antialias": True}


def cache_axes(view: pg.GraphicsView) -> None:
    """Keep every axis of ``view`` (plots and colour bars) as a pixmap until it changes.

    A probe changes a few axes per keystroke, but each repaint of a region draws every axis in
    it again, replaying its recorded text drawing (measured: ~0.15 ms an axis, 27 axis paints
    per keystroke with every probe panel open). From a pixmap an unchanged axis is a blit.
    Call once the plots are built.
    """
    for item in view.scene().items():
        if isinstance(item, pg.AxisItem):
            item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


class RoomyLayoutWidget(pg.GraphicsLayoutWidget):
    """A GraphicsLayoutWidget that gets no narrower than its plots' layout can shrink to.

    Below that pyqtgraph lays the plots out wider than the view and the right-hand plot is cut
    off (the gradient-flow panel's distance plot: its axis label "steps back" cut to "steps
    bac" at the default window size); with a minimum width the dock stops shrinking there
    instead. The layout's least width is known only after a paint (axes size themselves to
    their tick labels as they draw), so it is read after each paint. The minimum only grows
    (titles change with the cursor), so a text no wider than before re-lays out nothing.
    """

    def paintEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().paintEvent(event)
        hint = self.ci.layout.effectiveSizeHint(Qt.SizeHint.MinimumSize).width()
        need = math.ceil(hint) + 2 * self.frameWidth()
        if need > self.minimumWidth():
            self.setMinimumWidth(need)


def settle_views(widget: QWidget) -> None:
    """Run the deferred layout of every pyqtgraph view inside ``widget`` now.

    pyqtgraph applies a new range (the view matrix, the axes) only when a paint begins; what
    that changes asks for a second paint of the whole view. Settling right after setting new
    data gives one paint per change instead of two (measured: a keystroke painted each probe
    view twice, ~40 % of its time in scaled image draws).
    """
    for view in widget.findChildren(pg.GraphicsView):
        view.scene().prepareForPaint()


_SPAN_MANTISSAS = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def time_span(count: int, pixels: float, char_px: float = STEP_TICK_PX[0]) -> int:
    """How many time steps a time axis spans for a text of ``count`` characters.

    While the characters fit as tick labels, exactly ``count``. Past that the axis shows step
    numbers and spans the next of 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, … : typing one
    more character then leaves the range, and so every axis and the view's transform, as they
    were (regenerating the time axes was the largest part of a keystroke's paint), at the cost
    of at most a quarter blank columns on the right, where the next characters go.
    """
    if count <= 0 or count * char_px <= pixels:
        return max(count, 0)
    scale = 10 ** math.floor(math.log10(count))
    for mantissa in _SPAN_MANTISSAS:
        if mantissa * scale >= count:
            return int(round(mantissa * scale))
    return int(10 * scale)  # pragma: no cover - the loop always returns


class SteadyLabel(QWidget):
    """A label for a value that changes many times a second (a step count, a clip rate, a
    probe's readout), whose new text does not re-lay out the window.

    ``QLabel.setText`` asks its parent layout to re-lay out, and the request travels up every
    layout to the main window's, which re-lays out every dock (Qt even makes a geometry
    animation per dock each time): 44 times a second while training, measured with an event
    filter. This widget holds the QLabel without a layout, so the request stops here; it asks
    its own layout for room only when a text needs more height, or more width than any before
    it. ``shrink``: the layout may make it narrower than its text (the text is then cut).
    ``wrap``: word-wrapped; its height follows the text at the width it has.
    """

    def __init__(
        self,
        text: str = "",
        parent: QWidget | None = None,
        *,
        shrink: bool = False,
        wrap: bool = False,
    ) -> None:
        super().__init__(parent)
        self._label = QLabel(text, self)
        self._label.setWordWrap(wrap)
        self._shrink = shrink or wrap
        self._hint = QSize(0, 0)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def label(self) -> QLabel:
        """The QLabel inside (its font, text format, style)."""
        return self._label

    def text(self) -> str:
        return self._label.text()

    def setText(self, text: str) -> None:  # noqa: N802 - QLabel's name
        self._label.setText(text)
        # here, not only on the label's LayoutRequest: a hidden widget posts none, and the
        # layout would keep the size it cached for the old text
        self._relayout_if_needed()

    def setToolTip(self, text: str) -> None:  # noqa: N802 - QWidget's name
        super().setToolTip(text)
        self._label.setToolTip(text)

    def _wanted(self) -> QSize:
        hint = self._label.sizeHint()
        height = hint.height()
        if self._label.wordWrap():
            at = self.width() if self.width() > 1 else hint.width()
            height = self._label.heightForWidth(at)
            height = height if height > 0 else hint.height()
        return QSize(max(hint.width(), self._hint.width()), height)  # width: grows only

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        self._hint = self._wanted()
        return QSize(self._hint)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        hint = self.sizeHint()
        return QSize(0 if self._shrink else hint.width(), hint.height())

    def _relayout_if_needed(self) -> None:
        if self._wanted() != self._hint:
            self.updateGeometry()  # the layout asks sizeHint again

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:  # the label's text or font changed
            self._relayout_if_needed()
            return True
        return super().event(event)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self._label.setGeometry(self.rect())
        super().resizeEvent(event)
        if self._label.wordWrap():
            self._relayout_if_needed()  # a new width: another height
