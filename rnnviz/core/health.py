"""Pure verdicts on a run's numbers, shared by the CLI and the window.

* :func:`perplexity`: exp(mean cross-entropy) that never raises; a loss too large for a float's
  exponent gives ``inf`` (an answer: "no better than anything"), NaN stays NaN.
* The worse-than-uniform rule. A model that guesses uniformly over a vocabulary of V
  characters has loss ln V (perplexity V). A run is *useless* when its loss stays above that
  by a clear margin: perplexity above ``UNIFORM_MARGIN`` x V, i.e. loss above ln V + ln 1.5.

  Why 1.5: a freshly initialised model of this package predicts almost uniformly, so a
  healthy run starts at loss ln V (measured on the built-in corpus, every model, both inits,
  hidden 32 and 256: within +0.02 nats of ln V at step 1) and only goes down from there.
  Wide uniform-init models can start a little higher (logit noise adds about var/2 < 0.2
  nats). ln 1.5 = 0.41 nats is twice that, so the rule never fires on a start; a diverged
  run is far beyond it (ppl 1,677 for V = 28, or 1e171).

  Two ways to apply it:

  - :func:`worse_than_uniform`: one loss, e.g. the validation loss a run ended with (the
    CLI's final verdict). Non-finite counts as worse.
  - :func:`recent_worse_than_uniform`: while training (the window, and the CLI along the
    way): the median of the last ``UNIFORM_WINDOW`` training losses, only once
    ``UNIFORM_MIN_STEPS`` steps are done. The median ignores a lone spike, the minimum
    number of steps keeps it away from a run's first, noisy steps.

Nothing here imports torch or Qt.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Sequence

# perplexity above this multiple of the vocabulary size is worse than uniform guessing
UNIFORM_MARGIN = 1.5
# the training-loss form of the rule: median of this many recent losses ...
UNIFORM_WINDOW = 50
# ... judged only after this many steps
UNIFORM_MIN_STEPS = 100

# math.exp overflows above ln(sys.float_info.max) = 709.78...
_MAX_EXP_ARG = math.log(1.7976931348623157e308)


def perplexity(mean_loss: float) -> float:
    """exp(``mean_loss``); ``inf`` where that overflows a float, NaN for NaN. Never raises."""
    x = float(mean_loss)
    if math.isnan(x):
        return math.nan
    if x >= _MAX_EXP_ARG:
        return math.inf
    return math.exp(x)


def uniform_loss(vocab_size: int) -> float:
    """The loss of uniform guessing over ``vocab_size`` characters: ln V."""
    if vocab_size < 1:
        raise ValueError(f"vocabulary size must be >= 1, not {vocab_size}")
    return math.log(vocab_size)


def useless_loss(vocab_size: int) -> float:
    """The loss above which a run is worse than uniform guessing: ln(UNIFORM_MARGIN x V)."""
    return uniform_loss(vocab_size) + math.log(UNIFORM_MARGIN)


def worse_than_uniform(loss: float, vocab_size: int) -> bool:
    """Whether one mean loss is worse than uniform guessing by the margin (NaN, inf: yes)."""
    return not float(loss) <= useless_loss(vocab_size)


def worse_than_uniform_ppl(ppl: float, vocab_size: int) -> bool:
    """:func:`worse_than_uniform` for a perplexity (NaN, inf: yes)."""
    return not float(ppl) <= UNIFORM_MARGIN * vocab_size


def recent_worse_than_uniform(
    losses: Sequence[float],
    vocab_size: int,
    steps_done: int,
    *,
    window: int = UNIFORM_WINDOW,
    min_steps: int = UNIFORM_MIN_STEPS,
) -> bool:
    """Whether the recent training losses say the run is useless.

    ``losses``: the run's training losses, oldest first (only the last ``window`` are read;
    non-finite ones, the skipped steps, count as infinitely bad). ``steps_done``: the
    optimizer steps of the run so far. False until ``min_steps`` steps and a full window.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, not {window}")
    if steps_done < min_steps or len(losses) < window:
        return False
    recent = [x if math.isfinite(x) else math.inf for x in losses[-window:]]
    return worse_than_uniform(statistics.median(recent), vocab_size)


def uniform_sentence(vocab_size: int) -> str:
    """The rule in words, for messages: 'uniform guessing over 28 characters is ppl 28'."""
    return (
        f"uniform guessing over {vocab_size} characters is perplexity {vocab_size} "
        f"(loss ln {vocab_size} = {uniform_loss(vocab_size):.3g}); the limit is "
        f"{UNIFORM_MARGIN:g} x that, perplexity {UNIFORM_MARGIN * vocab_size:g}"
    )


class LossWatch:
    """Follows a run's training losses: the windowed rule, and since when things went bad.

    ``add`` every step's loss (``spike``: the trainer flagged it). A step is *bad* when its
    loss is non-finite, worse than uniform guessing, or a spike; ``bad_since`` is the first
    bad step of the current bad stretch, and is cleared by a good step once the recent
    median is no longer worse than uniform (a lone spike the run recovers from is
    forgotten). ``last_good_step`` is then the step count whose parameters still gave a good
    loss: a step-k loss is computed with the parameters after k - 1 updates.
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        window: int = UNIFORM_WINDOW,
        min_steps: int = UNIFORM_MIN_STEPS,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, not {window}")
        self.vocab_size = vocab_size
        self.window = window
        self.min_steps = min_steps
        self.recent: deque[float] = deque(maxlen=window)
        self.steps = 0
        self.bad_since: int | None = None

    def add(self, step: int, loss: float, *, spike: bool = False) -> None:
        x = float(loss) if math.isfinite(loss) else math.inf
        self.recent.append(x)
        self.steps = step
        if spike or worse_than_uniform(x, self.vocab_size):
            if self.bad_since is None:
                self.bad_since = step
        elif self.bad_since is not None and not worse_than_uniform(self.median, self.vocab_size):
            self.bad_since = None

    @property
    def median(self) -> float:
        """Median of the recent losses (non-finite ones as inf); NaN before any."""
        return statistics.median(self.recent) if self.recent else math.nan

    @property
    def useless(self) -> bool:
        """:func:`recent_worse_than_uniform` of the losses seen."""
        return recent_worse_than_uniform(
            list(self.recent),
            self.vocab_size,
            self.steps,
            window=self.window,
            min_steps=self.min_steps,
        )

    def last_good_step(self) -> int | None:
        """Updates after which the parameters were last good; None: nothing went bad."""
        if self.bad_since is None:
            return None
        return max(self.bad_since - 2, 0)


def dead_units(hidden: Sequence[Sequence[float]] | object) -> int:
    """How many hidden units are exactly 0 at every step of a probe (``hidden``: (T, H)).

    A ReLU unit whose pre-activation is negative for every input outputs 0 and gets no
    gradient: it is dead, and a layer of dead units can no longer learn."""
    import numpy as np

    h = np.asarray(hidden, dtype=np.float64)
    if h.ndim != 2 or h.shape[0] == 0:
        return 0
    return int(np.count_nonzero(np.all(h == 0.0, axis=0)))
