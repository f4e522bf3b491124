"""Encoder-decoder, T_x != T_y: translate a written date to ISO ("tuesday march 3 2021" ->
"2021-03-03"), d2l ch. 10.7's sequence-to-sequence model.

The encoder reads the date (left-padded to ``SOURCE_CHARS``, so its last steps are the text's
own); its final state is the context. The decoder starts from that state and reads, at every
step, the previous output character and the context; it emits the ISO date and an end token.
Teacher forcing (``Seq2Seq.teacher_forcing``, on by default) feeds the true previous character
while training; off, the decoder is fed its own greedy guesses, as at inference. Dates are
generated with the standard library in many written formats; the held-out dates are days
never seen in training, in any format.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from rnnviz.core.config import ModelConfig
from rnnviz.core.model import CharModel, State
from rnnviz.core.tasks.base import (
    IGNORE_INDEX,
    PAD,
    Task,
    TaskData,
    TaskDefaults,
    held_batches,
    split_indices,
)

MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
FIRST_DAY = dt.date(1950, 1, 1)
LAST_DAY = dt.date(2049, 12, 31)
SOURCE_CHARS = 30
ISO_CHARS = 10
BOS = "<bos>"
EOS = "<eos>"
TRAIN_EXAMPLES = 24_000
HELD_EXAMPLES = 1_000
HELD_FRACTION = 0.1


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def formats(d: dt.date) -> tuple[str, ...]:
    """``d`` written in every format the task reads (lowercase, as typed)."""
    month, mon = MONTHS[d.month - 1], MONTHS[d.month - 1][:3]
    weekday, wd = WEEKDAYS[d.weekday()], WEEKDAYS[d.weekday()][:3]
    y, m, day = d.year, d.month, d.day
    return (
        f"{weekday} {month} {day} {y}",
        f"{month} {day} {y}",
        f"{month} {day}, {y}",
        f"{day} {month} {y}",
        f"{mon} {day} {y}",
        f"{day} {mon} {y}",
        f"{wd} {mon} {day} {y}",
        f"{day:02d}.{m:02d}.{y}",
        f"{y}/{m:02d}/{day:02d}",
        f"{month} {_ordinal(day)}, {y}",
        f"{weekday}, {day} {month} {y}",
        f"{m}/{day}/{y}",
    )


def _source_chars() -> list[str]:
    sample = (*formats(dt.date(2021, 3, 3)), " ".join(MONTHS + WEEKDAYS), _ordinal(1), _ordinal(2))
    return sorted(set("".join(sample)) | set("0123456789"))


class Seq2Seq(CharModel):
    """Encoder and decoder GRUs (or LSTMs), one-hot inputs, the decoder's input the previous
    character concatenated with the context (d2l ch. 10.7).

    ``forward(tokens)``: ``tokens`` (B, S + U) is the left-padded source (S columns, source
    ids) followed by the decoder's inputs (U columns: BOS and the target shifted right). It
    returns logits (B, S + U, Q), zero at the source's columns (no output there), and the
    hidden states of both, encoder then decoder (B, S + U, H), the one sequence the
    trainer's gradient flow reads."""

    kind = "seq2seq"

    def __init__(
        self,
        source_size: int,
        decoder_size: int,
        output_size: int,
        source_len: int,
        config: ModelConfig,
    ) -> None:
        super().__init__(source_size, config, output_size)
        H = config.hidden_size
        cell: type[nn.GRU] | type[nn.LSTM] = nn.LSTM if config.kind == "lstm" else nn.GRU
        self.cell_kind = config.kind
        self.num_layers = config.num_layers
        self.bidirectional = False
        self.source_len = source_len
        self.decoder_size = decoder_size
        self.teacher_forcing = True
        self.encoder = cell(source_size, H, num_layers=config.num_layers, batch_first=True)
        self.decoder = cell(decoder_size + H, H, num_layers=config.num_layers, batch_first=True)
        self.W_hq = nn.Parameter(torch.empty(H, output_size))
        self.b_q = nn.Parameter(torch.zeros(output_size))
        bound = 1.0 / math.sqrt(H)
        with torch.no_grad():
            self.W_hq.uniform_(-bound, bound)
            self.b_q.uniform_(-bound, bound)

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        dev = device if device is not None else self.device
        zeros = torch.zeros(self.num_layers, batch_size, self.hidden_size, device=dev)
        return (zeros, zeros.clone()) if self.cell_kind == "lstm" else zeros

    def encode(self, source: Tensor) -> tuple[Tensor, State, Tensor]:
        """Encoder hiddens (B, S, H), its final state, the context (B, H)."""
        x = nn.functional.one_hot(source, self.vocab_size).to(self.W_hq.dtype)
        out, state = self.encoder(x)
        h = state[0] if isinstance(state, tuple) else state
        return out, state, h[-1]

    def decode_step(self, prev: Tensor, context: Tensor, state: State) -> tuple[Tensor, State]:
        """One decoder step from the previous ids (B,): its hidden (B, H) and the new state."""
        x = nn.functional.one_hot(prev, self.decoder_size).to(context.dtype)
        out, state = self.decoder(torch.cat([x, context], dim=-1).unsqueeze(1), state)
        return out[:, 0], state

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, Tensor, State]:
        S = self.source_len
        source, dec_in = tokens[:, :S], tokens[:, S:]
        enc, enc_state, context = self.encode(source)
        B, U = dec_in.shape
        if self.teacher_forcing:
            x = nn.functional.one_hot(dec_in, self.decoder_size).to(context.dtype)
            ctx = context.unsqueeze(1).expand(B, U, context.shape[-1])
            dec, final = self.decoder(torch.cat([x, ctx], dim=-1), enc_state)
            logits, hidden_seq = self._outputs(enc, dec)
            return logits, hidden_seq, final
        # the decoder fed its own greedy guesses (inference, or training without forcing);
        # output id j is decoder input id j for every character
        prev, st, hs = dec_in[:, 0], enc_state, []
        for _ in range(U):
            h, st = self.decode_step(prev, context, st)
            hs.append(h)
            prev = (h.detach() @ self.W_hq + self.b_q).argmax(-1)
        dec = torch.stack(hs, dim=1)
        logits, hidden_seq = self._outputs(enc, dec)
        return logits, hidden_seq, st

    def _outputs(self, enc: Tensor, dec: Tensor) -> tuple[Tensor, Tensor]:
        """Logits (zero at the source's columns) and the hidden sequence they are read from,
        so that the trainer's gradient flow (the part through the output layer) sees it."""
        hidden_seq = torch.cat([enc, dec], dim=1)
        logits = hidden_seq[:, enc.shape[1] :] @ self.W_hq + self.b_q
        none = logits.new_zeros(enc.shape[0], enc.shape[1], logits.shape[-1])
        return torch.cat([none, logits], dim=1), hidden_seq


def build_seq2seq(task: Task, config: ModelConfig, seed: int) -> Seq2Seq:
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return Seq2Seq(
            task.input_size,
            len(task.extra["decoder_tokens"]),
            task.output_size,
            int(task.extra["source_len"]),
            config,
        )
    finally:
        torch.random.set_rng_state(gen_state)


@dataclass(frozen=True)
class Translation:
    text: str
    output: str
    probs: tuple[float, ...]  # each output character's (and the end token's) probability
    ended: bool


def _source_ids(task: Task, text: str) -> list[int]:
    ids = task.encode_text(text, "date")
    S = int(task.extra["source_len"])
    if len(ids) > S:
        raise ValueError(f"the date has {len(ids)} characters; the dates task reads at most {S}")
    return [0] * (S - len(ids)) + ids


@torch.no_grad()
def translate(model: Seq2Seq, task: Task, text: str) -> Translation:
    """Greedy decoding of ``text`` (lowercased) until the end token."""
    text = text.strip().lower()
    source = torch.tensor([_source_ids(task, text)], device=model.device)
    _, state, context = model.encode(source)
    bos = task.extra["decoder_tokens"].index(BOS)
    eos = task.output_tokens.index(EOS)
    prev = torch.tensor([bos], device=model.device)
    out: list[str] = []
    probs: list[float] = []
    for _ in range(ISO_CHARS + 4):
        h, state = model.decode_step(prev, context, state)
        logits = h @ model.W_hq + model.b_q
        logits[:, 0] = -torch.inf  # never the padding
        p = torch.softmax(logits[0].double(), dim=-1)
        nxt = int(p.argmax())
        probs.append(float(p[nxt]))
        if nxt == eos:
            return Translation(text, "".join(out), tuple(probs), True)
        out.append(task.output_tokens[nxt])
        prev = torch.tensor([nxt], device=model.device)
    return Translation(text, "".join(out), tuple(probs), False)


@torch.no_grad()
def exact_match(model: CharModel, data: TaskData) -> float:
    """Held-out dates whose greedy translation (no teacher forcing) is right in every
    character and ends where the target does."""
    assert isinstance(model, Seq2Seq)
    forcing = model.teacher_forcing
    model.teacher_forcing = False
    try:
        right = total = 0
        for x, y in held_batches(data):
            logits, _, _ = model(x.to(model.device), None)
            pred = logits.argmax(-1).cpu()
            mask = y != IGNORE_INDEX
            ok = ((pred == y) | ~mask).all(dim=1)
            right += int(ok.sum())
            total += len(y)
    finally:
        model.teacher_forcing = forcing
    return right / total if total else math.nan


def build() -> Task:
    src_chars = _source_chars()
    inputs = (PAD, *src_chars)
    src_index = {c: i for i, c in enumerate(inputs)}
    iso = sorted(set("0123456789-"))
    outputs = (PAD, *iso, EOS)
    decoder_tokens = (PAD, *iso, BOS)  # decoder input j < len(iso) + 1 is output j
    out_index = {c: i for i, c in enumerate(outputs)}
    bos, eos = len(decoder_tokens) - 1, len(outputs) - 1
    days = (LAST_DAY - FIRST_DAY).days + 1
    U = ISO_CHARS + 1

    def rows(rng: np.random.Generator, day_ids: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
        x = np.zeros((n, SOURCE_CHARS + U), dtype=np.int64)
        y = np.full((n, SOURCE_CHARS + U), IGNORE_INDEX, dtype=np.int64)
        items = []
        picks = rng.choice(day_ids, size=n)
        which = rng.integers(0, len(formats(FIRST_DAY)), size=n)
        for r in range(n):
            d = FIRST_DAY + dt.timedelta(days=int(picks[r]))
            text = formats(d)[int(which[r])]
            target = [out_index[c] for c in d.isoformat()]
            x[r, SOURCE_CHARS - len(text) : SOURCE_CHARS] = [src_index[c] for c in text]
            x[r, SOURCE_CHARS:] = [bos, *target]
            y[r, SOURCE_CHARS:] = [*target, eos]
            items.append((text, d.isoformat()))
        return x, y, np.array(items, dtype=object)

    def make_data(seed: int) -> TaskData:
        train_days, held_days = split_indices(days, HELD_FRACTION, seed)
        rng = np.random.default_rng([seed, 31])
        tx, ty, _ = rows(rng, train_days, TRAIN_EXAMPLES)
        hx, hy, items = rows(rng, held_days, HELD_EXAMPLES)
        held_items = tuple((str(a), str(b)) for a, b in items)
        return TaskData(tx, ty, hx, hy, held_items, trim=False)

    return Task(
        name="dates",
        title="Translate a written date to ISO (encoder-decoder)",
        shape="encoder_decoder",
        input_tokens=inputs,
        output_tokens=outputs,
        reads="the encoder: every character of the date; the decoder: its previous output",
        emits="after the whole input: the ISO date, one character a step, and an end token",
        metric_name="held-out exact match",
        target=0.90,
        chance=0.0,
        make_data=make_data,
        score=exact_match,
        defaults=TaskDefaults(
            kind="gru", hidden_size=128, lr=0.005, batch_size=128, max_steps=6000, val_every=100
        ),
        extra={"decoder_tokens": decoder_tokens, "source_len": SOURCE_CHARS},
    )
