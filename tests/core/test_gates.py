"""GRU/LSTM gates against nn.LSTMCell/nn.GRUCell and the fused modules; saturation and
retention against direct counts and products."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from rnnviz.core import gates
from rnnviz.core.config import ModelConfig
from rnnviz.core.gates import (
    LEFT_SATURATION,
    RIGHT_SATURATION,
    gate_key,
    mean_retention,
    model_gates,
    model_saturation,
    retention,
    rnn_gates,
    rnn_saturation,
    saturation,
)
from rnnviz.core.model import LSTMModel, build_model

torch.set_num_threads(1)

TOL = 1e-5
INPUT, HIDDEN, T = 4, 5, 7


def _module(kind: str, num_layers: int, bidirectional: bool, seed: int = 0) -> nn.LSTM | nn.GRU:
    torch.manual_seed(seed)
    cls = nn.LSTM if kind == "lstm" else nn.GRU
    rnn = cls(INPUT, HIDDEN, num_layers=num_layers, bidirectional=bidirectional)
    with torch.no_grad():
        for p in rnn.parameters():
            p.uniform_(-1.0, 1.0)  # wider than the default: gates away from 0.5
    return rnn


def _state(kind: str, rnn: nn.RNNBase, seed: int = 1) -> Tensor | tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    D = 2 if rnn.bidirectional else 1
    h0 = torch.randn(rnn.num_layers * D, HIDDEN, generator=g)
    if kind == "lstm":
        return h0, torch.randn(rnn.num_layers * D, HIDDEN, generator=g)
    return h0


def _reference(
    rnn: nn.LSTM | nn.GRU, x: Tensor, state: Tensor | tuple[Tensor, Tensor] | None
) -> list[dict[str, np.ndarray]]:
    """Per layer and direction, name -> (T, H) float64: the states stepped by nn.LSTMCell /
    nn.GRUCell with copied weights, the gates from PyTorch's documented formulas on the cell's
    weights, checked against what the cell returns."""
    lstm = isinstance(rnn, nn.LSTM)
    D = 2 if rnn.bidirectional else 1
    steps = x.shape[0]
    out: list[dict[str, np.ndarray]] = []
    layer_in = x.double()
    for layer in range(rnn.num_layers):
        hs_dirs = []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            cell: nn.LSTMCell | nn.GRUCell = (nn.LSTMCell if lstm else nn.GRUCell)(
                layer_in.shape[1], HIDDEN
            ).double()
            with torch.no_grad():
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, name).copy_(getattr(rnn, name + sfx))
            k = layer * D + d
            if state is None:
                h = torch.zeros(HIDDEN, dtype=torch.float64)
                c = torch.zeros(HIDDEN, dtype=torch.float64)
            elif lstm:
                assert isinstance(state, tuple)
                h, c = state[0][k].double(), state[1][k].double()
            else:
                assert isinstance(state, Tensor)
                h, c = state[k].double(), torch.zeros(HIDDEN, dtype=torch.float64)
            names = ("i", "f", "g", "o", "c", "h") if lstm else ("r", "z", "n", "h")
            rec = {name: np.zeros((steps, HIDDEN)) for name in names}
            Wx = cell.weight_ih.detach().chunk(4 if lstm else 3)
            Wh = cell.weight_hh.detach().chunk(4 if lstm else 3)
            bx = cell.bias_ih.detach().chunk(4 if lstm else 3)
            bh = cell.bias_hh.detach().chunk(4 if lstm else 3)
            order = range(steps - 1, -1, -1) if d else range(steps)
            with torch.no_grad():
                for t in order:
                    xt = layer_in[t]
                    ax = [W @ xt + b for W, b in zip(Wx, bx, strict=True)]
                    ah = [W @ h + b for W, b in zip(Wh, bh, strict=True)]
                    pre = [u + v for u, v in zip(ax, ah, strict=True)]

                    if lstm:
                        assert isinstance(cell, nn.LSTMCell)
                        i, f = torch.sigmoid(pre[0]), torch.sigmoid(pre[1])
                        g, o = torch.tanh(pre[2]), torch.sigmoid(pre[3])
                        h_new, c_new = (v[0] for v in cell(xt[None], (h[None], c[None])))
                        # the formulas are the cell's: its outputs follow from them
                        torch.testing.assert_close(c_new, f * c + i * g)
                        torch.testing.assert_close(h_new, o * torch.tanh(c_new))
                        # and the forget gate read off the cell as a black box: c_t is linear
                        # in c_{t-1} with slope f_t
                        c_one = cell(xt[None], (h[None], torch.ones_like(c)[None]))[1][0]
                        c_zero = cell(xt[None], (h[None], torch.zeros_like(c)[None]))[1][0]
                        torch.testing.assert_close(c_one - c_zero, f)
                        for name, v in zip("ifgo", (i, f, g, o), strict=True):
                            rec[name][t] = v.numpy()
                        rec["c"][t] = c_new.numpy()
                        c = c_new
                    else:
                        assert isinstance(cell, nn.GRUCell)
                        r, z = torch.sigmoid(pre[0]), torch.sigmoid(pre[1])
                        n = torch.tanh(ax[2] + r * ah[2])
                        h_new = cell(xt[None], h[None])[0]
                        torch.testing.assert_close(h_new, (1 - z) * n + z * h)
                        for name, v in zip("rzn", (r, z, n), strict=True):
                            rec[name][t] = v.numpy()
                    rec["h"][t] = h_new.numpy()
                    h = h_new
            out.append(rec)
            hs_dirs.append(torch.from_numpy(rec["h"]))
        layer_in = torch.cat(hs_dirs, dim=1)
    return out


CASES = list(itertools.product(("lstm", "gru"), (1, 2, 3), (False, True), (False, True)))


@pytest.mark.parametrize(("kind", "num_layers", "bidirectional", "with_state"), CASES)
def test_gates_match_cells_and_module(
    kind: str, num_layers: int, bidirectional: bool, with_state: bool
) -> None:
    rnn = _module(kind, num_layers, bidirectional)
    x = torch.randn(T, INPUT, generator=torch.Generator().manual_seed(2))
    state = _state(kind, rnn) if with_state else None
    record = rnn_gates(rnn, x, state)

    # the module's own output and final state
    out, final = rnn(x, state)
    np.testing.assert_allclose(record.output(), out.detach().numpy(), atol=TOL, rtol=0)
    h_n = final[0] if isinstance(final, tuple) else final
    D = 2 if bidirectional else 1
    for layer in range(num_layers):
        for d, direction in enumerate(record.directions):
            trace = record.trace(layer, direction)
            last = 0 if direction == "reverse" else T - 1  # where each direction ends
            k = layer * D + d
            np.testing.assert_allclose(trace["h"][last], h_n[k].detach().numpy(), atol=TOL)
            if kind == "lstm":
                assert isinstance(final, tuple)
                np.testing.assert_allclose(trace["c"][last], final[1][k].detach().numpy(), atol=TOL)

    # every gate and state against the cell-stepped reference
    reference = _reference(rnn, x, state)
    assert len(record.traces) == len(reference) == num_layers * D
    for trace, ref in zip(record.traces, reference, strict=True):
        assert trace.names == tuple(ref)
        for name, expected in ref.items():
            got = trace[name]
            assert got.shape == (T, HIDDEN) and got.dtype == np.float32
            assert not got.flags.writeable
            np.testing.assert_allclose(got, expected, atol=TOL, rtol=0, err_msg=name)

    # recomputing the states from the recorded gates alone gives the module's h (and c)
    for trace in record.traces:
        k = trace.layer * D + DIRECTIONS_INDEX[trace.direction]
        if state is None:
            h = np.zeros(HIDDEN)
            c = np.zeros(HIDDEN)
        elif kind == "lstm":
            assert isinstance(state, tuple)
            h, c = state[0][k].numpy().astype(np.float64), state[1][k].numpy().astype(np.float64)
        else:
            assert isinstance(state, Tensor)
            h = state[k].numpy().astype(np.float64)
        order = range(T - 1, -1, -1) if trace.direction == "reverse" else range(T)
        for t in order:
            if kind == "lstm":
                c = trace["f"][t] * c + trace["i"][t] * trace["g"][t]
                h = trace["o"][t] * np.tanh(c)
                np.testing.assert_allclose(trace["c"][t], c, atol=TOL)
            else:
                h = (1 - trace["z"][t]) * trace["n"][t] + trace["z"][t] * h
            np.testing.assert_allclose(trace["h"][t], h, atol=TOL)


DIRECTIONS_INDEX = {"forward": 0, "reverse": 1}


def test_gru_candidate_is_pytorchs_not_d2ls() -> None:
    """The reset gate applies after the W_hn product: d2l's (r * h) W_hn gives other values."""
    rnn = _module("gru", 1, False)
    x = torch.randn(T, INPUT, generator=torch.Generator().manual_seed(3))
    h0 = _state("gru", rnn)
    assert isinstance(h0, Tensor)
    tr = rnn_gates(rnn, x, h0).trace()
    W_in, W_hn, b_in, b_hn = (
        rnn.get_parameter(name).detach()[2 * HIDDEN :]
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    )
    h_prev = np.vstack([h0[0].numpy(), tr["h"][:-1]])
    r = tr["r"]
    d2l = np.tanh(x.numpy() @ W_in.numpy().T + b_in.numpy() + (r * h_prev) @ W_hn.numpy().T)
    torch_style = np.tanh(
        x.numpy() @ W_in.numpy().T + b_in.numpy() + r * (h_prev @ W_hn.numpy().T + b_hn.numpy())
    )
    np.testing.assert_allclose(tr["n"], torch_style, atol=TOL)
    assert np.abs(tr["n"] - d2l).max() > 1e-2


def test_batch_first_and_container() -> None:
    rnn = _module("lstm", 2, True)
    x = torch.randn(T, INPUT, generator=torch.Generator().manual_seed(4))
    record = rnn_gates(rnn, x)
    bf = nn.LSTM(INPUT, HIDDEN, num_layers=2, bidirectional=True, batch_first=True)
    bf.load_state_dict(rnn.state_dict())
    other = rnn_gates(bf, x)
    flat, flat_bf = record.flat(), other.flat()
    assert list(flat) == list(flat_bf)
    for key in flat:
        np.testing.assert_array_equal(flat[key], flat_bf[key])

    assert len(flat) == 2 * 2 * 6
    assert flat[gate_key(1, "reverse", "f")] is record.trace(1, "reverse")["f"]
    assert "l0.forward.i" in flat and "l1.reverse.c" in flat
    assert set(record.flat_descriptions()) == set(flat)
    tr = record.trace(0, "forward")
    assert tr.descriptions["f"] == "forget gate f_t (sigmoid)"
    assert tr.levels["f"] == (0.0, 1.0) and tr.levels["g"] == (-1.0, 1.0)
    top = float(np.abs(tr["c"]).max())
    assert tr.levels["c"] == (-top, top) and top > 0
    np.testing.assert_array_equal(tr.carry, tr["f"])
    with pytest.raises(KeyError):
        record.trace(2, "forward")
    with pytest.raises(KeyError):
        rnn_gates(_module("gru", 1, False), x).trace(0, "reverse")


def test_rejects_what_it_cannot_inspect() -> None:
    x = torch.randn(T, INPUT)
    with pytest.raises(TypeError):
        rnn_gates(nn.RNN(INPUT, HIDDEN), x)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        rnn_gates(nn.LSTM(INPUT, HIDDEN, proj_size=2), x)
    with pytest.raises(ValueError):
        rnn_gates(_module("gru", 2, False), x, torch.zeros(1, HIDDEN))
    with pytest.raises(TypeError):
        rnn_gates(_module("lstm", 1, False), x, torch.zeros(1, HIDDEN))
    with pytest.raises(ValueError):
        rnn_gates(_module("gru", 1, False), torch.zeros(0, INPUT))
    with pytest.raises(TypeError):
        model_gates(build_model(5, ModelConfig(kind="fast"), 0), torch.tensor([0, 1]))


# ---------------------------------------------------------------------- rnnviz's own models

VOCAB = 11


def _model(kind: str, seed: int = 0, scale: float = 1.0) -> LSTMModel:
    model = build_model(VOCAB, ModelConfig(kind=kind, hidden_size=16), seed)  # type: ignore[arg-type]
    if scale != 1.0:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(scale)  # larger weights: some gates saturate
    return model  # type: ignore[return-value]


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("with_state", [False, True])
def test_model_gates_match_forward(kind: str, with_state: bool) -> None:
    model = _model(kind, scale=3.0)
    tokens = torch.randint(0, VOCAB, (30,), generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(6)
    state: Tensor | tuple[Tensor, Tensor] | None = None
    if with_state:
        h = torch.randn(1, 16, generator=g)
        state = (h, torch.randn(1, 16, generator=g)) if kind == "lstm" else h
    record = model_gates(model, tokens, state)
    assert record.kind == kind and len(record.traces) == 1
    tr = record.trace()
    with torch.no_grad():
        _, hiddens, _ = model(tokens[None], state)
    np.testing.assert_allclose(tr["h"], hiddens[0].numpy(), atol=TOL, rtol=0)
    if kind == "lstm":
        with torch.no_grad():
            _, hiddens2, cells, _ = model.forward_with_cells(tokens[None], state)
        np.testing.assert_allclose(tr["c"], cells[0].numpy(), atol=TOL, rtol=0)
        np.testing.assert_allclose(tr["h"], hiddens2[0].numpy(), atol=TOL, rtol=0)
    # the row lookup of the one-hot equals the module reading the one-hot itself; a (1, H)
    # model state is also the (L*D, H) state of the one-layer module
    direct = rnn_gates(model.rnn, model.one_hot(tokens), state)
    for key, array in record.flat().items():
        np.testing.assert_allclose(array, direct.flat()[key], atol=TOL, rtol=0)


def test_model_gates_validates_tokens() -> None:
    model = _model("gru")
    with pytest.raises(ValueError):
        model_gates(model, torch.tensor([0, VOCAB]))
    with pytest.raises(ValueError):
        model_gates(model, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError):
        model_gates(model, torch.zeros(2, 3, dtype=torch.int64))


# ------------------------------------------------------------------------------- saturation


def _direct_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = values.reshape(-1, values.shape[-1])
    units = rows.shape[1]
    left, right = np.zeros(units), np.zeros(units)
    for row in rows:
        for j in range(units):
            v = float(row[j])
            if v < 0.1:
                left[j] += 1
            elif v > 0.9:
                right[j] += 1
    return left / len(rows), right / len(rows)


def test_saturation_counts() -> None:
    assert (LEFT_SATURATION, RIGHT_SATURATION) == (0.1, 0.9)
    values = np.array(
        [
            [0.05, 0.5, 0.95],
            [0.1, 0.9, 0.99],
            [0.0999, 0.9001, 0.2],
            [0.5, 0.01, 1.0],
        ],
        dtype=np.float32,
    )
    s = saturation(values)
    assert s.count == 4
    np.testing.assert_allclose(s.left, [0.5, 0.25, 0.0])
    np.testing.assert_allclose(s.right, [0.0, 0.25, 0.75])
    np.testing.assert_allclose(s.neither, [0.5, 0.5, 0.25])

    rng = np.random.default_rng(0)
    stacked = rng.uniform(0, 1, size=(3, 9, 4)).astype(np.float32)
    left, right = _direct_counts(stacked)
    s3 = saturation(torch.from_numpy(stacked))
    assert s3.count == 27
    np.testing.assert_allclose(s3.left, left)
    np.testing.assert_allclose(s3.right, right)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("chunk_elements", [None, 40])
def test_model_saturation_is_per_sequence_counts_concatenated(
    kind: str, chunk_elements: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if chunk_elements is not None:  # several chunks of sequences, counts summed
        monkeypatch.setattr(gates, "_CHUNK_ELEMENTS", chunk_elements)
    model = _model(kind, scale=4.0)
    B, steps = 6, 12
    tokens = torch.randint(0, VOCAB, (B, steps), generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(8)
    h = torch.randn(B, 16, generator=g)
    state = (h, torch.randn(B, 16, generator=g)) if kind == "lstm" else h
    batched = model_saturation(model, tokens, state)
    names = ("i", "f", "o") if kind == "lstm" else ("r", "z")
    assert set(batched) == {f"l0.forward.{n}" for n in names}
    for name in names:
        per_seq = []
        for b in range(B):
            row = slice(b, b + 1)
            s_b = (state[0][row], state[1][row]) if isinstance(state, tuple) else state[row]
            per_seq.append(model_gates(model, tokens[b], s_b).trace()[name])
        left, right = _direct_counts(np.concatenate(per_seq))
        got = batched[f"l0.forward.{name}"]
        assert got.count == B * steps
        np.testing.assert_allclose(got.left, left, err_msg=name)
        np.testing.assert_allclose(got.right, right, err_msg=name)
        assert (left + right).sum() > 0  # the comparison is not between zeros


def test_rnn_saturation_batched_bidirectional() -> None:
    rnn = _module("lstm", 2, True)
    with torch.no_grad():
        for p in rnn.parameters():
            p.mul_(3.0)
    B = 4
    x = torch.randn(B, T, INPUT, generator=torch.Generator().manual_seed(9))
    bf = nn.LSTM(INPUT, HIDDEN, num_layers=2, bidirectional=True, batch_first=True)
    bf.load_state_dict(rnn.state_dict())
    got_bf = rnn_saturation(bf, x)
    got_tf = rnn_saturation(rnn, x.transpose(0, 1))
    assert len(got_bf) == 2 * 2 * 3
    for key, sat in got_bf.items():
        layer, direction, name = key.split(".")
        per_seq = [rnn_gates(rnn, x[b]).trace(int(layer[1:]), direction)[name] for b in range(B)]  # type: ignore[arg-type]
        left, right = _direct_counts(np.concatenate(per_seq))
        np.testing.assert_allclose(sat.left, left, err_msg=key)
        np.testing.assert_allclose(sat.right, right, err_msg=key)
        np.testing.assert_array_equal(got_tf[key].left, sat.left)


# -------------------------------------------------------------------------------- retention


def _direct_retention(carry: np.ndarray, unit: int, reverse: bool) -> np.ndarray:
    steps = carry.shape[0]
    R = np.zeros((steps, steps))
    for t in range(steps):
        for k in range(steps):
            span = range(t, k) if reverse else range(k + 1, t + 1)
            if (k >= t) if reverse else (k <= t):
                p = 1.0
                for s in span:
                    p *= float(carry[s, unit])
                R[t, k] = p
    return R


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_retention_is_the_product_of_the_carry_gate(kind: str) -> None:
    rnn = _module(kind, 1, True)
    x = torch.randn(9, INPUT, generator=torch.Generator().manual_seed(10))
    record = rnn_gates(rnn, x)
    for direction in gates.DIRECTIONS:
        tr = record.trace(0, direction)
        carry = tr["f" if kind == "lstm" else "z"]
        reverse = direction == "reverse"
        per_unit = [_direct_retention(carry, j, reverse) for j in range(HIDDEN)]
        for j in range(HIDDEN):
            got = tr.retention(j)
            assert got.shape == (9, 9) and got.dtype == np.float32 and not got.flags.writeable
            np.testing.assert_allclose(got, per_unit[j], rtol=1e-5, atol=1e-7)
            np.testing.assert_array_equal(np.diag(got), 1.0)
            masked = np.triu(got, 1) if not reverse else np.tril(got, -1)
            np.testing.assert_array_equal(masked, 0.0)
        np.testing.assert_allclose(tr.mean_retention(), np.mean(per_unit, axis=0), rtol=1e-5)
        np.testing.assert_allclose(
            retention(carry, 2, direction), per_unit[2], rtol=1e-5, atol=1e-7
        )


def test_retention_survives_zeros_and_underflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gates, "_RETENTION_ELEMENTS", 50)  # mean over several unit chunks
    carry = np.array(
        [
            [0.5, 1e-30, 1.0, 0.9],
            [0.0, 1e-30, 1.0, 0.0],
            [0.5, 1e-30, 1.0, 0.0],
            [0.25, 0.5, 1.0, 0.9],
            [0.0, 1e-30, 1.0, 0.8],
        ],
        dtype=np.float32,
    )
    per_unit = [_direct_retention(carry, j, False) for j in range(4)]
    for j in range(4):
        got = retention(carry, j)
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, per_unit[j], rtol=1e-5, atol=1e-38)
    assert retention(carry, 0)[3, 0] == 0.0  # through the zero at step 1
    assert retention(carry, 0)[3, 1] == pytest.approx(0.125)  # past it: 0.5 * 0.25
    mean = mean_retention(torch.from_numpy(carry))
    assert np.isfinite(mean).all()
    np.testing.assert_allclose(mean, np.mean(per_unit, axis=0), rtol=1e-5, atol=1e-38)
    rev = [_direct_retention(carry, j, True) for j in range(4)]
    np.testing.assert_allclose(mean_retention(carry, "reverse"), np.mean(rev, axis=0), rtol=1e-5)


def test_retention_of_a_forget_gate_that_underflows_to_zero() -> None:
    rnn = _module("lstm", 1, False)
    with torch.no_grad():
        rnn.get_parameter("bias_ih_l0")[
            HIDDEN : 2 * HIDDEN
        ] = -200.0  # sigmoid(-200) is 0 in float32
    x = torch.randn(6, INPUT, generator=torch.Generator().manual_seed(11))
    tr = rnn_gates(rnn, x).trace()
    assert (tr["f"] == 0.0).all()
    np.testing.assert_array_equal(tr.mean_retention(), np.eye(6))
    np.testing.assert_array_equal(tr.retention(0), np.eye(6))


def test_a_retention_row_is_the_mean_product_of_the_recorded_carry_gate() -> None:
    from rnnviz.core.gates import mean_retention_row, retention_text

    rng = np.random.default_rng(3)
    carry = rng.uniform(0.2, 1.0, size=(9, 4)).astype(np.float32)
    t = 7
    row = mean_retention_row(carry, t)
    expect = [np.mean(np.prod(carry[t - d + 1 : t + 1].astype(np.float64), axis=0)) for d in
              range(t + 1)]  # fmt: skip
    np.testing.assert_allclose(row, expect, rtol=1e-12)
    assert row[0] == 1.0
    full = mean_retention(carry)
    np.testing.assert_allclose(row, [full[t, t - d] for d in range(t + 1)], rtol=1e-5)
    text = retention_text("lstm", np.arange(t + 1.0), row)
    amount = f"{row[-1]:.1%}" if row[-1] >= 0.001 else f"{row[-1]:.1e}"
    assert amount in text and "7 steps" in text and "f_s" in text
    assert "z_s" in retention_text("gru", np.arange(1.0), row[:1])
    with pytest.raises(IndexError):
        mean_retention_row(carry, 9)
