"""The step view's numbers of a bidirectional model, either direction: every vector of
``gated_step_detail`` against torch.nn.GRU/LSTM(bidirectional=True) with copied weights, the
reverse direction stepped by hand over the flipped text with nn.GRUCell/nn.LSTMCell; the
scratch RNN's ``step_detail`` against a hand loop. One-direction models keep their tests in
test_step_gates.py and test_probe.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from rnnviz.core.config import ModelConfig
from rnnviz.core.model import GRUModel, LSTMModel, ScratchRNN, build_model
from rnnviz.core.probe import probe, step_detail
from rnnviz.core.step_gates import gated_step_detail
from rnnviz.core.vocab import Vocab

torch.set_num_threads(1)

TOL = 1e-5
CORPUS = "hello world, the time machine " * 3
TEXT = "the hello world"
HIDDEN = 6
STEPS = (0, 1, 6, len(TEXT) - 2, len(TEXT) - 1)  # both ends: a zero state on each side


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab.from_text(CORPUS)


def _model(kind: str, vocab: Vocab, layers: int, seed: int = 0) -> LSTMModel | GRUModel:
    config = ModelConfig(kind=kind, hidden_size=HIDDEN, num_layers=layers, bidirectional=True)
    model = build_model(len(vocab), config, seed=seed)
    torch.manual_seed(seed + 10)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1.0, 1.0)  # gates away from 0.5, c beyond ±1
    model.eval()
    assert isinstance(model, LSTMModel | GRUModel)
    return model


def _torch_copy(model: LSTMModel | GRUModel) -> nn.LSTM | nn.GRU:
    """A torch.nn module of its own (not the model's) with the model's weights, in float64."""
    cls = nn.LSTM if isinstance(model, LSTMModel) else nn.GRU
    rnn = cls(model.vocab_size, HIDDEN, num_layers=model.num_layers, bidirectional=True)
    rnn.load_state_dict(model.rnn.state_dict())
    return rnn.double()


def _cell(rnn: nn.LSTM | nn.GRU, layer: int, reverse: bool) -> nn.LSTMCell | nn.GRUCell:
    sfx = f"_l{layer}" + ("_reverse" if reverse else "")
    w_ih = getattr(rnn, "weight_ih" + sfx)
    cls = nn.LSTMCell if isinstance(rnn, nn.LSTM) else nn.GRUCell
    cell = cls(w_ih.shape[1], HIDDEN).double()
    with torch.no_grad():
        for part in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, part).copy_(getattr(rnn, part + sfx))
    return cell


def _direction_rows(cell: nn.LSTMCell | nn.GRUCell, xs: Tensor) -> list[dict[str, Tensor]]:
    """One direction stepped by hand over ``xs`` (T, I) in the order given; every row of the
    step view per step, PyTorch's documented formulas checked against the cell's own."""
    h = torch.zeros(1, HIDDEN, dtype=torch.float64)
    c = torch.zeros(1, HIDDEN, dtype=torch.float64)
    out = []
    for x in xs:
        xt = x[None]
        ax = xt @ cell.weight_ih.t() + cell.bias_ih
        ah = h @ cell.weight_hh.t() + cell.bias_hh
        row: dict[str, Tensor] = {"h_prev": h}
        if isinstance(cell, nn.LSTMCell):
            ai, af, ag, ao = (ax + ah).chunk(4, 1)
            i, f, g, o = ai.sigmoid(), af.sigmoid(), ag.tanh(), ao.sigmoid()
            c_new = f * c + i * g
            h_new = o * c_new.tanh()
            h_cell, c_cell = cell(xt, (h, c))
            torch.testing.assert_close(h_new, h_cell)
            torch.testing.assert_close(c_new, c_cell)
            row.update(i=i, f=f, g=g, o=o, c_prev=c, f_c_prev=f * c, i_g=i * g, c=c_new)
            row.update(tanh_c=c_new.tanh(), h=h_new)
            c = c_new
        else:
            xr, xz, xn = ax.chunk(3, 1)
            hr, hz, hn = ah.chunk(3, 1)
            r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
            n = (xn + r * hn).tanh()
            h_new = (1 - z) * n + z * h
            torch.testing.assert_close(h_new, cell(xt, h))
            row.update(r=r, z=z, x_n=xn, h_n=hn, r_h_n=r * hn, n=n)
            row.update(keep_n=(1 - z) * n, keep_h=z * h, h=h_new)
        h = h_new
        out.append({name: v[0] for name, v in row.items()})
    return out


@torch.no_grad()
def _reference(model: LSTMModel | GRUModel, vocab: Vocab, text: str) -> dict[str, object]:
    """Per layer and direction, per position t, every row (numpy, float64); each layer's input
    per t; the logits. The reverse direction is stepped over the flipped text and its rows put
    back at their positions; the stack's top output is checked against the nn module's."""
    rnn = _torch_copy(model)
    ids = torch.tensor(vocab.encode(text))
    x = nn.functional.one_hot(ids, model.vocab_size).double()
    rows: dict[tuple[int, str], list[dict[str, np.ndarray]]] = {}
    inputs: list[Tensor] = []
    layer_in = x
    for layer in range(model.num_layers):
        inputs.append(layer_in)
        fwd = _direction_rows(_cell(rnn, layer, False), layer_in)
        rev = _direction_rows(_cell(rnn, layer, True), layer_in.flip(0))[::-1]
        for name, steps in (("forward", fwd), ("reverse", rev)):
            rows[layer, name] = [{k: v.numpy() for k, v in step.items()} for step in steps]
        layer_in = torch.stack([torch.cat([f["h"], r["h"]]) for f, r in zip(fwd, rev, strict=True)])
    out, _ = rnn(x)
    torch.testing.assert_close(layer_in, out)  # the hand-stepped stack is torch.nn's
    W_hq, b_q = model.W_hq.double(), model.b_q.double()
    logits = out @ W_hq + b_q
    return {
        "rows": rows,
        "inputs": [i.numpy() for i in inputs],
        "out": out.numpy(),
        "logits": logits.numpy(),
        "softmax": torch.softmax(logits, -1).numpy(),
    }


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_every_number_of_either_direction_is_torch_nns_bidirectional(kind, layers, vocab):
    model = _model(kind, vocab, layers)
    ref = _reference(model, vocab, TEXT)
    rows, inputs = ref["rows"], ref["inputs"]
    assert isinstance(rows, dict) and isinstance(inputs, list)
    gates = probe(model, vocab, TEXT, with_grad_flow=False).gates
    for layer in range(layers):
        for direction in ("forward", "reverse"):
            for t in STEPS:
                for record in (None, gates):  # computed here, and the probe's record reused
                    d = gated_step_detail(
                        model, vocab, TEXT, t, gates=record, layer=layer, direction=direction
                    )
                    where = f"{kind} layer {layer} {direction} t={t}"
                    assert (d.layer, d.direction, d.bidirectional) == (layer, direction, True)
                    for name in d.rows:
                        np.testing.assert_allclose(
                            d[name], rows[layer, direction][t][name], rtol=TOL, atol=TOL,
                            err_msg=f"{name} {where}",
                        )  # fmt: skip
                    # layer 0 reads the one-hot x_t; above, [h_fwd ; h_rev] of the layer below
                    np.testing.assert_allclose(d.layer_input, inputs[layer][t], atol=TOL)
                    assert d.layer_input.shape == ((len(vocab),) if layer == 0 else (2 * HIDDEN,))
                    # O_t reads both directions of the top layer, whichever layer is shown
                    np.testing.assert_allclose(d.output_input, ref["out"][t], atol=TOL)
                    np.testing.assert_allclose(d.O_t, ref["logits"][t], rtol=TOL, atol=TOL)
                    np.testing.assert_allclose(d.softmax, ref["softmax"][t], atol=TOL)
                    assert d.fused_max_abs_diff < TOL, where


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_the_reverse_step_reads_the_state_of_the_step_after_it(kind, vocab):
    model = _model(kind, vocab, 1, seed=2)
    T = len(TEXT)
    last = gated_step_detail(model, vocab, TEXT, T - 1, direction="reverse")
    # at the last character the reverse direction starts: from zeros
    np.testing.assert_array_equal(last["h_prev"], np.zeros(HIDDEN, dtype=np.float32))
    for t in (0, 4, T - 2):
        here = gated_step_detail(model, vocab, TEXT, t, direction="reverse")
        after = gated_step_detail(model, vocab, TEXT, t + 1, direction="reverse")
        np.testing.assert_array_equal(here["h_prev"], after["h"])
        if kind == "lstm":
            np.testing.assert_array_equal(here["c_prev"], after["c"])
    # the forward direction is the default, as for a one-direction model
    default = gated_step_detail(model, vocab, TEXT, 3)
    assert default.direction == "forward"
    np.testing.assert_array_equal(
        default["h"], gated_step_detail(model, vocab, TEXT, 3, direction="forward")["h"]
    )


def test_a_one_direction_model_refuses_the_reverse_direction(vocab):
    config = ModelConfig(kind="lstm", hidden_size=HIDDEN)
    model = build_model(len(vocab), config, seed=0)
    d = gated_step_detail(model, vocab, TEXT, 2)
    assert d.direction == "forward" and not d.bidirectional
    assert d.output_input is not None and d.output_input.shape == (HIDDEN,)
    with pytest.raises(ValueError, match="one direction"):
        gated_step_detail(model, vocab, TEXT, 2, direction="reverse")
    with pytest.raises(ValueError, match="direction must be"):
        gated_step_detail(model, vocab, TEXT, 2, direction="backward")  # type: ignore[arg-type]
    scratch = build_model(len(vocab), ModelConfig(kind="scratch", hidden_size=HIDDEN), seed=0)
    assert step_detail(scratch, vocab, TEXT, 2).output_input is None
    with pytest.raises(ValueError, match="one direction"):
        step_detail(scratch, vocab, TEXT, 2, direction="reverse")


def _scratch(vocab: Vocab) -> ScratchRNN:
    config = ModelConfig(kind="scratch", hidden_size=HIDDEN, bidirectional=True)
    model = build_model(len(vocab), config, seed=4)
    torch.manual_seed(14)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.8, 0.8)
    assert isinstance(model, ScratchRNN)
    return model


@torch.no_grad()
def test_a_bidirectional_scratch_rnn_either_direction_is_a_hand_loop(vocab):
    model = _scratch(vocab)
    p = {n: v.double() for n, v in model.named_parameters()}
    ids = vocab.encode(TEXT)
    T = len(ids)
    X = np.eye(len(vocab))[ids]

    def loop(sfx: str, order: range) -> dict[int, dict[str, np.ndarray]]:
        W_xh, W_hh, b_h = (p[n + sfx].numpy() for n in ("W_xh", "W_hh", "b_h"))
        H = np.zeros(HIDDEN)
        steps = {}
        for t in order:
            xW, hW = X[t] @ W_xh, H @ W_hh
            pre = xW + hW + b_h
            steps[t] = {"H_prev": H, "xW": xW, "hW": hW, "b_h": b_h, "pre": pre}
            H = np.tanh(pre)
            steps[t]["H_t"] = H
        return steps

    fwd = loop("", range(T))
    rev = loop("_reverse", range(T - 1, -1, -1))  # the flipped text
    both = np.stack([np.concatenate([fwd[t]["H_t"], rev[t]["H_t"]]) for t in range(T)])
    logits = both @ p["W_hq"].numpy() + p["b_q"].numpy()
    _, hidden, _ = model(torch.tensor(ids)[None])
    np.testing.assert_allclose(hidden[0].numpy(), both, atol=TOL)  # the loop is the model
    for direction, steps in (("forward", fwd), ("reverse", rev)):
        for t in STEPS:
            d = step_detail(model, vocab, TEXT, t, direction=direction)
            ref = steps[t]
            assert (d.direction, d.bidirectional) == (direction, True)
            for name, got in (("H_prev", d.H_prev), ("xW", d.xW), ("hW", d.hW), ("b_h", d.b_h),
                              ("pre", d.pre_activation), ("H_t", d.H_t)):  # fmt: skip
                np.testing.assert_allclose(got, ref[name], atol=TOL, err_msg=f"{name} {t}")
            np.testing.assert_allclose(d.concat, ref["xW"] + ref["hW"], atol=TOL)
            assert d.concat_max_abs_diff < TOL
            np.testing.assert_allclose(d.output_input, both[t], atol=TOL)
            np.testing.assert_allclose(d.O_t, logits[t], rtol=TOL, atol=TOL)
            soft = np.exp(logits[t] - logits[t].max())
            np.testing.assert_allclose(d.softmax, soft / soft.sum(), atol=TOL)
    last = step_detail(model, vocab, TEXT, T - 1, direction="reverse")
    np.testing.assert_array_equal(last.H_prev, np.zeros(HIDDEN))  # the reverse one starts here


def test_a_reverse_retention_row_is_the_matrix_row_ahead():
    from rnnviz.core.gates import (
        mean_retention,
        mean_retention_row,
        retention,
        unit_retention_row,
    )

    rng = np.random.default_rng(0)
    carry = rng.uniform(0.2, 1.0, size=(9, 4)).astype(np.float32)
    R = mean_retention(carry, "reverse")
    for t in (0, 3, 8):
        np.testing.assert_allclose(mean_retention_row(carry, t, "reverse"), R[t, t:], rtol=1e-5)
        np.testing.assert_allclose(
            unit_retention_row(carry, t, 2, "reverse"),
            retention(carry, 2, "reverse")[t, t:],
            rtol=1e-5,
        )
        # the forward row as before: the matrix row behind t, nearest first
        np.testing.assert_allclose(
            mean_retention_row(carry, t), mean_retention(carry)[t, t::-1], rtol=1e-5
        )
    with pytest.raises(ValueError, match="direction"):
        mean_retention_row(carry, 0, "backward")
