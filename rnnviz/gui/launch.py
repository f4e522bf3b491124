"""What the command line asks of the window (``rnnviz --set/--probe/--size/--scheme/--then``).

Qt-free, so that ``rnnviz`` can build it before it knows whether the window can open.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rnnviz.core.config import RunConfig

# what `--then` can do after the first training, in the order given (see ScreenshotDriver)
THEN_ACTIONS = ("rollback", "resume-clipped", "reset")
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
    """

    config: RunConfig | None = None
    probe_text: str | None = None
    size: tuple[int, int] | None = None
    scheme: str | None = None
    then: tuple[str, ...] = field(default_factory=tuple)
