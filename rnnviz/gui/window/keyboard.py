"""Training keys that work wherever the focus is, except in the probe text.

A focused spin box or combo box takes Space, → and Ctrl+R for itself (Space blanked a
learning rate just typed instead of starting training). This filter lets the window's
shortcuts have those keys, and after Enter in a field hands the focus back to the window so
the next key is a command again.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QKeyEvent, QKeySequence
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QComboBox, QLineEdit, QWidget

TRAINING_KEYS = (
    QKeySequence(Qt.Key.Key_Space),
    QKeySequence(Qt.Key.Key_Right),
    QKeySequence("Ctrl+R"),
)


class TrainingKeys(QObject):
    """An application event filter; ``text_field`` is the probe text box (it keeps its keys)."""

    def __init__(self, window: QWidget, text_field: QLineEdit) -> None:
        super().__init__(window)
        self._window = window
        self._text_field = text_field

    def _in_a_field(self, obj: QObject) -> bool:
        focus = QApplication.focusWidget()
        if focus is None or focus.window() is not self._window or focus is self._text_field:
            return False
        field = (QAbstractSpinBox, QComboBox)
        return isinstance(focus, field) or isinstance(focus.parent(), field)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        kind = event.type()
        if kind not in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress):
            return False
        if not isinstance(event, QKeyEvent) or not self._in_a_field(obj):
            return False
        if kind == QEvent.Type.KeyPress and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            # the field takes the value first; then the window has the focus again
            QTimer.singleShot(0, self._window.setFocus)
            return False
        if kind == QEvent.Type.ShortcutOverride:
            keys = QKeySequence(event.keyCombination())
            if any(keys.matches(k) == QKeySequence.SequenceMatch.ExactMatch for k in TRAINING_KEYS):
                return True  # not overridden: the window's shortcut gets the key
        return False
