"""The window's dialogs: the keyboard shortcuts, About, and the question before a reset."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

import rnnviz


class ShortcutsDialog(QDialog):
    """Every keyboard shortcut of the window, read from its actions."""

    def __init__(self, rows: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        table = QTableWidget(len(rows), 2)
        table.setObjectName("shortcuts_table")
        table.setHorizontalHeaderLabels(["key", "does"])
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for i, (keys, what) in enumerate(rows):
            table.setItem(i, 0, QTableWidgetItem(keys))
            table.setItem(i, 1, QTableWidgetItem(what))
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        layout.addWidget(buttons)
        self.resize(560, 520)
        self.table = table


def confirm_reset(parent: QWidget, step: int) -> bool:
    """Ask before settings that need a new model throw the trained one away."""
    answer = QMessageBox.question(
        parent,
        "Reset training?",
        f"This resets training (now at step {step}). Continue?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def show_about(parent: QWidget) -> None:
    QMessageBox.about(
        parent,
        "About rnnviz",
        f"<b>rnnviz {getattr(rnnviz, '__version__', '')}</b><p>Train the character-level "
        "RNN of the d2l.ai chapter live, and watch its hidden states, predictions and "
        "gradients.</p>",
    )


def ask_before_quit(parent: QWidget, step: int) -> str:
    """ "save", "quit" or "cancel": the run trained since it was last saved."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Quit rnnviz?")
    box.setText(f"The run has trained to step {step:,} since it was last saved.")
    box.setInformativeText("Save a checkpoint before quitting?")
    save = box.addButton("Save…", QMessageBox.ButtonRole.AcceptRole)
    quit_ = box.addButton("Quit without saving", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(save)
    box.exec()
    clicked = box.clickedButton()
    return "save" if clicked is save else "quit" if clicked is quit_ else "cancel"
