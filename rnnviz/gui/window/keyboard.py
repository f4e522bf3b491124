"""Training keys that work wherever the focus is, except in the probe text.

A focused spin box or combo box takes Space, → and Ctrl+R for itself (Space blanked a
learning rate just typed instead of starting training). This filter, on those fields only
(an application-wide one would run Python for every event of the app), lets the window's
shortcuts have those keys, and after Enter in a field hands the focus back to the window so
the next key is a command again.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QKeyEvent, QKeySequence
from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QWidget

TRAINING_KEYS = (
    QKeySequence(Qt.Key.Key_Space),
    QKeySequence(Qt.Key.Key_Right),
    QKeySequence("Ctrl+R"),
)


class TrainingKeys(QObject):
    """Watches every spin box and combo box of ``window`` (and their line edits)."""

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self._window = window
        fields: list[QWidget] = [*window.findChildren(QAbstractSpinBox)]
        fields += window.findChildren(QComboBox)
        for field in fields:
            field.installEventFilter(self)
            for child in field.findChildren(QWidget):  # a spin box's line edit
                child.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        kind = event.type()
        if not isinstance(event, QKeyEvent):
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
