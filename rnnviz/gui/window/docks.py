"""The dock table and the default layouts: three rows on a tall window, two on a short one.

Below COMPACT_HEIGHT the default layout has two rows of plots, not three: the probe text on
top, then one tab group a column (curves | hidden states | unrolled network, grad norms | softmax |
gradient flow | step view). Three rows in 768 px squashed every plot to ~100 px. On a tall
window the unrolled network is a tab beside the softmax; its number key (1) raises it full size.

The probe text dock is as tall as it asks to be (one row of characters with every top-k line)
within a share of the window; on a short screen it shrinks towards its minimum, and its strip
shows fewer top-k lines rather than cutting the characters off.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QTabWidget, QWidget

from rnnviz.gui.panels.help import HELP
from rnnviz.gui.window.dock_title import DockTitle

DOCKS: tuple[tuple[str, str], ...] = (
    ("dock_controls", "Controls"),
    ("dock_curves", "Training curves"),
    ("dock_gradnorms", "Gradient norms"),
    ("dock_probe_text", "Probe text"),
    ("dock_hidden", "Hidden states"),
    ("dock_softmax", "Softmax"),
    ("dock_gradflow", "Gradient flow"),
    ("dock_stepview", "Step view"),
    ("dock_unrolled", "Unrolled network"),
    ("dock_film", "Learning film"),
    ("dock_generation", "Generation"),
    ("dock_saturation", "Gate saturation"),
)
# what a dock's tab says (its title bar and the View menu keep the whole title): five tabs in
# a column of a 1280x720 projector's window cut the whole titles to "Training c…", "Gate satur…"
TAB_TITLES = {
    "dock_curves": "Curves",
    "dock_gradnorms": "Grad norms",
    "dock_hidden": "Hidden",
    "dock_gradflow": "Grad flow",
    "dock_unrolled": "Unrolled",
    "dock_film": "Film",
    "dock_saturation": "Saturation",
}
FULL_TITLES = dict(DOCKS)
# 2: the gradient-flow and step-view docks; 3: the unrolled network; 4: the learning film and
# the generation panel; 5: the gate saturation
LAYOUT_VERSION = 5
DEFAULT_SIZE = (1600, 1000)  # the first window size, shrunk to fit a smaller screen
COMPACT_HEIGHT = 900
PROBE_SHARE = {True: 0.42, False: 0.33}  # the most of the window's height the probe text takes


def first_size(available: tuple[int, int] | None) -> tuple[int, int]:
    """DEFAULT_SIZE, or the screen's available size where that is smaller (a 1366x768 laptop
    or a 1280x720 projector: a 1600x1000 window would hang off it)."""
    if available is None:
        return DEFAULT_SIZE
    return (min(DEFAULT_SIZE[0], available[0]), min(DEFAULT_SIZE[1], available[1]))


def available_screen() -> tuple[int, int] | None:
    """The primary screen's room for windows; None on the offscreen platform, whose fixed
    800x600 "screen" is no real one (screenshots, the bench and tests size their windows)."""
    from PySide6.QtGui import QGuiApplication

    screen = QGuiApplication.primaryScreen()
    if screen is None or QGuiApplication.platformName() == "offscreen":
        return None
    room = screen.availableGeometry()
    return (room.width(), room.height())


def build_docks(window: QMainWindow, widgets: dict[str, QWidget]) -> dict[str, QDockWidget]:
    docks: dict[str, QDockWidget] = {}
    for name, title in DOCKS:
        dock = QDockWidget(title, window)
        dock.setObjectName(name)
        # an opaque panel: a label inside it that changes is repainted from the panel's
        # background, not from the dock's frame and the window's
        widgets[name].setAutoFillBackground(True)
        dock.setWidget(widgets[name])
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        dock.setTitleBarWidget(DockTitle(dock, *HELP[name]))  # shows the whole title
        dock.setWindowTitle(TAB_TITLES.get(name, title))
        dock.toggleViewAction().setText(title)  # (it followed the window title)
        docks[name] = dock
    window.setCentralWidget(None)  # type: ignore[arg-type]  # Qt takes None: the docks fill it
    # tabs of tabbed docks above them, where a reader looks first
    window.setTabPosition(Qt.DockWidgetArea.AllDockWidgetAreas, QTabWidget.TabPosition.North)
    return docks


def apply_default_layout(
    window: QMainWindow, d: dict[str, QDockWidget], height: int | None = None
) -> bool:
    """Controls left; curves + grad norms top; probe text middle; hidden + softmax bottom,
    with the gradient flow and the step view as tabs behind the softmax. Returns whether the
    compact (two-row) layout was chosen: for ``height`` (default: the window's).

    Everything but the controls is nested in the right dock area. (With top and bottom
    areas and no central widget, Qt's dock layout widens the left column by a separator's
    width on every relayout: the controls crept across the window.)
    """
    for dock in d.values():
        dock.setFloating(False)
        dock.show()
    area = Qt.DockWidgetArea
    window.addDockWidget(area.LeftDockWidgetArea, d["dock_controls"])
    if (window.height() if height is None else height) < COMPACT_HEIGHT:
        window.addDockWidget(area.RightDockWidgetArea, d["dock_probe_text"])
        window.splitDockWidget(d["dock_probe_text"], d["dock_curves"], Qt.Orientation.Vertical)
        window.splitDockWidget(d["dock_curves"], d["dock_gradnorms"], Qt.Orientation.Horizontal)
        for first, then in (
            ("curves", "hidden"),
            ("gradnorms", "softmax"),
            ("softmax", "gradflow"),
            ("gradflow", "stepview"),
            ("hidden", "unrolled"),
            ("unrolled", "film"),
            ("film", "saturation"),
            ("stepview", "generation"),  # five tabs in one group were cut to "Genera…"
        ):
            window.tabifyDockWidget(d[f"dock_{first}"], d[f"dock_{then}"])
        d["dock_curves"].raise_()  # what training shows first, beside the predictions
        d["dock_softmax"].raise_()
        return True
    window.addDockWidget(area.RightDockWidgetArea, d["dock_curves"])
    window.splitDockWidget(d["dock_curves"], d["dock_probe_text"], Qt.Orientation.Vertical)
    window.splitDockWidget(d["dock_probe_text"], d["dock_hidden"], Qt.Orientation.Vertical)
    window.splitDockWidget(d["dock_curves"], d["dock_gradnorms"], Qt.Orientation.Horizontal)
    window.splitDockWidget(d["dock_hidden"], d["dock_softmax"], Qt.Orientation.Horizontal)
    # one tab group: a second one made here leaves a stray copy of its tab bar drawn over the
    # other docks (Qt 6.11)
    window.tabifyDockWidget(d["dock_softmax"], d["dock_gradflow"])
    window.tabifyDockWidget(d["dock_gradflow"], d["dock_stepview"])
    window.tabifyDockWidget(d["dock_stepview"], d["dock_unrolled"])
    window.tabifyDockWidget(d["dock_unrolled"], d["dock_film"])
    window.tabifyDockWidget(d["dock_film"], d["dock_generation"])
    window.tabifyDockWidget(d["dock_generation"], d["dock_saturation"])
    d["dock_softmax"].raise_()
    return False


def size_default_docks(
    window: QMainWindow, d: dict[str, QDockWidget], controls_width: int, compact: bool
) -> None:
    """Default dock sizes for the window's size (Qt applies them once the window shows)."""
    width, height = window.width(), window.height()
    # as wide as the controls want (no horizontal scroll bar), within reason
    least = d["dock_controls"].minimumSizeHint().width()
    controls_w = max(260, least, min(controls_width + 24, 360, int(width * 0.25)))
    plots_w = width - controls_w
    window.resizeDocks([d["dock_controls"]], [controls_w], Qt.Orientation.Horizontal)
    half = [plots_w // 2, plots_w - plots_w // 2]
    window.resizeDocks([d["dock_curves"], d["dock_gradnorms"]], half, Qt.Orientation.Horizontal)
    probe_h = probe_height(d["dock_probe_text"], height, compact)
    if compact:
        window.resizeDocks(
            [d["dock_probe_text"], d["dock_curves"]],
            [probe_h, height - probe_h],
            Qt.Orientation.Vertical,
        )
        return
    window.resizeDocks([d["dock_hidden"], d["dock_softmax"]], half, Qt.Orientation.Horizontal)
    top_h = int((height - probe_h) * 0.4)  # the probe plots below need the height more
    window.resizeDocks(
        [d["dock_curves"], d["dock_probe_text"], d["dock_hidden"]],
        [top_h, probe_h, height - probe_h - top_h],
        Qt.Orientation.Vertical,
    )


def probe_height(dock: QWidget, height: int, compact: bool) -> int:
    """The probe text dock's default height in a window ``height`` tall: what it asks for,
    at most PROBE_SHARE of the window, never below its minimum."""
    share = int(height * PROBE_SHARE[compact])
    return max(dock.minimumSizeHint().height(), min(dock.sizeHint().height(), share))
