"""GUI test setup: offscreen Qt, row-major images, per-test QSettings, and no QThread or
engine process left running.

The platform is set at import, before pytest-qt creates the QApplication. Shared fixtures for
tests that drive the real engine: ``tiny_config``, ``event_log``, ``make_window``.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
import weakref

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QObject, QSettings, QThread, Slot  # noqa: E402

from rnnviz.core.config import CorpusConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from rnnviz.core.messages import MetricsBatch, StateChanged  # noqa: E402
from rnnviz.gui import plotting  # noqa: E402

plotting.configure_pyqtgraph()  # as the app

# The offscreen platform warns on every top-level show(); qt_log_level_fail would fail on it.
OFFSCREEN_NOISE = r"This plugin does not support propagateSizeHints\(\)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.qt_log_ignore(OFFSCREEN_NOISE))


@pytest.fixture(autouse=True)
def _fail_on_running_qthreads(monkeypatch, qtbot):
    """Fail a test that leaves a QThread it started still running (napari's fixture).

    Destroying a running QThread aborts the interpreter, so a leak here would crash a later
    test far from its cause; the failure names where the thread was started instead.
    """
    started: weakref.WeakKeyDictionary[QThread, str] = weakref.WeakKeyDictionary()
    base_start = QThread.start

    def start_and_remember(self, *args, **kwargs):
        started[self] = "".join(traceback.format_stack(limit=6)[:-1])
        return base_start(self, *args, **kwargs)

    monkeypatch.setattr(QThread, "start", start_and_remember)
    yield
    running = []
    for thread, where in list(started.items()):
        try:
            if thread.isRunning():
                running.append((thread, where))
        except RuntimeError:  # the C++ object is already gone: not running
            continue
    for thread, _ in running:
        try:
            thread.quit()
            qtbot.waitUntil(thread.isFinished, timeout=2000)
        except (RuntimeError, AssertionError):
            pass
    if running:
        details = "\n".join(where for _, where in running)
        pytest.fail(f"{len(running)} QThread(s) left running by the test, started at:\n{details}")


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path):
    """Every test reads and writes its own QSettings files, never the user's."""
    folder = str(tmp_path / "qsettings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.IniFormat, scope, folder)
    yield


@pytest.fixture(autouse=True)
def _fail_on_engine_processes_left():
    """Fail a test that leaves an engine (any multiprocessing child) alive; then end it."""
    yield
    alive = [p for p in multiprocessing.active_children() if p.is_alive()]
    for process in alive:
        process.terminate()
        process.join(2.0)
    if alive:
        names = ", ".join(f"{p.name} (pid {p.pid})" for p in alive)
        pytest.fail(f"{len(alive)} engine process(es) left running by the test: {names}")


# ---------------------------------------------------------------------------- shared fixtures

# Small enough that the engine trains a step in milliseconds: tests stay fast.
TINY_CONFIG = RunConfig(
    corpus=CorpusConfig(source="synthetic:repeat", synthetic_length=2000),
    model=ModelConfig(kind="fast", hidden_size=16),
    train=TrainConfig(
        batch_size=16, num_steps=8, windows_per_epoch=64, val_windows=16, val_every=10
    ),
)
ENGINE_WAIT_MS = 30_000  # a spawned engine imports torch before it answers


@pytest.fixture
def tiny_config() -> RunConfig:
    return TINY_CONFIG


class EventLog(QObject):
    """Every engine event, collected by a bound slot in the GUI thread (as the window does)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[object] = []

    @Slot(object)
    def on_event(self, event: object) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def records(self, run_id: int = 0) -> list:
        return [r for b in self.of(MetricsBatch) if b.run_id == run_id for r in b.records]

    def last_state(self) -> str | None:
        states = [e for e in self.of(StateChanged) if e.run_id == 0]
        return states[-1].state if states else None

    def clear(self) -> None:
        self.events.clear()


@pytest.fixture
def event_log() -> EventLog:
    return EventLog()


@pytest.fixture
def make_window(qtbot, tmp_path):
    """``make_window(config=TINY, settings_file=..., start=True)``: a shown MainWindow with an
    ``event_log`` of its engine's events; started, it has shown its first probe. Every window
    made is closed (engine stopped) at teardown, even when the test failed."""
    from rnnviz.gui.state.settings import SettingsStore
    from rnnviz.gui.window.main_window import MainWindow

    windows = []

    def make(config: RunConfig | None = TINY_CONFIG, settings_file=None, start: bool = True):
        path = settings_file or tmp_path / "window-settings.json"
        window = MainWindow(config, settings=SettingsStore(path))
        window.close_guard.ask = False  # a test closes without the question
        window.event_log = EventLog()
        window.engine.received.connect(window.event_log.on_event)
        qtbot.addWidget(window)
        windows.append(window)
        window.show()
        qtbot.waitExposed(window)
        window.activateWindow()
        if start:
            window.start_engine()
            qtbot.waitUntil(
                lambda: window.probe_result is not None or window.app_state.main.state == "stopped",
                timeout=ENGINE_WAIT_MS,
            )
            assert window.app_state.main.state != "stopped", window.banner_text()
        return window

    yield make
    for window in windows:
        window.close()
