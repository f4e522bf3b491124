"""What the command line asks of the window (``rnnviz --set/--probe/--size/--scheme/--then``,
``--show/--full/--cursor/--mlp/--lesson/--lecture/--zoom/--hidden-layer``).

Qt-free, so that ``rnnviz`` can build it before it knows whether the window can open.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rnnviz.core.config import RunConfig

# what `--then` can do after the first training, in the order given (see ScreenshotDriver)
THEN_ACTIONS = ("rollback", "resume-clipped", "reset", "light", "dark")
# what `--hidden-layer` can put on the hidden-state heatmap: H_t, the LSTM's C_t, or a gate
# (the panel's LAYERS: LSTM i f g o, GRU r z n)
HIDDEN_LAYERS = ("h", "c", "i", "f", "g", "o", "r", "z", "n")
RESUME_STEPS = 30  # `--then resume-clipped` trains this many steps before the grab
ACTION_SETTLE_S = 0.5  # after a command, before its probe counts: one from before may arrive


@dataclass(frozen=True)
class LaunchOptions:
    """What the command line asks of the window beyond the defaults (``rnnviz --help``).

    ``config``: the run to start with (``--set``; None: the last session's, else defaults).
    ``probe_text``: the probe string (None: the last one, else the corpus's default).
    ``size``: the window's size in pixels (None: the last size, else maximised; a
    screenshot's default is SCREENSHOT_SIZE). ``scheme``: "light", "dark" or None (the
    system's). ``then``: THEN_ACTIONS run after the training of a screenshot, in order.
    ``show``: panels to bring to the front (their dock names without ``dock_``: "unrolled",
    "gradflow", ...). ``cursor``: the time step to put the cursor on once the probe is shown.
    ``mlp``: the unrolled view compares with the MLP. ``full``: the panel raised full size
    (the number keys), None: the overview. ``lesson``: a shipped lesson's name or a lesson
    file, started at ``lesson_step`` (0-based). ``lecture``: lecture mode (F11; full screen
    unless ``size`` is given). ``zoom``: the text size (1.0: 100 %; None: the last session's).
    ``at_step``: with a screenshot, the timeline on the stored snapshot nearest this step
    before the grab (None: live). ``session``: a session file opened once the engine runs
    (a screenshot then trains only the ``--train-steps`` asked for, after it).
    ``hidden_layer``: what the hidden-state heatmap shows (HIDDEN_LAYERS), chosen at the first
    probe of a model that has it (None: H_t). ``model``: (weights, spec) of a PyTorch model
    opened read-only once the engine runs (``rnnviz open``; nothing is trained).
    ``stacked_layer``: of a stacked model, the layer the hidden-state panel, the step view and
    the saturation scatter show, from 1 (the bottom one; None: the top one). ``direction``: of
    a bidirectional model, the direction the hidden-state panel shows, "forward" or "backward"
    (None: forward).
    """

    config: RunConfig | None = None
    probe_text: str | None = None
    size: tuple[int, int] | None = None
    scheme: str | None = None
    then: tuple[str, ...] = field(default_factory=tuple)
    show: tuple[str, ...] = field(default_factory=tuple)
    cursor: int | None = None
    mlp: bool = False
    full: str | None = None
    lesson: str | None = None
    lesson_step: int = 0
    lecture: bool = False
    zoom: float | None = None
    at_step: int | None = None
    session: str | None = None
    hidden_layer: str | None = None
    model: tuple[str, str] | None = None
    stacked_layer: int | None = None
    direction: str | None = None


def lesson_argument(text: str) -> tuple[str, int]:
    """``chapter:3`` -> ("chapter", 2): a lesson and its step, counted from 1 on the command
    line; ``my.json`` -> ("my.json", 0). ValueError for a step below 1."""
    name, sep, step = text.rpartition(":")
    if sep and step.isdigit():
        if int(step) < 1:
            raise ValueError(f"lesson steps count from 1, not {step}")
        return name, int(step) - 1
    return text, 0
