"""One-click starting points for a lecture: the run, its probe string and its compare run.

Each preset is a configuration made from the defaults (not from whatever the window has now),
so it starts the same way every time, on any machine. The GUI's Presets menu and toolbar and
the lessons (``core.lessons``) name them by key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rnnviz.core.config import RunConfig

Changes = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class CompareRun:
    """A compare run a preset starts beside the main run (as the compare dialog would)."""

    label: str
    changes: Changes


@dataclass(frozen=True)
class Preset:
    key: str
    title: str  # the menu's text
    short: str  # the toolbar's (in the menu bar's corner: the width of a 1280 px window)
    what: str  # one sentence: the tooltip
    changes: Changes  # applied to RunConfig()
    probe: str | None = None  # None: the corpus's own probe string
    compare: tuple[CompareRun, ...] = field(default_factory=tuple)

    def config(self) -> RunConfig:
        return RunConfig().replace(**self.changes)


D2L: Changes = {
    "model": {"kind": "scratch", "hidden_size": 32},
    "train": {"batch_size": 1024, "num_steps": 32, "lr": 1.0, "clip_theta": 1.0},
}

PRESETS: tuple[Preset, ...] = (
    Preset(
        "d2l",
        "d2l: RNN from scratch",
        "d2l RNN",
        "The book's RNN from scratch on the built-in text: hidden 32, batch 1024, num_steps 32, "
        "lr 1, θ 1",
        D2L,
        probe="machine",
    ),
    Preset(
        "machine",
        "The slide's 'machine'",
        "'machine'",
        "Batch 1 on the word 'machine' repeated: the slide's character model, trained live",
        {
            "corpus": {"source": "synthetic:repeat", "repeat_word": "machine"},
            "model": {"kind": "scratch", "hidden_size": 32},
            # batch 1: a validation pass of d2l's 5,000 windows would cost 5,000 steps
            "train": {
                "batch_size": 1,
                "num_steps": 32,
                "lr": 1.0,
                "val_windows": 64,
                "val_every": 50,
            },
        },
        probe="machine",
    ),
    Preset(
        "mlp",
        "RNN against the MLP",
        "RNN vs MLP",
        "d2l's RNN with a compare run that holds W_hh at 0: the slide's MLP, H = φ(X W_xh + b_h)",
        D2L,
        probe="machine",
        compare=(CompareRun("no recurrence (MLP)", {"model": {"recurrence": False}}),),
    ),
    Preset(
        "vanishing",
        "Vanishing gradients",
        "Vanishing",
        "The delay task with tanh: the answer is 10 characters back, and ‖∂L_t/∂H_k‖ falls by "
        "a factor a step",
        {
            "corpus": {"source": "synthetic:delay"},
            "model": {"kind": "fast", "activation": "tanh", "hidden_size": 32},
        },
    ),
    Preset(
        "exploding",
        "Exploding without clipping",
        "Exploding",
        "ReLU at lr 2 without clipping, beside the same run clipped at θ = 1",
        {
            "model": {"kind": "fast", "activation": "relu", "hidden_size": 32},
            "train": {"lr": 2.0, "clip_enabled": False},
        },
        compare=(CompareRun("clip θ=1", {"train": {"clip_enabled": True, "clip_theta": 1.0}}),),
    ),
)

PRESET_KEYS = tuple(p.key for p in PRESETS)


def preset(key: str) -> Preset:
    for p in PRESETS:
        if p.key == key:
            return p
    raise KeyError(f"no preset {key!r} (one of {', '.join(PRESET_KEYS)})")
