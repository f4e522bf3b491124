"""Warnings about a run's health that are not divergence events: a run worse than uniform
guessing, and a layer of dead ReLU units. The verdicts are core.health's; this shows them."""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot

from rnnviz.core import health
from rnnviz.gui.state.app_state import AppState
from rnnviz.gui.state.controller import Controller
from rnnviz.gui.state.probe_scheduler import ProbeScheduler, ShownProbe
from rnnviz.gui.window.banner import BannerBar


class RunWarnings(QObject):
    def __init__(
        self,
        state: AppState,
        controller: Controller,
        probes: ProbeScheduler,
        banner: BannerBar,
    ) -> None:
        super().__init__(banner)
        self._state, self._controller, self._banner = state, controller, banner
        state.useless.connect(self.run_useless)
        probes.shown.connect(self.check_dead_units)

    @Slot(int)
    def run_useless(self, run_id: int) -> None:
        state = self._state
        rollback = self._controller.can_roll_back()
        what_now = "Roll back, or reset" if rollback else "No earlier snapshot was better: reset"
        self._banner.show_warning_with_rollback(
            f"Run '{state.run_name(run_id)}' has diverged: {state.uselessness(run_id)}. "
            f"Training is paused. {what_now} with a lower learning rate or clipping on.",
            rollback=rollback,
        )

    @Slot(object)
    def check_dead_units(self, shown: ShownProbe) -> None:
        result, snapshot = shown.result, shown.snapshot
        if result is None or snapshot is None or snapshot.config.model.activation != "relu":
            return
        width = result.hidden.shape[1]
        if health.dead_units(result.hidden) == width and self._banner.isHidden():
            self._banner.show_warning_with_rollback(
                f"All {width} hidden units output 0 at every step of the probe text: the ReLU "
                "units are dead (no gradient reaches them) and the layer cannot learn any "
                "more. Roll back before the divergence, or reset (lower lr, clipping on).",
                rollback=self._controller.can_roll_back(),
            )
