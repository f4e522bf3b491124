"""The character-level RNN language models.

The scratch RNN is the one of the d2l.ai chapter, with the same parameter names:

    H_t = phi(X_t W_xh + H_{t-1} W_hh + b_h)        # (B, H)
    O_t = H_t W_hq + b_q                             # (B, V)

X_t is one-hot, so X_t W_xh is computed as a row lookup ``W_xh[tokens_t]``: the same number,
without a (B, V) @ (V, H) matmul of zeros. Stacked (d2l 10.3's deep RNN), layer l > 0 reads
layer l-1's H_t in place of X_t: H_t^(l) = phi(H_t^(l-1) W_xh^(l) + H_{t-1}^(l) W_hh^(l) + b_h^(l)),
its parameters ``W_xh_l1, W_hh_l1, b_h_l1`` (layer 0 keeps the chapter's names).

Every model has the same interface::

    logits, hiddens, state = model(tokens, state)   # (B, T, V), (B, T, H), final state

``state`` is a (B, H) tensor, or an (h, c) pair for the LSTM; ``None`` means zeros. A model
of L > 1 stacked layers carries every layer's: (L, B, H) tensors, PyTorch's layout (one
layer keeps (B, H), so nothing that carries a one-layer state changes). ``hiddens`` is the top
layer's H_t, what the output layer reads.

A bidirectional model (``ModelConfig.bidirectional``) runs a second recurrence per layer over
the reversed text, PyTorch's layout: ``hiddens`` is (B, T, 2H), the top layer's
concat(H_fwd_t, H_rev_t), which the output layer (W_hq of 2H rows) reads, and the state is
(2L, B, H) for any number of layers (layer-major, forward before reverse, as ``h_n``). The
scratch RNN's reverse direction has its own W_xh_reverse, W_hh_reverse, b_h_reverse (d2l
ch. 10.4's second RNN over the flipped sequence).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from rnnviz.core.config import ModelConfig

if TYPE_CHECKING:
    from collections.abc import Callable

State = Tensor | tuple[Tensor, Tensor]

# the names a student sees in the chapter, in the order the chapter introduces them
SCRATCH_PARAM_NAMES: tuple[str, ...] = ("W_xh", "W_hh", "b_h", "W_hq", "b_q")
# a bidirectional scratch RNN's reverse direction, PyTorch's suffix
REVERSE_SCRATCH_NAMES: tuple[str, ...] = ("W_xh_reverse", "W_hh_reverse", "b_h_reverse")


def activation_fn(name: str) -> Callable[[Tensor], Tensor]:
    if name == "tanh":
        return torch.tanh
    if name == "relu":
        return torch.relu
    raise ValueError(f"unknown activation {name!r}")


class CharModel(nn.Module):
    """Base of every model: vocabulary size, hidden size and the state shape."""

    kind: str = ""

    def __init__(
        self, vocab_size: int, config: ModelConfig, output_size: int | None = None
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        # what the output layer scores: the next character (the language model: the input
        # vocabulary) or a task's classes (core.tasks)
        self.output_size = vocab_size if output_size is None else output_size
        self.hidden_size = config.hidden_size
        self.config = config

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        dev = device if device is not None else self.device
        return torch.zeros(batch_size, self.hidden_size, device=dev, dtype=self.dtype)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def named_grad_params(self) -> list[tuple[str, nn.Parameter]]:
        """Parameters under the names the panels show (d2l's names where they exist)."""
        return list(self.named_parameters())

    def forward(  # pragma: no cover - abstract
        self, tokens: Tensor, state: State | None = None
    ) -> tuple[Tensor, Tensor, State]:
        raise NotImplementedError


def layer_param_names(layer: int) -> tuple[str, str, str]:
    """The scratch RNN's state_dict names of one layer: d2l's for layer 0, ``W_xh_l1`` above."""
    suffix = "" if layer == 0 else f"_l{layer}"
    return (f"W_xh{suffix}", f"W_hh{suffix}", f"b_h{suffix}")


class ScratchRNN(CharModel):
    """The textbook RNN: an explicit Python loop over time steps, autograd for the backward."""

    kind = "scratch"

    def __init__(
        self, vocab_size: int, config: ModelConfig, output_size: int | None = None
    ) -> None:
        super().__init__(vocab_size, config, output_size)
        V, H, Q = vocab_size, config.hidden_size, self.output_size
        self.bidirectional = config.bidirectional
        self.num_layers = config.num_layers  # the config refuses both at once (d2l has neither)
        D = 2 if self.bidirectional else 1
        self.phi = activation_fn(config.activation)
        self.W_xh = nn.Parameter(torch.empty(V, H))
        self.W_hh = nn.Parameter(torch.empty(H, H))
        self.b_h = nn.Parameter(torch.zeros(H))
        for layer in range(1, self.num_layers):  # before W_hq: state_dict in layer order
            w_xh, w_hh, b_h = layer_param_names(layer)
            self.register_parameter(w_xh, nn.Parameter(torch.empty(H, H)))
            self.register_parameter(w_hh, nn.Parameter(torch.empty(H, H)))
            self.register_parameter(b_h, nn.Parameter(torch.zeros(H)))
        self.W_hq = nn.Parameter(torch.empty(D * H, Q))
        self.b_q = nn.Parameter(torch.zeros(Q))
        if self.bidirectional:
            self.W_xh_reverse = nn.Parameter(torch.empty(V, H))
            self.W_hh_reverse = nn.Parameter(torch.empty(H, H))
            self.b_h_reverse = nn.Parameter(torch.zeros(H))
        self.reset_parameters()

    def layer_params(self, layer: int) -> tuple[Tensor, Tensor, Tensor]:
        """(W_xh, W_hh, b_h) of stacked layer ``layer`` (0: the one reading X_t)."""
        w_xh, w_hh, b_h = layer_param_names(layer)
        return self.get_parameter(w_xh), self.get_parameter(w_hh), self.get_parameter(b_h)

    def _reverse_params(self) -> tuple[Tensor, ...]:
        if not self.bidirectional:
            return ()
        return tuple(self.get_parameter(n) for n in REVERSE_SCRATCH_NAMES)

    def reset_parameters(self) -> None:
        """d2l: Gaussian with sigma 0.01, biases zero. uniform: PyTorch's nn.RNN default.
        Layers above the first, and a reverse direction, are drawn after the one-layer
        model's parameters, so layer 0 and the output layer start as a one-layer model of the
        same seed does."""
        upper: list[Tensor] = [
            p for layer in range(1, self.num_layers) for p in self.layer_params(layer)
        ]
        later = (*upper, *self._reverse_params())
        with torch.no_grad():
            if self.config.init == "d2l":
                for p in (self.W_xh, self.W_hh, self.W_hq):
                    p.normal_(0.0, 0.01)
                self.b_h.zero_()
                self.b_q.zero_()
                for w in later:
                    if w.dim() == 1:
                        w.zero_()
                    else:
                        w.normal_(0.0, 0.01)
            else:
                bound = 1.0 / math.sqrt(self.hidden_size)
                for w in (self.W_xh, self.W_hh, self.b_h, self.W_hq, self.b_q, *later):
                    w.uniform_(-bound, bound)

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        depth = 2 if self.bidirectional else self.num_layers  # PyTorch's (L*D, B, H)
        if depth == 1:
            return super().init_state(batch_size, device)
        dev = device if device is not None else self.device
        return torch.zeros((depth, batch_size, self.hidden_size), device=dev, dtype=self.dtype)

    def named_grad_params(self) -> list[tuple[str, nn.Parameter]]:
        """d2l's names; of L layers each with its layer, "W_xh l0", as the GRU's "W_x(gates) l0"."""
        if self.num_layers == 1:
            return super().named_grad_params()
        named = []
        for n, p in self.named_parameters():
            base, _, layer = n.rpartition("_l")
            if n in ("W_xh", "W_hh", "b_h"):
                n = f"{n} l0"
            elif base in ("W_xh", "W_hh", "b_h") and layer.isdigit():
                n = f"{base} l{layer}"
            named.append((n, p))
        return named

    def layer_hiddens(self, tokens: Tensor, state: State | None = None) -> list[Tensor]:
        """Every layer's H_t (B, T, H), bottom first, reading ``tokens`` from ``state``."""
        return self._layers(tokens, state)[0]

    def _layers(self, tokens: Tensor, state: State | None) -> tuple[list[Tensor], list[Tensor]]:
        """Every layer's H_t (B, T, H) and its last one (B, H), bottom first (one direction)."""
        B, T = tokens.shape
        start = self.init_state(B) if state is None else state
        assert isinstance(start, Tensor)
        starts = [start] if self.num_layers == 1 else list(start.unbind(0))
        seqs: list[Tensor] = []
        finals: list[Tensor] = []
        for layer, H_t in enumerate(starts):
            W_xh, W_hh, b_h = self.layer_params(layer)
            # layer 0: X_t W_xh as a row lookup of the one-hot X_t; above, the layer below's H_t
            x_proj = W_xh[tokens] if layer == 0 else seqs[-1] @ W_xh  # (B, T, H)
            seq, last = self._loop(x_proj, H_t, W_hh, b_h)
            seqs.append(seq)
            finals.append(last)
        return seqs, finals

    def _loop(
        self, x_proj: Tensor, H_t: Tensor, W_hh: Tensor, b_h: Tensor, reverse: bool = False
    ) -> tuple[Tensor, Tensor]:
        """(B, T, H) hidden states in text order, and the last one computed."""
        # unbind, not x_proj[:, t]: autograd's backward of each slice writes a zero tensor the
        # size of all of x_proj (T of them per step)
        steps = x_proj.unbind(1)
        hiddens = []
        for x_t in reversed(steps) if reverse else steps:
            H_t = self.phi(x_t + H_t @ W_hh + b_h)  # (B, H)
            hiddens.append(H_t)
        if reverse:
            hiddens.reverse()
        return torch.stack(hiddens, dim=1), H_t

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, Tensor, State]:
        if not self.bidirectional:
            seqs, finals = self._layers(tokens, state)
            hidden_seq = seqs[-1]  # (B, T, H): the top layer's, what the output layer reads
            logits = hidden_seq @ self.W_hq + self.b_q  # (B, T, V)
            return logits, hidden_seq, finals[0] if self.num_layers == 1 else torch.stack(finals)
        B, T = tokens.shape
        H_0 = self.init_state(B) if state is None else state
        assert isinstance(H_0, Tensor)
        forward, H_f = self._loop(self.W_xh[tokens], H_0[0], self.W_hh, self.b_h)
        x_rev = self.W_xh_reverse[tokens]
        backward, H_b = self._loop(x_rev, H_0[1], self.W_hh_reverse, self.b_h_reverse, True)
        hidden_seq = torch.cat([forward, backward], dim=-1)  # (B, T, 2H)
        logits = hidden_seq @ self.W_hq + self.b_q
        return logits, hidden_seq, torch.stack([H_f, H_b])


class _FusedRecurrent(CharModel):
    """GRU and LSTM on PyTorch's fused kernels, with a one-hot input and the d2l output layer."""

    cell_cls: type[nn.GRU] | type[nn.LSTM] = nn.GRU

    def __init__(
        self, vocab_size: int, config: ModelConfig, output_size: int | None = None
    ) -> None:
        super().__init__(vocab_size, config, output_size)
        H = config.hidden_size
        self.num_layers = config.num_layers
        self.bidirectional = config.bidirectional
        self.rnn = self.cell_cls(
            vocab_size,
            H,
            num_layers=self.num_layers,
            batch_first=True,
            bidirectional=self.bidirectional,
        )
        D = 2 if self.bidirectional else 1
        self.W_hq = nn.Parameter(torch.empty(D * H, self.output_size))
        self.b_q = nn.Parameter(torch.zeros(self.output_size))
        bound = 1.0 / math.sqrt(H)
        with torch.no_grad():
            if config.init == "d2l":
                for p in self.rnn.parameters():
                    p.normal_(0.0, 0.01)
                self.W_hq.normal_(0.0, 0.01)
            else:
                self.W_hq.uniform_(-bound, bound)
                self.b_q.uniform_(-bound, bound)

    def one_hot(self, tokens: Tensor) -> Tensor:
        return nn.functional.one_hot(tokens, self.vocab_size).to(self.W_hq.dtype)

    @property
    def state_layers(self) -> int:
        """The leading size of PyTorch's state, L*D; 1 means rnnviz carries (B, H)."""
        return self.num_layers * (2 if self.bidirectional else 1)

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        if self.state_layers == 1:
            return super().init_state(batch_size, device)
        dev = device if device is not None else self.device
        shape = (self.state_layers, batch_size, self.hidden_size)
        return torch.zeros(shape, device=dev, dtype=self.dtype)

    def _stacked(self, h: Tensor) -> Tensor:
        """rnnviz's state as PyTorch's (L*D, B, H)."""
        return h.unsqueeze(0) if self.state_layers == 1 else h

    def _own(self, h_n: Tensor) -> Tensor:
        """PyTorch's (L*D, B, H) as rnnviz's state: (B, H) for one layer, one direction."""
        return h_n.squeeze(0) if self.state_layers == 1 else h_n

    def named_grad_params(self) -> list[tuple[str, nn.Parameter]]:
        """One layer: W_x(gates), ...; L layers: each named with its layer, "W_x(gates) l1";
        a reverse direction's with "rev" ("W_x(gates) rev", "W_x(gates) l1 rev")."""
        short = {"weight_ih": "W_x(gates)", "weight_hh": "W_h(gates)"}
        short.update({"bias_ih": "b_x(gates)", "bias_hh": "b_h(gates)"})
        named = []
        for n, p in self.named_parameters():
            base = n.removeprefix("rnn.")
            reverse = base.endswith("_reverse")
            part, _, layer = base.removesuffix("_reverse").rpartition("_l")
            if n.startswith("rnn.") and part in short:
                n = short[part] if self.num_layers == 1 else f"{short[part]} l{layer}"
                n += " rev" if reverse else ""
            named.append((n, p))
        return named


class GRUModel(_FusedRecurrent):
    kind = "gru"
    cell_cls = nn.GRU

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, Tensor, State]:
        h0 = None if state is None else state
        assert h0 is None or isinstance(h0, Tensor)
        hidden_seq, h_n = self.rnn(self.one_hot(tokens), None if h0 is None else self._stacked(h0))
        logits = hidden_seq @ self.W_hq + self.b_q
        return logits, hidden_seq, self._own(h_n)


class LSTMModel(_FusedRecurrent):
    kind = "lstm"
    cell_cls = nn.LSTM

    def init_state(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> tuple[Tensor, Tensor]:
        zeros = super().init_state(batch_size, device)
        assert isinstance(zeros, Tensor)
        return zeros, zeros.clone()

    def forward(self, tokens: Tensor, state: State | None = None) -> tuple[Tensor, Tensor, State]:
        hc = None
        if state is not None:
            assert isinstance(state, tuple)
            hc = (self._stacked(state[0]), self._stacked(state[1]))
        hidden_seq, (h_n, c_n) = self.rnn(self.one_hot(tokens), hc)
        logits = hidden_seq @ self.W_hq + self.b_q
        return logits, hidden_seq, (self._own(h_n), self._own(c_n))

    def forward_with_cells(
        self, tokens: Tensor, state: State | None = None
    ) -> tuple[Tensor, Tensor, Tensor, State]:
        """Like forward, plus the cell state C_t at every step (B, T, H).

        The fused kernel returns only the last cell state, so this steps through time with
        the same weights; it is for probes (batch 1, a few hundred steps), not for training.
        One direction only: stepping a reverse direction forward would be a different model.
        """
        if self.bidirectional:
            raise ValueError("forward_with_cells steps one direction; use core.gates.model_gates")
        B, T = tokens.shape
        h, c = self.init_state(B) if state is None else state
        x = self.one_hot(tokens)
        hs, cs = [], []
        for t in range(T):
            out, (h_n, c_n) = self.rnn(x[:, t : t + 1], (self._stacked(h), self._stacked(c)))
            h, c = self._own(h_n), self._own(c_n)
            hs.append(out[:, 0])
            cs.append(c_n[-1])  # the top layer's, beside its h
        hidden_seq = torch.stack(hs, dim=1)
        logits = hidden_seq @ self.W_hq + self.b_q
        return logits, hidden_seq, torch.stack(cs, dim=1), (h, c)


def zero_state(model: CharModel, batch: int = 1) -> State:
    """A zero state in the parameters' dtype and device (``init_state`` gives the default
    dtype, which a float64 model, as in the finite-difference checks, cannot mix with)."""
    weight = next(model.parameters())
    layers = getattr(model, "num_layers", 1) * (2 if getattr(model, "bidirectional", False) else 1)
    shape = (batch, model.hidden_size) if layers == 1 else (layers, batch, model.hidden_size)
    zeros = torch.zeros(shape, dtype=weight.dtype, device=weight.device)
    return (zeros, zeros.clone()) if isinstance(model, LSTMModel) else zeros


def detach_state(state: State) -> State:
    """Truncated BPTT: keep the values of the carried state, cut the graph behind it."""
    if isinstance(state, tuple):
        return (state[0].detach(), state[1].detach())
    return state.detach()


def build_model(
    vocab_size: int, config: ModelConfig, seed: int, output_size: int | None = None
) -> CharModel:
    """Same vocab size, config and seed give the same initial parameters, bit for bit.

    ``output_size``: the output layer's width when it is not the vocabulary's (a task's
    classes, core.tasks); None is the language model's."""
    from rnnviz.core import fast_rnn  # the fast path lives in its own module

    classes: dict[str, type[CharModel]] = {
        "scratch": ScratchRNN,
        "fast": fast_rnn.FastRNN,
        "gru": GRUModel,
        "lstm": LSTMModel,
    }
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = classes[config.kind](vocab_size, config, output_size)
    finally:
        torch.random.set_rng_state(gen_state)
    return model
