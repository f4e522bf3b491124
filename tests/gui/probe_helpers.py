"""What the probe panel tests share: one small model that saturates, its probes, a shown panel.

Plain functions rather than fixtures, so that each test file imports what it uses.
"""

from __future__ import annotations

import functools

import torch
from PySide6.QtWidgets import QApplication, QWidget

from rnnviz.core.config import ModelConfig
from rnnviz.core.model import ScratchRNN
from rnnviz.core.probe import ProbeResult, probe
from rnnviz.core.vocab import Vocab

CORPUS = "the time machine by h g wells " * 4
TEXT = "the time machine"
PANEL_SIZE = (900, 400)


@functools.cache
def model_and_vocab() -> tuple[ScratchRNN, Vocab]:
    torch.manual_seed(0)
    vocab = Vocab.from_text(CORPUS)
    model = ScratchRNN(len(vocab), ModelConfig(kind="scratch", hidden_size=8))
    with torch.no_grad():  # larger weights than the init so the units saturate visibly
        model.W_xh.mul_(6.0)
        model.W_hq.mul_(4.0)
    return model, vocab


def make_result(text: str = TEXT) -> ProbeResult:
    model, vocab = model_and_vocab()
    return probe(model, vocab, text, top_k=5)


def show(qtbot, widget: QWidget) -> QWidget:
    qtbot.addWidget(widget)
    widget.resize(*PANEL_SIZE)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def settle() -> None:
    """Let pending layouts and view transforms apply, as they have before any real click."""
    QApplication.processEvents()
