"""Figures out of the window: each panel as PNG or SVG (its title bar's right-click menu and
File ▸ Export panel), File ▸ Export all… (every panel's PNG, the metrics of every run as one
wide CSV, the probe shown as JSON), and File ▸ Record… (the window or one panel as a GIF or
an MP4, with a progress bar and Stop in the status bar).

The work is ``gui.figure_export`` and ``gui.recording``; this unit asks for the paths and
reports what came of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QDockWidget, QFileDialog, QMenu, QWidget

from rnnviz.gui import figure_export
from rnnviz.gui.recording import RecordBar, Recorder, RecordError
from rnnviz.gui.window import docks as dock_table

if TYPE_CHECKING:
    from rnnviz.gui.window.main_window import MainWindow


class ExportMenus(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window
        self.recorder = Recorder(self)
        self.record_bar = RecordBar(self.recorder)
        window.statusBar().addPermanentWidget(self.record_bar)
        self.recorder.failed.connect(self._warn)
        self.recorder.finished.connect(
            lambda path: window.statusBar().showMessage(f"Recording written to {path}", 8000)
        )
        self.panel_actions: dict[str, list[QAction]] = {}
        for name, title in dock_table.DOCKS:
            dock = window.docks[name]
            self.panel_actions[name] = figure_export.attach_export_menu(
                dock.titleBarWidget(), dock.widget(), title, self._warn, done=self._exported
            )

    def add_to(self, menu: QMenu, record_window: QAction) -> None:
        """File ▸ Export panel ▸ … before ``record_window``, Record panel ▸ … after it."""
        panels = QMenu("Export panel", menu)
        record = QMenu("Record panel", menu)
        for name, title in dock_table.DOCKS:
            sub = panels.addMenu(title)
            sub.addActions(self.panel_actions[name])
            action = record.addAction(f"{title}…")
            action.triggered.connect(lambda _=False, n=name: self.ask_record(n))
        actions = menu.actions()
        after = actions[actions.index(record_window) + 1]
        menu.insertMenu(record_window, panels)
        menu.insertMenu(after, record)

    # ---------------------------------------------------------------- export all

    @Slot()
    def ask_export_all(self) -> None:
        folder = QFileDialog.getExistingDirectory(self._window, "Export every panel into")
        if folder:
            self.export_all(folder)

    def export_all(self, folder: str | Path) -> list[Path]:
        """Every panel's PNG, metrics.csv of every run, probe.json of the probe shown."""
        from rnnviz.core.history import runs_csv_bytes

        w, s = self._window, self._window.app_state
        runs = [(s.run_name(r), s.histories.metrics(r)) for r in s.run_ids() if s.histories.has(r)]
        extras: dict[str, bytes | str] = {"metrics.csv": runs_csv_bytes(runs)}
        result = w.probe_result
        if result is not None:
            from rnnviz.core.probe_json import probe_json

            extras["probe.json"] = json.dumps(probe_json(result), allow_nan=False)
        panels = {title: w.docks[name].widget() for name, title in dock_table.DOCKS}
        by_title = {title: w.docks[name] for name, title in dock_table.DOCKS}
        on_top = [d for d in w.docks.values() if not d.visibleRegion().isEmpty()]

        def raise_dock(title: str, _widget: QWidget) -> None:
            # a panel behind a tab has the size it had when last shown: raise it first
            dock: QDockWidget = by_title[title]
            if dock.isHidden():
                dock.show()
            dock.raise_()
            QApplication.processEvents()

        try:
            written = figure_export.export_all(folder, panels, extras, before_grab=raise_dock)
        except figure_export.ExportError as exc:
            self._warn(str(exc))
            return []
        finally:
            for dock in on_top:  # the tabs as they were
                dock.raise_()
        w.statusBar().showMessage(f"Exported {len(written)} files into {folder}", 8000)
        return written

    # ---------------------------------------------------------------- recording

    @Slot()
    def ask_record_window(self) -> None:
        self.ask_record(None)

    def ask_record(self, dock_name: str | None) -> None:
        what = "the window" if dock_name is None else dock_table.FULL_TITLES[dock_name]
        path, _ = QFileDialog.getSaveFileName(
            self._window,
            f"Record {what}",
            str(Path.home() / "rnnviz-recording.gif"),
            "Animated GIF (*.gif);;MP4 video (*.mp4)",
        )
        if path:
            self.record(path, dock_name)

    def record(self, path: str, dock_name: str | None = None) -> bool:
        """Start recording the window (or one dock's panel) to ``path``."""
        target: QWidget = (
            self._window if dock_name is None else self._window.docks[dock_name].widget()
        )
        try:
            self.recorder.start(target, path)
        except RecordError as exc:
            self._warn(str(exc))
            return False
        return True

    def stop(self) -> None:
        """The window closes: a recording still running is cancelled (nothing written)."""
        self.recorder.abort()

    # ---------------------------------------------------------------- messages

    def _exported(self, path: Path) -> None:
        self._window.statusBar().showMessage(f"Exported {path}", 6000)

    def _warn(self, text: str) -> None:
        self._window.banner_bar.show_message(text, "warning")
