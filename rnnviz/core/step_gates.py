"""One time step of a GRU or LSTM, term by term, for the Step view.

``core.probe.step_detail`` shows the scratch RNN's H_t = φ(X_t W_xh + H_{t−1} W_hh + b_h); a
GRU or LSTM has gates instead. This module takes every gate of the step from
``core.gates.model_gates`` (PyTorch's own definitions, checked there against nn.LSTMCell and
nn.GRUCell) and adds the products a student adds up by eye, plus the model's output layer
O_t = h_t W_hq + b_q and its softmax.

Of L stacked layers, any layer l: its input is layer l−1's h_t (H wide) instead of the one-hot
x_t, and its h_{t−1}, c_{t−1} are its own. O_t and the softmax are always the top layer's h_t
times W_hq (what the model predicts from), whichever layer the rows show.

A bidirectional model (d2l 10.4) has a second recurrence per layer that reads the text from
its end: ``direction="reverse"`` shows it, and its step t reads h_{t+1}, c_{t+1} (its state
after reading characters T−1 .. t+1; zeros at the last character) where the forward one reads
h_{t−1}, c_{t−1}. The rows keep their keys ("h_prev" is the state the step reads, whichever
side it comes from). Layer l > 0 of a bidirectional model reads concat(h_fwd, h_rev) of
layer l−1, 2H wide, in either direction; O_t = [h_fwd_t ; h_rev_t] W_hq + b_q reads both
directions of the top layer (``output_input``, 2H).

LSTM (PyTorch's gate order i, f, g, o; d2l's I_t, F_t, C̃_t, O_t)::

    i_t, f_t, o_t = σ(x_t W_i· + h_{t−1} W_h· + b_·),   g_t = tanh(x_t W_ig + h_{t−1} W_hg + b_g)
    c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t,   h_t = o_t ⊙ tanh(c_t)

GRU (PyTorch's form)::

    r_t, z_t = σ(x_t W_i· + h_{t−1} W_h· + b_·)
    n_t = tanh(x_t W_in + b_in + r_t ⊙ (h_{t−1} W_hn + b_hn))
    h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}

PyTorch's reset gate multiplies h_{t−1} W_hn + b_hn, after the product; d2l's candidate is
tanh(X_t W_xh + (R_t ⊙ H_{t−1}) W_hh + b_h), the gate before the product. These are the numbers
of the model that runs, so the GRU's rows are PyTorch's.

Every vector is a 1-D read-only float32 NumPy array. Row names (``LSTM_ROWS``, ``GRU_ROWS``)
are the keys of ``GatedStepDetail.vectors``, in the order the Step view draws them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from rnnviz.core.gates import DIRECTIONS, Direction, GateRecord, gate_levels, model_gates
from rnnviz.core.messages import frozen_array
from rnnviz.core.model import CharModel, GRUModel, LSTMModel
from rnnviz.core.probe import _to_numpy, nice_ceiling, step_ids

if TYPE_CHECKING:
    from rnnviz.core.vocab import Vocab

# (H,) vectors of one step, in the Step view's order (X_t, O_t and softmax are fields)
LSTM_ROWS: tuple[str, ...] = (
    "h_prev",  # h_{t−1}
    "i",  # input gate
    "f",  # forget gate
    "g",  # candidate cell C̃_t
    "o",  # output gate
    "c_prev",  # c_{t−1}
    "f_c_prev",  # f_t ⊙ c_{t−1}
    "i_g",  # i_t ⊙ g_t
    "c",  # c_t = f_c_prev + i_g
    "tanh_c",  # tanh(c_t)
    "h",  # h_t = o_t ⊙ tanh(c_t)
)
GRU_ROWS: tuple[str, ...] = (
    "h_prev",  # h_{t−1}
    "r",  # reset gate
    "z",  # update gate
    "x_n",  # x_t W_in + b_in
    "h_n",  # h_{t−1} W_hn + b_hn
    "r_h_n",  # r_t ⊙ (h_{t−1} W_hn + b_hn)
    "n",  # n_t = tanh(x_n + r_h_n)
    "keep_n",  # (1 − z_t) ⊙ n_t
    "keep_h",  # z_t ⊙ h_{t−1}
    "h",  # h_t = keep_n + keep_h
)
ROWS: Mapping[str, tuple[str, ...]] = {"lstm": LSTM_ROWS, "gru": GRU_ROWS}


@dataclass(frozen=True)
class GatedStepDetail:
    """The numbers of step t of one layer and direction of a GRU or LSTM, next to its
    equations."""

    kind: str  # "lstm" | "gru"
    t: int
    layer: int  # from 0, the bottom one (reading the characters)
    num_layers: int
    char: str
    next_char: str | None  # None at the last position
    token_id: int
    token: str  # the vocabulary entry read ("<unk>" for an unknown character)
    X_t: np.ndarray  # (V,) one-hot
    # what the layer reads: X_t for layer 0, layer − 1's h_t (H,) above it (of a bidirectional
    # model both its directions', (2H,), forward first)
    layer_input: np.ndarray
    vectors: Mapping[str, np.ndarray]  # (H,) each, keys ROWS[kind] in order
    O_t: np.ndarray  # (V,) output_input W_hq + b_q
    softmax: np.ndarray  # (V,) softmax(O_t)
    # LSTM: symmetric colour levels for c_{t−1}, f ⊙ c_{t−1}, i ⊙ g and c_t, from the largest
    # |c| of the whole text (so they stay put as the cursor moves); None for the GRU
    cell_levels: tuple[float, float] | None
    # h_t from the stepped gates against the fused nn.LSTM/nn.GRU's h_n of this layer at t
    fused_max_abs_diff: float
    # "reverse": the bidirectional model's second recurrence, whose h_prev is h_{t+1}
    direction: Direction = "forward"
    bidirectional: bool = False
    # (D*H,) what O_t reads: the top layer's h_t, of a bidirectional model [h_fwd_t ; h_rev_t]
    output_input: np.ndarray | None = None

    @property
    def rows(self) -> tuple[str, ...]:
        return ROWS[self.kind]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.vectors[name]


def cell_levels(cells: np.ndarray) -> tuple[float, float]:
    """(−m, m) for every row on the cell's scale: m at least 1, since |i_t ⊙ g_t| < 1 may
    exceed the largest |c_t| (the two terms of c_t can cancel), and up to the next 1-2-5
    value, so the colours stay put while training moves the largest |c| a little."""
    top = max(1.0, gate_levels("lstm", "c", cells)[1])
    top = nice_ceiling(top)
    return (-top, top)


def _row(values: np.ndarray, t: int, size: int) -> np.ndarray:
    """Row t of a (T, H) trace; zeros outside 0..T−1 (a probe starts from a zero state at
    either end: t = −1 forward, t = T reverse)."""
    return np.array(values[t]) if 0 <= t < len(values) else np.zeros(size, dtype=np.float32)


def _concat_at(record: GateRecord, layer: int, t: int) -> np.ndarray:
    """Layer ``layer``'s output at step t: h_t, or [h_fwd_t ; h_rev_t] of a bidirectional
    model (what the layer above and the output layer read)."""
    return np.concatenate([np.array(record.trace(layer, d)["h"][t]) for d in record.directions])


@torch.no_grad()
def _fused_layer_output(rnn: nn.LSTM | nn.GRU, layer: int, x: Tensor) -> Tensor:
    """(T, D*H): layer ``layer``'s outputs from PyTorch's fused kernel, on a copy of the
    module cut above that layer (the fused module returns only the top layer's outputs, and of
    a reverse direction h_n is its state at t = 0)."""
    cut = type(rnn)(
        rnn.input_size,
        rnn.hidden_size,
        num_layers=layer + 1,
        bias=rnn.bias,
        batch_first=True,
        bidirectional=rnn.bidirectional,
    )
    own = rnn.state_dict()
    cut.load_state_dict({name: own[name] for name in cut.state_dict()})
    weight = rnn.get_parameter("weight_ih_l0")
    cut = cut.to(device=weight.device, dtype=weight.dtype)
    out: Tensor = cut(x[None])[0]
    return out[0]


@torch.no_grad()
def gated_step_detail(
    model: CharModel,
    vocab: Vocab,
    text: str,
    t: int,
    gates: GateRecord | None = None,
    layer: int | None = None,
    direction: Direction = "forward",
) -> GatedStepDetail:
    """Step ``t`` of one layer of a GRU or LSTM reading ``text`` from a zero state, term by
    term. ``layer``: from 0 (the bottom one); None is the top one, which the output reads.
    ``direction``: "reverse" is a bidirectional model's recurrence over the flipped text.

    ``gates``: the ``model_gates`` record of this model on this text (a probe's
    ``ProbeResult.gates``), to skip recomputing it; None computes it.
    """
    if not isinstance(model, GRUModel | LSTMModel):
        raise ValueError(f"gated_step_detail is for GRU and LSTM models, not {model.kind!r}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'forward' or 'reverse', not {direction!r}")
    if direction == "reverse" and not model.bidirectional:
        raise ValueError(f"this {model.kind.upper()} has one direction: no reverse one to show")
    reverse = direction == "reverse"
    L = model.num_layers
    layer = L - 1 if layer is None else layer
    if not 0 <= layer < L:
        raise ValueError(f"no layer {layer + 1}: this {model.kind.upper()} has {L} layer(s)")
    ids_np, ids = step_ids(model, vocab, text, t)
    T = len(ids_np)
    record = gates if gates is not None else model_gates(model, ids)
    trace = record.trace(layer, direction)
    if trace["h"].shape[0] != T:
        raise ValueError(f"the gate record has {trace['h'].shape[0]} steps, the text {T}")
    H = model.hidden_size
    rnn = model.rnn
    X_t = nn.functional.one_hot(ids[t], model.vocab_size).to(model.W_hq.dtype)
    below = None if layer == 0 else _concat_at(record, layer - 1, t)
    before = t + 1 if reverse else t - 1  # the step this one's state comes from
    h_prev = _row(trace["h"], before, H)
    v: dict[str, np.ndarray] = {"h_prev": h_prev}
    levels = None
    if isinstance(model, LSTMModel):
        i, f, g, o = (np.array(trace[name][t]) for name in ("i", "f", "g", "o"))
        c_prev = _row(trace["c"], before, H)
        c = np.array(trace["c"][t])
        v.update(i=i, f=f, g=g, o=o, c_prev=c_prev, f_c_prev=f * c_prev, i_g=i * g, c=c)
        v.update(tanh_c=np.tanh(c), h=np.array(trace["h"][t]))
        levels = cell_levels(trace["c"])
    else:
        r, z, n = (np.array(trace[name][t]) for name in ("r", "z", "n"))
        sfx = f"_l{layer}" + ("_reverse" if reverse else "")
        w_ih = rnn.get_parameter(f"weight_ih{sfx}")
        w_hh = rnn.get_parameter(f"weight_hh{sfx}")
        new = slice(2 * H, 3 * H)  # the candidate's rows of PyTorch's stacked (r, z, n)
        if below is None:
            # the one-hot x_t times W_in is column token of weight_ih: a lookup, as the model
            x_n = w_ih[new, int(ids_np[t])]
        else:
            x_n = torch.tensor(below, dtype=w_ih.dtype, device=w_ih.device) @ w_ih[new].t()
        h_n = torch.tensor(h_prev, dtype=w_hh.dtype, device=w_hh.device) @ w_hh[new].t()
        if rnn.bias:
            x_n = x_n + rnn.get_parameter(f"bias_ih{sfx}")[new]
            h_n = h_n + rnn.get_parameter(f"bias_hh{sfx}")[new]
        x_n_np = x_n.detach().cpu().numpy().astype(np.float32)
        h_n_np = h_n.detach().cpu().numpy().astype(np.float32)
        v.update(r=r, z=z, x_n=x_n_np, h_n=h_n_np, r_h_n=r * h_n_np, n=n)
        v.update(keep_n=(1.0 - z) * n, keep_h=z * h_prev, h=np.array(trace["h"][t]))
    vectors = {name: frozen_array(v[name], dtype=np.float32) for name in ROWS[model.kind]}

    # torch.tensor copies: torch must not share (or warn about) a read-only array
    top_h = _concat_at(record, L - 1, t)
    h_top = torch.tensor(top_h, dtype=model.W_hq.dtype, device=model.device)
    O_t = h_top @ model.W_hq + model.b_q
    h_t = torch.tensor(vectors["h"], dtype=model.W_hq.dtype, device=model.device)
    if model.bidirectional:
        # a reverse h_t depends on the characters after t: the fused layer's outputs over the
        # whole text, this direction's half
        fused = _fused_layer_output(rnn, layer, model.one_hot(ids))[t]
        d = DIRECTIONS.index(direction)
        fused_diff = float((fused[d * H : (d + 1) * H] - h_t).abs().max())
    else:
        # the fused layer's own forward over steps 0..t: its h_n of this layer is h_t here
        _, h_n_all = rnn(model.one_hot(ids[None, : t + 1]))
        if isinstance(h_n_all, tuple):
            h_n_all = h_n_all[0]
        fused_diff = float((h_n_all[layer, 0] - h_t).abs().max())
    token_id = int(ids_np[t])
    X_np = _to_numpy(X_t)
    return GatedStepDetail(
        kind=model.kind,
        t=t,
        layer=layer,
        num_layers=L,
        char=text[t],
        next_char=text[t + 1] if t + 1 < T else None,
        token_id=token_id,
        token=vocab.tokens[token_id],
        X_t=X_np,
        layer_input=X_np if below is None else frozen_array(below, dtype=np.float32),
        vectors=vectors,
        O_t=_to_numpy(O_t),
        softmax=_to_numpy(torch.softmax(O_t, dim=-1)),
        cell_levels=levels,
        fused_max_abs_diff=fused_diff,
        direction=direction,
        bidirectional=bool(model.bidirectional),
        output_input=frozen_array(top_h, dtype=np.float32),
    )
