"""Text generation, d2l's ``predict``: warm up on a prefix, then extend it one character at a
time, each character fed back as the next input.

Greedy (temperature 0) takes the most likely character, as the book does. Sampling draws from
softmax(logits / temperature), cut to the ``top_k`` most likely characters when ``top_k`` > 0,
with a ``torch.Generator`` seeded by ``seed``: the same call gives the same text, so a panel
that regenerates as training proceeds shows the model's change, not the dice's.

Each generated character comes with the probability it was drawn with under the distribution
actually sampled from (after temperature and top-k; for greedy, the model's own, which is the
softmax's maximum) and the model's own untempered probability of it, one softmax over V
entries more per step.

``Generating`` does the work a few characters at a time, so that the GUI thread can spread a
long generation over several event-loop turns (``advance``) instead of running it on another
thread: the probes read the same model objects in the GUI thread, and the fast RNN is not
safe to run from two threads at once. ``generate_detail`` runs it to the end in one call.

Everything here runs under ``torch.no_grad`` and leaves the model as it found it (its mode,
its parameters, their ``.grad``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from rnnviz.core.messages import frozen_array
from rnnviz.core.model import CharModel, zero_state

if TYPE_CHECKING:
    from rnnviz.core.vocab import Vocab

# the seeds torch.Generator.manual_seed takes without wrapping them round
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Generation:
    """One generated text. ``tokens[i]``, ``ids[i]``, ``probs[i]`` and ``model_probs[i]``
    describe generated character i; the arrays are read-only NumPy copies."""

    prefix: str
    tokens: tuple[str, ...]  # vocabulary entries: one character each, or "<unk>"
    ids: np.ndarray  # (N,) int64
    # (N,) float64: the probability each was drawn with, under the distribution sampled from
    # (temperature and top-k applied); for greedy the model's own, the softmax's maximum
    probs: np.ndarray
    model_probs: np.ndarray  # (N,) float64: softmax(logits)[id], no temperature, no top-k
    temperature: float  # 0: greedy
    top_k: int  # 0: off
    seed: int

    @property
    def generated(self) -> str:
        """The generated characters (an ``<unk>`` drawn is written ``"<unk>"``, as d2l does)."""
        return "".join(self.tokens)

    @property
    def text(self) -> str:
        """The prefix and what followed it: what d2l's ``predict`` returns."""
        return self.prefix + self.generated


def _check_arguments(
    prefix: str, num_chars: int, temperature: float, top_k: int, seed: int
) -> None:
    if not isinstance(prefix, str) or not prefix:
        raise ValueError("generation needs a prefix of at least one character")
    for name, value in (("num_chars", num_chars), ("top_k", top_k), ("seed", seed)):
        # bool is an int to Python, but num_chars=True is a mistake, not 1
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{name} must be a whole number, not {value!r}")
    if num_chars < 0:
        raise ValueError(f"num_chars must be >= 0, not {num_chars}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = off), not {top_k}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be in 0 .. 2**63 - 1, not {seed}")
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float | np.floating)
        or not (math.isfinite(temperature) and temperature >= 0.0)
    ):
        raise ValueError(
            f"temperature must be a finite number >= 0 (0 = greedy), not {temperature}"
        )


def unknown_prefix_message(vocab: Vocab, prefix: str) -> str | None:
    """One line naming the characters of ``prefix`` the vocabulary lacks, None if it has all.

    A probe reads such a character as ``<unk>`` and marks it; a generation would warm up on a
    state the model never saw in training and say nothing, so it refuses instead."""
    unknown = vocab.unknown_positions(prefix)
    if not unknown:
        return None
    chars = list(dict.fromkeys(prefix[i] for i in unknown))
    shown = ", ".join(repr(c) for c in chars)
    which = "it is" if len(chars) == 1 else "they are"
    return f"the prefix has {shown}: {which} not in the model's vocabulary"


def draw(
    last: Tensor, temperature: float, top_k: int, generator: torch.Generator
) -> tuple[int, float, float]:
    """One character from the logits ``last`` (V,): its id, the probability it was drawn with
    (after temperature and top-k) and the model's own (module doc). Greedy at temperature 0."""
    # float64 on the CPU: the seeded generator lives there and tiny p stay positive
    logits = last.double().cpu()
    own = torch.softmax(logits, dim=-1)
    if temperature == 0.0:
        nxt = int(torch.argmax(last))  # on the logits themselves, as d2l does
        return nxt, float(own[nxt]), float(own[nxt])
    scaled = logits / temperature
    if top_k:
        # exactly k keep their share, renormalised; the rest can never be drawn
        # (a mask at the k-th value would keep more than k where values tie)
        top, where = torch.topk(scaled, top_k)
        dist = torch.zeros_like(scaled).index_copy_(0, where, torch.softmax(top, dim=-1))
    else:
        dist = torch.softmax(scaled, dim=-1)
    nxt = int(torch.multinomial(dist, 1, generator=generator))
    return nxt, float(dist[nxt]), float(own[nxt])


class Generating:
    """A generation in progress: the prefix read (the warm-up), characters added by
    ``advance`` until ``done``, then ``result``.

    The model must not change while it runs (the GUI hands it parameter snapshots, never the
    model being trained). ``allow_unknown`` reads a prefix character outside the vocabulary as
    ``<unk>`` (``generate``'s old behaviour) instead of refusing it.
    """

    def __init__(
        self,
        model: CharModel,
        vocab: Vocab,
        prefix: str,
        num_chars: int,
        temperature: float = 0.0,
        top_k: int = 0,
        seed: int = 0,
        *,
        allow_unknown: bool = False,
    ) -> None:
        _check_arguments(prefix, num_chars, temperature, top_k, seed)
        if len(vocab) != model.vocab_size:
            raise ValueError(
                f"vocabulary has {len(vocab)} entries but the model was built for "
                f"{model.vocab_size}"
            )
        if not allow_unknown and (message := unknown_prefix_message(vocab, prefix)) is not None:
            raise ValueError(message)
        if model.config.bidirectional:
            # its reverse direction reads the characters after each step, which generation
            # has not written yet
            raise ValueError(
                "a bidirectional model does not generate text: its reverse direction needs "
                "the characters that come after"
            )
        self._model = model
        self._vocab = vocab
        self._prefix = prefix
        self._num_chars = int(num_chars)
        self._temperature = float(temperature)
        # a k of V or more keeps every character: the same as off, and the same numbers
        self._top_k = int(top_k) if 0 < top_k < len(vocab) else 0
        self._asked_top_k = int(top_k)
        self._seed = int(seed)
        self._generator = torch.Generator(device="cpu").manual_seed(self._seed)
        self._ids: list[int] = []
        self._probs: list[float] = []
        self._model_probs: list[float] = []
        ids = torch.from_numpy(np.asarray(vocab.encode(prefix), dtype=np.int64))
        with torch.no_grad():
            # the whole prefix in one call: the same state as d2l's one-character warm-up
            logits, _, self._state = model(ids.to(model.device)[None], zero_state(model))
        self._last: Tensor = logits[0, -1]

    @property
    def done(self) -> bool:
        return len(self._ids) >= self._num_chars

    @property
    def count(self) -> int:
        """How many characters are generated so far."""
        return len(self._ids)

    @torch.no_grad()
    def advance(self, max_chars: int) -> bool:
        """Generate up to ``max_chars`` more characters; True once all are generated.

        Raises ValueError when the model's outputs are not finite (a diverged model)."""
        model = self._model
        for _ in range(max(0, min(max_chars, self._num_chars - len(self._ids)))):
            last = self._last
            if not bool(torch.isfinite(last).all()):
                raise ValueError("the model's outputs are not finite (has training diverged?)")
            nxt, p, own_p = draw(last, self._temperature, self._top_k, self._generator)
            self._ids.append(nxt)
            self._probs.append(p)
            self._model_probs.append(own_p)
            if len(self._ids) < self._num_chars:  # the last one is never read back
                step = torch.tensor([[nxt]], dtype=torch.int64, device=model.device)
                out, _, self._state = model(step, self._state)
                self._last = out[0, -1]
        return self.done

    def result(self) -> Generation:
        """What is generated so far (all of it once ``done``)."""
        tokens = self._vocab.tokens
        return Generation(
            prefix=self._prefix,
            tokens=tuple(tokens[i] for i in self._ids),
            ids=frozen_array(self._ids, dtype=np.int64),
            probs=frozen_array(self._probs, dtype=np.float64),
            model_probs=frozen_array(self._model_probs, dtype=np.float64),
            temperature=self._temperature,
            top_k=self._asked_top_k,
            seed=self._seed,
        )


def generate_detail(
    model: CharModel,
    vocab: Vocab,
    prefix: str,
    num_chars: int,
    temperature: float = 0.0,
    top_k: int = 0,
    seed: int = 0,
    *,
    allow_unknown: bool = False,
) -> Generation:
    """Warm up on ``prefix`` and generate ``num_chars`` characters after it (module doc).

    ValueError for an empty prefix, a negative length or top-k, a negative or non-finite
    temperature, a seed out of range, a prefix character outside the vocabulary (unless
    ``allow_unknown``), a vocabulary that does not fit the model, or a diverged model."""
    run = Generating(
        model, vocab, prefix, num_chars, temperature, top_k, seed, allow_unknown=allow_unknown
    )
    run.advance(num_chars)
    return run.result()
