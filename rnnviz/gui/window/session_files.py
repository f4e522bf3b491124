"""File ▸ Save session… / Open session…: the whole view in one file (``core.session_file``).

Saving asks the engine for the main run's checkpoint (it holds the model and the optimizer),
then writes the session on a thread with copies of what the window holds: each run's metric
history, the timeline's snapshots, the probe text, the cursor, the timeline step and the
selected unit. Opening reads and checks the file on a thread, hands the checkpoint to the
engine as a Load, and once that run is built (its RunInfo cleared the panels) puts the
histories, the timeline and the probe back. Nothing on the GUI thread serialises or parses
a file: a session with a full timeline is tens of megabytes.

The main run comes back whole; compare runs come back as curves only (their models are not
in the file), so they are not restored as runs.
"""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtWidgets import QFileDialog

from rnnviz.core.atomic import OutputPathError, check_output_path
from rnnviz.core.history import MetricHistory
from rnnviz.core.messages import RunInfo, Saved
from rnnviz.core.snapshots import SnapshotStore
from rnnviz.gui.state.app_state import MAIN_RUN

if TYPE_CHECKING:
    from rnnviz.core.session_file import SessionData
    from rnnviz.gui.window.main_window import MainWindow

SUFFIX = ".rnnviz"


# how often the GUI thread collects what a session thread has done, while one runs
_POLL_MS = 20


class SessionFiles(QObject):
    written = Signal(str, str)  # (path, error or ""), once the writing thread is done
    read = Signal(str, object, str)  # (path, SessionData or None, error or "")
    restored = Signal(str)  # a session's view is back (tests wait for it)
    failed = Signal(str)  # a session could not be opened (why)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window
        self._tmp = Path(tempfile.mkdtemp(prefix="rnnviz-session-"))
        self._saving: dict[str, str] = {}  # the engine's checkpoint path -> the session path
        self._opening: tuple[str, SessionData] | None = None
        self._threads: list[threading.Thread] = []
        # The threads never touch Qt: they put their outcome here and the GUI thread emits
        # it. A plain Python thread's emit is a cross-thread Qt call, and a suite run hung
        # in a PySide6 disconnect on the GUI thread while a session thread had just emitted
        self._outcomes: queue.SimpleQueue[tuple[Any, tuple[Any, ...]]] = queue.SimpleQueue()
        self._poll = QTimer(self)
        self._poll.setInterval(_POLL_MS)
        self._poll.timeout.connect(self._collect)
        window.app_state.saved.connect(self._on_saved)
        window.app_state.run_info_changed.connect(self._on_run_info)
        window.app_state.failure.connect(self._on_failure)
        self.written.connect(self._on_written)
        self.read.connect(self._on_read)

    # ---------------------------------------------------------------- saving

    @Slot()
    def ask_save(self) -> None:
        step = self._window.app_state.main.step
        path, _ = QFileDialog.getSaveFileName(
            self._window,
            "Save session",
            f"rnnviz-step{step}{SUFFIX}",
            f"rnnviz sessions (*{SUFFIX})",
        )
        if path:
            self.save(path if path.endswith(SUFFIX) else path + SUFFIX)

    def save(self, path: str) -> bool:
        """Ask the engine for the checkpoint; the session is written once it is saved."""
        try:
            check_output_path(path)  # before the engine's work, not after
        except OutputPathError as exc:
            self._warn(f"Session not saved: {exc}")
            return False
        checkpoint = str(self._tmp / f"checkpoint-{len(self._saving)}.safetensors")
        if not self._window.controller.save(checkpoint):
            return False
        self._saving[checkpoint] = path
        self._window.statusBar().showMessage(f"Saving the session to {path}…", 4000)
        return True

    @Slot(object)
    def _on_saved(self, event: Saved) -> None:
        path = self._saving.pop(event.path, None)
        if path is None:
            return
        try:
            checkpoint = Path(event.path).read_bytes()
        except OSError as exc:
            self._warn(f"Session not saved: cannot read the checkpoint ({exc.strerror or exc})")
            return
        finally:
            Path(event.path).unlink(missing_ok=True)
        self._run(self._write, path, checkpoint, *self._copies())

    @Slot(object)
    def _on_failure(self, failure: Any) -> None:
        for checkpoint in [c for c in self._saving if c in failure.message or failure.fatal]:
            self._warn(f"Session not saved: {failure.message}")
            del self._saving[checkpoint]

    def _copies(self) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
        """What the window shows now, as copies the writing thread may read while training
        goes on here (the histories and the store keep changing): the session's fields, and
        each run's label and metric columns."""
        s = self._window.app_state
        runs = [
            (s.run_name(run_id), _copied(s.histories.metrics(run_id)))
            for run_id in s.run_ids()
            if s.histories.has(run_id)
        ]
        arrays, meta = s.snapshots.to_arrays()
        fields = {
            "config": s.config,
            "probe_text": s.probe_text,
            "cursor": s.cursor,
            "view": {"timeline_step": s.viewed_step, "unit": s.unit},
            "snapshots": SnapshotStore.from_arrays(arrays, meta) if len(s.snapshots) else None,
        }
        return fields, runs

    def _write(
        self,
        path: str,
        checkpoint: bytes,
        fields: dict[str, Any],
        runs: list[tuple[str, dict[str, Any]]],
    ) -> None:
        from rnnviz.core.session_file import SessionData, SessionError, save_session

        try:
            histories = tuple((label, MetricHistory.from_columns(cols)) for label, cols in runs)
            save_session(path, SessionData(checkpoint=checkpoint, runs=histories, **fields))
        except (SessionError, OSError, ValueError) as exc:
            self._outcomes.put((self.written, (path, str(exc))))
            return
        self._outcomes.put((self.written, (path, "")))

    @Slot(str, str)
    def _on_written(self, path: str, error: str) -> None:
        if error:
            self._warn(f"Session not saved: {error}")
            return
        self._window.app_state.mark_saved()
        self._window.statusBar().showMessage(f"Session saved to {path}", 8000)

    # ---------------------------------------------------------------- opening

    @Slot()
    def ask_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self._window, "Open session", "", f"rnnviz sessions (*{SUFFIX});;All files (*)"
        )
        if path:
            self.open(path)

    def open(self, path: str) -> None:
        """Read and check ``path`` on a thread; the view follows once the engine has the run."""
        self._window.banner_bar.hide_message()
        self._window.statusBar().showMessage(f"Opening {path}…", 4000)
        self._run(self._read, path)

    def _read(self, path: str) -> None:
        from rnnviz.core.session_file import SessionError, load_session

        try:
            data = load_session(path)
            data.load_checkpoint()  # checked here, off the GUI thread
        except SessionError as exc:
            self._outcomes.put((self.read, (path, None, str(exc))))
            return
        self._outcomes.put((self.read, (path, data, "")))

    @Slot(str, object, str)
    def _on_read(self, path: str, data: SessionData | None, error: str) -> None:
        if data is None:
            self._warn(f"Could not open the session: {error}")
            self.failed.emit(error)
            return
        checkpoint = self._tmp / "opened.safetensors"
        try:
            checkpoint.write_bytes(data.checkpoint)
        except OSError as exc:
            self._warn(f"Could not open the session: {exc.strerror or exc}")
            self.failed.emit(str(exc.strerror or exc))
            return
        self._opening = (path, data)
        self._window.controller.load(str(checkpoint))

    @Slot(object)
    def _on_run_info(self, info: RunInfo) -> None:
        """The engine built the session's run (and the state cleared every panel)."""
        if self._opening is None:
            return
        path, data = self._opening
        self._opening = None
        w, s = self._window, self._window.app_state
        if data.runs:
            s.restore_history(MAIN_RUN, data.runs[0][1])
        view = dict(data.view)
        step = view.get("timeline_step")
        if data.snapshots is not None:
            s.restore_timeline(data.snapshots, step if isinstance(step, int) else None)
        unit = view.get("unit")
        if isinstance(unit, int) and unit >= 0:
            s.set_unit(unit)
        w.set_probe_text(data.probe_text)
        cursor = data.cursor

        others = len(data.runs) - 1
        note = f" ({others} compare run(s) as curves in the file, not restored)" if others else ""

        def put_cursor() -> None:  # once the probe of the text is shown
            w.probe_shown.disconnect(put_cursor)
            w.probe_display.move_cursor(cursor)
            # after the engine's own "loaded <its temp file>", which would say nothing
            w.statusBar().showMessage(f"Opened session {path}{note}", 8000)
            self.restored.emit(path)

        w.probe_shown.connect(put_cursor)
        QTimer.singleShot(0, w.redraw.redraw_all)

    # ---------------------------------------------------------------- the rest

    def _warn(self, text: str) -> None:
        self._window.banner_bar.show_message(text, "warning")

    def _run(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name="rnnviz session", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()
        self._poll.start()

    @Slot()
    def _collect(self) -> None:
        """Emit, on the GUI thread, what the session threads have done."""
        while True:
            try:
                signal, args = self._outcomes.get_nowait()
            except queue.Empty:
                break
            signal.emit(*args)
        if not any(t.is_alive() for t in self._threads) and self._outcomes.empty():
            self._poll.stop()

    def busy(self) -> bool:
        return bool(self._saving) or any(t.is_alive() for t in self._threads)

    def stop(self) -> None:
        """Let a session being written finish (it is atomic either way), then clean up."""
        for thread in self._threads:
            thread.join(timeout=30)
        self._poll.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)


def _copied(history: MetricHistory) -> dict[str, Any]:
    """The history's columns as copies (the writer rebuilds a MetricHistory from them)."""
    return {name: column.copy() for name, column in history.columns().items()}
