"""The timeline in the window: the bar, the keys, the probe docks' "model at step N of M",
and the learning film fed from the stored snapshots.

AppState keeps the snapshots and which one is shown; this unit shows that on the bar and on
every probe dock's title, passes the bar's and the film's requests back to the state, and
keeps the film's rows computed (on the film thread, only while the film is on screen).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Slot

from rnnviz.core.film import FilmCache
from rnnviz.gui.state.film_worker import FilmJob, FilmWorker

if TYPE_CHECKING:
    from rnnviz.gui.window.main_window import MainWindow

# the docks whose panels show the probe on the model the timeline chose
PROBE_DOCKS = (
    "dock_probe_text",
    "dock_hidden",
    "dock_softmax",
    "dock_gradflow",
    "dock_stepview",
    "dock_unrolled",
    "dock_generation",
    "dock_saturation",
)
FILM_DELAY_MS = 300  # after a key, the film waits for a pause in the typing


class TimelineView(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window
        self._cache = FilmCache()
        self._film_key = 0  # rows of an older job are not shown
        self.worker = FilmWorker(self)
        self.worker.row_done.connect(self._on_row)
        self.worker.failed.connect(
            lambda text: window.statusBar().showMessage(f"Learning film failed: {text}", 6000)
        )
        self._refill = QTimer(self)
        self._refill.setSingleShot(True)
        self._refill.setInterval(FILM_DELAY_MS)
        self._refill.timeout.connect(self.fill_film)
        self._repaint = QTimer(self)  # rows arrive one by one: the panel redraws at most 10/s
        self._repaint.setSingleShot(True)
        self._repaint.setInterval(100)
        self._repaint.timeout.connect(self.show_film)
        self._note = ""
        # while an old model is shown and training goes on, "of 2,000" is brought up to date
        # twice a second, not at every metrics batch (25 a second: seven labels each time)
        self._renote = QTimer(self)
        self._renote.setSingleShot(True)
        self._renote.setInterval(500)
        self._renote.timeout.connect(self._refresh_notes)
        self._film_shown = False  # the film's dock is on screen (not behind a tab)

    def wire(self) -> None:
        w = self._window
        s, bar, film = w.app_state, w.panels.timeline, w.panels.film
        s.timeline_changed.connect(self.update)
        s.run_status_changed.connect(self._on_status)
        s.probe_text_changed.connect(lambda _text: self._refill.start())
        bar.step_requested.connect(s.view_step)
        bar.neighbour_requested.connect(s.view_neighbour)
        bar.live_requested.connect(s.go_live)
        film.step_requested.connect(s.view_step)
        w.docks["dock_film"].visibilityChanged.connect(self._on_film_visibility)
        w.docks["dock_generation"].visibilityChanged.connect(w.panels.generation.set_on_screen)
        self.update()

    @Slot()
    def update(self) -> None:
        """The bar, the docks' notes and the film after the store or the view changed."""
        s = self._window.app_state
        self._window.panels.timeline.set_timeline(
            s.snapshots.steps(), s.viewed_step, s.timeline_label()
        )
        self._set_notes("" if s.live else s.timeline_label())
        if self.film_on_screen():
            self.fill_film()

    @Slot(int)
    def _on_status(self, run_id: int) -> None:
        if run_id == 0 and not self._window.app_state.live and not self._renote.isActive():
            self._renote.start()

    @Slot()
    def _refresh_notes(self) -> None:
        s = self._window.app_state
        if not s.live:
            label = s.timeline_label()
            if self._set_notes(label):
                self._window.panels.timeline.set_timeline(s.snapshots.steps(), s.viewed_step, label)

    def _set_notes(self, text: str) -> bool:
        """The probe docks' notes; False when they say ``text`` already."""
        if text == self._note:
            return False
        self._note = text
        for name in PROBE_DOCKS:
            dock = self._window.docks.get(name)
            if dock is not None:
                dock.titleBarWidget().set_note(text)  # type: ignore[attr-defined]
        return True

    # ---------------------------------------------------------------- the film

    @Slot(bool)
    def _on_film_visibility(self, shown: bool) -> None:
        self._film_shown = shown
        if shown:
            QTimer.singleShot(0, self.fill_film)

    def film_on_screen(self) -> bool:
        # Qt's isVisible() is true for a dock behind another's tab: the film worked there
        return self._film_shown and self._window.panels.film.isVisible()

    @Slot()
    def fill_film(self) -> None:
        """Compute the rows the film lacks (newest first) on the film thread."""
        s = self._window.app_state
        snapshot, info = s.snapshot, s.run_info
        text = s.probe_text
        if snapshot is None or info is None or not self.film_on_screen():
            return
        from rnnviz.core.vocab import Vocab

        self._cache.use(text, snapshot.config.model, snapshot.vocab_tokens)
        stored = {st.step: st for st in s.snapshots.snapshots()}
        missing = self._cache.missing(list(stored))
        self.show_film()
        if not missing or not text:
            return
        self._film_key += 1
        job = FilmJob(
            self._film_key,
            snapshot.config.model,
            Vocab(snapshot.vocab_tokens),
            text,
            [(step, stored[step].params) for step in missing],
        )
        self.worker.submit(job)

    @Slot(object, object)
    def _on_row(self, key: object, row: object) -> None:
        if key != self._film_key:
            return
        self._cache.put(row)  # type: ignore[arg-type]
        if not self._repaint.isActive():
            self._repaint.start()

    @Slot()
    def show_film(self) -> None:
        s = self._window.app_state
        steps = s.snapshots.steps()
        tokens = s.snapshot.vocab_tokens if s.snapshot is not None else ()
        self._window.panels.film.set_film(
            s.probe_text, steps, self._cache.rows(steps), tokens, s.viewed_step
        )

    def film_done(self) -> bool:
        """Every stored snapshot has its row (tests wait for it)."""
        steps = self._window.app_state.snapshots.steps()
        return self.worker.idle() and not self._cache.missing(steps)

    def stop(self) -> None:
        self._renote.stop()
        self._refill.stop()
        self._repaint.stop()
        self.worker.stop()
