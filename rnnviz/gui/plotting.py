"""pyqtgraph helpers: ticks, titles, colour bars, axes that cache, the app's global options.

Setters here skip a value that did not change: pyqtgraph throws an axis's cached drawing
away whenever it is set, and regenerating axes is most of a plot's paint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import pyqtgraph as pg
import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFontMetricsF, QPen
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsRectItem,
    QGraphicsSimpleTextItem,
    QWidget,
)

from rnnviz.gui.theme import (
    BASE_POINT_SIZE,
    colours,
    display_char,
    font,
    plain_number,
    point_size,
    zoom,
)


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


def steady_title(plot: pg.PlotItem) -> None:
    """Let ``plot``'s title text never change the plot's width: pyqtgraph makes a title's
    minimum width its text's at each change and resize, and a title that follows the cursor
    ("t = 9", "t = 10") then moved the plot's columns, which regenerated every axis
    of its view at each key. A title wider than the plot overhangs it instead."""
    label = plot.titleLabel

    def update_min() -> None:
        height = label.itemRect().height()
        label.setMinimumWidth(0)
        label.setMinimumHeight(height)
        # pyqtgraph's LabelItem answers sizeHint from this table (it has no setter)
        label._sizeHint = {
            Qt.SizeHint.MinimumSize: (0, height),
            Qt.SizeHint.PreferredSize: (0, height),
            Qt.SizeHint.MaximumSize: (-1, -1),
            Qt.SizeHint.MinimumDescent: (0, 0),
        }
        label.updateGeometry()

    label.updateMin = update_min
    update_min()


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
    values: tuple[float, ...] = (lo, (lo + hi) / 2, hi)
    labels = [plain_number(v) for v in values]
    if max(len(label) for label in labels) > 6:  # "2.5·10³⁷" would not fit beside the ends
        values, labels = (lo, hi), [labels[0], labels[2]]
    axis.setTicks([list(zip(values, labels, strict=True))])


def set_axis_label(plot: pg.PlotItem, side: str, text: str, short: str | None = None) -> None:
    """The axis's name at the lecture size (see ``label_axis``)."""
    label_axis(plot.getAxis(side), text, short)


def label_axis(axis: pg.AxisItem, text: str, short: str | None = None) -> None:
    """Name ``axis`` ``text`` at the lecture size. With ``short``, the axis shows ``short``
    where ``text`` is longer than the axis, and nothing where ``short`` is too: a plot
    squeezed by a small screen wrote "probability" over the next plot's "next character"."""
    if short is None:
        setattr(axis, "_rnnviz_label_choices", None)  # noqa: B010 - a fixed name from now on
        _show_axis_label(axis, text)
        return
    if not hasattr(axis, "_rnnviz_label_choices"):  # the first choice: connect once
        axis.geometryChanged.connect(partial(_fit_axis_label, axis))
    setattr(axis, "_rnnviz_label_choices", (text, short))  # noqa: B010
    _fit_axis_label(axis)


def _show_axis_label(axis: pg.AxisItem, text: str) -> None:
    if changed(axis, "label", text):
        axis.setLabel(text, **{"font-size": f"{point_size():.1f}pt", "color": colours().ink})
        axis.showLabel(bool(text))


def label_fits(text: str, length: float) -> bool:
    """Whether an axis label ``text`` fits along ``length`` px (with a little room)."""
    return QFontMetricsF(font()).horizontalAdvance(text) + 8 <= length


def corner_name(plot: pg.PlotItem, text: str) -> QGraphicsRectItem:
    """``text`` in the top-left corner of ``plot``, shown while its left axis (named by
    label_axis with a short name) has room for no name at all: a plot a fifth of its panel
    (the tokens/s plot on a 720-line projector) had no name. It sits on a box of the plot's
    background, since a curve may run through the corner."""
    box = QGraphicsRectItem(plot.getViewBox())
    backing = QColor(colours().plot_background)
    backing.setAlpha(210)
    box.setBrush(backing)
    box.setPen(QPen(Qt.PenStyle.NoPen))
    box.setZValue(10)  # over the curves and the grid
    name = QGraphicsSimpleTextItem(text, box)
    name.setBrush(QColor(colours().secondary_ink))
    axis = plot.getAxis("left")

    def place() -> None:  # after label_axis's own choice on the same signal
        if not shiboken6.isValid(box):
            return
        name.setFont(font())
        bounds = name.boundingRect()
        box.setRect(0.0, 0.0, bounds.width() + 6, bounds.height())
        name.setPos(3, 0)
        box.setVisible(not axis.label.isVisible())

    axis.geometryChanged.connect(place)
    place()
    return box


def refit_axis_label(axis: pg.AxisItem) -> None:
    """Choose the axis's name, its short name or none again (its font changed: a zoom)."""
    _fit_axis_label(axis)


def _fit_axis_label(axis: pg.AxisItem) -> None:
    if not shiboken6.isValid(axis):  # geometryChanged from the axis's own deletion
        return
    choices = getattr(axis, "_rnnviz_label_choices", None)
    if choices is None:  # set_axis_label gave a fixed name since
        return
    text, short = choices
    size = axis.size()
    length = size.width() if axis.orientation in ("top", "bottom") else size.height()
    # not laid out yet (length 0 or 1): the full name until the axis has a size
    fitting = (t for t in (text, short) if length <= 1 or label_fits(t, length))
    _show_axis_label(axis, next(fitting, ""))


def style_colour_bar(bar: pg.ColorBarItem, label: str, short: str | None = None) -> None:
    """Lecture-size ticks in the scheme's ink and the label beside the numbers (the bar's
    right axis; ``short`` where the bar is shorter than ``label``, see ``label_axis``)."""
    if not changed(bar, "label", (label, short)):
        return
    axis = bar.getAxis("right")
    ink = colours().ink
    axis.setTickFont(font(0.9))
    axis.setPen(ink)
    axis.setTextPen(ink)
    axis.setWidth(int(point_size() * 5.5))
    axis.enableAutoSIPrefix(False)  # no "(x1e+15)" after the label: see set_colour_bar_levels
    label_axis(axis, label, short)
    bar.getAxis("left").setLabel(None)
    bar.getAxis("left").showLabel(False)


def style_plot(plot: pg.PlotItem, **labels: str | tuple[str, str]) -> None:
    """Lecture-size tick fonts and axis labels, e.g. ``style_plot(p, left="probability")``;
    a pair names the axis and its short name, ``left=("probability", "p")``."""
    tick_font = font()
    tick_height = math.ceil(QFontMetricsF(tick_font).height()) + 2
    ink = colours().ink
    for name in ("left", "bottom", "right", "top"):
        axis = plot.getAxis(name)
        axis.setTickFont(tick_font)
        axis.setPen(ink)
        axis.setTextPen(ink)
        # a label at a cell centre next to the plot's edge may stick out a few pixels
        axis.setStyle(hideOverlappingLabels=False)
        if name in ("bottom", "top"):
            # a line of the tick font: pyqtgraph measures its tick strings' ink, and cut the
            # foot of '␣' off an axis without a name under it
            axis.setStyle(autoExpandTextSpace=False, tickTextHeight=tick_height)
        else:
            # a vertical axis widens for a wider tick label but never narrows again: one that
            # follows its labels both ways (10⁻⁵ one probe, 0.001 the next) re-laid out its
            # whole view, and regenerated every axis in it, at each new result
            axis.setStyle(autoReduceTextSpace=False)
        # "(x1e+15)" after an axis name reads as part of the name; labels say the scale
        axis.enableAutoSIPrefix(False)
    for side, text in labels.items():
        if isinstance(text, tuple):
            set_axis_label(plot, side, *text)
        else:
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
        z = zoom()  # the room a label needs grows with the text (Ctrl+=)
        max_chars = max(1, int(pixels // (self.char_px * z)))
        crowded = self.count > max_chars
        if self.chars is not None and not (crowded and self.numbers_when_crowded):
            ticks = char_ticks(self.chars, max_chars, self.first)
        else:
            ticks = number_ticks(self.count, max(1, int(pixels // (self.number_px * z))))
        set_ticks(self.axis, ticks)


# pixels one tick label needs on a time-step axis: a character, a step number like "120"
STEP_TICK_PX = (BASE_POINT_SIZE * 1.1, BASE_POINT_SIZE * 3.6)


# the same up a vertical axis, where a character or a number is one line tall
STEP_TICK_PX_VERTICAL = (BASE_POINT_SIZE * 1.6, BASE_POINT_SIZE * 1.6)


def configure_pyqtgraph() -> None:
    """pyqtgraph's global options for the app, its screenshots and ``rnnviz bench`` alike.

    Row-major images (as numpy arrays are), and no antialiasing by default: antialiased
    drawing of the long training curves made the event loop lag while training and slowed
    every keystroke (docs/performance-notes.md). The short probe curves (a unit's trace, the
    gradient-flow distance curve and its fit) are drawn antialiased item by item (SMOOTH).
    The bench calls this too, so that its figures are the app's.

    The plots' background and ink follow the colour scheme (``theme.colours``), read here:
    call this once the QApplication exists and before any plot is built.
    """
    scheme = colours()
    pg.setConfigOptions(
        imageAxisOrder="row-major",
        antialias=False,
        background=scheme.plot_background,
        foreground=scheme.ink,
    )


# PlotDataItem keywords for a short curve worth drawing smoothly (see configure_pyqtgraph)
SMOOTH: dict[str, Any] = {"antialias": True}


def cache_axes(view: pg.GraphicsView) -> None:
    """Keep every axis of ``view`` (plots and colour bars) as a pixmap until it changes.

    A probe changes a few axes per keystroke, but each repaint of a region draws every axis in
    it again, replaying its recorded text drawing; with every probe panel open that adds up
    to a noticeable part of a keystroke. From a pixmap an unchanged axis is a blit.
    Call once the plots are built.
    """
    for item in view.scene().items():
        if isinstance(item, pg.AxisItem):
            item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


class UnclippedLayoutWidget(pg.GraphicsLayoutWidget):  # type: ignore[misc]  # pyqtgraph has no types
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
    data gives one paint per change instead of two.
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


# a log axis draws its minor ticks only where a decade has this many pixels (8 ticks in it)
MIN_MINOR_DECADE_PX = 48


class LogAxis(pg.AxisItem):  # type: ignore[misc]  # pyqtgraph has no types
    """A log axis labelled with plain numbers (20, 10, 9) instead of 2·10¹, 10¹, 9·10⁰.

    Minor ticks (2..9 × 10^k) keep their label only where it does not run into another
    label: pyqtgraph would otherwise print 10, 9 and 8 on top of each other.
    """

    def logTickValues(  # noqa: N802 - pyqtgraph's name
        self,
        minVal: float,
        maxVal: float,
        size: float,
        stdTicks: list[Any],  # noqa: N803
    ) -> list[Any]:
        """pyqtgraph's ticks, less the minor ones (2..9 × 10^k) where a decade is shorter than
        ``MIN_MINOR_DECADE_PX``: eight decades in a dock-high plot drew 70 grid lines 2 px
        apart, a grey wash that was most of the gradient-flow panel's paint at each scrub."""
        ticks: list[Any] = super().logTickValues(minVal, maxVal, size, stdTicks)
        decades = max(float(maxVal) - float(minVal), 1e-12)
        if len(ticks) > 1 and ticks[-1][0] is None and size / decades < MIN_MINOR_DECADE_PX:
            ticks = ticks[:-1]
        return ticks

    def logTickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        if not values:
            return []
        numbers = [10.0 ** float(v) * scale for v in values]
        strings = [_plain_number(x) for x in numbers]
        if spacing is not None:  # a major level (whole decades): every label fits
            return strings
        lo, hi = self.range
        horizontal = self.orientation in ("top", "bottom")
        pixels = max(self.size().width() if horizontal else self.size().height(), 1.0)
        gap = point_size(1.6) * max(hi - lo, 1e-12) / pixels  # a label, in log10 units
        # whole decades first, then 2 and 5, then the rest: each kept only if it has room
        order = sorted(range(len(values)), key=lambda i: (_mantissa_rank(numbers[i]), values[i]))
        kept: list[float] = []
        labels = [""] * len(values)
        for i in order:
            if all(abs(values[i] - k) >= gap for k in kept):
                kept.append(values[i])
                labels[i] = strings[i]
        return labels


def _mantissa_rank(x: float) -> int:
    mantissa = round(x / 10.0 ** math.floor(math.log10(x)), 3) if x > 0 else 0.0
    return {1.0: 0, 2.0: 1, 5.0: 1}.get(mantissa, 2)


def _plain_number(x: float) -> str:
    """A log-axis tick label (empty for 0 and non-finite ticks)."""
    if x == 0 or not math.isfinite(x):
        return ""
    return plain_number(x)
