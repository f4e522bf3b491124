"""One time step's vector-Jacobian product along the recurrence, written out: the probe's
gradient flow G[t, k] sweeps it back over a text, and the trainer's ||dL/dH_t|| of a GRU or
LSTM over the rows of a batch.

PyTorch's fused GRU/LSTM kernels keep every step inside one autograd node, so the total
derivative dL/dh_t (through the output at t and through every later step) is not there to
read. With the step's gates it is one product per step back: ``back_step`` takes them from
the forward pass's own h (and c) and the layer's input, for one sequence (T, H) or a batch
(T, B, H) alike (every gate is elementwise per row). Tests compare both with autograd on
``torch.nn`` stepped one step at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from rnnviz.core.gates import GateKind, GateTrace, _gate_tensors, _model_state, _split_state
from rnnviz.core.model import CharModel, GRUModel, LSTMModel, ScratchRNN, State

BackStep = Callable[[int, Tensor, Tensor | None], tuple[Tensor, Tensor | None]]

# the trainer measures ||dL/dH_t|| of a GRU/LSTM on the first rows of each batch (random
# windows of the text): a sixteenth of them, 1 to 64. Each row's dL/dH_t is exact; their mean
# estimates the batch mean. The sweep costs rows * T * G * H^2 multiply-adds, so a sixteenth
# keeps it a few % of the step's own 3 * B * T * G * H (H + V) (bench: rnnviz bench)
FLOW_ROWS_MAX = 64
FLOW_ROWS_FRACTION = 16


def flow_rows(batch: int) -> int:
    return max(1, min(FLOW_ROWS_MAX, batch // FLOW_ROWS_FRACTION))


def phi_derivative(activation: str, hidden: Tensor) -> Tensor:
    """phi'(A_t) from H_t = phi(A_t) alone, as autograd does for tanh; relu(A) > 0 iff A > 0."""
    if activation == "tanh":
        return 1.0 - hidden * hidden
    return (hidden > 0).to(hidden.dtype)


def back_step(
    model: CharModel,
    ids: Tensor,
    hidden: Tensor,
    cells: Tensor | None,
    inputs: Tensor | None = None,
    *,
    first_cell: Tensor | None = None,
    reverse: bool = False,
) -> BackStep:
    """The vector-Jacobian product of one time step, for many cotangent rows at once.

    ``back(k, Mh, Mc)`` takes rows of dL/dh_{k+1} (and dL/dc_{k+1}) and returns the rows of
    dL/dh_k (and dL/dc_k) along the recurrence only (not through the output layer at k).
    Of stacked layers it is the top layer's recurrence (``hidden``, ``cells`` and its
    ``inputs``, the layer below's h_t): h_k of the top layer reaches later losses only through
    it, the layers below being nodes of their own (as c_k is beside h_k). An LSTM's
    ``cells`` may be None with ``first_cell``, c_0: they follow from h and these weights.

    ``reverse``: the top layer's reverse direction of a bidirectional model, its weights; the
    caller passes ``ids``, ``hidden``, ``cells`` and ``inputs`` flipped in time, so that step
    k is that direction's k-th step. A bidirectional model without ``reverse`` is its top
    layer's forward direction.
    """
    bidirectional = bool(getattr(model, "bidirectional", False))
    if reverse and not bidirectional:
        raise ValueError("a one-direction model has no reverse direction")
    if isinstance(model, ScratchRNN):  # FastRNN too: same parameters, same maths
        phi_prime = phi_derivative(model.config.activation, hidden)
        # a reverse direction is the one-layer scratch RNN's; else the top layer's
        W_hh = model.W_hh_reverse if reverse else model.layer_params(model.num_layers - 1)[1]
        W_hh_T = W_hh.detach().t()

        def scratch_back(k: int, Mh: Tensor, Mc: Tensor | None) -> tuple[Tensor, Tensor | None]:
            return (Mh * phi_prime[k + 1]) @ W_hh_T, None

        return scratch_back

    if not isinstance(model, GRUModel | LSTMModel):
        raise TypeError(f"gradient flow is not implemented for {type(model).__name__}")
    # PyTorch's step with its own weights (gate order: GRU r z n, LSTM i f g o), its
    # vector-Jacobian product written out: one (n, G*H) x (G*H, H) product per step back.
    # Through autograd (torch.gru_cell / lstm_cell on n leaf rows, then autograd.grad) a step
    # cost ~0.25 ms at hidden 256, and a key typed at the end of a 100-character text, which
    # needs one row swept back over every step, took ~25 ms; tests compare with autograd.
    # all_weights: layer-major, forward before reverse
    top = -1 if reverse or not bidirectional else -2
    w_ih, w_hh, b_ih, b_hh = (w.detach() for w in model.rnn.all_weights[top])
    x = model.one_hot(ids) if inputs is None else inputs  # (T, V), or the layer below's (T, H)
    H = hidden.shape[-1]
    # row k: the step that maps h_k (and c_k) to h_{k+1}
    gi = x[1:] @ w_ih.t() + b_ih  # (T-1, G*H)
    gh = hidden[:-1] @ w_hh.t() + b_hh

    if isinstance(model, LSTMModel):
        pre = gi + gh
        i = torch.sigmoid(pre[..., :H])
        f = torch.sigmoid(pre[..., H : 2 * H])
        g = torch.tanh(pre[..., 2 * H : 3 * H])
        o = torch.sigmoid(pre[..., 3 * H :])
        if cells is None:  # c_{k+1} = f ⊙ c_k + i ⊙ g: elementwise, on these gates
            assert first_cell is not None
            ig = i * g
            cells = torch.empty_like(hidden)
            cells[0] = first_cell
            for k in range(ig.shape[0]):
                torch.addcmul(ig[k], f[k], cells[k], out=cells[k + 1])
        tanh_c = torch.tanh(cells[1:])
        di_da, df_da, dg_da, do_da = i * (1 - i), f * (1 - f), 1 - g * g, o * (1 - o)
        c_prev = cells[:-1]
        # every factor that does not depend on the cotangent, for all steps at once: a step
        # back is then 6 tensor operations (it was 17; the Python around each dominates at
        # the probe's and the trainer's sizes)
        to_c = o * (1 - tanh_c * tanh_c)  # dh_{k+1} -> dc_{k+1}
        # dc_{k+1} -> the pre-activations of i, f, g; dh_{k+1} -> that of o
        from_c = torch.stack((g * di_da, c_prev * df_da, i * dg_da), dim=-2)  # (..., 3, H)
        from_h = tanh_c * do_da

        def lstm_back(k: int, Mh: Tensor, Mc: Tensor | None) -> tuple[Tensor, Tensor | None]:
            assert Mc is not None
            dc = torch.addcmul(Mc, Mh, to_c[k])
            da = torch.cat(((dc.unsqueeze(-2) * from_c[k]).flatten(-2), Mh * from_h[k]), dim=-1)
            return da @ w_hh, dc * f[k]

        return lstm_back

    r = torch.sigmoid(gi[..., :H] + gh[..., :H])
    z = torch.sigmoid(gi[..., H : 2 * H] + gh[..., H : 2 * H])
    hn = gh[..., 2 * H :]  # W_hn h_k + b_hn: the reset gate multiplies it (PyTorch's form)
    n = torch.tanh(gi[..., 2 * H :] + r * hn)
    dr_da, dz_da, dn_da = r * (1 - r), z * (1 - z), 1 - n * n
    h_prev = hidden[:-1]
    # dh_{k+1} -> the pre-activations of r, z and the candidate's W_hn h_k + b_hn, for all
    # steps at once (a step back is then 4 tensor operations; it was 14)
    dan = (1 - z) * dn_da
    to_a = torch.stack((dan * hn * dr_da, (h_prev - n) * dz_da, dan * r), dim=-2)  # (..., 3, H)

    def gru_back(k: int, Mh: Tensor, Mc: Tensor | None) -> tuple[Tensor, Tensor | None]:
        da = (Mh.unsqueeze(-2) * to_a[k]).flatten(-2)
        return torch.matmul(da, w_hh).addcmul_(Mh, z[k]), None

    return gru_back


def one_row_flow(
    model: GRUModel | LSTMModel, trace: GateTrace, hidden: Tensor, direct: np.ndarray
) -> np.ndarray:
    """(T-1,) ||dL_t/dh_k|| for k = 0..t of the one loss term t = T-2 (a key typed at the end
    of a text), along the top layer's recurrence: ``back_step``'s product in NumPy, from the
    forward pass's own gates (``trace``, the top layer's, one direction; ``hidden`` its h as
    the probe holds it), ``direct`` (H,) being dL_t/dh_t through the output layer.

    One row needs one (G*H,) x (G*H, H) product per step and a few elementwise ones; in torch
    each of the ~12 calls a step costs ~5 us of overhead, most of an LSTM keystroke's ~10 ms
    at hidden 256 and 100 characters, and ``back_step`` recomputed every step's gates first.
    Here the gates come from the forward pass, each elementwise call costs ~1 us, and the
    buffers are reused (the tests compare with ``back_step`` and autograd). The products stay
    in torch, on its thread count: NumPy's OpenBLAS spreads them over every core and spins
    (a GRU keystroke took 15 ms that way, against 2 with one thread)."""
    weight, bias = (w.detach() for w in model.rnn.all_weights[-1][1::2])  # (G*H, H), (G*H,)
    W_T = weight.to(torch.float32).t()  # M <- W_hh^T da: a matrix-vector product a step
    h = np.asarray(trace["h"], dtype=np.float32)
    T, H = h.shape
    out = np.zeros(T - 1, dtype=np.float32)
    M = np.array(direct, dtype=np.float32)  # dL_t/dh_k, k from t = T-2 down
    out[T - 2] = np.sqrt(M @ M)
    if T < 3:
        return out
    # row k below: the step that maps h_k (and c_k) to h_{k+1}, its gates at position k+1
    if isinstance(model, LSTMModel):
        i, f, g, o = (np.asarray(trace[n], dtype=np.float32)[1:] for n in "ifgo")
        c = np.asarray(trace["c"], dtype=np.float32)
        tanh_c = np.tanh(c[1:])
        to_c = o * (1 - tanh_c * tanh_c)  # dh_{k+1} -> dc_{k+1}
        from_c = np.stack((g * i * (1 - i), c[:-1] * f * (1 - f), i * (1 - g * g)), axis=1)
        from_h = tanh_c * o * (1 - o)
        Mc = np.zeros(H, dtype=np.float32)
        dc, da = np.empty(H, dtype=np.float32), np.empty(4 * H, dtype=np.float32)
        da_c, da_o = da[: 3 * H].reshape(3, H), da[3 * H :]
        da_t, M_t = torch.from_numpy(da), torch.from_numpy(M)  # the same memory
        for k in range(T - 3, -1, -1):
            np.multiply(M, to_c[k], out=dc)
            dc += Mc
            np.multiply(from_c[k], dc, out=da_c)
            np.multiply(M, from_h[k], out=da_o)
            torch.mv(W_T, da_t, out=M_t)
            np.multiply(dc, f[k], out=Mc)
            out[k] = np.sqrt(M @ M)
        return out
    r, z, n = (np.asarray(trace[name], dtype=np.float32)[1:] for name in "rzn")
    # W_hn h_k + b_hn, which the reset gate multiplies (PyTorch's form); not in the record
    top = hidden[:-1].to(torch.float32)
    hn = torch.addmm(bias[2 * H :].to(torch.float32), top, W_T[:, 2 * H :]).cpu().numpy()
    dan = (1 - z) * (1 - n * n)
    to_a = np.stack((dan * hn * r * (1 - r), (h[:-1] - n) * z * (1 - z), dan * r), axis=1)
    da = np.empty(3 * H, dtype=np.float32)
    da_3 = da.reshape(3, H)
    carried = np.empty(H, dtype=np.float32)
    da_t, M_t = torch.from_numpy(da), torch.from_numpy(M)
    for k in range(T - 3, -1, -1):
        np.multiply(to_a[k], M, out=da_3)
        np.multiply(M, z[k], out=carried)
        torch.mv(W_T, da_t, out=M_t)
        M += carried
        out[k] = np.sqrt(M @ M)
    return out


@torch.no_grad()
def fused_grad_flow(
    model: GRUModel | LSTMModel,
    X: Tensor,
    state: State | None,
    hidden_seq: Tensor,
    direct: Tensor,
    rows: int | None = None,
) -> np.ndarray:
    """(T,) the batch-mean ||dL/dH_t|| of the top layer's h_t, the total derivative, for a
    training step of a fused GRU/LSTM: on the first ``rows`` rows (default ``flow_rows``) of
    the batch ``X`` (B, T), read from ``state`` (as the model takes it; None: zeros), whose
    forward pass gave ``hidden_seq`` (B, T, H) and whose backward ``direct`` (B, T, H), the
    hidden sequence's own gradient (the part through the output layer at each t)."""
    if model.bidirectional:  # nothing trains one (config.training_refusal)
        raise ValueError("the fused training flow is for one-direction models")
    S = min(flow_rows(X.shape[0]) if rows is None else rows, X.shape[0])
    rnn = model.rnn
    kind: GateKind = "lstm" if isinstance(model, LSTMModel) else "gru"
    L = rnn.num_layers
    if state is not None:  # the rows' own carried state
        state = (
            (state[0][..., :S, :], state[1][..., :S, :])
            if isinstance(state, tuple)
            else state[..., :S, :]
        )
    h0, c0 = _split_state(rnn, kind, _model_state(state, S, L), S)
    ids = X[:S].t()  # time-major (T, S)
    cells: Tensor | None = None
    if L == 1:  # the forward pass's own h; an LSTM's c from it in back_step (no stepped pass)
        inputs = model.one_hot(ids)
        hidden = hidden_seq[:S].detach().transpose(0, 1)
    else:  # the top layer reads the layer below, which the fused pass does not return
        layers = _gate_tensors(rnn, kind, None, ids, h0, c0)  # (T, S, H) each
        hidden, cells = layers[-1]["h"], layers[-1].get("c")
        inputs = layers[-2]["h"]
    # the start state as step -1 (zeros, or the carried state), so that back_step's step k
    # maps h_{k-1} to h_k and step 0 is swept like every other; its input row 0 is not read
    zeros = torch.zeros_like(hidden[:1])
    hidden = torch.cat([zeros if h0 is None else h0[-1:], hidden])
    inputs = torch.cat([inputs[:1], inputs])
    first_cell = None
    if kind == "lstm":
        first_cell = zeros[0] if c0 is None else c0[-1]
        if cells is not None:
            cells = torch.cat([first_cell[None], cells])
    back = back_step(model, ids, hidden, cells, inputs, first_cell=first_cell)
    T = ids.shape[0]
    D = direct[:S].transpose(0, 1).to(hidden.dtype)  # (T, S, H)
    M = torch.empty_like(D)  # dL/dh_t, row t
    M[T - 1] = D[T - 1]
    Mc = torch.zeros_like(D[0]) if kind == "lstm" else None
    for k in range(T - 2, -1, -1):
        back_h, Mc = back(k + 1, M[k + 1], Mc)
        torch.add(D[k], back_h, out=M[k])
    flow: np.ndarray = torch.linalg.vector_norm(M, dim=-1).mean(dim=1).cpu().numpy()
    return flow
