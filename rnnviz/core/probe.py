"""Probing a typed string with a model: hidden states, predictions, per-step loss, gradient flow.

Runs in the GUI process on the latest parameter snapshot (batch 1), so typing never waits for
a training step; everything here must be fast and must leave the model as it found it. Gradients
are taken with ``torch.autograd.grad`` (or in closed form), never ``.backward()``, so the
optimizer's ``p.grad`` stays untouched.

Conventions (the d2l chapter's, row vectors)::

    A_t = X_t W_xh + H_{t-1} W_hh + b_h,   H_t = phi(A_t),   O_t = H_t W_hq + b_q
    L_t = -ln softmax(O_t)[text[t+1]]      # the loss of predicting character t+1 at step t

H_{-1} = 0 (a probe always starts from a zero state). The last character has no successor,
so the last row of ``probs`` is a genuine prediction but its loss is nan and its gradient-flow
row is zero.

Gradient flow ``G[t, k] = ||dL_t/dH_k||_2`` for k <= t. For the LSTM, ``H_k`` is the output
h_k and the derivative perturbs h_k alone with the cell state c_k held fixed: the path
c_{k-1} -> c_k does not pass through h_k. That is what autograd gives for ``dL_t/dh_k`` when
h_k is a node of the graph (the tests compare with exactly that).

GRU and LSTM: the forward pass is ``core.gates.model_gates`` (one step at a time with the
layer's own weights), so a probe has every gate at every step (``ProbeResult.gates``) at no
extra cost: H_t, the LSTM's C_t and O_t = H_t W_hq + b_q are taken from that one pass (its h
equals the fused layer's output to float rounding; the tests check it). Its arrays are float32
whatever the model's dtype.

Bidirectional models (``ModelConfig.bidirectional``): the output layer reads H_t =
concat(H_fwd_t, H_rev_t) of the top layer, so probs, top-k and the loss come from both
directions; ``hidden`` (and ``cell``) is the forward direction's, the default view, and
``hidden_reverse`` (``cell_reverse``) the reverse one's, row t its state at character t (after
reading characters T-1 .. t). G[t, k] = ||dL_t/dH_k|| is of the whole H_k and is not causal:
L_t reaches the reverse states at k > t. The two directions of a layer do not read each other,
so ||dL_t/dH_k||^2 = ||dL_t/dh_fwd_k||^2 + ||dL_t/dh_rev_k||^2, each one direction's own sweep
(the reverse one over the flipped text). A bidirectional probe reuses nothing of the last
one: a typed character changes every reverse state.

Cost: the scratch/fast RNN's gradient flow is a closed-form backward recurrence, about
T^2 H^2 / 2 multiply-adds; GRU/LSTM use autograd one time step at a time, a few times slower.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from rnnviz.core.config import ModelConfig
from rnnviz.core.gates import DIRECTIONS, Direction, GateRecord, gate_levels, model_gates
from rnnviz.core.generation import generate_detail
from rnnviz.core.messages import frozen_array
from rnnviz.core.model import (
    REVERSE_SCRATCH_NAMES,
    CharModel,
    GRUModel,
    LSTMModel,
    ScratchRNN,
    State,
    build_model,
    zero_state,
)
from rnnviz.core.recurrence_vjp import BackStep, back_step, one_row_flow, phi_derivative

if TYPE_CHECKING:
    from rnnviz.core.vocab import Vocab

# (T, T) float32: 64 MiB at this length; past it the GUI should probe without gradient flow
MAX_GRAD_FLOW_CHARS = 4096


class ProbeCancelled(Exception):
    """A probe stopped early because its ``cancelled`` callback said so (nothing changed)."""


Cancelled = Callable[[], bool] | None

# how many steps of the gradient-flow sweep between two looks at ``cancelled``
_CANCEL_EVERY = 8


def _check(cancelled: Cancelled, k: int) -> None:
    if cancelled is not None and k % _CANCEL_EVERY == 0 and cancelled():
        raise ProbeCancelled


# ReLU states have no upper bound; a fixed floor keeps tiny activations from filling the scale
RELU_LEVEL_FLOOR = 1.0


# cotangents for (h_{k+1}, c_{k+1}) -> cotangents for (h_k, c_k); c is None except for the LSTM
@dataclass(frozen=True)
class NoRecurrence:
    """The probe string read by the slide's MLP: the model's own weights with the recurrence
    cut, H_{t-1} = 0 (and C_{t-1} = 0 for the LSTM) at every step, so H_t = phi(X_t W_xh + b_h)
    sees character t alone. Set beside the RNN's numbers, the difference per step is what the
    hidden state carried from the characters before t."""

    top_ids: np.ndarray  # (T,) int64: the most likely next character
    top_probs: np.ndarray  # (T,)
    step_loss: np.ndarray  # (T,) -ln p(text[t+1]); nan at the last position

    @property
    def mean_loss(self) -> float:
        """Mean of the per-step losses (nan for a one-character text)."""
        if len(self.step_loss) < 2:
            return math.nan
        return float(np.mean(self.step_loss[:-1]))


@dataclass(frozen=True)
class ProbeResult:
    """What one probe of ``text`` measured. Every array is a read-only NumPy copy (CPU)."""

    text: str
    vocab_tokens: tuple[str, ...]
    kind: str  # scratch | fast | gru | lstm
    activation: str  # phi of the scratch/fast RNN; "tanh" for GRU/LSTM
    tokens: np.ndarray  # (T,) int64
    unknown: tuple[int, ...]  # positions of characters not in the vocabulary (read as <unk>)
    hidden: np.ndarray  # (T, H) H_t after reading character t (bidirectional: the forward one)
    cell: np.ndarray | None  # (T, H) C_t, LSTM only (bidirectional: the forward one)
    probs: np.ndarray  # (T, V) row t = P(character t+1 | text[:t+1]); rows sum to 1
    topk_ids: np.ndarray  # (T, k) int64, most likely first
    topk_probs: np.ndarray  # (T, k)
    step_loss: np.ndarray  # (T,) -ln p(text[t+1]); nan at the last position
    surprisal_bits: np.ndarray  # (T,) step_loss / ln 2
    # (T, T) G[t, k] = ||dL_t/dH_k|| for k <= t, 0 above the diagonal, last row 0 (every k
    # of a bidirectional model, H_k both directions); None when probed with with_grad_flow=False
    grad_flow: np.ndarray | None
    # fixed colour levels for a heatmap of ``hidden``, so colours mean the same in every probe
    hidden_levels: tuple[float, float]
    # the same weights with the recurrence cut: the slide's MLP beside the RNN
    no_recurrence: NoRecurrence
    # GRU/LSTM: every gate and state at every step (``core.gates``); None for scratch/fast.
    # Its h is ``hidden`` and, for the LSTM, its c is ``cell``
    gates: GateRecord | None = None
    # a bidirectional model's top-layer reverse direction (None: one direction): row t is its
    # state at character t, after reading characters T-1 .. t
    hidden_reverse: np.ndarray | None = None
    cell_reverse: np.ndarray | None = None  # the LSTM's

    @property
    def bidirectional(self) -> bool:
        return self.hidden_reverse is not None

    @property
    def directions(self) -> tuple[Direction, ...]:
        """The directions ``hidden_of`` knows, forward (the default view) first."""
        return DIRECTIONS if self.bidirectional else DIRECTIONS[:1]

    def hidden_of(self, direction: Direction = "forward") -> np.ndarray:
        """(T, H) the top layer's states of one direction."""
        if direction == "forward":
            return self.hidden
        if direction == "reverse" and self.hidden_reverse is not None:
            return self.hidden_reverse
        raise KeyError(f"no {direction} direction: the probe has {', '.join(self.directions)}")

    # a stacked scratch RNN: every layer's H_t (T, H), bottom first, the last one ``hidden``;
    # None for one layer (and for GRU/LSTM, whose layers are in ``gates``)
    layer_hidden: tuple[np.ndarray, ...] | None = None

    @property
    def all_unknown(self) -> bool:
        """No character of the text is in the vocabulary: every prediction is from <unk>."""
        return len(self.unknown) == len(self.text)

    @property
    def mean_loss(self) -> float:
        """Mean of the per-step losses (nan for a one-character text)."""
        if len(self.text) < 2:
            return math.nan
        return float(np.mean(self.step_loss[:-1]))


@dataclass(frozen=True)
class StepDetail:
    """The numbers of one time step of the scratch RNN, next to the chapter's equation.

    Vectors are 1-D read-only NumPy arrays; names follow the slides. Of stacked layers, one
    layer's: its input is the layer below's H_t in place of X_t (``layer_input``), ``xW`` is
    that input times the layer's W_xh, and O_t is the top layer's H_t W_hq + b_q.
    """

    t: int
    char: str
    next_char: str | None  # None at the last position
    token_id: int
    token: str  # the vocabulary entry read ("<unk>" for an unknown character)
    activation: str
    X_t: np.ndarray  # (V,) one-hot
    H_prev: np.ndarray  # (H,) H_{t-1}, zeros at t = 0
    xW: np.ndarray  # (H,) X_t W_xh
    hW: np.ndarray  # (H,) H_{t-1} W_hh
    b_h: np.ndarray  # (H,)
    pre_activation: np.ndarray  # (H,) X_t W_xh + H_{t-1} W_hh + b_h
    H_t: np.ndarray  # (H,) phi(pre_activation)
    O_t: np.ndarray  # (V,) H_t W_hq + b_q
    softmax: np.ndarray  # (V,) softmax(O_t)
    # the slides' identity: [X_t, H_{t-1}] [W_xh; W_hh] = X_t W_xh + H_{t-1} W_hh
    concat: np.ndarray  # (H,) computed by an actual concatenation and one matmul
    concat_max_abs_diff: float
    layer: int = 0  # from 0, the bottom one (reading X_t)
    num_layers: int = 1
    # what the layer reads: X_t (V,) for layer 0, the layer below's H_t (H,) above it; None
    # for a one-layer model (X_t)
    layer_input: np.ndarray | None = None
    # "reverse": a bidirectional RNN's second recurrence (its own W_xh_reverse, W_hh_reverse,
    # b_h_reverse), which reads H_{t+1} in place of H_{t-1} (zeros at the last character)
    direction: Direction = "forward"
    bidirectional: bool = False
    # (2H,) what O_t reads of a bidirectional RNN: [H_fwd_t ; H_rev_t]; None for one direction
    output_input: np.ndarray | None = None


# ---------------------------------------------------------------------------- helpers


def _encode(vocab: Vocab, text: str) -> np.ndarray:
    if not text:
        raise ValueError("nothing to probe: the text is empty")
    return np.asarray(vocab.encode(text), dtype=np.int64)


def _check_vocab(model: CharModel, vocab: Vocab) -> None:
    if len(vocab) != model.vocab_size:
        raise ValueError(
            f"vocabulary has {len(vocab)} entries but the model was built for {model.vocab_size}"
        )


def _to_numpy(t: Tensor) -> np.ndarray:
    return frozen_array(t.detach().cpu().numpy())


def _activation(model: CharModel) -> str:
    return model.config.activation if isinstance(model, ScratchRNN) else "tanh"


def _hidden_levels(activation: str, hidden: np.ndarray) -> tuple[float, float]:
    if activation != "relu":
        return (-1.0, 1.0)  # tanh, and GRU/LSTM outputs, live in (-1, 1)
    finite = hidden[np.isfinite(hidden)]
    top = float(finite.max()) if finite.size else 0.0
    # up to the next 1-2-5 value: the levels (and the colours) stay put while training moves
    # the largest activation a little, and the scale reads "0 … 50", not "0 … 43.71"
    return (0.0, nice_ceiling(max(RELU_LEVEL_FLOOR, top)))


def nice_ceiling(value: float) -> float:
    """The smallest number of the 1-2-5 series (…, 1, 2, 5, 10, 20, …) that is >= ``value``."""
    if not (math.isfinite(value) and value > 0):
        return value
    exponent = math.floor(math.log10(value))
    for mantissa in (1.0, 2.0, 5.0, 10.0):
        candidate = mantissa * 10.0**exponent
        if candidate >= value * (1 - 1e-12):
            return max(candidate, value)
    return value


@dataclass(frozen=True)
class _Pass:
    """A forward pass over some steps: logits (T, V), hidden (T, D*H), the LSTM's cells
    (T, D*H) and, for GRU/LSTM, the gate record of the same steps (every layer's). Of stacked
    layers, hidden and cells are the top layer's, what the output layer reads; of two
    directions, both concatenated, forward first."""

    logits: Tensor
    hidden: Tensor
    cells: Tensor | None
    gates: GateRecord | None
    layers: tuple[Tensor, ...] | None = None  # a stacked scratch RNN's H_t per layer (T, H)


def _states(array: np.ndarray, like: Tensor) -> Tensor:
    # a copy: torch must not share (or warn about) a read-only array
    return torch.tensor(array, dtype=like.dtype, device=like.device)


@torch.no_grad()
def _run(model: CharModel, ids: Tensor, state: State | None = None) -> _Pass:
    """(T,) tokens read from ``state`` (None: zeros), as ``model.forward`` takes it."""
    if isinstance(model, GRUModel | LSTMModel):
        # one stepped pass gives the gates, the cells and h; the fused layer's own forward
        # would only repeat h, and forward_with_cells took 4-5x as long as this pass
        record = model_gates(model, ids, state)
        top = record.num_layers - 1
        if record.bidirectional:
            traces = [record.trace(top, d) for d in record.directions]
            hidden = _states(np.concatenate([tr["h"] for tr in traces], 1), model.W_hq)
            cells = None
            if isinstance(model, LSTMModel):
                cells = _states(np.concatenate([tr["c"] for tr in traces], 1), model.W_hq)
        else:
            trace = record.trace(top)
            hidden = _states(trace["h"], model.W_hq)
            cells = _states(trace["c"], model.W_hq) if isinstance(model, LSTMModel) else None
        logits = torch.addmm(model.b_q, hidden, model.W_hq)
        return _Pass(logits, hidden, cells, record)
    if isinstance(model, ScratchRNN) and model.num_layers > 1:
        seqs = tuple(h[0] for h in model.layer_hiddens(ids[None], state))
        logits = torch.addmm(model.b_q, seqs[-1], model.W_hq)
        return _Pass(logits, seqs[-1], None, None, seqs)
    logits, hidden, _ = model(ids[None], zero_state(model) if state is None else state)
    return _Pass(logits[0], hidden[0], None, None)


@torch.no_grad()
def _forward(model: CharModel, ids: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
    """(T,) tokens -> logits (T, V), hidden (T, H), cells (T, H) or None; zero start state.
    For callers that need no gates: the fused layer's forward, except for the LSTM's cells."""
    if isinstance(model, LSTMModel):
        run = _run(model, ids)
        return run.logits, run.hidden, run.cells
    logits, hidden, _ = model(ids[None], zero_state(model))
    return logits[0], hidden[0], None


def _layer_states(gates: GateRecord, t: int, like: Tensor) -> State:
    """Every layer's (h, c) after step ``t``, as a stacked model's state (L, 1, H)."""
    traces = [gates.trace(layer) for layer in range(gates.num_layers)]
    h = torch.stack([_states(tr["h"][t : t + 1], like) for tr in traces])
    if "c" not in traces[0].values:
        return h
    return h, torch.stack([_states(tr["c"][t : t + 1], like) for tr in traces])


def _layer_input(gates: GateRecord, like: Tensor) -> Tensor:
    """What the top one of stacked layers reads at every step: the layer below's h_t (both
    directions', concatenated, of a bidirectional model)."""
    below = gates.num_layers - 2
    if not gates.bidirectional:
        return _states(gates.trace(below)["h"], like)
    return _states(np.concatenate([gates.trace(below, d)["h"] for d in gates.directions], 1), like)


def _join_gates(head: GateRecord, keep: int, tail: GateRecord | None) -> GateRecord:
    """The first ``keep`` steps of ``head``, then every step of ``tail`` (None: none), with the
    levels ``model_gates`` gives for the joined arrays. Forward directions only: a reverse one
    depends on the characters after a step."""
    assert not head.bidirectional
    traces = []
    for k, trace in enumerate(head.traces):
        values: dict[str, np.ndarray] = {}
        for name, array in trace.values.items():
            if tail is None:
                rows = np.array(array[:keep])
            else:
                rows = np.concatenate([array[:keep], tail.traces[k].values[name]])
            rows.setflags(write=False)
            values[name] = rows
        levels = {name: gate_levels(trace.kind, name, v) for name, v in values.items()}
        traces.append(replace(trace, values=values, levels=levels))
    return replace(head, traces=tuple(traces))


@torch.no_grad()
def no_recurrence_table(model: CharModel) -> Tensor:
    """(V, V) log-probabilities: row i is log softmax(O) after reading token i from a zero
    state. With the recurrence cut a step depends on its own character only, so this table is
    the whole of the MLP's predictions for any text (see ``NoRecurrence``)."""
    V = model.vocab_size
    weight = next(model.parameters())
    tokens = torch.arange(V, device=weight.device)[:, None]  # V texts of one character
    logits, _, _ = model(tokens, zero_state(model, V))
    return torch.log_softmax(logits[:, 0], dim=-1)


def _no_recurrence(table: Tensor, ids: Tensor) -> NoRecurrence:
    log_probs = table[ids]  # (T, V)
    top_log, top_ids = log_probs.max(dim=-1)
    T = len(ids)
    loss = torch.full((T,), math.nan, dtype=table.dtype, device=table.device)
    if T > 1:
        loss[:-1] = -log_probs[:-1].gather(1, ids[1:, None])[:, 0]
    return NoRecurrence(
        top_ids=frozen_array(top_ids.cpu().numpy(), dtype=np.int64),
        top_probs=_to_numpy(top_log.exp()),
        step_loss=_to_numpy(loss),
    )


def _grad_flow(
    model: CharModel,
    ids: Tensor,
    hidden: Tensor,
    cells: Tensor | None,
    probs: Tensor,
    first_row: int = 0,
    G_T: Tensor | None = None,
    cancelled: Cancelled = None,
    inputs: Tensor | None = None,
    gates: GateRecord | None = None,
) -> Tensor:
    """(T, T) G transposed, ``G_T[k, t] = ||dL_t/dH_k||``, by one backward sweep for all loss
    terms t >= ``first_row`` together. Entries of earlier rows t are left as ``G_T`` has them
    (a probe of a longer text with the same first characters reuses them; see ``Prober``).

    M holds dL_t/dH_k for every t >= k as k steps down from T-2 to 0; a row t joins when k
    reaches t, so the sweep costs about n T vector-Jacobian products for n rows (n T H^2 for the
    scratch RNN; T^2 H^2 / 2 for all of them), not n full backward passes.
    """
    T, H = hidden.shape
    if G_T is None:
        G_T = torch.zeros(T, T, dtype=hidden.dtype, device=hidden.device)
    r0 = max(0, first_row)
    if T < 2 or r0 > T - 2:
        return G_T
    # dL_t/dO_t = softmax(O_t) - onehot(y_t): the direct gradient at each step's output
    d_logits = probs[r0:-1].clone()
    d_logits[torch.arange(T - 1 - r0, device=ids.device), ids[r0 + 1 :]] -= 1.0
    W_hq = getattr(model, "W_hq", None)
    if not isinstance(W_hq, Tensor):
        raise TypeError(f"{type(model).__name__} has no output layer W_hq")
    direct = d_logits @ W_hq.detach().t()  # (T-1-r0, H) dL_t/dH_t for t = r0..T-2
    if isinstance(model, ScratchRNN):
        return _scratch_grad_flow(model, hidden, direct, r0, G_T, cancelled)
    if r0 == T - 2 and gates is not None and isinstance(model, GRUModel | LSTMModel):
        # one new row (a key typed at the end): from the forward pass's gates, in NumPy
        top = gates.trace(gates.num_layers - 1)
        row = one_row_flow(model, top, hidden, direct[0].cpu().numpy())
        G_T[: T - 1, T - 2] = torch.from_numpy(row).to(G_T)
        return G_T
    back = back_step(model, ids, hidden, cells, inputs)
    # row i of M is loss term t = r0 + i
    Mh = torch.zeros(T - 1 - r0, H, dtype=hidden.dtype, device=hidden.device)
    Mc = torch.zeros_like(Mh) if cells is not None else None
    for k in range(T - 2, -1, -1):
        _check(cancelled, k)
        lo = max(k + 1, r0)  # the rows already holding dL_t/dH_{k+1}
        if lo <= T - 2:
            rows = slice(lo - r0, T - 1 - r0)
            Mh[rows], new_c = back(k, Mh[rows], None if Mc is None else Mc[rows])
            if Mc is not None and new_c is not None:
                Mc[rows] = new_c
        if k >= r0:
            Mh[k - r0] = direct[k - r0]
        start = max(k, r0)
        torch.linalg.vector_norm(Mh[start - r0 :], dim=1, out=G_T[k, start : T - 1])
    return G_T


# the scratch sweep keeps every step's M (T-1, n, H) while it has at most this many numbers
_HISTORY_MAX_ELEMENTS = 1 << 22  # 16 MiB of float32


def _scratch_grad_flow(
    model: ScratchRNN,
    hidden: Tensor,
    direct: Tensor,
    r0: int,
    G_T: Tensor,
    cancelled: Cancelled = None,
) -> Tensor:
    """``_grad_flow``'s sweep for the scratch/fast RNN, where one step back is
    M <- (M * phi'(A_{k+1})) W_hh^T, on preallocated buffers.

    Row i of M (loss term t = r0 + i) starts as dL_t/dH_t and waits until k reaches t; the
    rows that have joined are always a suffix, so each step is one multiply and one matmul on
    a slice. While it fits, every step's M is kept and the norms are taken in one call at the
    end: per step that leaves three torch calls. One row alone (a keystroke at the end of the
    text) is a chain of matrix-vector products on fixed views.
    """
    T, H = hidden.shape
    n = T - 1 - r0
    phi_prime = phi_derivative(_activation(model), hidden).unbind(0)
    # of stacked layers the top one's: its H_k reaches later losses through its own W_hh only
    W_hh = model.layer_params(model.num_layers - 1)[1].detach()
    W_hh_T = W_hh.t()
    if n == 1:
        # one new row (a key typed at the end): a chain of vector-matrix products, two torch
        # calls a step on fixed views (W_hh v is v W_hh^T for a vector)
        history = direct.new_zeros(T - 1, H)
        history[T - 2] = direct[0]
        steps = history.unbind(0)
        scaled = torch.empty_like(direct[0])
        for k in range(T - 3, -1, -1):
            _check(cancelled, k)
            torch.mv(W_hh, torch.mul(steps[k + 1], phi_prime[k + 1], out=scaled), out=steps[k])
        G_T[: T - 1, T - 2] = torch.linalg.vector_norm(history, dim=1)
        return G_T
    if (T - 1) * n * H <= _HISTORY_MAX_ELEMENTS:
        # history[k, i] = dL_{r0+i}/dH_k; zero where r0 + i < k (no such dependence)
        history = direct.new_zeros(T - 1, n, H)
        t = torch.arange(r0, T - 1, device=direct.device)
        history[t, t - r0] = direct
        steps = history.unbind(0)
        for k in range(T - 3, -1, -1):
            _check(cancelled, k)
            a = max(k + 1 - r0, 0)  # rows t > k carry dL_t/dH_{k+1}: take them back one step
            torch.mm(steps[k + 1][a:] * phi_prime[k + 1], W_hh_T, out=steps[k][a:])
        G_T[: T - 1, r0 : T - 1] = torch.linalg.vector_norm(history, dim=2)
        return G_T
    M = direct.clone()
    scratch = torch.empty_like(M)
    for k in range(T - 2, -1, -1):
        _check(cancelled, k)
        a = max(k + 1 - r0, 0)
        if a < n:
            rows = M[a:]
            torch.mm(torch.mul(rows, phi_prime[k + 1], out=scratch[a:]), W_hh_T, out=rows)
        b = max(k - r0, 0)  # rows t >= k hold dL_t/dH_k now
        torch.linalg.vector_norm(M[b:], dim=1, out=G_T[k, b + r0 : T - 1])
    return G_T


def _sweep(back: BackStep, direct: Tensor, cells: bool, cancelled: Cancelled) -> Tensor:
    """(T, T) N[s, k] = ||dL_s/dh_k|| for k <= s (0 above the diagonal) of one direction, in
    its own reading order: ``direct`` row s is dL_s/dh_s through the output layer (zeros where
    there is no loss term), ``back`` that direction's step back (``back_step``)."""
    T = direct.shape[0]
    M = torch.zeros_like(direct)  # row s: dL_s/dh_k once k <= s
    Mc = torch.zeros_like(direct) if cells else None
    N = direct.new_zeros(T, T)
    for k in range(T - 1, -1, -1):
        _check(cancelled, k)
        if k < T - 1:
            rows = slice(k + 1, T)
            M[rows], new_c = back(k, M[rows], None if Mc is None else Mc[rows])
            if Mc is not None and new_c is not None:
                Mc[rows] = new_c
        M[k] = direct[k]
        if Mc is not None:
            Mc[k] = 0.0  # the output layer reads h_k, not c_k
        N[k:, k] = torch.linalg.vector_norm(M[k:], dim=1)
    return N


def _bidirectional_grad_flow(
    model: CharModel,
    ids: Tensor,
    hidden: Tensor,
    cells: Tensor | None,
    probs: Tensor,
    inputs: Tensor | None,
    cancelled: Cancelled = None,
) -> Tensor:
    """(T, T) G[t, k] = ||dL_t/dH_k|| of a bidirectional model, every k (see the module doc):
    the forward direction's sweep, and the reverse direction's over the flipped text.
    ``hidden``/``cells`` (T, 2H) are the top layer's, forward first; ``inputs`` what the top
    layer reads (None: the one-hot text)."""
    T, width = hidden.shape
    H = width // 2
    G = hidden.new_zeros(T, T)
    if T < 2:
        return G
    d_logits = probs[:-1].clone()  # dL_t/dO_t = softmax(O_t) - onehot(y_t), t = 0..T-2
    d_logits[torch.arange(T - 1, device=ids.device), ids[1:]] -= 1.0
    W_hq = model.get_parameter("W_hq").detach()
    direct = d_logits @ W_hq.t()  # (T-1, 2H)
    halves = (slice(0, H), slice(H, width))
    sweeps = []
    for d, half in enumerate(halves):
        reverse = d == 1
        own = direct.new_zeros(T, H)  # row s of this direction's reading order
        if reverse:  # position t is step T-1-t; the last position has no loss term
            own[1:] = direct[:, half].flip(0)
        else:
            own[: T - 1] = direct[:, half]

        def flip(x: Tensor, reverse: bool = reverse) -> Tensor:
            return x.flip(0) if reverse else x

        back = back_step(
            model,
            flip(ids),
            flip(hidden[:, half]),
            None if cells is None else flip(cells[:, half]),
            None if inputs is None else flip(inputs),
            reverse=reverse,
        )
        N = _sweep(back, own, cells is not None, cancelled)
        sweeps.append(N.flip(0).flip(1) if reverse else N)
    return torch.sqrt(sweeps[0] ** 2 + sweeps[1] ** 2)


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading entries two 1-D arrays share."""
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if differ.size else n


# ---------------------------------------------------------------------------- public API


class Prober:
    """Probes one model again and again as the text changes, reusing the work on the part that
    did not change. Typing is the case it is for: the GUI keeps one per parameter snapshot.

    H_t and O_t depend on characters 0..t only, and the gradient-flow row G[t, :] on
    characters 0..t+1 (L_t predicts character t+1). So when the new text shares its first p
    tokens with the last one, steps 0..p-1 of the forward pass and rows 0..p-2 of G are kept
    and only the rest is computed: a keystroke at the end of a T-character text costs one step
    forward and one row of G (about T H^2 multiply-adds) instead of T^2 H^2 / 2; a backspace
    costs nothing but the copies. A GRU/LSTM's gates are kept the same way: the new steps start
    from the cached (h, c) at p-1 and are joined to the cached ones. The result equals
    ``probe(model, vocab, text)`` up to float rounding (tested). The model must not change
    while a Prober holds it.
    """

    def __init__(self, model: CharModel, vocab: Vocab) -> None:
        _check_vocab(model, vocab)
        self.model = model
        self.vocab = vocab
        self._ids = np.zeros(0, dtype=np.int64)
        self._logits: Tensor | None = None  # (T, V)
        self._hidden: Tensor | None = None  # (T, H)
        self._cells: Tensor | None = None  # (T, H), LSTM only
        self._gates: GateRecord | None = None  # GRU/LSTM only
        self._layers: tuple[Tensor, ...] | None = None  # a stacked scratch RNN's, per layer
        self._G_T: Tensor | None = None  # (T, T) G transposed, None: not computed
        self._no_recurrence: Tensor | None = None  # no_recurrence_table, made at first use
        self.reused_steps = 0  # of the last probe: how many leading steps came from the cache

    def work(self, text: str, with_grad_flow: bool = True) -> tuple[int, int]:
        """About how many multiply-adds ``probe(text)`` would do now: (forward pass, gradient
        flow), counting only what the cache does not already hold. Lets a caller decide where
        to run it (a keystroke at the end of a text is cheap; a pasted text is not)."""
        ids_np = _encode(self.vocab, text)
        T, H, V = len(ids_np), self.model.hidden_size, self.model.vocab_size
        gates = {"gru": 3, "lstm": 4}.get(self.model.kind, 1)
        p = self._reusable(ids_np)
        D = 2 if self.model.config.bidirectional else 1  # each direction its own recurrence
        layers = getattr(self.model, "num_layers", 1)  # the flow below is the top layer's
        forward = max(0, T - p) * D * (layers * gates * H * H + H * V)
        if not with_grad_flow:
            return forward, 0
        keep = max(0, p - 1) if self._G_T is not None else 0
        rows = max(0, T - 1 - keep)
        return forward, D * rows * T * gates * H * H

    @torch.no_grad()
    def probe(
        self,
        text: str,
        top_k: int = 5,
        with_grad_flow: bool = True,
        cancelled: Cancelled = None,
    ) -> ProbeResult:
        """Read ``text`` from a zero state and measure every step (see ``probe``).

        ``cancelled``, if given, is asked every few steps of the gradient-flow sweep; when it
        returns True the probe raises ProbeCancelled and the cache stays as it was.
        """
        model, vocab = self.model, self.vocab
        ids_np = _encode(vocab, text)
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, not {top_k}")
        T = len(ids_np)
        if with_grad_flow and T > MAX_GRAD_FLOW_CHARS:
            raise ValueError(
                f"gradient flow is limited to {MAX_GRAD_FLOW_CHARS} characters (this text has"
                f" {T}); probe with with_grad_flow=False"
            )
        p = self._reusable(ids_np)
        ids = torch.from_numpy(ids_np).to(model.device)
        run = self._forward_from(p, ids)
        logits, hidden, cells = run.logits, run.hidden, run.cells
        log_probs = torch.log_softmax(logits, dim=-1)  # (T, V): stabler than log(softmax)
        probs = log_probs.exp()
        G_T = None
        if with_grad_flow and model.config.bidirectional:
            inputs = None
            if run.gates is not None and run.gates.num_layers > 1:
                inputs = _layer_input(run.gates, hidden)
            G = _bidirectional_grad_flow(model, ids, hidden, cells, probs, inputs, cancelled)
            G_T = G.t()
        elif with_grad_flow:
            G_T = torch.zeros(T, T, dtype=hidden.dtype, device=hidden.device)
            keep = max(0, p - 1) if self._G_T is not None else 0  # rows t < keep still hold
            if keep:
                G_T[:keep, :keep] = self._G_T[:keep, :keep]  # type: ignore[index]
            inputs = None
            if run.gates is not None and run.gates.num_layers > 1:
                inputs = _layer_input(run.gates, hidden)
            _grad_flow(
                model,
                ids,
                hidden,
                cells,
                probs,
                first_row=keep,
                G_T=G_T,
                cancelled=cancelled,
                inputs=inputs,
                gates=run.gates,
            )
        self._ids, self._logits, self._hidden, self._cells = ids_np, logits, hidden, cells
        self._gates = run.gates
        self._layers = run.layers
        self._G_T = G_T
        self.reused_steps = p
        if self._no_recurrence is None:
            self._no_recurrence = no_recurrence_table(model)
        mlp = _no_recurrence(self._no_recurrence, ids)
        return _result(model, vocab, text, ids_np, ids, run, log_probs, probs, top_k, G_T, mlp)

    def _reusable(self, ids_np: np.ndarray) -> int:
        """How many leading steps of the cache a probe of ``ids_np`` keeps: the common prefix,
        none for a bidirectional model (a new character changes every reverse state)."""
        if self._hidden is None or self.model.config.bidirectional:
            return 0
        return _common_prefix(self._ids, ids_np)

    def _forward_from(self, p: int, ids: Tensor) -> _Pass:
        """The pass over all of ``ids``, steps 0..p-1 taken from the cache: the new steps
        start from the cached state at p-1, so a key typed at the end costs one step."""
        if p == 0:
            return _run(self.model, ids)
        assert self._logits is not None and self._hidden is not None
        T = len(ids)
        gates = self._gates
        if p >= T:  # a shorter text (a backspace) or the same one: nothing new to compute
            cells = None if self._cells is None else self._cells[:T]
            if gates is not None and len(self._ids) > T:
                gates = _join_gates(gates, T, None)
            layers = None if self._layers is None else tuple(h[:T] for h in self._layers)
            return _Pass(self._logits[:T], self._hidden[:T], cells, gates, layers)
        state: State = self._hidden[p - 1 : p]
        if self._cells is not None:
            state = (self._hidden[p - 1 : p], self._cells[p - 1 : p])
        if gates is not None and gates.num_layers > 1:  # every layer's state at p - 1
            state = _layer_states(gates, p - 1, self._hidden)
        if self._layers is not None:  # a stacked scratch RNN's, (L, 1, H)
            state = torch.stack([h[p - 1 : p] for h in self._layers])
        new = _run(self.model, ids[p:], state)
        cells = None
        if self._cells is not None:
            assert new.cells is not None
            cells = torch.cat([self._cells[:p], new.cells])
        if gates is not None:
            gates = _join_gates(gates, p, new.gates)
        layers = None
        if self._layers is not None:
            assert new.layers is not None
            layers = tuple(
                torch.cat([a[:p], b]) for a, b in zip(self._layers, new.layers, strict=True)
            )
        return _Pass(
            torch.cat([self._logits[:p], new.logits]),
            torch.cat([self._hidden[:p], new.hidden]),
            cells,
            gates,
            layers,
        )


def _result(
    model: CharModel,
    vocab: Vocab,
    text: str,
    ids_np: np.ndarray,
    ids: Tensor,
    run: _Pass,
    log_probs: Tensor,
    probs: Tensor,
    top_k: int,
    G_T: Tensor | None,
    no_recurrence: NoRecurrence,
) -> ProbeResult:
    T = len(ids_np)
    k = min(top_k, model.vocab_size)
    topk_probs, topk_ids = torch.topk(probs, k, dim=-1)  # sorted, most likely first

    step_loss = torch.full((T,), math.nan, dtype=log_probs.dtype, device=log_probs.device)
    if T > 1:
        step_loss[:-1] = -log_probs[:-1].gather(1, ids[1:, None])[:, 0]

    activation = _activation(model)
    H = model.hidden_size
    both = model.config.bidirectional
    hidden_np = _to_numpy(run.hidden[:, :H] if both else run.hidden)
    cells = run.cells
    return ProbeResult(
        text=text,
        vocab_tokens=tuple(vocab.tokens),
        kind=model.kind,
        activation=activation,
        tokens=frozen_array(ids_np, dtype=np.int64),
        unknown=tuple(vocab.unknown_positions(text)),
        hidden=hidden_np,
        cell=None if cells is None else _to_numpy(cells[:, :H] if both else cells),
        probs=_to_numpy(probs),
        topk_ids=frozen_array(topk_ids.cpu().numpy(), dtype=np.int64),
        topk_probs=_to_numpy(topk_probs),
        step_loss=_to_numpy(step_loss),
        surprisal_bits=_to_numpy(step_loss / math.log(2.0)),
        grad_flow=None if G_T is None else _to_numpy(G_T.t()),
        hidden_levels=_hidden_levels(activation, _to_numpy(run.hidden) if both else hidden_np),
        no_recurrence=no_recurrence,
        gates=run.gates,
        hidden_reverse=_to_numpy(run.hidden[:, H:]) if both else None,
        cell_reverse=None if cells is None or not both else _to_numpy(cells[:, H:]),
        layer_hidden=None if run.layers is None else tuple(_to_numpy(h) for h in run.layers),
    )


def probe(
    model: CharModel,
    vocab: Vocab,
    text: str,
    top_k: int = 5,
    with_grad_flow: bool = True,
) -> ProbeResult:
    """Read ``text`` from a zero state and measure every step. Does not change the model.

    For one text at a time; ``Prober`` probes a changing text and reuses what did not change.
    """
    return Prober(model, vocab).probe(text, top_k=top_k, with_grad_flow=with_grad_flow)


@torch.no_grad()
def hidden_jacobian_norms(model: CharModel, vocab: Vocab, text: str, t: int) -> np.ndarray:
    """(t+1,) ``||dH_t/dH_k||_F`` for k = 0..t; k = t is the identity, norm sqrt(H).

    Propagates the rows of the identity (one per unit of H_t) backwards through the same
    per-step vector-Jacobian product as the gradient flow; row i of the result at step k is
    dH_t[i]/dH_k. For the scratch RNN that is the product of diag(phi'(A_j)) W_hh^T.
    """
    ids_np = _encode(vocab, text)
    _check_vocab(model, vocab)
    if not 0 <= t < len(ids_np):
        raise ValueError(f"step {t} is outside the text (0..{len(ids_np) - 1})")
    if model.config.bidirectional:
        raise ValueError("dH_t/dH_k runs along one direction; this model is bidirectional")
    ids = torch.from_numpy(ids_np[: t + 1]).to(model.device)
    inputs = None
    if isinstance(model, GRUModel | LSTMModel) and model.num_layers > 1:
        run = _run(model, ids)
        hidden, cells = run.hidden, run.cells
        assert run.gates is not None
        inputs = _layer_input(run.gates, hidden)
    else:
        _, hidden, cells = _forward(model, ids)
    H = hidden.shape[1]
    back = back_step(model, ids, hidden, cells, inputs)
    Mh = torch.eye(H, dtype=hidden.dtype, device=hidden.device)
    # dH_t/dc_t is not a term here: H_t is the step's output, c_t one of its siblings
    Mc: Tensor | None = torch.zeros_like(Mh) if cells is not None else None
    norms = torch.zeros(t + 1, dtype=hidden.dtype, device=hidden.device)
    norms[t] = torch.linalg.matrix_norm(Mh)
    for k in range(t - 1, -1, -1):
        Mh, Mc = back(k, Mh, Mc)
        norms[k] = torch.linalg.matrix_norm(Mh)
    return _to_numpy(norms)


def grad_flow_to_distance(G: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """The curve ``||dL_t/dH_k||`` against ``t - k``: (distances 0..t, G[t, t - distance]).

    The last row of a probe's G is zero (no next character, no loss), so pick t < T - 1.
    """
    if G.ndim != 2 or G.shape[0] != G.shape[1]:
        raise ValueError(f"expected a square (T, T) gradient-flow matrix, got shape {G.shape}")
    if not 0 <= t < G.shape[0]:
        raise ValueError(f"step {t} is outside 0..{G.shape[0] - 1}")
    distances = np.arange(t + 1, dtype=np.int64)
    return frozen_array(distances), frozen_array(G[t, t - distances])


@torch.no_grad()
def step_ids(model: CharModel, vocab: Vocab, text: str, t: int) -> tuple[np.ndarray, Tensor]:
    """The text's token ids (NumPy, and on the model's device) for a step view of step ``t``,
    after the checks every step view makes (the vocabulary fits, ``t`` is in the text)."""
    ids_np = _encode(vocab, text)
    _check_vocab(model, vocab)
    if not 0 <= t < len(ids_np):
        raise ValueError(f"step {t} is outside the text (0..{len(ids_np) - 1})")
    return ids_np, torch.from_numpy(ids_np).to(model.device)


@torch.no_grad()
def step_detail(
    model: CharModel,
    vocab: Vocab,
    text: str,
    t: int,
    layer: int | None = None,
    direction: Direction = "forward",
) -> StepDetail:
    """Step t of the scratch (or fast) RNN, term by term, for the Step view. ``layer``: of
    stacked layers, from 0 (the bottom one); None is the top one, which the output reads.
    ``direction``: of a bidirectional RNN (one layer), "reverse" is its recurrence over the
    flipped text, whose step t reads H_{t+1}."""
    if not isinstance(model, ScratchRNN):
        raise ValueError(
            f"the step view shows the scratch RNN's equation; a {model.kind.upper()} has gates"
            " instead of W_xh, W_hh and b_h"
        )
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'forward' or 'reverse', not {direction!r}")
    if direction == "reverse" and not model.bidirectional:
        raise ValueError("this RNN has one direction: no reverse one to show")
    L = model.num_layers
    layer = L - 1 if layer is None else layer
    if not 0 <= layer < L:
        raise ValueError(f"no layer {layer + 1}: this RNN has {L} layer(s)")
    ids_np, ids = step_ids(model, vocab, text, t)
    T = len(ids_np)
    H = model.hidden_size
    output_input: Tensor | None = None
    W_xh: Tensor
    W_hh: Tensor
    b_h: Tensor
    if model.bidirectional:
        # one layer (the config refuses a stacked bidirectional scratch RNN); the reverse
        # state at t depends on the characters after t, so the whole text
        reverse = direction == "reverse"
        if reverse:
            W_xh, W_hh, b_h = (model.get_parameter(n) for n in REVERSE_SCRATCH_NAMES)
        else:
            W_xh, W_hh, b_h = model.layer_params(0)
        _, both, _ = model(ids[None], zero_state(model))
        output_input = both[0, t]  # [H_fwd_t ; H_rev_t]
        own = both[0, :, H:] if reverse else both[0, :, :H]
        before = t + 1 if reverse else t - 1
        H_prev = own[before] if 0 <= before < T else torch.zeros_like(own[0])
        layer_in = nn.functional.one_hot(ids[t], model.vocab_size).to(W_xh.dtype)
        X_t = layer_in
        O_t = output_input @ model.W_hq + model.b_q
    else:
        W_xh, W_hh, b_h = model.layer_params(layer)
        # every layer's H over steps 0..t, one pass: H_{t-1} of this layer, H_t of the one below
        seqs = [h[0] for h in model.layer_hiddens(ids[None, : t + 1])]
        if t > 0:
            H_prev = seqs[layer][t - 1]
        else:
            H_prev = torch.zeros(H, dtype=W_hh.dtype, device=model.device)
        X_t = nn.functional.one_hot(ids[t], model.vocab_size).to(W_xh.dtype)
        # layer 0: the slides' matmul with the one-hot row (the model uses the equal row lookup)
        layer_in = X_t if layer == 0 else seqs[layer - 1][t]
        O_t = seqs[-1][t] @ model.W_hq + model.b_q
    xW = layer_in @ W_xh
    hW = H_prev @ W_hh
    pre = xW + hW + b_h
    H_t = model.phi(pre)
    concat = torch.cat([layer_in, H_prev]) @ torch.cat([W_xh, W_hh], dim=0)
    token_id = int(ids_np[t])
    return StepDetail(
        t=t,
        char=text[t],
        next_char=text[t + 1] if t + 1 < T else None,
        token_id=token_id,
        token=vocab.tokens[token_id],
        activation=model.config.activation,
        X_t=_to_numpy(X_t),
        H_prev=_to_numpy(H_prev),
        xW=_to_numpy(xW),
        hW=_to_numpy(hW),
        b_h=_to_numpy(b_h),
        pre_activation=_to_numpy(pre),
        H_t=_to_numpy(H_t),
        O_t=_to_numpy(O_t),
        softmax=_to_numpy(torch.softmax(O_t, dim=-1)),
        concat=_to_numpy(concat),
        concat_max_abs_diff=float((concat - (xW + hW)).detach().abs().max()),
        layer=layer,
        num_layers=L,
        layer_input=None if L == 1 else _to_numpy(layer_in),
        direction=direction,
        bidirectional=bool(model.bidirectional),
        output_input=None if output_input is None else _to_numpy(output_input),
    )


def generate(
    model: CharModel,
    vocab: Vocab,
    prefix: str,
    num_chars: int,
    temperature: float = 0.0,
    seed: int = 0,
) -> str:
    """d2l's ``predict``: warm up on ``prefix``, then extend it by ``num_chars`` characters.

    temperature 0 picks the most likely character (greedy, as the book does); above 0 samples
    from softmax(logits / temperature) with a generator seeded by ``seed``, so the same call
    gives the same text. The text of ``core.generation.generate_detail``, the one
    implementation; a prefix character outside the vocabulary is read as ``<unk>`` here, as
    it always was (``rnnviz sample`` warns about it first).
    """
    return generate_detail(
        model, vocab, prefix, num_chars, temperature, seed=seed, allow_unknown=True
    ).text


def model_from_params(
    config: ModelConfig, vocab_size: int, params: dict[str, np.ndarray], *, share: bool = False
) -> CharModel:
    """Rebuild a CPU model in eval mode from a parameter snapshot (state_dict names).

    ``share``: the model's tensors are ``params``' own arrays, not copies of them, for a
    caller that only reads the weights (no optimizer, no_grad): the many models a scrubbed
    timeline keeps then cost no memory beyond the snapshot store's. Torch would write into
    the arrays, read-only flag or not, so nothing may train such a model.
    """
    model = build_model(vocab_size, config, seed=0)
    if share:
        with warnings.catch_warnings():
            # the store's arrays are read-only; torch warns that it cannot mark a tensor so
            warnings.simplefilter("ignore", UserWarning)
            tensors = {name: torch.from_numpy(a) for name, a in params.items()}
    else:
        tensors = {name: torch.from_numpy(np.array(a, copy=True)) for name, a in params.items()}
    try:
        model.load_state_dict(tensors, strict=True, assign=share)
    except RuntimeError as exc:  # missing, unexpected or mis-shaped parameters
        raise ValueError(
            f"the parameters do not fit a {config.kind} model with hidden size "
            f"{config.hidden_size} and {vocab_size} tokens: {exc}"
        ) from exc
    model.eval()
    return model


def params_to_numpy(model: nn.Module) -> dict[str, np.ndarray]:
    """The inverse of ``model_from_params``: state_dict as read-only CPU NumPy copies."""
    return {name: _to_numpy(t) for name, t in model.state_dict().items()}
