"""Start the GUI: ``run_app(argv)``, or ``run_app(argv, screenshot=PATH)`` to grab a PNG.

The window is shown before torch is imported (PySide6 + pyqtgraph load in well under a
second; torch takes longer): the engine process and the first probe are started from the
event loop, one tick after the window is up.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Sequence

import shiboken6
from PySide6.QtCore import QEvent, QObject, QTimer, Slot
from PySide6.QtWidgets import QApplication

from rnnviz.core.config import RunConfig
from rnnviz.core.messages import Failure, RunInfo, Step
from rnnviz.gui import platform_check, plotting
from rnnviz.gui.collector import collect_on_gui_thread
from rnnviz.gui.launch import ACTION_SETTLE_S, RESUME_STEPS, LaunchOptions
from rnnviz.gui.state.app_state import MAIN_RUN
from rnnviz.gui.state.probe_scheduler import ShownProbe
from rnnviz.gui.state.settings import SettingsStore
from rnnviz.gui.window.docks import DOCKS
from rnnviz.gui.window.main_window import MainWindow
from rnnviz.gui.window.scheme import apply_saved_scheme, use_scheme

SCREENSHOT_SIZE = (1600, 1000)
SCREENSHOT_TIMEOUT_S = 45.0


def _make_app(argv: Sequence[str]) -> QApplication:
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(list(argv) or ["rnnviz"])
    app.setOrganizationName("rnnviz")
    app.setApplicationName("rnnviz")
    app.setApplicationDisplayName("rnnviz")
    collect_on_gui_thread()  # never on a worker thread (see gui.collector)
    return app


def run_app(
    argv: Sequence[str],
    screenshot: str | None = None,
    train_steps: int = 100,
    options: LaunchOptions | None = None,
) -> int:
    """Run the window until it closes; with ``screenshot``, train, grab a PNG and return.

    Returns the process exit code: 0, or 1 if the screenshot could not be taken in time.
    """
    options = options or LaunchOptions()
    if screenshot is not None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    problem = platform_check.xcb_problem()  # Qt would abort with a misleading message
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    app = _make_app(argv)
    asked = (*options.show, *([options.full] if options.full else []))
    unknown = [name for name in asked if f"dock_{name}" not in dict(DOCKS)]
    if unknown:
        names = ", ".join(name.removeprefix("dock_") for name, _ in DOCKS)
        print(f"error: --show {unknown[0]}: no such panel (one of {names})", file=sys.stderr)
        return 2
    if options.scheme is not None:  # before any widget: each takes its colours when built
        use_scheme(options.scheme)
    plotting.configure_pyqtgraph()

    if screenshot is None:
        settings = SettingsStore()
        if options.scheme is None:  # View ▸ Colours, remembered (before any widget)
            apply_saved_scheme(settings)
        window = MainWindow(options.config, settings=settings)
        _apply_options(window, options)
        freeze_after_first_probe(window)
        if options.size is None:
            window.show_on_screen()
        else:
            window.show()
        if os.environ.get("RNNVIZ_EXIT_AFTER_SHOW"):  # `rnnviz bench`: launch-to-window time
            app.processEvents()
            print(f"shown {time.time() - _process_start_time():.3f}", flush=True)
            _delete(window)  # not closed: nothing saved
            return 0
        if options.session is not None:
            open_session_when_ready(window, options.session, options.at_step)
        if options.model is not None:
            open_model_when_ready(window, *options.model)
        QTimer.singleShot(0, window.start_engine)
        code = int(app.exec())
        _delete(window)
        return code

    # a screenshot shows the defaults (or what --set asks), and leaves this machine's
    # remembered settings alone
    window = MainWindow(options.config or RunConfig(), persist=False)
    window.lecture.player.drives_training = False  # the screenshot trains its own steps
    _apply_options(window, options)
    if options.size is None:
        window.resize(*SCREENSHOT_SIZE)
    window.show()
    driver = ScreenshotDriver(
        window,
        screenshot,
        train_steps,
        options.then,
        options.at_step,
        options.session,
        options.model,
    )
    QTimer.singleShot(0, driver.start)
    app.exec()
    _delete(window)
    return driver.exit_code


def open_session_when_ready(window: MainWindow, path: str, at_step: int | None = None) -> None:
    """``rnnviz --session FILE [--at-step N]``: open it once the engine has built its first run
    (a Load before that would be answered by the engine's own first RunInfo), then put the
    timeline on step N."""

    def ready(_info: object) -> None:
        window.app_state.run_info_changed.disconnect(ready)
        window.session_files.open(path)

    def restored(_path: str) -> None:
        window.session_files.restored.disconnect(restored)
        window.app_state.view_step(at_step)

    window.app_state.run_info_changed.connect(ready)
    if at_step is not None:
        window.session_files.restored.connect(restored)


def open_model_when_ready(window: MainWindow, path: str, spec: str) -> None:
    """``rnnviz open F``: the model once the engine has built its first run (an OpenModel
    before that would be answered by the engine's own first RunInfo)."""

    def ready(_info: object) -> None:
        window.app_state.run_info_changed.disconnect(ready)
        window.files.open_model_file(path, spec)

    window.app_state.run_info_changed.connect(ready)


def _delete(window: MainWindow) -> None:
    """Delete the window's widgets now, while Python runs. Left to the interpreter's exit,
    PySide deletes them in no order: an axis taken from its plot re-resolves its font and
    calls pyqtgraph's resizeEvent on a half-deleted item, which crashed every lecture-mode
    screenshot (the window leaves lecture mode as it closes) with a segmentation fault."""
    shiboken6.delete(window)


def _apply_options(window: MainWindow, options: LaunchOptions) -> None:
    if options.session is not None:
        # the session brings its own probe text and cursor: what the command line asks for
        # replaces them once it is open
        _after_session_restored(window, options.probe_text, options.cursor)
    elif options.probe_text is not None:
        window.set_probe_text(options.probe_text)
    if options.size is not None:
        window.lay_out_for_size(options.size)
    if options.lesson is not None and not window.lecture.start_lesson(
        options.lesson, options.lesson_step
    ):
        print(f"rnnviz: {window.banner_text()}", file=sys.stderr)
    for name in options.show:
        window.show_panel(name)
    if options.zoom is not None:
        window.lecture_mode.set_level(options.zoom)
    if options.lecture:
        window.lecture_mode.set_lecture(True, full_screen=options.size is None)
    if options.mlp:
        window.panels.unrolled.mlp_check().setChecked(True)
    if options.hidden_layer is not None:
        choose_hidden_layer(window, options.hidden_layer)
    if options.stacked_layer is not None:
        choose_stacked_layer(window, options.stacked_layer - 1)
    if options.direction is not None:
        choose_direction(window, options.direction)
    cursor = None if options.session is not None else options.cursor
    full = options.full
    if cursor is None and full is None:
        return

    def first_probe() -> None:  # a probe to put the cursor on; the first layout is done
        window.probe_shown.disconnect(first_probe)
        if full is not None:
            window.focus_view.focus(full)
        if cursor is not None:
            window.probe_display.move_cursor(cursor)

    window.probe_shown.connect(first_probe)


def _after_session_restored(window: MainWindow, text: str | None, cursor: int | None) -> None:
    """``--session FILE`` with ``--probe`` or ``--cursor``: applied once the session's own
    view is back (it would replace them)."""
    if text is None and cursor is None:
        return

    def put_cursor() -> None:
        window.probe_shown.disconnect(put_cursor)
        if cursor is not None:
            window.probe_display.move_cursor(cursor)

    def restored(_path: str) -> None:
        window.session_files.restored.disconnect(restored)
        if cursor is not None:
            window.probe_shown.connect(put_cursor)  # on the probe of the text shown next
        if text is not None:
            window.set_probe_text(text)
        elif cursor is not None:
            put_cursor()

    window.session_files.restored.connect(restored)


def choose_hidden_layer(window: MainWindow, name: str) -> None:
    """``--hidden-layer NAME``: the hidden-state heatmap shows it from the first probe shown of
    a model that has it (a session's LSTM arrives after the default model's first probes)."""
    panel = window.panels.hidden

    def choose() -> None:
        if name in panel.layers() and panel.set_layer(name):
            window.probe_shown.disconnect(choose)

    window.probe_shown.connect(choose)


def choose_stacked_layer(window: MainWindow, layer: int) -> None:
    """``--stacked-layer N``: the hidden-state panel, the step view and the saturation scatter
    show that layer (0: the bottom one) from the first probe shown of a model that has so
    many."""
    panel = window.panels.hidden

    def choose() -> None:
        if panel.depth_selector().count() > layer:
            window.reactions.set_stacked_layer(layer)
            window.probe_shown.disconnect(choose)

    window.probe_shown.connect(choose)


def choose_direction(window: MainWindow, direction: str) -> None:
    """``--direction backward``: the hidden-state panel, the step view, the saturation scatter
    and the gradient flow show that direction from the first probe shown of a bidirectional
    model (an opened one arrives after the default model's)."""
    panel = window.panels.hidden

    def choose() -> None:
        if panel.set_direction(direction):  # False until a bidirectional result is shown
            window.reactions.set_direction(direction)
            window.probe_shown.disconnect(choose)

    window.probe_shown.connect(choose)


def freeze_after_first_probe(window: MainWindow) -> None:
    """``gc.freeze()`` once the window has shown its first probe, when torch, pyqtgraph and
    every panel exist: a full collection then no longer walks the hundreds of thousands of
    objects that live as long as the app, which stopped the GUI thread for longer than any
    paint, now and then while training.
    Only for the app's one window (and the bench, which measures it): a test process makes
    many windows, and cycles among frozen objects are never collected."""

    def freeze() -> None:
        window.probe_shown.disconnect(freeze)
        gc.freeze()

    window.probe_shown.connect(freeze)


def lay_out_now() -> None:
    """Apply the layout requests still queued. A label that has just got wider (the status
    bar's "epoch 9" -> "epoch 10") asks for room with a posted request; a window grabbed before
    the event loop runs again shows its text cut ("epoch", seen in a screenshot)."""
    for _ in range(4):  # a request climbs one layout per pass
        QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)


def _process_start_time() -> float:
    import psutil

    return float(psutil.Process().create_time())


class ScreenshotDriver(QObject):
    """Start the engine, train ``train_steps`` (or until the run diverges), do the ``then``
    actions one by one, wait for a probe and a redraw, grab the window.

    ``rollback``: back to the last good snapshot of a diverged run. ``resume-clipped``: the
    banner's "Resume with clipping on" (it rolls back first), then RESUME_STEPS steps.
    ``reset``: a new run at step 0. ``light``, ``dark``: View ▸ Colours chosen in the open
    window (it recolours live; nothing remembered). ``at_step``: then the timeline on the
    stored snapshot nearest to it. The grab waits for the probe of the model shown and, when
    the learning film, the generation or the gate-saturation panel is on screen, for its last
    row, its text or its dots. ``model``: (weights, spec) opened read-only once the engine
    runs, in place of any training (``rnnviz open F --screenshot``).
    """

    def __init__(
        self,
        window: MainWindow,
        path: str,
        train_steps: int,
        then: Sequence[str] = (),
        at_step: int | None = None,
        session: str | None = None,
        model: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.path = path
        self.train_steps = max(0, int(train_steps))
        self.then = list(then)
        self.at_step = at_step
        self.session = session
        self.model = model
        self._opened = False
        self.exit_code = 1
        self._sent_steps = False
        self._target = self.train_steps
        self._probed: object = None  # the snapshot the last shown probe was computed on
        self._acted_at = 0.0
        self._started = time.monotonic()
        self._poll = QTimer(self)
        self._poll.setInterval(50)
        self._poll.timeout.connect(self._on_poll)

    @Slot()
    def start(self) -> None:
        self._poll.start()
        self.window.engine.received.connect(self._on_event)
        self.window.probes.shown.connect(self._on_probe_shown)
        self.window.start_engine()

    @Slot(object)
    def _on_event(self, event: object) -> None:
        if isinstance(event, RunInfo) and event.run_id == 0 and not self._sent_steps:
            if self.model is not None:
                self._on_model_run(event)
                return
            if self.session is not None and not self._opened:
                self._opened = True  # the session's run first; its RunInfo comes back here
                files = self.window.session_files
                files.restored.connect(self._after_session)
                files.failed.connect(self._session_failed)
                files.open(self.session)
                return
            if self.session is not None:
                return  # the session's run: _after_session goes on once its view is back
            self._sent_steps = True
            self._acted_at = time.monotonic()
            if self.train_steps:
                self.window.controller.send(Step(self.train_steps))
        elif isinstance(event, Failure) and event.fatal:
            print(f"rnnviz: the engine failed: {event.message}", file=sys.stderr)
            self._finish(1)
        elif isinstance(event, Failure) and self.model is not None and not self._sent_steps:
            print(f"rnnviz: open: {event.message}", file=sys.stderr)
            self._finish(1)

    def _on_model_run(self, event: RunInfo) -> None:
        """``rnnviz open F --screenshot``: the engine's first run, then the opened model,
        which nothing trains (the grab waits only for its probe)."""
        assert self.model is not None
        if not self._opened:
            self._opened = True
            self.window.files.open_model_file(*self.model)
        elif event.opened:
            self._sent_steps = True
            self._acted_at = time.monotonic()
            self._target = 0

    @Slot(str)
    def _after_session(self, _path: str) -> None:
        self._sent_steps = True
        self._acted_at = time.monotonic()
        self._target = self.window.app_state.main.step + self.train_steps
        if self.train_steps:
            self.window.controller.send(Step(self.train_steps))

    @Slot(str)
    def _session_failed(self, text: str) -> None:
        print(f"rnnviz: --session: {text}", file=sys.stderr)
        self._finish(1)

    @Slot(object)
    def _on_probe_shown(self, shown: ShownProbe) -> None:
        self._probed = shown.snapshot

    def _probe_is_current(self) -> bool:
        snapshot = self.window.app_state.shown_snapshot
        return snapshot is not None and self._probed is snapshot

    def _settled(self) -> bool:
        """The last command's training is over: its steps are done, or the run stopped
        itself (a divergence pauses it before the target)."""
        state = self.window.app_state
        main = state.main
        # a moment for the engine to take the command up: until then it still looks paused
        if not self._sent_steps or time.monotonic() - self._acted_at < ACTION_SETTLE_S:
            return False
        if main.state == "training":
            return False
        stopped_itself = (
            state.divergence is not None
            or main.state == "diverged"
            or bool(state.uselessness(MAIN_RUN))
        )
        return main.step >= self._target or stopped_itself

    def _next_action(self) -> None:
        action = self.then.pop(0)
        controller = self.window.controller
        main = self.window.app_state.main
        if action == "rollback" and not controller.rollback():
            print("rnnviz: --then rollback: no diverged run to roll back", file=sys.stderr)
            self._finish(1)
            return
        if action == "resume-clipped":
            controller.resume_with_clipping()
            self._target = main.step + RESUME_STEPS  # the rollback lowers it: counted after
            QTimer.singleShot(0, self._resume_target)
        elif action == "reset":
            controller.reset()
            self._target = 0
        elif action in ("light", "dark"):
            self.window.scheme.choose(action)
            self._target = 0
        else:
            self._target = 0  # a rollback trains nothing
        self._acted_at = time.monotonic()

    @Slot()
    def _resume_target(self) -> None:
        # the resumed run trains on; pause it once it has RESUME_STEPS more steps
        main = self.window.app_state.main
        if main.state == "training" and main.step >= self._target:
            self.window.controller.pause()
            return
        if self._poll.isActive():
            QTimer.singleShot(20, self._resume_target)

    @Slot()
    def _on_poll(self) -> None:
        main = self.window.app_state.main
        if time.monotonic() - self._started > SCREENSHOT_TIMEOUT_S:
            print(
                f"rnnviz: no screenshot after {SCREENSHOT_TIMEOUT_S:.0f} s (step "
                f"{main.step} of {self._target}, state {main.state})",
                file=sys.stderr,
            )
            self._finish(1)
            return
        if main.state == "stopped":  # the engine could not start or died
            print(f"rnnviz: the engine stopped: {self.window.banner_text()}", file=sys.stderr)
            self._finish(1)
            return
        if not (self._settled() and self._probe_is_current()):
            return
        if self.then:
            self._next_action()
            return
        if self.at_step is not None:
            self.window.app_state.view_step(self.at_step)
            self.at_step = None
            return
        if self.window.timeline.film_on_screen() and not self.window.timeline.film_done():
            return
        generation = self.window.panels.generation
        if generation.on_screen() and (
            generation.is_generating()
            or (generation.generation() is None and not generation.message())
        ):
            return
        saturation = self.window.saturation
        if self.window.panels.saturation.on_screen() and not saturation.done():
            saturation.refresh()  # at once, or when its interval is over
            return
        self.window.timeline.show_film()
        self.window.redraw.redraw_all()
        lay_out_now()
        self.window.repaint()
        if not self.window.grab().save(self.path):
            print(f"rnnviz: could not write {self.path}", file=sys.stderr)
            self._finish(1)
            return
        print(f"rnnviz: screenshot at step {main.step} written to {self.path}")
        self._finish(0)

    def _finish(self, code: int) -> None:
        self._poll.stop()
        self.exit_code = code
        self.window.close()  # stops the engine cleanly
        app = QApplication.instance()
        if app is not None:
            app.quit()
