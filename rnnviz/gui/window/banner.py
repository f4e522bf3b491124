"""The message banner across the top of the window (failures, divergences) and its text."""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QResizeEvent, QTextDocument
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QWidget,
)

from rnnviz.core import divergence as verdicts
from rnnviz.core.messages import Divergence
from rnnviz.gui import theme


def divergence_message(event: Divergence, run_name: str | None = None) -> str:
    """The banner's text (rich text): what happened at which step, ‖g‖, the likely cause."""
    what = verdicts.what_happened(event, theme.plain_number)
    who = f"run '{html.escape(run_name)}', " if run_name else ""
    return (
        f"<b>⚠ {who}step {event.step}: {html.escape(what)}.</b> "
        f"‖g‖ before clipping = <b>{theme.plain_number(event.grad_norm_before_clip)}</b>. "
        f"Likely cause: {html.escape(verdicts.readable_cause(event.likely_cause))}. "
        "Training is paused."
    )


class Banner(QWidget):
    """A dismissable message across the top of the window (failures, divergences), with
    optional action buttons (a divergence's "Roll back" and "Resume with clipping on")."""

    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self._label = QLabel()
        self._label.setWordWrap(True)
        self._label.setFont(theme.font(1.0))
        self._label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # its minimum size hint assumes a narrow width (many lines); the banner sizes it
        self._label.setMinimumSize(1, 1)
        close = QPushButton("Dismiss")
        close.setToolTip("Hide this message (Esc)")
        close.clicked.connect(self._on_dismiss_clicked)
        self._actions: list[QPushButton] = []
        layout = self._row = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addWidget(self._label, 1)
        layout.addWidget(close)
        self._close = close
        self.set_kind("error")

    def set_actions(self, buttons: list[QPushButton]) -> None:
        """Show these buttons before "Dismiss" (and no others)."""
        layout = self._row
        for button in self._actions:
            if button not in buttons:
                layout.removeWidget(button)
                button.hide()
                button.setParent(None)
        for i, button in enumerate(buttons):
            layout.insertWidget(1 + i, button)
            button.show()
        self._actions = list(buttons)

    def actions_shown(self) -> list[QPushButton]:
        return list(self._actions)

    def set_kind(self, kind: str) -> None:
        colours = {"error": ("#fdecea", "#8a1c1c"), "warning": ("#fff4e5", "#7a4b00")}
        bg, fg = colours.get(kind, colours["warning"])
        self.setStyleSheet(f"#banner {{ background: {bg}; }} QLabel {{ color: {fg}; }}")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)

    def text(self) -> str:
        return self._label.text()

    def set_text(self, text: str, *, rich: bool = False) -> None:
        self._label.setTextFormat(Qt.TextFormat.RichText if rich else Qt.TextFormat.PlainText)
        self._label.setText(text)
        self._fit_height()

    def plain_text(self) -> str:
        """The message without markup (what a test or a screen reader reads)."""
        if self._label.textFormat() != Qt.TextFormat.RichText:
            return self._label.text()
        doc = QTextDocument()
        doc.setHtml(self._label.text())
        return doc.toPlainText()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            # after this resize has been laid out: resizing inside it confuses the layout
            QTimer.singleShot(0, self._fit_height)

    def height_for(self, width: int) -> int:
        """The height the message needs at ``width`` (-1: not known yet)."""
        return self._row.totalHeightForWidth(max(width, 400))

    @Slot()
    def _fit_height(self) -> None:
        # a tool bar knows nothing of height-for-width: without this, a wrapped message
        # would get the height it needs at a narrow width (a tall, mostly empty band)
        # hidden, the banner has no width of its own yet: it will span the window
        width = self.width() if self.isVisible() else self.window().width() - 16
        height = self._row.totalHeightForWidth(max(width, 400))
        if height < 0:  # no height-for-width (yet): keep the size there is
            return
        if self.minimumHeight() != height or self.maximumHeight() != height:
            self.setFixedHeight(height)

    @Slot()
    def _on_dismiss_clicked(self) -> None:
        self.dismissed.emit()


class BannerBar(QFrame):
    """The banner, drawn over the top of the plots (not above them: pushing every dock down
    by its height moved the control under the user's next click), with a divergence's or a
    recovery's action buttons. ``place()`` keeps it across the window right of the controls.
    """

    rollback_requested = Signal()
    resume_with_clipping_requested = Signal()
    resume_requested = Signal()
    close_run_requested = Signal()
    recover_requested = Signal()
    restart_requested = Signal()
    reset_requested = Signal()
    discard_recovery_requested = Signal()
    dismissed = Signal()

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self._window = window
        self.setObjectName("banner_bar")
        self.setFrameShape(QFrame.Shape.Box)
        self.setAutoFillBackground(True)
        self.banner = Banner()
        self.banner.dismissed.connect(self._on_dismissed)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.banner)
        self.rollback_button = self._button("banner_rollback", self.rollback_requested)
        self.resume_clip_button = self._button(
            "banner_resume_clip", self.resume_with_clipping_requested
        )
        self.resume_button = self._button("banner_resume", self.resume_requested)
        self.resume_button.setText("Resume")
        self.resume_button.setToolTip("Train on; the compare run stays as it is")
        self.close_run_button = self._button("banner_close_run", self.close_run_requested)
        self.recover_button = self._button("banner_recover", self.recover_requested)
        self.recover_button.setText("Recover")
        self.discard_button = self._button("banner_discard", self.discard_recovery_requested)
        self.discard_button.setText("Discard")
        self.restart_button = self._button("banner_restart", self.restart_requested)
        self.reset_button = self._button("banner_reset", self.reset_requested)
        self.reset_button.setText("Reset (new run at step 0)")
        self.reset_button.setToolTip(
            "Start again from fresh parameters; lower the learning rate or turn clipping on first"
        )
        for button in (
            self.recover_button,
            self.discard_button,
            self.restart_button,
            self.reset_button,
        ):
            button.clicked.connect(self.hide_message)
        self.hide()

    def _button(self, name: str, signal: Any) -> QPushButton:
        button = QPushButton()
        button.setObjectName(name)
        button.setFont(theme.font(1.0, bold=True))
        button.clicked.connect(signal.emit)
        button.hide()
        return button

    def show_message(
        self,
        text: str,
        kind: str = "error",
        *,
        actions: list[QPushButton] | None = None,
        rich: bool = False,
    ) -> None:
        self.banner.set_kind(kind)
        self.banner.set_actions(actions or [])
        self.banner.set_text(text, rich=rich)
        self.show()
        self.place()
        self.raise_()

    def place(self) -> None:
        """Across the window below the menu bar, right of a left-docked Controls panel."""
        w = self._window
        top = w.menuBar().height() if w.menuBar().isVisible() else 0
        left = 0
        controls = w.findChild(QDockWidget, "dock_controls")
        if (
            controls is not None
            and controls.isVisible()
            and not controls.isFloating()
            and w.dockWidgetArea(controls) == Qt.DockWidgetArea.LeftDockWidgetArea
        ):
            left = controls.geometry().right() + 1
        width = max(w.width() - left, 200)
        height = self.banner.height_for(width)
        if height <= 0:  # no height-for-width yet: one line's worth
            height = self.banner.minimumSizeHint().height()
        self.setGeometry(left, top, width, height)

    def show_divergence(
        self, event: Divergence, run_name: str, *, several_runs: bool, theta: float
    ) -> None:
        """The divergence's message and what can be done: roll back (when a good snapshot
        exists), resume with clipping on (the main run), resume or close (a compare run)."""
        main = event.run_id == 0
        target = verdicts.rollback_target(event)
        actions: list[QPushButton] = []
        if target is not None:
            who = "" if main else f"'{run_name}' "
            self.rollback_button.setText(f"Roll back {who}to step {target}")
            self.rollback_button.setToolTip(
                f"Restore the parameters, optimizer state and data position of step {target} "
                "(the newest good snapshot before the divergence), then pause"
            )
            actions.append(self.rollback_button)
        if main:
            self.resume_clip_button.setText(f"Resume with clipping on (θ = {theta:g})")
            self.resume_clip_button.setToolTip(
                f"Turn gradient clipping on at θ = {theta:g} (g ← min(1, θ/‖g‖) g) and train on"
            )
            actions.append(self.resume_clip_button)
        else:
            self.close_run_button.setText(f"Close '{run_name}'")
            self.close_run_button.setToolTip("Stop this compare run and remove its curves")
            actions += [self.resume_button, self.close_run_button]
        name = run_name if several_runs or not main else None
        self.show_message(divergence_message(event, name), "warning", actions=actions, rich=True)

    def show_recovery(self, path: Path) -> None:
        """The last session ended without closing the window; its autosave can be loaded."""
        when = time.strftime("%H:%M on %d %b", time.localtime(path.stat().st_mtime))
        self.recover_button.setToolTip(f"Load {path}")
        self.show_message(
            f"rnnviz did not close cleanly last time. Recover the run autosaved at {when}?",
            "warning",
            actions=[self.recover_button, self.discard_button],
        )

    def show_warning_with_rollback(self, text: str, *, rollback: bool) -> None:
        """A warning, with the Training ▸ Roll back action as a button where it can act, and
        Reset where it cannot (no good snapshot: the run was bad from its first steps)."""
        if rollback:
            self.rollback_button.setText("Roll back to the last good step")
            self.rollback_button.setToolTip("The newest good snapshot before the divergence")
        button = self.rollback_button if rollback else self.reset_button
        self.show_message(text, "warning", actions=[button])

    def show_engine_died(self, message: str, autosaved_step: int | None) -> None:
        """The engine stopped: restart from the autosave where there is one, else say that
        Reset starts again at step 0."""
        if autosaved_step is None:
            self.show_message(f"{message} Reset starts a new run at step 0.")
            return
        self.restart_button.setText(f"Restart from step {autosaved_step:,} (the autosave)")
        self.show_message(message, actions=[self.restart_button])

    def showing_recovery(self) -> bool:
        return not self.isHidden() and self.recover_button in self.banner.actions_shown()

    def hide_message(self) -> None:
        self.hide()
        self.banner.set_actions([])

    def text(self) -> str:
        """The message as plain text ("" while hidden)."""
        return self.banner.plain_text() if not self.isHidden() else ""

    @Slot()
    def _on_dismissed(self) -> None:
        self.hide_message()
        self.dismissed.emit()
