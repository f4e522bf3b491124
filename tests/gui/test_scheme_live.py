"""The window follows a change of colour scheme live: View ▸ Colours, or the desktop switching.

A window recoloured from light to dark must look as a window built dark: both are grabbed and
compared pixel by pixel, so a colour the recolouring misses shows as a difference.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QApplication

from rnnviz.gui import plotting, theme
from rnnviz.gui.window import scheme

SIZE = (1280, 720)
# pixels that may differ between two windows showing the same thing: the text cursor's blink,
# the status bar's timings (each window's engine started at its own moment)
TOLERATED = 0.004


@pytest.fixture
def schemes():
    """Light again after the test: the application's style, palette and pyqtgraph's options."""
    yield
    theme.use_dark_scheme(None)
    app = QApplication.instance()
    theme.restore_system_look(app)
    plotting.configure_pyqtgraph()


def _pixels(window) -> np.ndarray:
    QApplication.processEvents()
    image = window.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes())
    return data.reshape(height, image.bytesPerLine() // 4, 4)[:, :width, :3].copy()


def _differing(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.mean(np.any(np.abs(a.astype(int) - b.astype(int)) > 24, axis=2)))


def _built(make_window, qtbot, choice: str):
    scheme.use_scheme(choice)
    plotting.configure_pyqtgraph()
    window = make_window()
    window.lay_out_for_size(SIZE)
    qtbot.wait(300)
    assert (window.width(), window.height()) == SIZE  # a shown window went compact
    window.set_probe_text("the time machine")
    qtbot.waitUntil(lambda: window.probe_result is not None and not window.redraw.pending)
    qtbot.wait(200)
    return window


def _plot_colours(window) -> set[str]:
    """Every plot's background: what a half-recoloured window shows first."""
    import pyqtgraph as pg

    return {v.backgroundBrush().color().name() for v in window.findChildren(pg.GraphicsView)}


def test_a_chosen_scheme_recolours_the_open_window_as_if_built_in_it(make_window, qtbot, schemes):
    dark = _built(make_window, qtbot, "dark")
    window = _built(make_window, qtbot, "system")  # offscreen: light
    assert theme.colours() is theme.LIGHT
    light_pixels = _pixels(window)
    assert _plot_colours(window) == {theme.LIGHT.plot_background.lower()}
    assert _differing(light_pixels, _pixels(dark)) > 0.2  # the two schemes are far apart

    window.actions_by_name["act_scheme_dark"].trigger()
    assert window.settings.get(scheme.SCHEME) == "dark"
    assert window.banner_bar.isHidden()  # nothing waits for the next start
    assert _plot_colours(window) == {theme.DARK.plot_background.lower()}
    assert _differing(_pixels(window), _pixels(dark)) < TOLERATED

    window.actions_by_name["act_scheme_light"].trigger()
    assert _differing(_pixels(window), light_pixels) < TOLERATED


def test_the_window_follows_a_simulated_system_scheme_change(
    make_window, qtbot, schemes, monkeypatch
):
    dark = _built(make_window, qtbot, "dark")
    window = _built(make_window, qtbot, "system")
    assert window.scheme.choice == "system"
    light_pixels = _pixels(window)
    app = QApplication.instance()

    # the desktop turns dark: Qt's hint changes and the platform gives a dark palette
    monkeypatch.setattr(theme, "system_is_dark", lambda: True)
    theme.apply_app_palette(app)
    QGuiApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert theme.colours() is theme.DARK
    assert _differing(_pixels(window), _pixels(dark)) < TOLERATED

    # and light again
    monkeypatch.setattr(theme, "system_is_dark", lambda: False)
    theme.restore_system_look(app)
    QGuiApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert _differing(_pixels(window), light_pixels) < TOLERATED

    # a forced choice ignores the desktop
    window.actions_by_name["act_scheme_light"].trigger()
    monkeypatch.setattr(theme, "system_is_dark", lambda: True)
    QGuiApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert _plot_colours(window) == {theme.LIGHT.plot_background.lower()}


def test_each_colour_of_a_scheme_has_one_twin_in_the_other(make_window, qtbot):
    make_window(start=False)  # every shade a panel asks for is handed out
    for old, new in ((theme.LIGHT, theme.DARK), (theme.DARK, theme.LIGHT)):
        twins: dict[str, str] = {}
        for a, b in theme.twin_pairs(old, new):
            assert twins.setdefault(a, b) == b, (old.dark, a)
        back = theme.twin_colours(new, old)
        assert [(a, b, back[b]) for a, b in twins.items() if back[b] != a] == []
