"""A plot's context-menu "Export...", made safe: every panel's pyqtgraph views route it
through :func:`guard_exports`, so a failing exporter is reported (a message box over the
dialog, and the panel's ``export_failed`` signal, which the window shows in its banner)
instead of printing a traceback in the terminal and writing nothing. GUI thread only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pyqtgraph as pg
from pyqtgraph.exporters.SVGExporter import SVGExporter
from pyqtgraph.GraphicsScene.exportDialog import ExportDialog
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

# the module, not the class pyqtgraph.exporters exports under the same name
_svg_module: Any = importlib.import_module("pyqtgraph.exporters.SVGExporter")


def guard_exports(view: pg.GraphicsView, report: Callable[[str], None]) -> None:
    """Route ``view``'s context-menu "Export..." through a dialog whose exports never raise.

    pyqtgraph runs an exporter inside a Qt slot: an error there printed a traceback in the
    terminal and wrote nothing, with no word in the window. Its SVG exporter failed on every
    plot (see svg_closed_paths); any failure left is shown in a message box over the dialog and
    passed to ``report`` (the panel's ``export_failed`` signal).
    """
    scene = view.scene()
    action = scene.contextMenu[0]
    action.triggered.disconnect()  # pyqtgraph's own dialog
    action.triggered.connect(lambda *_: _show_export_dialog(view, report))


def _show_export_dialog(view: pg.GraphicsView, report: Callable[[str], None]) -> None:
    scene = view.scene()
    dialog = scene.exportDialog
    if not isinstance(dialog, GuardedExportDialog):  # made on first use: it builds a window
        dialog = scene.exportDialog = GuardedExportDialog(scene, report)
        # owned by the view: pyqtgraph's own outlived the plot it drew on (a crash at exit)
        dialog.setParent(view, Qt.WindowType.Window)
    dialog.show(scene.contextMenuItem)


class GuardedExportDialog(ExportDialog):  # type: ignore[misc]  # pyqtgraph has no types
    """pyqtgraph's export dialog, with its exporter's ``export`` wrapped (see guard_exports)."""

    def __init__(self, scene: Any, report: Callable[[str], None]) -> None:
        super().__init__(scene)
        self._report = report
        self.error_box: QMessageBox | None = None

    def exportClicked(self) -> None:  # noqa: N802 - pyqtgraph's name
        self._guard_current()
        super().exportClicked()

    def copyClicked(self) -> None:  # noqa: N802 - pyqtgraph's name
        self._guard_current()
        super().copyClicked()

    def _guard_current(self) -> None:
        exporter = self.currentExporter
        if exporter is None or getattr(exporter, "_rnnviz_guarded", False):
            return
        original = exporter.export
        svg = isinstance(exporter, SVGExporter)

        # the file dialog calls exporter.export(fileName=...) later: the instance's own wins
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                if svg:
                    with svg_closed_paths():
                        return original(*args, **kwargs)
                return original(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - any exporter error goes to the user
                self.fail(f"{getattr(exporter, 'Name', 'Export')} failed: {exc}")
                return None

        exporter.export = guarded
        exporter._rnnviz_guarded = True

    def fail(self, message: str) -> None:
        """Say what went wrong, over the dialog and to the panel."""
        box = self.error_box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Export failed")
        box.setText(message)
        box.open()  # not exec(): the export came from a slot, the window keeps running
        self._report(message)


@contextmanager
def svg_closed_paths() -> Iterator[None]:
    """pyqtgraph's SVG exporter, able to read closed paths while the block runs.

    Qt 6 ends a closed path's ``d`` with ``Z``, which pyqtgraph 0.14's ``correctCoordinates``
    cannot parse (pyqtgraph issue 3495): every plot's SVG export raised ValueError. Around its
    call the ``Z`` is taken off each path and put back after: the path is unchanged. Scoped to
    the export, so nothing else sees a patched pyqtgraph.
    """
    original = _svg_module.correctCoordinates

    def correct(node: Any, defs: Any, item: Any, options: Any) -> Any:
        closed = []
        for path in node.getElementsByTagName("path"):
            tokens = path.getAttribute("d").split()
            kept = [t for t in tokens if t.upper() != "Z"]
            if len(kept) != len(tokens):
                path.setAttribute("d", " ".join(kept))
                closed.append(path)
        result = original(node, defs, item, options)
        for path in closed:
            path.setAttribute("d", path.getAttribute("d").rstrip() + " Z")
        return result

    _svg_module.correctCoordinates = correct
    try:
        yield
    finally:
        _svg_module.correctCoordinates = original
