"""The window's promises (issue 12, the suite): it starts and stops cleanly again and again,
closes cleanly at any moment of training, lets a save in flight finish, survives its engine
being killed, and recovers the run after the whole app was killed.

Figure lines (``pytest -s``)::

    window churn: cycles=15 leaked_threads=0 qt_warnings=0 stop_latency_p95_ms=… …
    close while training: runs=5 clean_exits=5
    close with a save in flight at hidden 4096: saves=2 saved=all                (slow)
    kill the engine: engine_killed=1 window_alive=True resumed_step=3
    SIGKILL the app: recovered=True steps_lost=… interval_steps=…

The long versions (churn 200 cycles, 50 closes, the hidden-4096 saves)::

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest \\
        tests/reliability/test_window_reliability.py -m slow -s -p no:cacheprovider

Closing and killing the app run a small driver script (written here) in a subprocess with the
venv's Python: ``python -m rnnviz`` cannot be told to close itself. The other tests drive a
window in this process, offscreen, with its settings in a temporary folder.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import psutil  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QObject, QThread, QtMsgType, Slot  # noqa: E402

from rnnviz.core.config import CorpusConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from rnnviz.core.messages import (  # noqa: E402
    MetricsBatch,
    Pause,
    RunInfo,
    Start,
    StateChanged,
)

OFFSCREEN_NOISE = r"This plugin does not support propagateSizeHints\(\)"
pytestmark = pytest.mark.qt_log_ignore(OFFSCREEN_NOISE)

ROOT = Path(__file__).resolve().parents[2]
# small enough that the engine trains a step in milliseconds (as tests/gui's tiny config)
TINY = RunConfig(
    corpus=CorpusConfig(source="synthetic:repeat", synthetic_length=2000),
    model=ModelConfig(kind="fast", hidden_size=16),
    train=TrainConfig(
        batch_size=16, num_steps=8, windows_per_epoch=64, val_windows=16, val_every=10
    ),
)
ENGINE_WAIT_MS = 60_000  # a spawned engine imports torch before it answers
STOP_LATENCY_LIMIT_MS = 200.0
CHURN_CYCLES, CHURN_CYCLES_SLOW = 15, 200
RESTART_EVERY = 5  # every fifth churn cycle stops the engine while it trains and starts anew
CLOSE_RUNS, CLOSE_RUNS_SLOW = 5, 50
DRIVER_TIMEOUT_S = 120


class EventLog(QObject):
    """Every engine event, collected by a bound slot in the GUI thread (as the window does)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[object] = []

    @Slot(object)
    def on_event(self, event: object) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def last_state(self) -> str | None:
        states = [e for e in self.of(StateChanged) if e.run_id == 0]
        return states[-1].state if states else None


def _engine_processes() -> list[Any]:
    return [p for p in multiprocessing.active_children() if p.is_alive()]


@pytest.fixture
def started_qthreads(monkeypatch: pytest.MonkeyPatch) -> Iterator[weakref.WeakKeyDictionary]:
    """Every QThread started during the test, and where (a running one left is a leak)."""
    started: weakref.WeakKeyDictionary[QThread, str] = weakref.WeakKeyDictionary()
    base_start = QThread.start

    def start_and_remember(self: QThread, *args: Any, **kwargs: Any) -> None:
        started[self] = "".join(traceback.format_stack(limit=6)[:-1])
        base_start(self, *args, **kwargs)

    monkeypatch.setattr(QThread, "start", start_and_remember)
    yield started


def _running(threads: weakref.WeakKeyDictionary) -> list[str]:
    running = []
    for thread, where in list(threads.items()):
        try:
            if thread.isRunning():
                running.append(where)
        except RuntimeError:  # the C++ object is gone: not running
            continue
    return running


@pytest.fixture
def make_window(qtbot: Any, tmp_path: Path, started_qthreads: Any) -> Iterator[Callable[..., Any]]:
    """``make_window(config=TINY, settings_file=..., start=True)``: a shown MainWindow that keeps
    its settings (and its autosave) in ``tmp_path``, with an ``event_log``; started, it has
    shown its first probe. Every window is closed at teardown, and no engine or QThread may be
    left running."""
    from rnnviz.gui import plotting
    from rnnviz.gui.state.settings import SettingsStore
    from rnnviz.gui.window.main_window import MainWindow

    plotting.configure_pyqtgraph()
    windows = []

    def make(
        config: RunConfig | None = TINY,
        settings_file: Path | None = None,
        start: bool = True,
        wait_ms: int = ENGINE_WAIT_MS,
    ) -> Any:
        path = settings_file or tmp_path / "settings.json"
        window = MainWindow(config, settings=SettingsStore(path))
        window.close_guard.ask = False  # closing asks nothing in a test
        window.event_log = EventLog()
        window.engine.received.connect(window.event_log.on_event)
        qtbot.addWidget(window)
        windows.append(window)
        window.show()
        qtbot.waitExposed(window)
        if start:
            window.start_engine()
            qtbot.waitUntil(
                lambda: window.probe_result is not None or window.app_state.main.state == "stopped",
                timeout=wait_ms,
            )
            assert window.app_state.main.state != "stopped", window.banner_text()
        return window

    yield make
    for window in windows:
        window.close()
    left = _engine_processes()
    for process in left:
        process.kill()
        process.join(2.0)
    running = _running(started_qthreads)
    assert not left, f"engine processes left: {left}"
    assert not running, "QThreads left running, started at:\n" + "\n".join(running)


def wait_state(qtbot: Any, window: Any, *states: str) -> None:
    qtbot.waitUntil(lambda: window.event_log.last_state() in states, timeout=ENGINE_WAIT_MS)


def p95(values: list[float]) -> float:
    return (
        statistics.quantiles(values, n=20, method="inclusive")[-1]
        if len(values) > 1
        else (values[0] if values else 0.0)
    )


# ---------------------------------------------------------------------------- start/stop churn


def _qt_warnings(qtlog: Any) -> list[str]:
    bad = {QtMsgType.QtWarningMsg, QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg}
    return [
        r.message for r in qtlog.records if r.type in bad and "propagateSizeHints" not in r.message
    ]


def _churn(window: Any, qtbot: Any, cycles: int) -> tuple[list[float], list[float]]:
    """Play/Pause ``cycles`` times; every RESTART_EVERY-th cycle stops the engine while it
    trains (the window's own shutdown path) and starts a fresh one. Returns the stop latencies
    and the pause latencies, in ms."""
    log, controller = window.event_log, window.controller
    stops: list[float] = []
    pauses: list[float] = []
    for cycle in range(1, cycles + 1):
        batches = len(log.of(MetricsBatch))
        controller.play()
        wait_state(qtbot, window, "training")
        qtbot.waitUntil(lambda b=batches: len(log.of(MetricsBatch)) > b, timeout=ENGINE_WAIT_MS)
        if cycle % RESTART_EVERY == 0:
            reader = window.engine.reader
            started = time.perf_counter()
            controller.shutdown()  # Pause, Stop, join: what closing the window does
            stops.append((time.perf_counter() - started) * 1000)
            assert not window.engine.is_running() and reader.isFinished()
            infos = len(log.of(RunInfo))
            controller.reset()  # no engine: a fresh one
            qtbot.waitUntil(lambda i=infos: len(log.of(RunInfo)) > i, timeout=ENGINE_WAIT_MS)
            wait_state(qtbot, window, "idle", "paused")
            continue
        started = time.perf_counter()
        states = len(log.of(StateChanged))
        controller.pause()
        qtbot.waitUntil(
            lambda s=states: any(e.state == "paused" for e in log.of(StateChanged)[s:]),
            timeout=ENGINE_WAIT_MS,
        )
        pauses.append((time.perf_counter() - started) * 1000)
    return stops, pauses


def _run_churn(make_window: Any, qtbot: Any, qtlog: Any, cycles: int) -> None:
    threads_before = {t.ident for t in threading.enumerate()}
    window = make_window()
    stops, pauses = _churn(window, qtbot, cycles)
    # the engine client alone, as the window uses it: start, train, stop
    from rnnviz.gui.state.engine import EngineClient

    log = EventLog()
    client = EngineClient()
    client.received.connect(log.on_event)
    for _ in range(max(1, cycles // RESTART_EVERY)):
        infos = len(log.of(RunInfo))
        client.start(TINY)
        qtbot.waitUntil(lambda i=infos: len(log.of(RunInfo)) > i, timeout=ENGINE_WAIT_MS)
        batches = len(log.of(MetricsBatch))
        assert client.send(Start())
        qtbot.waitUntil(lambda b=batches: len(log.of(MetricsBatch)) > b, timeout=ENGINE_WAIT_MS)
        reader, pid = client.reader, client.pid
        started = time.perf_counter()
        client.send(Pause())
        client.shutdown()
        stops.append((time.perf_counter() - started) * 1000)
        assert reader is not None and reader.isFinished()
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=ENGINE_WAIT_MS)
    # Python threads (the queues' feeders, the reader, the probe thread) end shortly after
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        # (a QThread that ran Python shows up as a _DummyThread for good: QThreads are
        # checked by the make_window fixture instead)
        leaked = [
            t
            for t in threading.enumerate()
            if t.ident not in threads_before and not isinstance(t, threading._DummyThread)
        ]
        if not leaked:
            break
        qtbot.wait(50)
    leaked += [f"engine {p.pid}" for p in _engine_processes()]
    warnings = _qt_warnings(qtlog)
    stop_p95, pause_p95 = p95(stops), p95(pauses)
    print(
        f"\nwindow churn: cycles={cycles} leaked_threads={len(leaked)} "
        f"qt_warnings={len(warnings)} stop_latency_p95_ms={stop_p95:.0f} "
        f"(stops={len(stops)}, max {max(stops):.0f}) pause_latency_p95_ms={pause_p95:.0f}"
    )
    assert not leaked, leaked
    assert not warnings, warnings
    assert stop_p95 < STOP_LATENCY_LIMIT_MS and pause_p95 < STOP_LATENCY_LIMIT_MS


def test_start_stop_churn(make_window: Any, qtbot: Any, qtlog: Any) -> None:
    _run_churn(make_window, qtbot, qtlog, CHURN_CYCLES)


@pytest.mark.slow
def test_start_stop_churn_long(make_window: Any, qtbot: Any, qtlog: Any) -> None:
    _run_churn(make_window, qtbot, qtlog, CHURN_CYCLES_SLOW)


# ---------------------------------------------------------------------------- the driver

DRIVER = textwrap.dedent(
    '''
    """rnnviz's window in a process of its own, told what to do by the test (argv[1]): "close"
    trains and closes the window after argv[3] ms; "train" trains and autosaves (every
    RNNVIZ_AUTOSAVE_S) until it is killed. Its lines say the engine's pid, each step it sees and
    each autosave."""
    import json
    import os
    import sys


    def say(*words):
        print(*words, flush=True)


    def main():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication

        app = QApplication(["rnnviz-driver"])
        from rnnviz.core.config import RunConfig
        from rnnviz.core.messages import RunInfo
        from rnnviz.gui import plotting
        from rnnviz.gui.window.main_window import MainWindow

        plotting.configure_pyqtgraph()
        mode, config = sys.argv[1], RunConfig.from_json(json.loads(sys.argv[2]))
        delay_ms = int(sys.argv[3]) if len(sys.argv) > 3 else 0
        if mode == "close":
            window = MainWindow(config, persist=False)
        else:  # the settings and the autosave under $XDG_CONFIG_HOME/rnnviz
            window = MainWindow(config)
        window.show()
        started = []
        last = {"step": -1, "autosaved": None}

        def close():
            say("closing at step", window.app_state.main.step, window.app_state.main.state)
            window.close()
            app.quit()

        def on_event(event):
            if isinstance(event, RunInfo) and not started:
                started.append(True)
                say("engine", window.engine.pid)
                window.controller.play()
                if mode == "close":
                    QTimer.singleShot(delay_ms, close)

        def report():
            c, step = window.controller, window.app_state.main.step
            if c.autosaved_step != last["autosaved"]:
                last["autosaved"] = c.autosaved_step
                say("autosaved", c.autosaved_step)
            if step != last["step"]:
                last["step"] = step
                say("step", step)

        window.engine.received.connect(on_event)
        ticker = QTimer()
        ticker.timeout.connect(report)
        ticker.start(20)
        QTimer.singleShot(0, window.start_engine)
        QTimer.singleShot(90_000, lambda: (say("driver timeout"), os._exit(3)))
        code = app.exec()
        say("exit", code)
        return code


    if __name__ == "__main__":  # the engine is spawned: its process imports this file too
        sys.exit(main())
    '''
)


def _driver(tmp_path: Path) -> Path:
    path = tmp_path / "rnnviz_driver.py"
    path.write_text(DRIVER, encoding="utf-8")
    return path


def _driver_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def _gone(pid: int, timeout: float = 10.0) -> bool:
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False
    return True


def _engine_pid(output: str) -> int | None:
    for line in output.splitlines():
        if line.startswith("engine "):
            return int(line.split()[1])
    return None


# ---------------------------------------------------------------------------- close while training


def _close_runs(tmp_path: Path, runs: int) -> None:
    driver, env = _driver(tmp_path), _driver_env(tmp_path)
    rng = random.Random(12)
    config = json.dumps(TINY.to_json())
    clean, problems = 0, []
    for run in range(runs):
        delay = rng.randint(0, 1500)  # after Play: before the first step, or well into training
        done = subprocess.run(
            [sys.executable, str(driver), "close", config, str(delay)],
            env=env,
            capture_output=True,
            text=True,
            timeout=DRIVER_TIMEOUT_S,
            check=False,
        )
        output = done.stdout + done.stderr
        pid = _engine_pid(done.stdout)
        left = pid is not None and not _gone(pid)
        if pid is not None and left:
            os.kill(pid, signal.SIGKILL)
        ok = done.returncode == 0 and "Traceback" not in output and pid is not None and not left
        clean += ok
        if not ok:
            problems.append(
                f"run {run} (delay {delay} ms): exit {done.returncode}\n{output[-2000:]}"
            )
    print(f"\nclose while training: runs={runs} clean_exits={clean}")
    assert clean == runs, "\n\n".join(problems)


def test_close_at_a_random_moment_while_training(tmp_path: Path) -> None:
    _close_runs(tmp_path, CLOSE_RUNS)


@pytest.mark.slow
def test_close_at_a_random_moment_while_training_long(tmp_path: Path) -> None:
    _close_runs(tmp_path, CLOSE_RUNS_SLOW)


# ---------------------------------------------------------------------------- a save in flight


@pytest.mark.slow
def test_close_with_a_save_in_flight_at_hidden_4096(make_window: Any, qtbot: Any, tmp_path: Path):
    """The first step of a hidden-4096 model takes seconds: closing right after Save waits for
    the save (the window stays responsive meanwhile), and the checkpoint is whole."""
    from rnnviz.core.checkpoint import load_checkpoint

    config = TINY.replace(model={"hidden_size": 4096}, train={"batch_size": 4, "num_steps": 8})
    saves = {
        "step then save": tmp_path / "a.safetensors",
        "train then save": tmp_path / "b.safetensors",
    }
    saved = {}
    for i, (how, path) in enumerate(saves.items()):
        window = make_window(config, settings_file=tmp_path / f"s{i}.json", wait_ms=600_000)
        if how == "step then save":
            window.controller.step()  # seconds of work queued before the save
        else:
            window.controller.play()
            wait_state(qtbot, window, "training")
        assert window.controller.save(str(path))
        window.close()
        qtbot.waitUntil(lambda w=window: not w.isVisible(), timeout=600_000)
        assert not window.controller.pending_saves
        saved[how] = load_checkpoint(path).step if path.is_file() else None
    ok = all(step is not None for step in saved.values())
    print(
        f"\nclose with a save in flight at hidden 4096: saves={len(saves)} "
        f"saved={'all' if ok else sum(s is not None for s in saved.values())} (steps {saved})"
    )
    assert ok and saved["step then save"] == 1, saved


# ---------------------------------------------------------------------------- kill the engine


def test_the_window_survives_a_killed_engine_and_resumes_from_the_autosave(
    make_window: Any, qtbot: Any
) -> None:
    from PySide6.QtCore import Qt

    window = make_window()
    window.controller.step(3)
    qtbot.waitUntil(lambda: window.app_state.main.step == 3, timeout=ENGINE_WAIT_MS)
    window.controller.autosave()
    qtbot.waitUntil(lambda: window.controller.autosaved_step == 3, timeout=ENGINE_WAIT_MS)
    window.controller.step(2)  # trained past the autosave: the kill loses these two
    qtbot.waitUntil(lambda: window.app_state.main.step == 5, timeout=ENGINE_WAIT_MS)
    pid = window.engine.pid
    window.engine.process.kill()
    button = window.banner_bar.restart_button
    qtbot.waitUntil(lambda: button.isVisible(), timeout=ENGINE_WAIT_MS)
    assert _gone(pid)
    assert "Restart from step 3" in button.text(), button.text()
    qtbot.wait(100)  # the event loop runs on: the window is alive, not only drawn
    alive = window.isVisible() and not window.engine.is_running()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: window.engine.is_running() and window.app_state.main.step == 3,
        timeout=ENGINE_WAIT_MS,
    )
    wait_state(qtbot, window, "paused", "idle")
    resumed = window.app_state.main.step
    window.controller.step()  # and it trains on from there
    qtbot.waitUntil(lambda: window.app_state.main.step == 4, timeout=ENGINE_WAIT_MS)
    print(f"\nkill the engine: engine_killed=1 window_alive={alive} resumed_step={resumed}")
    assert alive and resumed == 3


# ---------------------------------------------------------------------------- SIGKILL the app


def test_after_the_app_is_killed_the_next_start_recovers_the_autosave(
    make_window: Any, qtbot: Any, tmp_path: Path
) -> None:
    from PySide6.QtCore import Qt

    driver = _driver(tmp_path)
    env = _driver_env(tmp_path, RNNVIZ_AUTOSAVE_S="1")
    config = json.dumps(TINY.to_json())
    process = subprocess.Popen(
        [sys.executable, str(driver), "train", config],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()

    def autosaves() -> list[int]:
        words = [line.split() for line in list(lines)]
        return [int(w[1]) for w in words if w[:1] == ["autosaved"] and w[1] != "None"]

    try:
        deadline = time.monotonic() + DRIVER_TIMEOUT_S
        # three autosaves give the interval in steps; then a kill between two autosaves
        while len(autosaves()) < 3 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        time.sleep(random.Random(5).uniform(0.1, 0.9))
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(10)
    output = "".join(lines)
    saved = autosaves()
    words = [line.split() for line in lines]
    engine_pid = next((int(w[1]) for w in words if w[:1] == ["engine"]), None)
    last_step = max((int(w[1]) for w in words if w[:1] == ["step"]), default=0)
    assert len(saved) >= 3, output[-3000:]
    assert engine_pid is not None and _gone(engine_pid, 15), "the orphaned engine did not exit"
    interval_steps = max(b - a for a, b in zip(saved, saved[1:], strict=False))
    settings = tmp_path / "xdg" / "rnnviz" / "settings.json"
    assert (settings.parent / "recovery.safetensors").is_file()

    second = make_window(settings_file=settings, start=False)
    assert "did not close cleanly" in second.banner_text()
    qtbot.mouseClick(second.banner_bar.recover_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: second.app_state.main.step >= saved[-1], timeout=ENGINE_WAIT_MS)
    wait_state(qtbot, second, "paused", "idle")
    recovered_step = second.app_state.main.step
    # the driver printed the step it had reached; the engine may have been a batch further
    steps_lost = max(0, last_step - recovered_step)
    recovered = recovered_step >= saved[-1] and second.banner_text() == ""
    print(
        f"\nSIGKILL the app: recovered={recovered} steps_lost={steps_lost} "
        f"interval_steps={interval_steps} (autosave every 1 s; recovered step {recovered_step},"
        f" last step seen {last_step})"
    )
    assert recovered and steps_lost <= interval_steps
