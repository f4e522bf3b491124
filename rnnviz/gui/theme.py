"""Colours, colour maps, fonts, and how a character or a number is written.

Sizes are for a lecture-hall projector: a student in the back row reads the tick labels.
Colour maps map values to colours only; every number they colour was computed in core.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor, QFont, QFontDatabase

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


def run_colour(run_id: int) -> str:
    return RUN_COLOURS[run_id % len(RUN_COLOURS)]
