"""What closing the window waits for: the user's answer about unsaved training, and every
save in flight (the window waits with its event loop running, so nothing freezes)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Slot

from rnnviz.gui.window import dialogs

if TYPE_CHECKING:
    from rnnviz.gui.window.main_window import MainWindow

SAVE_WAIT_MS = 300_000  # closing waits this long for a save in flight (a huge model's)


class CloseGuard(QObject):
    """``may_close()`` says whether the window may close now; if a save is in flight it
    closes the window itself once the save is answered (or after SAVE_WAIT_MS)."""

    def __init__(self, window: MainWindow, *, ask: bool) -> None:
        super().__init__(window)
        self._window = window
        self.ask = ask  # tests and scripts close without a question
        self._asked = self._waiting = self._gave_up = False

    def may_close(self) -> bool:
        w, c = self._window, self._window.controller
        if not self._asked:
            if self.ask and w.app_state.unsaved_training:
                choice = dialogs.ask_before_quit(w, w.app_state.main.step)
                if choice == "cancel":
                    return False
                if choice == "save":
                    path = w.files.ask_checkpoint_path()
                    if not path or not c.save(path):
                        return False
            self._asked = True
        if c.pending_saves and not self._gave_up:
            if not self._waiting:
                self._waiting = True
                w.statusBar().showMessage("Finishing the save before quitting…")
                c.saves_settled.connect(w.close)
                QTimer.singleShot(SAVE_WAIT_MS, self._give_up_waiting)
            return False
        return True

    @Slot()
    def _give_up_waiting(self) -> None:
        pending = self._window.controller.pending_saves
        if pending and self._window.isVisible():
            print(f"rnnviz: the save to {', '.join(pending)} did not complete", file=sys.stderr)
            self._gave_up = True
            self._window.close()
