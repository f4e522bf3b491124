"""The GUI half of ``rnnviz bench``: training under a redrawing window, event-loop lag,
keystroke-to-panels latency and memory over a long run. Runs offscreen in this process.

Everything here drives the real MainWindow and the real engine process; nothing is mocked.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QEvent, QEventLoop, QObject, Qt, QTimer, Slot  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from rnnviz.core.config import RunConfig  # noqa: E402
from rnnviz.core.messages import MetricsBatch, Pause, Start, StateChanged  # noqa: E402
from rnnviz.gui import plotting  # noqa: E402

HEARTBEAT_MS = 10
WINDOW_SIZE = (1600, 1000)
PROBE_WINDOW_SIZE = (1920, 1080)  # room for three probe panels side by side


def _app() -> QApplication:
    app = QApplication.instance() or QApplication(["rnnviz-bench"])
    plotting.configure_pyqtgraph()  # as the app: the figures are the app's
    from rnnviz.gui.collector import collect_on_gui_thread

    collect_on_gui_thread()  # as the app
    assert isinstance(app, QApplication)
    return app


def _spin(seconds: float) -> None:
    """Run the Qt event loop for ``seconds`` (timers fire, paints happen)."""
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def _spin_until(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        _spin(0.01)
    return True


def _percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


class _StepCounter(QObject):
    """Counts the steps of run 0 arriving from the engine (GUI thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.step = 0
        self.tokens = 0
        self.state = ""

    @Slot(object)
    def on_event(self, event: object) -> None:
        if isinstance(event, MetricsBatch) and event.run_id == 0 and event.records:
            self.step = event.records[-1].step
        elif isinstance(event, StateChanged) and event.run_id == 0:
            self.state = event.state


class _Heartbeat(QObject):
    """A 10 ms timer; its lateness is the event loop's lag."""

    def __init__(self) -> None:
        super().__init__()
        self.lags_ms: list[float] = []
        self._last = 0.0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(HEARTBEAT_MS)
        self._timer.timeout.connect(self._on_timeout)

    def start(self) -> None:
        self.lags_ms.clear()
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    @Slot()
    def _on_timeout(self) -> None:
        now = time.perf_counter()
        self.lags_ms.append(max(0.0, (now - self._last) * 1000 - HEARTBEAT_MS))
        self._last = now


class _PaintCounter(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.paints = 0

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.Paint:
            self.paints += 1
        return False


def _make_window(config: RunConfig, settings_path: str) -> Any:
    from rnnviz.gui.state.settings import SettingsStore
    from rnnviz.gui.window.main_window import MainWindow

    window = MainWindow(config, settings=SettingsStore(settings_path), persist=False)
    window.resize(*WINDOW_SIZE)
    from rnnviz.gui.app import freeze_after_first_probe

    freeze_after_first_probe(window)  # as the app
    window.show()
    return window


def _tokens_per_step(config: RunConfig) -> int:
    return config.train.batch_size * config.train.num_steps


def _measure_training(seconds: float, with_window: bool, tmp: str) -> dict[str, float]:
    """Steps/s of the default run, headless (engine only) or under the full window."""
    from rnnviz.gui.state.engine import EngineClient

    config = RunConfig()
    counter = _StepCounter()
    heartbeat = _Heartbeat()
    paints = _PaintCounter()
    window = None
    redraws = {"n": 0}
    if with_window:
        window = _make_window(config, os.path.join(tmp, "bench.json"))
        engine = window.engine
        curves_redraw = window.panels.curves.redraw

        def counted_redraw() -> bool:  # how often the training curves really redraw
            drew = bool(curves_redraw())
            redraws["n"] += drew
            return drew

        window.panels.curves.redraw = counted_redraw
        for dock in window.findChildren(pg.GraphicsView):
            dock.viewport().installEventFilter(paints)
        engine.received.connect(counter.on_event)
        window.start_engine()
    else:
        engine = EngineClient()
        engine.received.connect(counter.on_event)
        engine.start(config)
    try:
        if not _spin_until(lambda: counter.state in ("idle", "paused"), 120):
            raise RuntimeError("the engine did not start within 120 s")
        engine.send(Start())
        _spin(2.0)  # warm-up: first snapshots, first probes, allocator
        step0, t0, paints0 = counter.step, time.perf_counter(), paints.paints
        redraws0 = redraws["n"]
        heartbeat.start()
        _spin(seconds)
        heartbeat.stop()
        elapsed = time.perf_counter() - t0
        steps = counter.step - step0
        engine.send(Pause())
    finally:
        if window is not None:
            window.close()
        else:
            engine.shutdown()
    return {
        "tok_s": steps * _tokens_per_step(config) / elapsed,
        "lag_p99_ms": _percentile(heartbeat.lags_ms, 99),
        "lag_max_ms": max(heartbeat.lags_ms) if heartbeat.lags_ms else float("nan"),
        "paint_hz": (paints.paints - paints0) / elapsed,
        "curves_redraw_hz": (redraws["n"] - redraws0) / elapsed,
    }


def bench_gui(seconds: float, rounds: int = 2) -> dict[str, Any]:
    """Training tokens/s under the window vs headless, interleaved; event-loop lag."""
    import tempfile

    _app()
    headless: list[float] = []
    gui: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            headless.append(_measure_training(seconds, with_window=False, tmp=tmp)["tok_s"])
            gui.append(_measure_training(seconds, with_window=True, tmp=tmp))
    gui_tok = statistics.median(g["tok_s"] for g in gui)
    head_tok = statistics.median(headless)
    return {
        "headless_tok_s": head_tok,
        "gui_tok_s": gui_tok,
        "train_fraction_of_headless": gui_tok / head_tok,
        "lag_p99_ms": statistics.median(g["lag_p99_ms"] for g in gui),
        "lag_max_ms": max(g["lag_max_ms"] for g in gui),
        "plot_paints_per_s": statistics.median(g["paint_hz"] for g in gui),
        "curves_redraws_per_s": statistics.median(g["curves_redraw_hz"] for g in gui),
        "seconds_per_round": seconds,
        "rounds": rounds,
    }


# how the text changes in the keystroke-to-panels bench
PROBE_EDITS = {
    "type": "a key typed at the end of the text (the cursor where typing leaves it)",
    "mid": "a key typed in the middle of the text",
    "paste": "the whole text replaced at once",
}


def _wait_shown(app: QApplication, shown: dict[str, int], before: int, t0: float) -> None:
    """Run the event loop until ``shown`` counts past ``before``. Waiting blocks in the event
    dispatcher, as the application's idle loop does: a loop of ``processEvents()`` calls
    spun on the GIL and slowed the probe thread 2-2.7x (a 500-character paste while
    training: 454 ms against 226 ms computed on the GUI thread itself)."""
    wake = QTimer()
    wake.start(100)  # never blocks for long: the 5 s limit below is checked
    try:
        while shown["n"] == before:
            app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)
            if time.perf_counter() - t0 > 5:
                window = app.activeWindow()
                error = getattr(window, "_probe_error", "") if window is not None else ""
                raise RuntimeError(f"no probe result within 5 s {error}".rstrip())
    finally:
        wake.stop()
    app.processEvents()  # the paints the new result asked for


def _probe_latencies(
    window: Any, lengths: tuple[int, ...], samples: int
) -> dict[tuple[str, int], list[float]]:
    """Text change → every probe panel set and painted, in ms, by (edit, length).

    A keystroke is a real key event on the text field: "type" adds a character at the end of
    a text of length-1 characters, "mid" in its middle; "paste" sets a new text of the length.
    """
    from PySide6.QtTest import QTest

    shown = {"n": 0}

    def on_shown() -> None:
        shown["n"] += 1

    window.probe_shown.connect(on_shown)
    alphabet = "abcdefghijklmnopqrstuvwxyz      "
    rng = random.Random(0)
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    out: dict[tuple[str, int], list[float]] = {(e, n): [] for e in PROBE_EDITS for n in lengths}
    line_edit = window.panels.probe_text.line_edit()
    line_edit.setFocus()
    for i in range(samples):
        for n in lengths:
            for edit in PROBE_EDITS:
                text = "".join(rng.choice(alphabet) for _ in range(n))
                if edit != "paste":  # start from the text without the key about to be typed
                    before = shown["n"]
                    line_edit.setText(text[:-1])
                    _wait_shown(app, shown, before, time.perf_counter())
                    line_edit.setCursorPosition(n - 1 if edit == "type" else n // 2)
                    _spin(0.02)
                before = shown["n"]
                t0 = time.perf_counter()
                if edit == "paste":
                    line_edit.setText(text)
                else:
                    QTest.keyClick(line_edit, ord(text[-1]))
                _wait_shown(app, shown, before, t0)
                out[(edit, n)].append((time.perf_counter() - t0) * 1000)
                _spin(0.02 + 0.01 * (i % 3))  # like keystrokes: not back to back
    window.probe_shown.disconnect(on_shown)
    return out


def _scrub_latencies(
    window: Any, length: int, samples: int, neighbour: bool = False, same_text: bool = False
) -> list[float]:
    """Timeline slider moved → every probe panel set and painted, in ms, on a text of
    ``length`` characters: the slider set to a random other stored snapshot (a jump), or with
    ``neighbour`` to the one before ([ pressed about every 0.4 s, as a lecturer steps back).
    A new text each time, unless ``same_text`` (then the one on screen: probed ahead)."""
    shown = {"n": 0}

    def on_shown() -> None:
        shown["n"] += 1

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    # another text in each phase: setting the text shown already would probe nothing
    rng = random.Random(1 + int(neighbour) + 2 * int(window.app_state.training))
    line_edit = window.panels.probe_text.line_edit()
    text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz      ") for _ in range(length))
    window.probe_shown.connect(on_shown)
    if not same_text:
        before = shown["n"]
        line_edit.setText(text)
        _wait_shown(app, shown, before, time.perf_counter())
    slider = window.panels.timeline.slider()
    out: list[float] = []
    try:
        for _ in range(samples):
            count = slider.maximum()  # the rightmost position is live: not a stored model
            if count < 2:
                raise RuntimeError("the timeline has fewer than three snapshots")
            if neighbour:
                index = slider.value() - 1 if slider.value() > 0 else count - 1
            else:
                index = rng.choice([i for i in range(count) if i != slider.value()])
            before = shown["n"]
            t0 = time.perf_counter()
            slider.setValue(index)
            _wait_shown(app, shown, before, t0)
            out.append((time.perf_counter() - t0) * 1000)
            _spin(0.4 if neighbour else 0.03)
    finally:
        window.probe_shown.disconnect(on_shown)
        window.app_state.go_live()
    return out


def _probe_window(config: RunConfig, settings_path: str) -> Any:
    """A window with every probe panel on screen, the gradient flow wanted, its engine
    started and its first probe shown (the window is closed if that fails)."""
    window = _make_window(config, settings_path)
    try:
        window.resize(*PROBE_WINDOW_SIZE)
        _spin(0.2)
        _show_every_probe_panel(window)
        window.probes.set_grad_flow_wanted(True)
        window.start_engine()
        if not _spin_until(lambda: window.probe_result is not None, 120):
            raise RuntimeError(f"{config.model.kind}: no first probe within 120 s")
    except BaseException:
        window.close()
        raise
    return window


def _fill_timeline(window: Any) -> None:
    """Scrub to the oldest snapshot and wait until every stored one is probed ahead."""
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    shown = {"n": 0}

    def on_shown() -> None:
        shown["n"] += 1

    window.probe_shown.connect(on_shown)
    try:
        window.panels.timeline.slider().setValue(0)
        _wait_shown(app, shown, 0, time.perf_counter())
    finally:
        window.probe_shown.disconnect(on_shown)
    if not _spin_until(window.probes.ahead_done, 60):
        raise RuntimeError("the timeline was not probed ahead within 60 s")


def _show_every_probe_panel(window: Any) -> None:
    """The default layout tabs the softmax, gradient-flow and step-view docks: put the first
    two side by side so that every probe panel is on screen and painted."""
    docks = window.docks
    gradflow = docks["dock_gradflow"]
    # out of the tab group (the step view is no probe panel; it is behind a tab by default)
    window.removeDockWidget(gradflow)
    window.removeDockWidget(docks["dock_stepview"])
    window.splitDockWidget(docks["dock_hidden"], gradflow, Qt.Orientation.Horizontal)
    gradflow.show()
    third = (window.width() - docks["dock_controls"].width()) // 3
    window.resizeDocks(
        [docks["dock_hidden"], gradflow, docks["dock_softmax"]],
        [third] * 3,
        Qt.Orientation.Horizontal,
    )
    _spin(0.2)
    # the step view, the unrolled network, the film and generation stay behind their tabs
    behind = ("dock_stepview", "dock_unrolled", "dock_film", "dock_generation", "dock_saturation")
    hidden = [n for n, d in docks.items() if n not in behind and d.visibleRegion().isEmpty()]
    if hidden:
        raise RuntimeError(f"bench layout: docks not on screen: {hidden}")


def bench_probe(samples: int, lengths: tuple[int, ...] = (20, 100, 500)) -> dict[str, Any]:
    """Keystroke to panels at hidden 256 (config B), paused and while training, with every
    probe panel (text, hidden states, softmax, gradient flow) on screen.

    ``p50_ms_{n}_{phase}`` / ``p95_ms_{n}_{phase}``: a key typed at the end of an n-character
    text; ``..._mid``: typed in its middle; ``..._paste``: the whole text replaced.
    ``scrub_p50_ms_100_{phase}`` / ``scrub_p95_...``: the timeline moved to another stored
    snapshot (training goes on meanwhile in the "training" phase); ``..._ahead``: the same
    text once every stored snapshot is probed ahead; ``..._paused_neighbour``: to the one
    before, as [ does (probed ahead while idle)."""
    import tempfile

    _app()
    config = RunConfig().replace(
        model={"hidden_size": 256}, train={"batch_size": 32, "num_steps": 35}
    )
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        window = _probe_window(config, os.path.join(tmp, "bench.json"))
        try:
            for phase in ("paused", "training"):
                if phase == "training":
                    window.controller.send(Start())
                    _spin(1.5)
                lat = _probe_latencies(window, lengths, samples)
                for (edit, n), xs in lat.items():
                    suffix = "" if edit == "type" else f"_{edit}"
                    result[f"p50_ms_{n}_{phase}{suffix}"] = _percentile(xs, 50)
                    result[f"p95_ms_{n}_{phase}{suffix}"] = _percentile(xs, 95)
            scrubs = {"training": _scrub_latencies(window, 100, samples)}
            # the same text again: every snapshot probed ahead once scrubbed (see
            # ProbeScheduler): what a lecturer gets who scrubs for a while
            _fill_timeline(window)
            scrubs["training_ahead"] = _scrub_latencies(window, 100, samples, same_text=True)
            window.controller.send(Pause())
            _spin_until(lambda: not window.app_state.training, 10)
            scrubs["paused"] = _scrub_latencies(window, 100, samples)
            _fill_timeline(window)
            scrubs["paused_ahead"] = _scrub_latencies(window, 100, samples, same_text=True)
            scrubs["paused_neighbour"] = _scrub_latencies(window, 100, samples, neighbour=True)
            for phase, xs in scrubs.items():
                result[f"scrub_p50_ms_100_{phase}"] = _percentile(xs, 50)
                result[f"scrub_p95_ms_100_{phase}"] = _percentile(xs, 95)
            result["timeline_snapshots"] = len(window.app_state.snapshots)
        finally:
            window.close()
    result["hidden"] = 256
    result["with_grad_flow"] = True
    result["edits"] = dict(PROBE_EDITS)
    return result


def bench_probe_gated(samples: int) -> dict[str, Any]:
    """The keystroke figure of ``bench_probe`` (a key typed at the end of a 100-character
    text, every probe panel on screen, hidden 256) for a GRU and an LSTM, the hidden-state
    heatmap on a gate (the update gate z, the forget gate f) so that the gate record is drawn:
    ``p50_ms_100_{phase}_{kind}`` / ``p95_...``."""
    _app()
    result: dict[str, Any] = {}
    for kind, layer in (("gru", "z"), ("lstm", "f")):
        result.update(_gated_keystrokes(kind, layer, samples))
    return result


def _gated_keystrokes(kind: str, layer: str, samples: int) -> dict[str, float]:
    import tempfile

    config = RunConfig().replace(
        model={"kind": kind, "hidden_size": 256}, train={"batch_size": 32, "num_steps": 35}
    )
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        window = _probe_window(config, os.path.join(tmp, "bench.json"))
        try:
            if not window.panels.hidden.set_layer(layer):
                raise RuntimeError(f"{kind}: the hidden-state panel has no layer {layer}")
            _spin(0.1)
            for phase in ("paused", "training"):
                if phase == "training":
                    window.controller.send(Start())
                    _spin(1.5)
                xs = _probe_latencies(window, (100,), samples)[("type", 100)]
                out[f"p50_ms_100_{phase}_{kind}"] = _percentile(xs, 50)
                out[f"p95_ms_100_{phase}_{kind}"] = _percentile(xs, 95)
            window.controller.send(Pause())
        finally:
            window.close()
    return out


def bench_memory(steps: int) -> dict[str, Any]:
    """RSS of the GUI process over a long run of a tiny model, every panel open."""
    import tempfile

    import psutil

    _app()
    config = RunConfig().replace(
        corpus={"source": "synthetic:repeat"},
        model={"hidden_size": 8},
        train={"batch_size": 4, "num_steps": 4, "val_every": 1000},
    )
    proc = psutil.Process()
    rss: dict[int, float] = {}
    marks = sorted({10_000, *range(20_000, steps + 1, 10_000), steps})
    with tempfile.TemporaryDirectory() as tmp:
        window = _make_window(config, os.path.join(tmp, "bench.json"))
        counter = _StepCounter()
        window.engine.received.connect(counter.on_event)
        try:
            window.start_engine()
            if not _spin_until(lambda: counter.state in ("idle", "paused"), 120):
                raise RuntimeError("the engine did not start within 120 s")
            t0 = time.perf_counter()
            window.controller.send(Start())
            for mark in marks:
                if not _spin_until(lambda m=mark: counter.step >= m, 1800):  # type: ignore[misc]
                    raise RuntimeError(f"step {mark} not reached")
                rss[mark] = proc.memory_info().rss / 2**20
            elapsed = time.perf_counter() - t0
            window.controller.send(Pause())
        finally:
            window.close()
    first, last = marks[0], marks[-1]
    growth = (rss[last] - rss[first]) / ((last - first) / 10_000) if last > first else 0.0
    return {
        "steps": steps,
        "rss_mib_at_10k": rss[first],
        f"rss_mib_at_{last // 1000}k": rss[last],
        "rss_growth_mib_per_10k": growth,
        "steps_per_s": steps / elapsed,
    }
