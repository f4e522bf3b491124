"""The GUI's handle on the engine process, and the "training thread" that reads it.

The engine (``rnnviz.core.session.engine_main``) runs in a child process started with the
``spawn`` method, so it imports torch but never Qt, and a crash in it never takes the window
down. The GUI talks to it through two multiprocessing queues:

    GUI thread --send(command)--> inbox --> engine process --> outbox --> EventReader (QThread)
                                                                          |  event Signal
    GUI thread <-- EngineClient.received (Signal(object)) <-- _on_reader_event (GUI-thread slot)

:class:`EventReader` is the only reader of the outbox. Its ``run()`` is a short loop (napari's
``status_checker``): wait for an event, emit it, check the stop flag. Parameter snapshots are
a size-1 slot: while the GUI has not taken the last one, a newer snapshot replaces the one
waiting, so a busy GUI drops old snapshots instead of queueing them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from rnnviz.core.config import RunConfig
from rnnviz.core.messages import Command, Failure, LogToTensorBoard, ParamSnapshot, Stop

# How long the reader blocks on the outbox before it looks at its stop flag and at the
# process; small enough that shutdown is quick, large enough to cost nothing when idle.
_POLL_S = 0.05


class EngineDied(Failure):
    """The engine process exited without being asked to (a Failure with ``fatal=True``)."""


def _default_target() -> Callable[..., None]:
    # imported on first start, not at module import: it pulls in torch (cold start <= 2 s)
    from rnnviz.core.session import engine_main

    return engine_main


class EventReader(QThread):
    """The training thread: the only reader of the engine's outbox.

    Runs in its own thread; emits every event through ``event`` (queued to the GUI thread).
    """

    received = Signal(object)

    def __init__(self, outbox: Any, process: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("rnnviz training thread")
        self._outbox = outbox
        self._process = process
        self._stop = threading.Event()
        self._stopping_engine = threading.Event()  # a Stop was sent: exiting is expected
        self._lock = threading.Lock()
        self._snapshot_waiting: ParamSnapshot | None = None
        self._snapshot_in_flight = False

    # ---------------------------------------------------------------- called from the GUI thread

    def stop(self) -> None:
        self._stop.set()

    def expect_exit(self) -> None:
        self._stopping_engine.set()

    def snapshot_taken(self) -> None:
        """The GUI handled the last snapshot: the next one may be emitted."""
        with self._lock:
            self._snapshot_in_flight = False

    # ---------------------------------------------------------------- the thread

    def run(self) -> None:
        while not self._stop.is_set():
            self._emit_waiting_snapshot()
            try:
                item = self._outbox.get(timeout=_POLL_S)
            except queue.Empty:
                if not self._process.is_alive():
                    self._report_exit()
                    return
                continue
            except (EOFError, OSError, ValueError):  # the queue was closed under us
                self._report_exit()
                return
            if isinstance(item, ParamSnapshot):
                with self._lock:
                    self._snapshot_waiting = item  # latest wins
                continue
            if isinstance(item, Failure) and item.fatal:
                self._stopping_engine.set()  # it said why it ends: no "died" on top of that
            self.received.emit(item)
        self._drain()

    def _drain(self) -> None:
        """After stop: hand over what the engine sent before it exited (a Saved, say)."""
        while True:
            try:
                item = self._outbox.get_nowait()
            except (queue.Empty, EOFError, OSError, ValueError):
                break
            if not isinstance(item, ParamSnapshot):
                self.received.emit(item)

    def _emit_waiting_snapshot(self) -> None:
        with self._lock:
            if self._snapshot_in_flight or self._snapshot_waiting is None:
                return
            snapshot, self._snapshot_waiting = self._snapshot_waiting, None
            self._snapshot_in_flight = True
        self.received.emit(snapshot)

    def _report_exit(self) -> None:
        if self._stopping_engine.is_set() or self._stop.is_set():
            return
        code = self._process.exitcode
        self.received.emit(
            EngineDied(
                message=f"The training engine stopped unexpectedly (exit code {code}). "
                "Press Reset (Ctrl+R) to start it again.",
                detail=f"exit code {code}",
                fatal=True,
            )
        )


class EngineClient(QObject):
    """Starts, commands and stops the engine process. Lives in (and is used from) the GUI thread.

    ``event`` carries every engine event (``rnnviz.core.messages``) in the GUI thread.
    """

    received = Signal(object)
    started = Signal()

    def __init__(
        self,
        parent: QObject | None = None,
        target: Callable[..., None] | None = None,
    ) -> None:
        super().__init__(parent)
        self._target = target
        self._ctx = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._inbox: Any = None
        self._outbox: Any = None
        self._reader: EventReader | None = None
        self._dead = False
        # File > Log to TensorBoard: kept here so that every engine started logs there too
        self.tensorboard_dir: str | None = None

    # ---------------------------------------------------------------- state

    def is_running(self) -> bool:
        return self._process is not None and self._process.is_alive() and not self._dead

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def process(self) -> Any:
        return self._process

    @property
    def reader(self) -> EventReader | None:
        return self._reader

    # ---------------------------------------------------------------- lifecycle

    def start(self, config: RunConfig) -> None:
        """Spawn the engine process on ``config``, and the reader thread (after a previous
        engine is gone)."""
        if self._process is not None:
            self.shutdown()
        target = self._target or _default_target()
        self._inbox = self._ctx.Queue()
        self._outbox = self._ctx.Queue()
        if self.tensorboard_dir is not None:  # before any command: from the first step on
            self._inbox.put(LogToTensorBoard(self.tensorboard_dir))
        self._process = self._ctx.Process(
            target=target,
            args=(self._inbox, self._outbox, config),
            name="rnnviz-engine",
            daemon=True,
        )
        self._process.start()
        self._dead = False
        self._reader = EventReader(self._outbox, self._process)
        self._reader.received.connect(self._on_reader_event)
        self._reader.start()
        self.started.emit()

    def restart(self, config: RunConfig) -> None:
        """Start a fresh engine from ``config``."""
        self.shutdown()
        self.start(config)

    def send(self, command: Command) -> bool:
        """Queue a command for the engine; False if no engine runs (nothing is sent)."""
        if self._inbox is None or not self.is_running():
            return False
        try:
            self._inbox.put(command)
        except (ValueError, OSError):  # queue closed
            return False
        return True

    def log_to_tensorboard(self, path: str | None) -> bool:
        """Log every run to TensorBoard under ``path`` (None: stop), in this engine and in
        every engine started later; False if no engine runs now (it is sent at the start)."""
        self.tensorboard_dir = path
        return self.send(LogToTensorBoard(path))

    def shutdown(self, timeout: float = 3.0) -> None:
        """Stop the engine and the reader; returns when both are gone (at most ~timeout + 1 s).

        Commands already queued (a Save, say) are served before Stop, and the engine writes
        checkpoints atomically, so joining here never cuts a checkpoint write short. The
        reader keeps draining the outbox while we join: a child blocked on a full pipe could
        not exit otherwise.
        """
        process, reader = self._process, self._reader
        if process is None:
            return
        if reader is not None:
            reader.expect_exit()
        if process.is_alive():
            with contextlib.suppress(ValueError, OSError):
                self._inbox.put(Stop())
            process.join(timeout)
            if process.is_alive():
                process.terminate()
                process.join(1.0)
            if process.is_alive():  # pragma: no cover - terminate ignored
                process.kill()
                process.join(1.0)
        if reader is not None:
            reader.stop()
            reader.wait()  # never destroy a running QThread
            with contextlib.suppress(RuntimeError, TypeError):
                reader.received.disconnect(self._on_reader_event)
            reader.deleteLater()
        for q in (self._inbox, self._outbox):
            if q is not None:
                # the queues' feeder threads must not block interpreter exit on a dead peer
                q.cancel_join_thread()
                q.close()
        with contextlib.suppress(ValueError):
            process.close()
        self._process = self._reader = self._inbox = self._outbox = None

    # ---------------------------------------------------------------- GUI thread

    @Slot(object)
    def _on_reader_event(self, item: object) -> None:
        reader = self._reader
        if isinstance(item, Failure) and item.fatal:
            self._dead = True  # the engine ends after a fatal failure: restart to go on
        try:
            self.received.emit(item)
        except Exception:  # pragma: no cover - a slot raised: report, keep the engine alive
            traceback.print_exc()
        if isinstance(item, ParamSnapshot) and reader is not None:
            # only now may the next snapshot come: a GUI slower than the engine drops them
            reader.snapshot_taken()
