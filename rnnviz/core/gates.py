"""The gates of a GRU or LSTM, step by step: what PyTorch's fused kernel computes but never shows.

``torch.nn.LSTM`` and ``torch.nn.GRU`` return only the hidden states (and the last cell state).
This module recomputes every layer and direction one step at a time with the module's own
weights and records the gates, the candidate and the states, exactly as PyTorch defines them
(the tests check them against ``nn.LSTMCell``/``nn.GRUCell`` and the module's outputs to 1e-5).

Conventions: row vectors, as in the d2l chapter. PyTorch stores ``weight_ih`` as (G*H, I) with
the gates stacked in the order below, so ``x W_i`` here is ``x @ weight_ih[i-rows].T``.

LSTM, gate order i, f, g, o (d2l: I_t, F_t, C~_t, O_t)::

    i_t = sigmoid(x_t W_ii + b_ii + h_{t-1} W_hi + b_hi)     # input gate
    f_t = sigmoid(x_t W_if + b_if + h_{t-1} W_hf + b_hf)     # forget gate
    g_t = tanh(x_t W_ig + b_ig + h_{t-1} W_hg + b_hg)        # candidate cell
    o_t = sigmoid(x_t W_io + b_io + h_{t-1} W_ho + b_ho)     # output gate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    h_t = o_t ⊙ tanh(c_t)

GRU, gate order r, z, n::

    r_t = sigmoid(x_t W_ir + b_ir + h_{t-1} W_hr + b_hr)     # reset gate
    z_t = sigmoid(x_t W_iz + b_iz + h_{t-1} W_hz + b_hz)     # update gate
    n_t = tanh(x_t W_in + b_in + r_t ⊙ (h_{t-1} W_hn + b_hn))  # candidate
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

PyTorch applies the reset gate *after* the product with W_hn (and to its bias b_hn); d2l's
candidate is tanh(X_t W_xh + (R_t ⊙ H_{t-1}) W_hh + b_h), the reset gate *before* the product.
The two are different functions of the same weights; these arrays are PyTorch's, the ones the
model computes. The update rule is the same in both.

A reverse direction reads the text from its end, but its arrays are indexed by position like
the forward ones: row t is the reverse direction's value at character t (after it has read
characters T-1 .. t), so every array lines up with the text. Layer l > 0 reads the outputs h of
layer l-1, both directions concatenated (forward first) when bidirectional. Inter-layer dropout
is not applied (what the module computes in ``eval()`` mode); ``proj_size`` is not supported.

API (every array a read-only float32 NumPy copy on the CPU)::

    rnn_gates(rnn, x, state=None) -> GateRecord        # x (T, input_size), one sequence
    model_gates(model, tokens, state=None) -> GateRecord  # rnnviz GRUModel/LSTMModel, tokens (T,)
    record.trace(layer=0, direction="forward") -> GateTrace
    record.flat() -> {"l0.forward.f": (T, H), ...}      # gate_key(layer, direction, name)
    record.flat_descriptions() -> {"l0.forward.f": "forget gate f_t (sigmoid)", ...}
    record.output() -> (T, D*H)                         # = rnn(x, state)[0]
    trace[name] / trace.values[name], trace.descriptions[name], trace.levels[name]
    trace.carry -> (T, H)                               # f for the LSTM, z for the GRU
    trace.retention(unit), trace.mean_retention()       # on trace.carry, its own direction

    saturation(values) -> Saturation(left, right, count)  # (..., H) sigmoid gate values
    rnn_saturation(rnn, x, state=None) -> {key: Saturation}   # x batched, as rnn(x) takes it
    model_saturation(model, tokens, state=None) -> {key: Saturation}  # tokens (B, T)

    retention(carry, unit, direction="forward") -> (T, T)   # carry (T, H): f or z
    mean_retention(carry, direction="forward") -> (T, T)    # T^2 H / 2 exps

Names: LSTM ``i f g o c h``, GRU ``r z n h`` (PyTorch's letters). Levels are fixed colour
levels for a heatmap: (0, 1) for sigmoid gates, (-1, 1) for tanh values and h; the cell state
has no bound, so its levels are (-m, m) with m the largest |c_t| of that trace (1 if all zero).

Saturation (Karpathy, Johnson & Fei-Fei 2015, "Visualizing and Understanding Recurrent
Networks"): per unit, the fraction of steps at which a sigmoid gate is below
:data:`LEFT_SATURATION` (left-saturated, "closed") or above :data:`RIGHT_SATURATION`
(right-saturated, "open"). The batched versions run all sequences at once (in chunks that keep
memory bounded), not one by one.

Retention: how much of the carried state at step k is still multiplied into step t, along the
carry path alone: R[t, k] = prod_{s=k+1..t} f_s for the LSTM's cell (c_t = f_t ⊙ c_{t-1} + ...),
the same with z_s for the GRU's h (the coefficient of h_{t-1} in h_t). R[t, t] = 1 and
R[t, k] = 0 for k > t. For a reverse direction the carry runs the other way:
R[t, k] = prod_{s=t..k-1} f_s for k >= t, 0 below the diagonal. Computed from sums of logs in
float64 with the exact zeros of the gates (sigmoid underflows to 0 in float32) counted apart,
so a zero factor gives exactly 0 and never NaN.

Cost: one input-projection matmul per layer and direction for all steps at once, then a Python
loop over steps with one (B, H) x (H, G*H) matmul each, under ``torch.no_grad``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from rnnviz.core.messages import frozen_array
from rnnviz.core.model import CharModel, GRUModel, LSTMModel, State

GateKind = Literal["lstm", "gru"]
Direction = Literal["forward", "reverse"]
DIRECTIONS: tuple[Direction, Direction] = ("forward", "reverse")

LSTM_NAMES: tuple[str, ...] = ("i", "f", "g", "o", "c", "h")
GRU_NAMES: tuple[str, ...] = ("r", "z", "n", "h")
# the gates in (0, 1): the ones saturation is about
SIGMOID_GATES: Mapping[str, tuple[str, ...]] = {"lstm": ("i", "f", "o"), "gru": ("r", "z")}
# the gate that multiplies the carried state: c_{t-1} for the LSTM, h_{t-1} for the GRU
CARRY_GATE: Mapping[str, str] = {"lstm": "f", "gru": "z"}

DESCRIPTIONS: Mapping[str, Mapping[str, str]] = {
    "lstm": {
        "i": "input gate i_t (sigmoid)",
        "f": "forget gate f_t (sigmoid)",
        "g": "candidate cell g_t (tanh)",
        "o": "output gate o_t (sigmoid)",
        "c": "cell state c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t (unbounded)",
        "h": "hidden state h_t = o_t ⊙ tanh(c_t)",
    },
    "gru": {
        "r": "reset gate r_t (sigmoid)",
        "z": "update gate z_t (sigmoid)",
        "n": "candidate n_t = tanh(x W_in + b_in + r_t ⊙ (h_{t-1} W_hn + b_hn))",
        "h": "hidden state h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}",
    },
}

SIGMOID_LEVELS = (0.0, 1.0)
TANH_LEVELS = (-1.0, 1.0)

# Karpathy et al. 2015: a gate below 0.1 is left-saturated, above 0.9 right-saturated
LEFT_SATURATION = 0.1
RIGHT_SATURATION = 0.9

# elements of one (B, T, D*H) array per chunk of a batched run: about 32 MiB of float32
_CHUNK_ELEMENTS = 8 * 2**20
# elements of the (T, T, units) float64 block of mean_retention: about 32 MiB
_RETENTION_ELEMENTS = 4 * 2**20


def gate_key(layer: int, direction: str, name: str) -> str:
    """The flat key of one array, as in JSON output: ``gate_key(0, "forward", "f")`` is
    ``"l0.forward.f"``."""
    return f"l{layer}.{direction}.{name}"


@dataclass(frozen=True)
class GateTrace:
    """One layer and direction of one sequence: every gate and state at every step.

    ``values[name]`` is (T, H) float32, read-only; row t is position t of the text.
    """

    kind: GateKind
    layer: int
    direction: Direction
    values: Mapping[str, np.ndarray]
    descriptions: Mapping[str, str]
    levels: Mapping[str, tuple[float, float]]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.values)

    @property
    def carry(self) -> np.ndarray:
        """(T, H) the gate on the carried state: f (LSTM) or z (GRU)."""
        return self.values[CARRY_GATE[self.kind]]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]

    def retention(self, unit: int) -> np.ndarray:
        """(T, T) retention of one unit along this trace's carry path (see ``retention``)."""
        return retention(self.carry, unit, self.direction)

    def mean_retention(self) -> np.ndarray:
        """(T, T) retention averaged over the units (see ``mean_retention``)."""
        return mean_retention(self.carry, self.direction)


@dataclass(frozen=True)
class GateRecord:
    """Every layer and direction of one sequence; ``traces`` in PyTorch's order (layer-major,
    forward before reverse), as ``h_n`` is laid out."""

    kind: GateKind
    num_layers: int
    bidirectional: bool
    traces: tuple[GateTrace, ...]

    @property
    def directions(self) -> tuple[Direction, ...]:
        return DIRECTIONS if self.bidirectional else DIRECTIONS[:1]

    def trace(self, layer: int = 0, direction: Direction = "forward") -> GateTrace:
        if not 0 <= layer < self.num_layers or direction not in self.directions:
            raise KeyError(
                f"no layer {layer} {direction}: the model has {self.num_layers} layer(s), "
                f"directions {', '.join(self.directions)}"
            )
        return self.traces[layer * len(self.directions) + self.directions.index(direction)]

    def flat(self) -> dict[str, np.ndarray]:
        """Every array under its ``gate_key``: ``{"l0.forward.i": (T, H), ...}``."""
        return {
            gate_key(tr.layer, tr.direction, name): array
            for tr in self.traces
            for name, array in tr.values.items()
        }

    def flat_descriptions(self) -> dict[str, str]:
        """The description of every array of ``flat()``, under the same keys."""
        return {
            gate_key(tr.layer, tr.direction, name): text
            for tr in self.traces
            for name, text in tr.descriptions.items()
        }

    def output(self) -> np.ndarray:
        """(T, D*H) the top layer's h, directions concatenated: the module's output."""
        top = self.num_layers - 1
        return frozen_array(np.concatenate([self.trace(top, d)["h"] for d in self.directions], 1))


@dataclass(frozen=True)
class Saturation:
    """Per unit, the fraction of the ``count`` values counted that were saturated."""

    left: np.ndarray  # (H,) float64 fraction < LEFT_SATURATION
    right: np.ndarray  # (H,) float64 fraction > RIGHT_SATURATION
    count: int  # values counted per unit (steps x sequences)

    @property
    def neither(self) -> np.ndarray:
        """(H,) the fraction of values in [LEFT_SATURATION, RIGHT_SATURATION] (or NaN)."""
        return frozen_array(1.0 - self.left - self.right)


# ----------------------------------------------------------------------------- computation


def _kind(rnn: nn.Module) -> GateKind:
    if isinstance(rnn, nn.LSTM):
        if rnn.proj_size:
            raise ValueError("an LSTM with proj_size > 0 is not supported")
        return "lstm"
    if isinstance(rnn, nn.GRU):
        return "gru"
    raise TypeError(f"expected torch.nn.LSTM or torch.nn.GRU, not {type(rnn).__name__}")


def _weights(
    rnn: nn.RNNBase, layer: int, direction: int
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    sfx = f"_l{layer}" + ("_reverse" if direction else "")
    w_ih: Tensor = getattr(rnn, "weight_ih" + sfx)
    w_hh: Tensor = getattr(rnn, "weight_hh" + sfx)
    b_ih: Tensor | None = getattr(rnn, "bias_ih" + sfx) if rnn.bias else None
    b_hh: Tensor | None = getattr(rnn, "bias_hh" + sfx) if rnn.bias else None
    return w_ih, w_hh, b_ih, b_hh


def _steps(T: int, reverse: bool) -> range:
    return range(T - 1, -1, -1) if reverse else range(T)


def _lstm_steps(
    proj: Tensor, w_hh: Tensor, b_hh: Tensor | None, h: Tensor, c: Tensor, reverse: bool
) -> dict[str, Tensor]:
    T, B, G = proj.shape
    H = G // 4
    if b_hh is not None:
        proj = proj + b_hh  # both biases are added before the nonlinearity: fold them once
    w = w_hh.t()
    act = proj.new_empty(T, B, G)  # i, f, g, o side by side, as in weight_ih
    cs = proj.new_empty(T, B, H)
    hs = proj.new_empty(T, B, H)
    for t in _steps(T, reverse):
        a = torch.addmm(proj[t], h, w)
        gates = act[t]
        torch.sigmoid(a, out=gates)
        gates[:, 2 * H : 3 * H] = torch.tanh(a[:, 2 * H : 3 * H])
        i, f, g, o = gates.chunk(4, 1)
        c = torch.addcmul(f * c, i, g, out=cs[t])
        h = torch.mul(o, torch.tanh(c), out=hs[t])
    i, f, g, o = act.chunk(4, 2)
    return {"i": i, "f": f, "g": g, "o": o, "c": cs, "h": hs}


def _gru_steps(
    proj: Tensor, w_hh: Tensor, b_hh: Tensor | None, h: Tensor, reverse: bool
) -> dict[str, Tensor]:
    T, B, G = proj.shape
    H = G // 3
    w = w_hh.t()
    rz_all = proj.new_empty(T, B, 2 * H)
    ns = proj.new_empty(T, B, H)
    hs = proj.new_empty(T, B, H)
    for t in _steps(T, reverse):
        ah = h @ w if b_hh is None else torch.addmm(b_hh, h, w)
        ax = proj[t]
        rz = torch.sigmoid(ax[:, : 2 * H] + ah[:, : 2 * H], out=rz_all[t])
        r, z = rz.chunk(2, 1)
        # the reset gate multiplies h W_hn + b_hn, after the product (PyTorch, not d2l)
        n = torch.tanh(torch.addcmul(ax[:, 2 * H :], r, ah[:, 2 * H :]), out=ns[t])
        h = torch.lerp(n, h, z, out=hs[t])  # n + z (h - n) = (1 - z) n + z h
    r, z = rz_all.chunk(2, 2)
    return {"r": r, "z": z, "n": ns, "h": hs}


@torch.no_grad()
def _gate_tensors(
    rnn: nn.RNNBase,
    kind: GateKind,
    x: Tensor | None,
    tokens: Tensor | None,
    h0: Tensor | None,
    c0: Tensor | None,
) -> list[dict[str, Tensor]]:
    """Time-major: ``x`` (T, B, I) or one-hot ``tokens`` (T, B); ``h0``/``c0`` (L*D, B, H) or
    None (zeros). One dict name -> (T, B, H) per layer and direction, in PyTorch's order."""
    weight = rnn.get_parameter("weight_ih_l0")
    D = 2 if rnn.bidirectional else 1
    H = rnn.hidden_size
    if tokens is not None:
        B = tokens.shape[1]
    else:
        assert x is not None
        B = x.shape[1]
        x = x.to(device=weight.device, dtype=weight.dtype)
    zeros = torch.zeros(B, H, device=weight.device, dtype=weight.dtype)
    out: list[dict[str, Tensor]] = []
    layer_in = x
    for layer in range(rnn.num_layers):
        outputs = []
        for d in range(D):
            w_ih, w_hh, b_ih, b_hh = _weights(rnn, layer, d)
            if layer == 0 and tokens is not None:
                # one-hot x_t times W: a row lookup, without a (T, B, V) tensor of zeros
                proj = w_ih.t()[tokens]
            else:
                assert layer_in is not None
                proj = layer_in @ w_ih.t()
            if b_ih is not None:
                proj = proj + b_ih
            k = layer * D + d
            h = zeros if h0 is None else h0[k].to(weight)
            if kind == "lstm":
                c = zeros if c0 is None else c0[k].to(weight)
                values = _lstm_steps(proj, w_hh, b_hh, h, c, reverse=d == 1)
            else:
                values = _gru_steps(proj, w_hh, b_hh, h, reverse=d == 1)
            out.append(values)
            outputs.append(values["h"])
        layer_in = outputs[0] if D == 1 else torch.cat(outputs, dim=-1)
    return out


def _split_state(
    rnn: nn.RNNBase, kind: GateKind, state: State | None, batch: int | None
) -> tuple[Tensor | None, Tensor | None]:
    """PyTorch's initial state, (L*D, H) unbatched (``batch`` None) or (L*D, B, H), as
    (L*D, B, H) tensors; an (h0, c0) pair for the LSTM."""
    if state is None:
        return None, None
    if kind == "lstm":
        if not isinstance(state, tuple) or len(state) != 2:
            raise TypeError("an LSTM's initial state is an (h0, c0) pair")
        h0, c0 = state
    else:
        if not isinstance(state, Tensor):
            raise TypeError("a GRU's initial state is one tensor h0")
        h0, c0 = state, None
    D = 2 if rnn.bidirectional else 1
    batch_dim = () if batch is None else (batch,)
    expected = (rnn.num_layers * D, *batch_dim, rnn.hidden_size)
    for name, s in (("h0", h0), ("c0", c0)):
        if s is not None and tuple(s.shape) != expected:
            raise ValueError(f"{name} must have shape {expected}, not {tuple(s.shape)}")
    if batch is None:
        return h0.unsqueeze(1), None if c0 is None else c0.unsqueeze(1)
    return h0, c0


def gate_levels(kind: GateKind, name: str, values: np.ndarray) -> tuple[float, float]:
    """Fixed colour levels of gate ``name`` (see the module doc): (0, 1), (-1, 1), or the
    cell state's (-m, m) from ``values``."""
    if name in SIGMOID_GATES[kind]:
        return SIGMOID_LEVELS
    if name != "c":
        return TANH_LEVELS
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if finite.size else 0.0
    top = top if top > 0.0 else 1.0  # all zeros: a scale of width 0 would draw nothing
    return (-top, top)


def _record(rnn: nn.RNNBase, kind: GateKind, tensors: list[dict[str, Tensor]]) -> GateRecord:
    D = 2 if rnn.bidirectional else 1
    traces = []
    for k, named in enumerate(tensors):
        values = {
            name: frozen_array(t[:, 0].detach().to("cpu", torch.float32).numpy())
            for name, t in named.items()
        }
        traces.append(
            GateTrace(
                kind=kind,
                layer=k // D,
                direction=DIRECTIONS[k % D],
                values=values,
                descriptions=dict(DESCRIPTIONS[kind]),
                levels={name: gate_levels(kind, name, v) for name, v in values.items()},
            )
        )
    return GateRecord(kind, rnn.num_layers, rnn.bidirectional, tuple(traces))


def rnn_gates(rnn: nn.LSTM | nn.GRU, x: Tensor, state: State | None = None) -> GateRecord:
    """Every gate and state of ``rnn`` reading one sequence ``x`` (T, input_size).

    ``state`` is what ``rnn(x, state)`` takes for an unbatched ``x``: h0 (L*D, H) for the GRU,
    (h0, c0) for the LSTM; None means zeros. ``batch_first`` does not matter for one sequence.
    """
    kind = _kind(rnn)
    if x.dim() != 2 or x.shape[1] != rnn.input_size:
        raise ValueError(f"x must have shape (T, {rnn.input_size}), not {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("the sequence is empty")
    h0, c0 = _split_state(rnn, kind, state, None)
    return _record(rnn, kind, _gate_tensors(rnn, kind, x[:, None], None, h0, c0))


def _model_rnn(model: CharModel) -> nn.LSTM | nn.GRU:
    if not isinstance(model, GRUModel | LSTMModel):
        raise TypeError(f"gates exist for GRU and LSTM models, not {model.kind!r}")
    rnn = model.rnn
    assert isinstance(rnn, nn.LSTM | nn.GRU)
    return rnn


def _tokens(model: CharModel, tokens: Tensor | np.ndarray, dims: int) -> Tensor:
    ids = torch.as_tensor(tokens)
    if ids.dim() != dims or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(f"tokens must be a {dims}-d integer array, not {ids.dtype} {ids.shape}")
    if ids.numel() == 0:
        raise ValueError("the sequence is empty")
    if int(ids.min()) < 0 or int(ids.max()) >= model.vocab_size:
        raise ValueError(f"token ids must be in 0..{model.vocab_size - 1}")
    return ids.to(device=model.device, dtype=torch.int64)


def _state_layers(rnn: nn.RNNBase) -> int:
    return rnn.num_layers * (2 if rnn.bidirectional else 1)


def _model_state(state: State | None, batch: int, layers: int = 1) -> State | None:
    """rnnviz's state, (B, H) (or (L*D, B, H) for L stacked layers or D = 2 directions) or an
    (h, c) pair as ``model.forward`` takes it, in PyTorch's (L*D, B, H) layout; ``layers`` is
    L*D."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return (state[0].reshape(layers, batch, -1), state[1].reshape(layers, batch, -1))
    return state.reshape(layers, batch, -1)


def model_gates(
    model: CharModel, tokens: Tensor | np.ndarray, state: State | None = None
) -> GateRecord:
    """``rnn_gates`` for rnnviz's ``GRUModel``/``LSTMModel`` reading ``tokens`` (T,) int64.

    ``state`` is the model's own, for a batch of one: (1, H), or an (h, c) pair for the LSTM;
    None means zeros. The one-hot input is never built (its product is a row lookup).
    """
    rnn = _model_rnn(model)
    kind = _kind(rnn)
    ids = _tokens(model, tokens, 1)
    h0, c0 = _split_state(rnn, kind, _model_state(state, 1, _state_layers(rnn)), 1)
    return _record(rnn, kind, _gate_tensors(rnn, kind, None, ids[:, None], h0, c0))


# ------------------------------------------------------------------------------ saturation


def _counts(values: Tensor) -> tuple[Tensor, Tensor]:
    flat = values.reshape(-1, values.shape[-1])
    return (flat < LEFT_SATURATION).sum(0), (flat > RIGHT_SATURATION).sum(0)


def _saturation(left: Tensor, right: Tensor, count: int) -> Saturation:
    return Saturation(
        left=frozen_array(left.cpu().numpy() / count, dtype=np.float64),
        right=frozen_array(right.cpu().numpy() / count, dtype=np.float64),
        count=count,
    )


def saturation(values: np.ndarray | Tensor) -> Saturation:
    """Saturation of a sigmoid gate: ``values`` (T, H), or (B, T, H) for several sequences (any
    leading dimensions); every value counts once. NaN counts as neither saturated."""
    v = torch.as_tensor(np.asarray(values) if not isinstance(values, Tensor) else values)
    if v.dim() < 1 or v.numel() == 0:
        raise ValueError("no values to count")
    left, right = _counts(v)
    return _saturation(left, right, v.numel() // v.shape[-1])


def _batched_saturation(
    rnn: nn.LSTM | nn.GRU,
    kind: GateKind,
    x: Tensor | None,
    tokens: Tensor | None,
    h0: Tensor | None,
    c0: Tensor | None,
) -> dict[str, Saturation]:
    """Time-major inputs as for ``_gate_tensors``; sequences in chunks, counts summed."""
    seq = tokens if tokens is not None else x
    assert seq is not None
    T, B = seq.shape[0], seq.shape[1]
    D = 2 if rnn.bidirectional else 1
    chunk = max(1, _CHUNK_ELEMENTS // (T * D * rnn.hidden_size))
    names = SIGMOID_GATES[kind]
    totals: dict[str, list[Tensor]] = {}
    for start in range(0, B, chunk):
        part = slice(start, start + chunk)
        tensors = _gate_tensors(
            rnn,
            kind,
            None if x is None else x[:, part],
            None if tokens is None else tokens[:, part],
            None if h0 is None else h0[:, part],
            None if c0 is None else c0[:, part],
        )
        for k, named in enumerate(tensors):
            for name in names:
                key = gate_key(k // D, DIRECTIONS[k % D], name)
                left, right = _counts(named[name])
                if key in totals:
                    totals[key][0] += left
                    totals[key][1] += right
                else:
                    totals[key] = [left, right]
    return {key: _saturation(left, right, T * B) for key, (left, right) in totals.items()}


def rnn_saturation(
    rnn: nn.LSTM | nn.GRU, x: Tensor, state: State | None = None
) -> dict[str, Saturation]:
    """Saturation of every sigmoid gate of ``rnn`` over a batch, keyed by ``gate_key``.

    ``x`` and ``state`` are batched, as ``rnn(x, state)`` takes them: (B, T, I) if
    ``batch_first`` else (T, B, I); h0 (L*D, B, H), or (h0, c0) for the LSTM.
    """
    kind = _kind(rnn)
    if x.dim() != 3 or x.shape[2] != rnn.input_size:
        raise ValueError(f"x must be batched with {rnn.input_size} features, not {x.shape}")
    xt = x.transpose(0, 1) if rnn.batch_first else x
    if xt.shape[0] == 0 or xt.shape[1] == 0:
        raise ValueError("the batch is empty")
    h0, c0 = _split_state(rnn, kind, state, xt.shape[1])
    return _batched_saturation(rnn, kind, xt, None, h0, c0)


def model_saturation(
    model: CharModel, tokens: Tensor | np.ndarray, state: State | None = None
) -> dict[str, Saturation]:
    """Saturation of the gates of rnnviz's GRU/LSTM reading ``tokens`` (B, T), e.g. a
    validation batch; ``state`` as ``model.forward`` takes it ((B, H) or an (h, c) pair)."""
    rnn = _model_rnn(model)
    kind = _kind(rnn)
    ids = _tokens(model, tokens, 2)
    B = ids.shape[0]
    h0, c0 = _split_state(rnn, kind, _model_state(state, B, _state_layers(rnn)), B)
    return _batched_saturation(rnn, kind, None, ids.t(), h0, c0)


# ------------------------------------------------------------------------------- retention


def _log_carry(carry: np.ndarray | Tensor, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """Per step and unit, in forward order: the running sum of log gate over the nonzero gates
    and the running count of exact zeros. R[t, k] = exp(L[t] - L[k]) where Z[t] == Z[k]."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'forward' or 'reverse', not {direction!r}")
    a = carry.detach().cpu().numpy() if isinstance(carry, Tensor) else np.asarray(carry)
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"carry must be a (T, H) array, not shape {a.shape}")
    a = a.astype(np.float64)
    if direction == "reverse":
        a = a[::-1]
    zero = a == 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(zero, 0.0, np.log(np.where(zero, 1.0, a)))
    return np.cumsum(logs, axis=0), np.cumsum(zero, axis=0)


def _retention_block(L: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """(T, U) running sums -> (T, T, U) retention, forward order."""
    T = L.shape[0]
    diff = L[:, None, :] - L[None, :, :]
    # a product of factors <= 1 is <= 1; rounding of the sums must not make it exceed 1, and
    # the upper triangle (masked anyway) must not overflow exp
    R = np.exp(np.minimum(diff, 0.0))
    lower = np.tril(np.ones((T, T), dtype=bool))[:, :, None]
    return np.where(lower & (Z[:, None, :] == Z[None, :, :]), R, 0.0)


def _oriented(R: np.ndarray, direction: str) -> np.ndarray:
    # the reverse carry was computed on the flipped sequence; flip both axes back to positions
    out = R[::-1, ::-1] if direction == "reverse" else R
    return frozen_array(out, dtype=np.float32)


def _row_factors(values: np.ndarray, t: int, direction: str) -> np.ndarray:
    """The carry gates a row's products run over, nearest first: f_t, f_{t-1}, ..., f_1
    forward (R[t, k] = prod_{s=k+1..t}); f_t, f_{t+1}, ..., f_{T-2} reverse (R[t, k] =
    prod_{s=t..k-1} for k > t)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'forward' or 'reverse', not {direction!r}")
    if not 0 <= t < len(values):
        raise IndexError(f"row {t} out of range 0..{len(values) - 1}")
    return values[t:0:-1] if direction == "forward" else values[t : len(values) - 1]


def mean_retention_row(carry: np.ndarray, t: int, direction: str = "forward") -> np.ndarray:
    """Row t of ``mean_retention`` indexed by the distance: forward (t + 1,), d = t - k, entry
    d the mean over units of the carry gate's product from step t - d + 1 to t (1 at d = 0);
    reverse (T - t,), d = k - t, the product from step t to t + d - 1. What the gradient-flow
    view draws beside its row: cumulative products, not the T^2 H / 2 exps of the whole
    matrix, so a keystroke can afford it. float64."""
    values = np.asarray(carry, dtype=np.float64)
    factors = _row_factors(values, t, direction)
    out = np.ones(len(factors) + 1)
    if len(factors):
        out[1:] = np.cumprod(factors, axis=0).mean(axis=1)
    return out


def unit_retention_row(
    carry: np.ndarray, t: int, unit: int, direction: str = "forward"
) -> np.ndarray:
    """Row t of ``retention(carry, unit, direction)`` indexed by the distance, as
    ``mean_retention_row`` is for the mean: one unit's cumulative product. float64."""
    values = np.asarray(carry, dtype=np.float64)
    factors = _row_factors(values, t, direction)
    if not 0 <= unit < values.shape[1]:
        raise IndexError(f"unit {unit} out of range 0..{values.shape[1] - 1}")
    out = np.ones(len(factors) + 1)
    if len(factors):
        out[1:] = np.cumprod(factors[:, unit])
    return out


def retention_text(kind: str, distance: np.ndarray, kept: np.ndarray) -> str:
    """One line on the retention row: how much of the carried state the gates keep, on
    average, over the longest distance drawn."""
    gate = CARRY_GATE[kind]
    what = "c" if kind == "lstm" else "h"
    finite = np.isfinite(kept)
    if distance.size < 2 or not finite[1:].any():
        return f"····· retention: mean ∏ {gate}_s"
    far = int(np.flatnonzero(finite)[-1])
    share = kept[far]
    amount = f"{share:.1%}" if share >= 0.001 else f"{share:.1e}"
    # short: it shares a 1280x720 dock with the plots (the tooltip explains)
    return (
        f"····· retention: mean ∏ {gate}_s keeps {amount} of {what} over {int(distance[far])} steps"
    )


def retention(carry: np.ndarray | Tensor, unit: int, direction: str = "forward") -> np.ndarray:
    """(T, T) float32 R[t, k] of one unit: the product of the carry gate (f or z, ``carry``
    (T, H)) from step k+1 to t for the forward direction (see the module doc for reverse)."""
    L, Z = _log_carry(carry, direction)
    if not 0 <= unit < L.shape[1]:
        raise IndexError(f"unit {unit} out of range 0..{L.shape[1] - 1}")
    return _oriented(
        _retention_block(L[:, unit : unit + 1], Z[:, unit : unit + 1])[:, :, 0], direction
    )


def mean_retention(carry: np.ndarray | Tensor, direction: str = "forward") -> np.ndarray:
    """(T, T) float32 ``retention`` averaged over all units (T^2 H / 2 exps, in unit chunks)."""
    L, Z = _log_carry(carry, direction)
    T, U = L.shape
    chunk = max(1, _RETENTION_ELEMENTS // (T * T))
    total = np.zeros((T, T))
    for start in range(0, U, chunk):
        part = slice(start, start + chunk)
        total += _retention_block(L[:, part], Z[:, part]).sum(axis=2)
    return _oriented(total / U, direction)
