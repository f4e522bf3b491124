"""How the window follows the one state, and what it does with the panels' and the banner's
requests: the signal wiring, the state's changes on the status bar, the banner and the
actions, and the last session's autosave offered back."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Slot

from rnnviz.core import divergence as verdicts
from rnnviz.core import probe_defaults
from rnnviz.core.config import RunConfig
from rnnviz.core.messages import Divergence, Failure, RunInfo
from rnnviz.gui.state.app_state import MAIN_RUN
from rnnviz.gui.state.engine import EngineDied
from rnnviz.gui.state.probe_scheduler import ShownProbe
from rnnviz.gui.window.run_warnings import RunWarnings
from rnnviz.gui.window.status_bar import StatusLabels

if TYPE_CHECKING:
    from rnnviz.gui.window.main_window import MainWindow

# what an opened torch.nn module became (core/torch_model.py): nn.RNN is the scratch RNN
_KIND_NAMES = {"gru": "GRU", "lstm": "LSTM"}


class StateReactions(QObject):
    def __init__(self, window: MainWindow, recoverable: Path | None) -> None:
        super().__init__(window)
        self._window = window
        self._recoverable = recoverable  # the last session's autosave, until recovered
        self.status = StatusLabels(window.statusBar())
        self.warnings = RunWarnings(
            window.app_state, window.controller, window.probes, window.banner_bar
        )

    def _on_probe_for_generation(self, shown: ShownProbe) -> None:
        """The generation panel writes from the model the probe panels show (the timeline's);
        the same model again (every keystroke) costs it nothing."""
        if shown.model is not None and shown.snapshot is not None:
            live = self._window.app_state.live
            self._window.panels.generation.show_model(
                shown.model, shown.vocab, shown.snapshot.step, live
            )

    def offer_recovery(self) -> None:
        if self._recoverable is not None:
            self._window.banner_bar.show_recovery(self._recoverable)

    def wire(self) -> None:
        w = self._window
        s, c, p, probes = w.app_state, w.controller, w.panels, w.probes
        # state -> window and panels
        s.config_changed.connect(p.controls.set_config)
        s.run_info_changed.connect(self._on_run_info)
        s.run_state_changed.connect(self._on_run_state)
        s.runs_changed.connect(self.update_status)
        # a new live snapshot re-probes only while the timeline is live; a move of the
        # timeline is answered at once
        s.snapshot_changed.connect(lambda snap: probes.snapshot_arrived(snap) if s.live else None)
        s.view_changed.connect(probes.snapshot_chosen)
        probes.neighbours = s.neighbour_messages  # probed ahead for [ and ]
        probes.fill_order = s.fill_messages  # and the rest once the user scrubs to the past
        probes.live = lambda: s.live
        s.divergence_changed.connect(self._on_divergence)
        s.failure.connect(self._on_failure)
        s.message.connect(w.statusBar().showMessage)
        c.rejected.connect(lambda text: w.banner_bar.show_message(text, "warning"))
        c.not_running.connect(
            lambda: w.statusBar().showMessage(
                "The training engine is not running: press Reset", 5000
            )
        )
        # panels -> controller
        p.controls.play_toggled.connect(c.set_playing)
        p.controls.step_requested.connect(c.step)
        p.controls.reset_requested.connect(c.reset)
        p.controls.hyper_changed.connect(
            lambda lr, theta, on: c.set_hyper(lr=lr, clip_theta=theta, clip_enabled=on)
        )
        p.controls.config_changed.connect(self._on_controls_config)
        p.controls.corpus_file_requested.connect(w.files.open_corpus)
        p.controls.invalid_setting.connect(lambda text: w.banner_bar.show_message(text, "warning"))
        p.controls.compare_requested.connect(w.open_compare_dialog)
        # Export… failed
        for plots in (p.curves, p.gradnorms, p.gradflow, p.softmax, p.hidden, p.saturation):
            plots.export_failed.connect(lambda text: w.banner_bar.show_message(text, "warning"))
        # the probe
        p.probe_text.text_edited.connect(self._on_text_edited)
        p.probe_text.cursor_requested.connect(w.probe_display.move_cursor)
        p.hidden.cursor_requested.connect(w.probe_display.move_cursor)
        p.unrolled.cursor_requested.connect(w.probe_display.move_cursor)
        p.hidden.unit_selected.connect(s.set_unit)
        s.unit_changed.connect(p.probe_text.set_unit)
        s.unit_changed.connect(p.unrolled.set_unit)
        s.unit_changed.connect(p.hidden.set_unit)  # a unit chosen elsewhere (a saturation dot)
        w.probe_display.shown.connect(w.probe_shown.emit)
        probes.shown.connect(self._on_probe_for_generation)
        probes.failed.connect(lambda text: w.statusBar().showMessage(f"Probe failed: {text}", 6000))
        # hidden panels cost nothing: gradient flow is probed, and the step view computed,
        # only while their dock is on screen
        w.docks["dock_gradflow"].visibilityChanged.connect(probes.set_grad_flow_wanted)
        w.docks["dock_stepview"].visibilityChanged.connect(w.probe_display.set_stepview_on_screen)
        self._wire_saturation()
        p.hidden.depth_chosen.connect(self.set_stacked_layer)
        p.stepview.layer_chosen.connect(self.set_stacked_layer)
        p.saturation.layer_chosen.connect(self.set_stacked_layer)
        p.hidden.direction_chosen.connect(self.set_direction)
        p.stepview.direction_chosen.connect(self.set_direction)
        p.saturation.direction_chosen.connect(self.set_direction)
        # the banner's actions
        b = w.banner_bar
        b.rollback_requested.connect(self.rollback)
        b.resume_with_clipping_requested.connect(c.resume_with_clipping)
        b.resume_requested.connect(c.resume)
        b.close_run_requested.connect(c.close_diverged_run)
        b.dismissed.connect(s.clear_failure)
        b.recover_requested.connect(self.recover)
        b.restart_requested.connect(c.restart_from_autosave)
        b.reset_requested.connect(c.reset)
        b.discard_recovery_requested.connect(c.discard_autosave)
        w.redraw.drew.connect(self.update_status)

    @Slot(int)
    def set_stacked_layer(self, layer: int) -> None:
        """One stacked layer (from 0) for every panel that shows one: the heatmap, the step
        view and the saturation scatter. A lecturer points at a layer in one and explains it
        in another; each keeps its own selector, since a tab or the focus view may show one
        panel alone."""
        p = self._window.panels
        p.hidden.set_depth(layer)
        p.stepview.set_layer(layer)
        p.saturation.set_layer(layer)
        self._window.probe_display.step_layer_changed(layer)

    @Slot(str)
    def set_direction(self, direction: str) -> None:
        """One direction of a bidirectional model ("forward", "reverse"/"backward") for every
        panel that shows one: the heatmap, the step view, the saturation scatter and the
        gradient flow's distance curve, as ``set_stacked_layer`` moves the layer."""
        p = self._window.panels
        p.hidden.set_direction(direction)
        p.stepview.set_direction(direction)
        p.saturation.set_direction(direction)
        p.gradflow.set_direction(direction)
        self._window.probe_display.step_layer_changed(0)

    def _wire_saturation(self) -> None:
        """The gate saturation: computed on its thread for the model the probe panels show,
        only while its dock is on screen; a click on a dot selects that unit everywhere."""
        w = self._window
        s, panel, feed = w.app_state, w.panels.saturation, w.saturation
        feed.on_screen = panel.on_screen
        feed.shown.connect(panel.show_saturation)
        feed.kind_changed.connect(panel.set_kind)
        feed.failed.connect(panel.show_failure)
        panel.set_kind(feed.kind())
        panel.set_unit(s.unit)
        panel.unit_selected.connect(s.set_unit)
        s.unit_changed.connect(panel.set_unit)
        w.docks["dock_saturation"].visibilityChanged.connect(self._on_saturation_visibility)

    @Slot(bool)
    def _on_saturation_visibility(self, shown: bool) -> None:
        w = self._window
        w.panels.saturation.set_on_screen(shown)
        if shown:  # once Qt has shown the panel: the feed asks whether it is visible
            QTimer.singleShot(0, w.saturation, w.saturation.refresh)

    @Slot(object)
    def _on_run_info(self, info: RunInfo) -> None:
        w = self._window
        p = w.panels
        if w.app_state.last_failure is None and not w.banner_bar.showing_recovery():
            w.banner_bar.hide_message()
        p.generation.clear_model()  # a new run: no text from the old model
        self._follow_corpus_probe_text(info)
        notes = "; ".join(info.notes)
        if info.opened:
            name = html.escape(os.path.basename(info.opened))
            model = info.config.model
            shape = f"{_KIND_NAMES.get(model.kind, 'RNN')}, hidden {model.hidden_size}"
            if model.num_layers > 1:
                shape += f", {model.num_layers} layers"
            # short: a longer text made the Controls column, and the window, taller than a
            # 1080-line screen
            p.controls.set_run_info(
                f"<b>{name}</b>, read-only: {shape}, vocabulary {len(info.vocab_tokens)}. "
                "Reset trains a new one."
            )
        else:
            p.controls.set_run_info(
                f"<b>{info.corpus_name}</b>: {info.corpus_chars:,} characters, "
                f"vocabulary {len(info.vocab_tokens)}" + (f"<br>{notes}" if notes else "")
            )
        # an opened model is not trained: what would train it is greyed out, not refused
        for name in ("act_play", "act_step", "act_compare"):
            w.actions_by_name[name].setEnabled(not info.opened)
        p.controls.set_read_only(bool(info.opened))
        self.update_status()

    @Slot(int)
    def _on_run_state(self, run_id: int) -> None:
        w = self._window
        w.actions_by_name["act_rollback"].setEnabled(w.controller.can_roll_back())
        if run_id == MAIN_RUN:
            training = w.app_state.training
            w.probes.set_training(training)
            w.panels.controls.set_training(training)
        self.update_status()

    def _follow_corpus_probe_text(self, info: RunInfo) -> None:
        """A new corpus brings its own probe text, unless the user typed one."""
        w = self._window
        line = w.panels.probe_text.line_edit()
        hint = probe_defaults.alphabet_hint(info.config.corpus)
        line.setToolTip(hint or "Type any text: the model reads it one character at a time")
        wanted = probe_defaults.default_probe_text(info.config.corpus)
        if line.text() != wanted and probe_defaults.is_default_probe_text(line.text()):
            w.set_probe_text(wanted)

    @Slot(object)
    def _on_divergence(self, event: Divergence | None) -> None:
        w = self._window
        state = w.app_state
        w.actions_by_name["act_rollback"].setEnabled(w.controller.can_roll_back())
        if event is None:
            if state.last_failure is None:
                w.banner_bar.hide_message()
            return
        theta = verdicts.resume_theta(state.config.train.clip_theta)
        several = bool(state.compare_runs())
        w.banner_bar.show_divergence(
            event, state.run_name(event.run_id), several_runs=several, theta=theta
        )

    @Slot(object)
    def _on_failure(self, failure: Failure) -> None:
        w = self._window
        if isinstance(failure, EngineDied):
            w.banner_bar.show_engine_died(failure.message, w.controller.autosaved_step)
        else:
            w.banner_bar.show_message(failure.message)
        w.statusBar().showMessage(failure.message, 10000)
        # a Reset the engine refused leaves the old run: show its settings again
        w.panels.controls.set_config(w.app_state.config)

    @Slot()
    def update_status(self) -> None:
        w = self._window
        w.status.update(w.app_state)

    @Slot(object)
    def _on_controls_config(self, config: RunConfig) -> None:
        w = self._window
        if w.app_state.main.step > 0 and not w.confirm_reset():
            w.panels.controls.set_config(w.app_state.config)
            return
        w.controller.apply_config(config)

    @Slot()
    def recover(self) -> None:
        """Load the autosave the last session left (it ended without closing the window)."""
        w = self._window
        if self._recoverable is not None:
            w.controller.start_engine()
            w.controller.load(str(self._recoverable))
            self._recoverable = None

    @Slot()
    def rollback(self) -> None:
        w = self._window
        if not w.controller.rollback():
            w.statusBar().showMessage("Nothing to roll back to: no divergence is shown", 5000)

    # ================================================================ the probe on screen

    @Slot(str)
    def _on_text_edited(self, text: str) -> None:
        w = self._window
        w.app_state.set_probe_text(text)
        w.probes.text_edited(text)
