"""Shows the probe scheduler's results and the time cursor on every probe panel."""

from __future__ import annotations

import functools
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from rnnviz.gui import plotting
from rnnviz.gui.panels.stepview import StepViewPanel
from rnnviz.gui.panels.time_cursor import TimeCursor
from rnnviz.gui.state.app_state import AppState
from rnnviz.gui.state.probe_scheduler import ProbeScheduler, ShownProbe
from rnnviz.gui.window.redraw import RedrawScheduler


class ProbeDisplay(QObject):
    """Puts each probe result on the probe views (one per redraw tick while training, so the
    event loop never stalls for the whole set), moves them with the cursor, and fills the step
    view while it is on screen (a hidden one costs nothing)."""

    shown = Signal()  # a result is on every probe view

    def __init__(
        self,
        state: AppState,
        probes: ProbeScheduler,
        redraw: RedrawScheduler,
        cursor: TimeCursor,
        views: tuple[Any, ...],
        stepview: StepViewPanel,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._state, self._probes, self._redraw = state, probes, redraw
        self._cursor, self._views, self._stepview = cursor, views, stepview
        self._stepview_on_screen = False
        self._stepview_stale = True
        probes.shown.connect(self.show)
        cursor.cursor_changed.connect(self.cursor_changed)

    @Slot(object)
    def show(self, shown: ShownProbe) -> None:
        t = self._cursor.cursor()
        self._cursor.set_result(shown.result)
        self._cursor.set_cursor(t)

        def show_on(view: Any, last: bool) -> None:
            self._show_on(view, shown.result)
            if last:
                if not shown.staggered:  # what the user waits for: paint it before a metric
                    self._probes.hold_metric_redraws()
                self._done()

        count = len(self._views)
        steps = [
            functools.partial(show_on, view, i == count - 1) for i, view in enumerate(self._views)
        ]
        self._redraw.show_in_steps(steps, shown.staggered)

    def _show_on(self, view: Any, result: Any) -> None:
        view.set_result(result)
        view.set_cursor(self._cursor.cursor())
        plotting.settle_views(view)

    def _done(self) -> None:
        self._stepview_stale = True
        self.update_step_view()
        self.shown.emit()

    @Slot(int)
    def cursor_changed(self, t: int) -> None:
        self._state.set_cursor(t)
        for view in self._views:
            view.set_cursor(t)
            plotting.settle_views(view)
        self._stepview_stale = True
        self.update_step_view()

    @Slot(int)
    def move_cursor(self, t: int) -> None:
        """A click on a character or a hidden-state column."""
        self._cursor.set_cursor(t)
        self.cursor_changed(self._cursor.cursor())

    @Slot(bool)
    def set_stepview_on_screen(self, visible: bool) -> None:
        self._stepview_on_screen = visible
        if visible:
            self.update_step_view()

    @Slot(int)
    def step_layer_changed(self, _layer: int) -> None:
        """The step view's stacked layer or direction was chosen (there or in another
        panel)."""
        self._stepview_stale = True
        self.update_step_view()

    def update_step_view(self) -> None:
        """The step view's numbers at the cursor, while it is on screen."""
        if not self._stepview_stale or not self._stepview_on_screen:
            return
        self._stepview_stale = False
        layer = self._stepview.requested_layer()
        direction = self._stepview.requested_direction()
        detail, why = self._probes.step_detail(self._cursor.cursor(), layer, direction)
        current = self._probes.current
        if why:
            self._stepview.set_detail(None, placeholder=why)
        elif detail is None or current is None:
            self._stepview.set_detail(None)
        else:
            self._stepview.set_detail(detail, current.result.vocab_tokens)
