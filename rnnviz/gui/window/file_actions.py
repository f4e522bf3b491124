"""File ▸ Open corpus, Save and Load checkpoint, Export and Open metrics, Log to TensorBoard:
the dialogs, then the intent."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QFileDialog

from rnnviz.core.messages import Failure, RunInfo

if TYPE_CHECKING:
    from rnnviz.gui.window.main_window import MainWindow


class FileActions(QObject):
    """Asks for a path and hands it to the controller (or writes the metrics CSV)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window
        window.app_state.failure.connect(self._on_failure)
        # after the panel's own slot (the panels are built first): it sets the main run's names
        window.app_state.run_info_changed.connect(self._on_run_info)

    @Slot()
    def open_corpus(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self._window,
            "Open a text file to train on",
            "",
            "Text files (*.txt *.md);;All files (*)",
        )
        config = self._window.controller.corpus_config(path) if path else None
        if config is None or (
            self._window.app_state.main.step > 0 and not self._window.confirm_reset()
        ):
            return
        self._window.controller.apply_config(config)

    @Slot()
    def save_checkpoint(self) -> None:
        path = self.ask_checkpoint_path()
        if path:
            self._window.controller.save(path)

    def ask_checkpoint_path(self) -> str:
        step = self._window.app_state.main.step
        path, _ = QFileDialog.getSaveFileName(
            self._window,
            "Save checkpoint",
            f"rnnviz-step{step}.safetensors",
            "Checkpoints (*.safetensors)",
        )
        return path

    @Slot()
    def load_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self._window, "Load checkpoint", "", "Checkpoints (*.safetensors);;All files (*)"
        )
        if path:
            self._window.banner_bar.hide_message()  # an old error is no news after a new load
            self._window.controller.load(path)

    @Slot()
    def open_model(self) -> None:
        """File ▸ Open PyTorch model…: the weights, then the spec if none lies beside them."""
        path, _ = QFileDialog.getOpenFileName(
            self._window,
            "Open your PyTorch model (a state_dict saved with safetensors)",
            "",
            "safetensors state_dict (*.safetensors);;All files (*)",
        )
        if not path:
            return
        from rnnviz.core.torch_model import spec_beside  # torch: loaded by the first probe

        spec = spec_beside(path)
        if not Path(spec).is_file():
            spec, _ = QFileDialog.getOpenFileName(
                self._window,
                "Its spec: the vocabulary and which tensor prefix is which part",
                str(Path(path).parent),
                "JSON (*.json);;All files (*)",
            )
            if not spec:
                return
        if self._window.app_state.main.step > 0 and not self._window.confirm_reset():
            return
        self.open_model_file(path, spec)

    def open_model_file(self, path: str, spec: str | None = None) -> None:
        """Show the model of ``path`` (and ``spec``, default: beside it) read-only; a bad
        file is the banner's one line, and the run on screen stays."""
        from rnnviz.core.torch_model import spec_beside

        self._window.banner_bar.hide_message()
        self._window.controller.open_model(path, spec or spec_beside(path))

    @Slot()
    def ask_export_metrics(self) -> None:
        step = self._window.app_state.main.step
        path, _ = QFileDialog.getSaveFileName(
            self._window, "Export metrics", f"rnnviz-metrics-step{step}.csv", "CSV (*.csv)"
        )
        if path:
            self.export_metrics(path)

    def export_metrics(self, path: str | Path) -> None:
        """Every run's metrics, one wide CSV (a ``run`` column; core.history.write_runs_csv)."""
        from rnnviz.core.history import write_runs_csv

        s = self._window.app_state
        runs = [(s.run_name(r), s.histories.metrics(r)) for r in s.run_ids() if s.histories.has(r)]
        try:
            write_runs_csv(path, runs)
        except (OSError, ValueError) as exc:
            self._window.banner_bar.show_message(f"Could not write {path}: {exc}")
            return
        self._window.statusBar().showMessage(f"Metrics written to {path}", 6000)

    @Slot()
    def ask_open_metrics(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self._window, "Open metrics CSV", "", "CSV (*.csv);;All files (*)"
        )
        if path:
            self.open_metrics(path)

    def open_metrics(self, path: str | Path) -> list[int]:
        """A metrics CSV's runs (rnnviz.telemetry's, ``rnnviz train --metrics-out``'s, or
        Export metrics' wide one) drawn read-only beside the live runs; their run ids."""
        from rnnviz.core.history import MetricHistory, read_metrics_csv, read_runs_csv

        name = Path(path).name
        try:
            with open(path, encoding="utf-8") as fh:
                wide = fh.readline().startswith("run,")
            if wide:
                runs = [(f"file: {name} / {label}", cols) for label, cols in read_runs_csv(path)]
            else:
                runs = [(f"file: {name}", read_metrics_csv(path))]
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            self._window.banner_bar.show_message(f"Could not open {path}: {exc}")
            return []
        state = self._window.app_state
        ids = [state.add_opened_run(label, MetricHistory.from_columns(c)) for label, c in runs]
        self._show_opened_params()
        steps = sum(len(c["step"]) for _, c in runs)
        labels = ", ".join(label for label, _ in runs)
        self._window.statusBar().showMessage(
            f"Opened {path}: {steps:,} steps, drawn read-only as {labels}", 8000
        )
        return ids

    def _show_opened_params(self) -> None:
        """The opened runs' parameters get check boxes too (after the main run's)."""
        from rnnviz.core.history import PARAM_PREFIX

        state, panel = self._window.app_state, self._window.panels.gradnorms
        info = state.run_info
        names = list(info.param_names) if info is not None else []
        for run_id in state.opened_runs():
            for column in state.histories.metrics(run_id).columns():
                name = column[len(PARAM_PREFIX) :]
                if column.startswith(PARAM_PREFIX) and name not in names:
                    names.append(name)
        panel.set_param_names(names)

    @Slot(object)
    def _on_run_info(self, _info: RunInfo) -> None:
        if self._window.app_state.opened_runs():
            self._show_opened_params()

    @Slot()
    def toggle_tensorboard(self) -> None:
        """Checked: ask for a folder and log there (the engine writes); unchecked: stop."""
        action = self._window.actions_by_name["act_tensorboard"]
        if not action.isChecked():
            self._window.controller.log_to_tensorboard(None)
            self._window.statusBar().showMessage("TensorBoard logging stopped", 6000)
            return
        path = self._tensorboard_folder()
        if path is None:
            action.setChecked(False)
            return
        self._window.controller.log_to_tensorboard(path)
        self._window.statusBar().showMessage(
            f"Logging to TensorBoard in {path} (view: tensorboard --logdir {path})", 10000
        )

    @Slot(object)
    def _on_failure(self, failure: Failure) -> None:
        from rnnviz.core.tensorboard_log import FAILURE_PREFIX

        action = getattr(self._window, "actions_by_name", {}).get("act_tensorboard")
        if action is not None and action.isChecked() and failure.message.startswith(FAILURE_PREFIX):
            action.setChecked(False)  # the engine stopped logging: so does the next engine
            self._window.controller.log_to_tensorboard(None)

    def _tensorboard_folder(self) -> str | None:
        """A folder the logs can go to, or None (what was wrong is in the banner)."""
        from rnnviz.core.atomic import OutputPathError
        from rnnviz.core.tensorboard_log import check_log_dir, missing_message

        message = missing_message()  # before the dialog: no folder helps then
        if message is None:
            path = QFileDialog.getExistingDirectory(self._window, "Log to TensorBoard in…")
            if not path:
                return None
            try:
                check_log_dir(path)
            except OutputPathError as exc:
                message = f"Not logging to TensorBoard: {exc}"
            else:
                return path
        self._window.banner_bar.show_message(message, "warning")
        self._window.statusBar().showMessage(message, 10000)
        return None
