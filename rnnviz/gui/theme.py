"""Colours, colour maps, fonts, and how a character or a number is written.

Sizes are for a lecture-hall projector: a student in the back row reads the tick labels.
Colour maps map values to colours only; every number they colour was computed in core.

Two colour schemes, light and dark: ``colours()`` is the one in use. It follows the system
(Qt's colour-scheme hint, else the palette's window colour), so that on a dark desktop the
plots are dark too, and text drawn in a fixed colour does not vanish into the background.
The colour maps and the run colours are the same in both: a colour means one value or one run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

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


MUTED = "#9E9E9E"  # a space's '␣', a zero line: a mid grey, seen on either background


UNKNOWN = "#C62828"  # characters outside the vocabulary


@dataclass(frozen=True)
class Colours:
    """The colours of one scheme that are not a value's or a run's."""

    dark: bool
    plot_background: str  # plots and painted strips; light plots read best on a projector
    ink: str  # axes, tick labels, plot titles, text painted on plot_background
    secondary_ink: str  # notes and shapes under the main text
    placeholder_ink: str  # "type a string to probe", "no steps yet" (either background)
    cursor: str  # the time-step cursor, the selected unit's outline
    missing: str  # a cell with no value (NaN)
    cell_border: str  # between painted cells
    rule: str  # a thin separating line
    states: dict[str, str]  # the run state's colour in the status bar ("idle": the rest)


LIGHT = Colours(
    dark=False,
    plot_background="#FFFFFF",
    ink="#000000",
    secondary_ink="#555555",
    placeholder_ink="#6E6E6E",
    cursor="#000000",
    missing="#D9D9D9",
    cell_border="#C8C8C8",
    rule="#E0E0E0",
    states={
        "training": "#17733A",
        "paused": "#7A4B00",
        "diverged": "#B00020",
        "stopped": "#B00020",
        "idle": "#333333",
    },
)


# each text colour at least 4.5:1 against plot_background and Adwaita-dark's window (#353535)
DARK = Colours(
    dark=True,
    plot_background="#1E1E1E",
    ink="#E8E8E8",
    secondary_ink="#B4B4B4",
    placeholder_ink="#A8A8A8",
    cursor="#E8E8E8",  # the ink, as in LIGHT: a colour of one scheme has one in the other
    missing="#6A6A6A",
    cell_border="#4A4A4A",
    rule="#505050",
    states={
        "training": "#6FD08C",
        "paused": "#F2B45A",
        "diverged": "#FF7A8A",
        "stopped": "#FF7A8A",
        "idle": "#E0E0E0",
    },
)


_scheme_override: bool | None = None


def use_dark_scheme(dark: bool | None) -> None:
    """Force the dark (True) or light (False) scheme; None follows the system again.

    For tests and screenshots. Widgets take their colours when they are built: set this first.
    """
    global _scheme_override
    _scheme_override = dark


def system_is_dark() -> bool:
    """Whether the desktop asks for a dark scheme: Qt's hint (Qt 6.5+, GNOME and KDE say),
    else a dark window colour in the palette (a dark style or palette without the hint)."""
    if QGuiApplication.instance() is None:
        return False
    scheme = QGuiApplication.styleHints().colorScheme()
    if scheme != Qt.ColorScheme.Unknown:
        return scheme == Qt.ColorScheme.Dark
    return QGuiApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128


_system_look: tuple[str, QPalette] | None = None  # the style and palette a force replaced


def apply_app_palette(app: QApplication) -> None:
    """Give the whole application the forced scheme (``rnnviz --scheme``, View ▸ Colours):
    Qt's Fusion style with an Adwaita-like dark palette, or Fusion's own light one. Without a
    forced scheme the system's style and palette stay as they are (``restore_system_look``)."""
    global _system_look
    if _system_look is None:
        _system_look = (app.style().name(), QPalette(app.palette()))
    app.setStyle("Fusion")
    if not colours().dark:
        app.setPalette(app.style().standardPalette())
        return
    role = QPalette.ColorRole
    palette = QPalette()
    for r, colour in (
        (role.Window, "#353535"),
        (role.WindowText, "#EEEEEE"),
        (role.Base, "#2A2A2A"),
        (role.AlternateBase, "#323232"),
        (role.ToolTipBase, "#2A2A2A"),
        (role.ToolTipText, "#EEEEEE"),
        (role.Text, "#EEEEEE"),
        (role.Button, "#3C3C3C"),
        (role.ButtonText, "#EEEEEE"),
        (role.BrightText, "#FF7A8A"),
        (role.Highlight, "#3584E4"),
        (role.HighlightedText, "#FFFFFF"),
        (role.Link, "#8AB4F8"),
        (role.PlaceholderText, DARK.placeholder_ink),
    ):
        palette.setColor(r, QColor(colour))
    for r in (role.WindowText, role.Text, role.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, r, QColor("#8A8A8A"))
    app.setPalette(palette)


def restore_system_look(app: QApplication) -> None:
    """The style and palette the system gave, back after ``apply_app_palette`` replaced them."""
    global _system_look
    if _system_look is None:
        return
    style, palette = _system_look
    _system_look = None
    app.setStyle(style)
    app.setPalette(palette)


def colours() -> Colours:
    """The scheme in use: forced by ``use_dark_scheme``, else the system's."""
    dark = system_is_dark() if _scheme_override is None else _scheme_override
    return DARK if dark else LIGHT


def state_colour(state: str) -> str:
    """The colour of a run state's word ("training", "paused", ...) in the current scheme."""
    states = colours().states
    return states.get(state, states["idle"])


# every shade readable() and on_background() handed out, so that a live switch of the
# scheme (window/recolour) can map each to its twin in the other scheme
_SHADES: set[tuple[str, int, bool]] = set()


def _shade(colour: str, factor: int, both: bool, dark: bool) -> str:
    c = QColor(colour)
    if dark:
        return c.lighter(factor).name()
    return c.darker(factor).name() if both else c.name()


def readable(colour: str | QColor, factor: int = 160) -> str:
    """A second shade of ``colour`` that stands out from it on the current background:
    darker on a light one, lighter on a dark one (a darker blue vanished on dark grey)."""
    name = QColor(colour).name()
    _SHADES.add((name, factor, True))
    return _shade(name, factor, True, colours().dark)


def on_background(colour: str | QColor, factor: int = 150) -> str:
    """``colour`` on a light background, a lighter shade on a dark one (θ's dark red, the
    vanishing verdict's blue were hard to read on dark grey). Its factor is not readable()'s:
    on a dark background the two shades of one colour would be one, with two light twins."""
    name = QColor(colour).name()
    _SHADES.add((name, factor, False))
    return _shade(name, factor, False, colours().dark)


def twin_pairs(old: Colours, new: Colours) -> list[tuple[str, str]]:
    """Each colour the app takes from scheme ``old`` (lower-case ``#rrggbb``) and the one it
    takes from ``new`` in its place: the schemes' own and every shade handed out so far.

    A colour of ``old`` that two roles share has one twin in ``new`` (the tests check it), so
    a built widget can be recoloured from its colours alone."""
    pairs: list[tuple[str, str]] = []
    for name in Colours.__dataclass_fields__:
        a, b = getattr(old, name), getattr(new, name)
        if isinstance(a, str):
            pairs.append((a, b))
    pairs += [(old.states[k], new.states[k]) for k in old.states]
    for base, factor, both in sorted(_SHADES):
        pairs.append((_shade(base, factor, both, old.dark), _shade(base, factor, both, new.dark)))
    return [(QColor(a).name(), QColor(b).name()) for a, b in pairs]


def twin_colours(old: Colours, new: Colours) -> dict[str, str]:
    """``twin_pairs`` as a map (the schemes' own colours first)."""
    twins: dict[str, str] = {}
    for a, b in twin_pairs(old, new):
        twins.setdefault(a, b)
    return twins


# The light scheme's values, for code that predates colours(); new code calls colours().
CURSOR = LIGHT.cursor
PLACEHOLDER_INK = LIGHT.placeholder_ink
MISSING_VALUE = QColor(LIGHT.missing)
PLOT_BACKGROUND = LIGHT.plot_background


BASE_POINT_SIZE = 13  # the lecture size; tick labels use it, text is larger


_zoom = 1.0  # times BASE_POINT_SIZE: Ctrl+= / Ctrl+− and lecture mode (window/lecture_mode)


def set_zoom(zoom: float) -> None:
    """The text size every ``font()`` made from now on has (built widgets: ``rescale``)."""
    global _zoom
    _zoom = zoom


def zoom() -> float:
    return _zoom


_line_zoom = 1.0  # painted lines' width: lecture mode draws them thicker than the text grows


def set_line_zoom(zoom: float) -> None:
    global _line_zoom
    _line_zoom = zoom


def line_width(px: float) -> float:
    """A line ``px`` wide at 100 %, at the zoom in use (for lines a widget paints itself)."""
    return px * _line_zoom


def point_size(scale: float = 1.0) -> float:
    """``scale`` times the base size, zoomed: what ``font(scale)`` has, for HTML labels."""
    return BASE_POINT_SIZE * scale * _zoom


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
    grey = colours().missing
    return [
        QColor(grey) if missing[i] else QColor(int(r), int(g), int(b), int(a))
        for i, (r, g, b, a) in enumerate(rgba.tolist())
    ]


def text_colour_on(background: QColor) -> QColor:
    """Black on light cells, white on dark ones (relative luminance, sRGB weights)."""
    luminance = 0.2126 * background.redF() + 0.7152 * background.greenF()
    luminance += 0.0722 * background.blueF()
    return QColor("#000000") if luminance > 0.45 else QColor("#FFFFFF")


def font(scale: float = 1.0, *, bold: bool = False, mono: bool = False) -> QFont:
    """The lecture font at ``scale`` times BASE_POINT_SIZE, zoomed."""
    f = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont) if mono else QFont()
    f.setPointSizeF(point_size(scale))
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


def short_count(x: float) -> str:
    """A large count in three figures: ``9,876``, ``21.5 k``, ``216 k``, ``2.16 M`` (room in a
    lecture-size status bar)."""
    if not math.isfinite(x):
        return plain_number(x)
    if abs(x) < 1e4:
        return f"{x:,.0f}"
    for scale, unit in ((1e3, "k"), (1e6, "M")):
        if abs(x / scale) < 999.5:  # 999.7 k is written 1 M, not 1e+03 k
            return f"{x / scale:.3g} {unit}"
    return f"{x / 1e9:,.3g} G" if abs(x) < 999.5e9 else f"{x / 1e9:,.0f} G"


def run_colour(run_id: int) -> str:
    """Run ``run_id``'s curve colour (the palette's black is white on a dark background). A
    run opened from a metrics CSV (a negative id) takes the palette from its far end, black
    and yellow left out: the black one read as an axis."""
    if run_id < 0:
        opened = RUN_COLOURS[5::-1]  # vermillion, sky blue, reddish purple, ...
        return opened[(-run_id - 1) % len(opened)]
    colour = RUN_COLOURS[run_id % len(RUN_COLOURS)]
    return colours().ink if colour == "#000000" else colour
