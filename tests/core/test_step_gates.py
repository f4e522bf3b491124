"""gated_step_detail against nn.LSTMCell/nn.GRUCell with copied weights, PyTorch's documented
gate formulas on those weights, and the model's own forward (logits, h, the LSTM's c)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from rnnviz.core import step_gates
from rnnviz.core.config import ModelConfig
from rnnviz.core.model import GRUModel, LSTMModel, build_model
from rnnviz.core.probe import probe
from rnnviz.core.step_gates import GRU_ROWS, LSTM_ROWS, gated_step_detail
from rnnviz.core.vocab import Vocab

torch.set_num_threads(1)

TOL = 1e-5
CORPUS = "hello world, the time machine " * 3
TEXT = "the hello world"
HIDDEN = 6


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab.from_text(CORPUS)


def _model(kind: str, vocab: Vocab, seed: int = 0) -> LSTMModel | GRUModel:
    model = build_model(len(vocab), ModelConfig(kind=kind, hidden_size=HIDDEN), seed=seed)
    torch.manual_seed(seed + 10)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1.0, 1.0)  # wider than the init: gates away from 0.5, c beyond ±1
    model.eval()
    assert isinstance(model, LSTMModel | GRUModel)
    return model


def _cell(model: LSTMModel | GRUModel) -> nn.LSTMCell | nn.GRUCell:
    cls = nn.LSTMCell if isinstance(model, LSTMModel) else nn.GRUCell
    cell = cls(model.vocab_size, model.hidden_size)
    with torch.no_grad():
        cell.weight_ih.copy_(model.rnn.weight_ih_l0)
        cell.weight_hh.copy_(model.rnn.weight_hh_l0)
        cell.bias_ih.copy_(model.rnn.bias_ih_l0)
        cell.bias_hh.copy_(model.rnn.bias_hh_l0)
    return cell.double()


@torch.no_grad()
def _reference(model: LSTMModel | GRUModel, vocab: Vocab, text: str) -> list[dict[str, np.ndarray]]:
    """Per step, row name -> float64 vector, stepped by the cell with copied weights; gates
    from PyTorch's documented formulas on the cell's weights, checked against the cell's own
    (h, c)."""
    cell = _cell(model)
    H = model.hidden_size
    ids = torch.tensor(vocab.encode(text))
    x = nn.functional.one_hot(ids, model.vocab_size).double()
    h = torch.zeros(1, H, dtype=torch.float64)
    c = torch.zeros(1, H, dtype=torch.float64)
    steps = []
    for t in range(len(ids)):
        xt = x[t : t + 1]
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
            c = c_cell
        else:
            xr, xz, xn = ax.chunk(3, 1)
            hr, hz, hn = ah.chunk(3, 1)
            r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
            n = (xn + r * hn).tanh()
            h_new = (1 - z) * n + z * h
            torch.testing.assert_close(h_new, cell(xt, h))
            row.update(r=r, z=z, x_n=xn, h_n=hn, r_h_n=r * hn, n=n)
            row.update(keep_n=(1 - z) * n, keep_h=z * h, h=h_new)
            h_cell = h_new
        h = h_cell
        steps.append({name: v[0].numpy() for name, v in row.items()})
    return steps


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_every_row_matches_the_cell_stepped_by_hand(kind, vocab):
    model = _model(kind, vocab)
    reference = _reference(model, vocab, TEXT)
    rows = LSTM_ROWS if kind == "lstm" else GRU_ROWS
    for t in range(len(TEXT)):
        detail = gated_step_detail(model, vocab, TEXT, t)
        assert detail.kind == kind and detail.rows == rows
        assert tuple(detail.vectors) == rows
        for name in rows:
            np.testing.assert_allclose(
                detail[name], reference[t][name], rtol=TOL, atol=TOL, err_msg=f"{name} at {t}"
            )


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_output_matches_the_models_own_forward(kind, vocab):
    model = _model(kind, vocab, seed=3)
    ids = torch.tensor(vocab.encode(TEXT))[None]
    with torch.no_grad():
        logits, hidden, _ = model(ids)
        cells = model.forward_with_cells(ids)[2] if isinstance(model, LSTMModel) else None
    for t in (0, 5, len(TEXT) - 1):
        detail = gated_step_detail(model, vocab, TEXT, t)
        np.testing.assert_allclose(detail["h"], hidden[0, t].numpy(), rtol=TOL, atol=TOL)
        np.testing.assert_allclose(detail.O_t, logits[0, t].numpy(), rtol=TOL, atol=TOL)
        np.testing.assert_allclose(
            detail.softmax, torch.softmax(logits[0, t], -1).numpy(), rtol=TOL, atol=1e-7
        )
        assert detail.fused_max_abs_diff < TOL
        if cells is not None:
            np.testing.assert_allclose(detail["c"], cells[0, t].numpy(), rtol=TOL, atol=TOL)
        if t > 0:
            np.testing.assert_allclose(detail["h_prev"], hidden[0, t - 1].numpy(), atol=TOL)


def test_the_lstm_rows_add_up(vocab):
    model = _model("lstm", vocab, seed=1)
    d = gated_step_detail(model, vocab, TEXT, 7)
    np.testing.assert_allclose(d["f_c_prev"] + d["i_g"], d["c"], atol=TOL)
    np.testing.assert_allclose(d["f"] * d["c_prev"], d["f_c_prev"], atol=TOL)
    np.testing.assert_allclose(d["o"] * np.tanh(d["c"]), d["h"], atol=TOL)
    np.testing.assert_allclose(np.tanh(d["c"]), d["tanh_c"], atol=TOL)
    # the cell scale holds every cell row of every step, at least ±1, on the 1-2-5 series
    lo, hi = d.cell_levels
    assert lo == -hi and hi >= 1.0 and hi in (1.0, 2.0, 5.0, 10.0, 20.0)
    cells = probe(model, vocab, TEXT, with_grad_flow=False).cell
    assert np.abs(cells).max() <= hi
    for t in range(len(TEXT)):
        s = gated_step_detail(model, vocab, TEXT, t)
        for name in ("c_prev", "f_c_prev", "i_g", "c"):
            assert np.abs(s[name]).max() <= hi
        assert s.cell_levels == d.cell_levels  # the same at every step


def test_the_gru_rows_add_up_with_the_reset_gate_after_the_product(vocab):
    model = _model("gru", vocab, seed=2)
    d = gated_step_detail(model, vocab, TEXT, 6)
    assert d.cell_levels is None
    np.testing.assert_allclose(np.tanh(d["x_n"] + d["r_h_n"]), d["n"], atol=TOL)
    np.testing.assert_allclose(d["keep_n"] + d["keep_h"], d["h"], atol=TOL)
    np.testing.assert_allclose(d["r"] * d["h_n"], d["r_h_n"], atol=TOL)
    # d2l's form (the reset gate before the product) gives a different candidate
    H = model.hidden_size
    w_hn = model.rnn.weight_hh_l0[2 * H :].detach().numpy()
    b_hn = model.rnn.bias_hh_l0[2 * H :].detach().numpy()
    d2l = np.tanh(d["x_n"] + (d["r"] * d["h_prev"]) @ w_hn.T + b_hn)
    assert np.abs(d2l - d["n"]).max() > 1e-3


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_first_and_last_step_and_the_token(kind, vocab):
    model = _model(kind, vocab)
    first = gated_step_detail(model, vocab, TEXT, 0)
    assert not first["h_prev"].any()
    if kind == "lstm":
        assert not first["c_prev"].any() and not first["f_c_prev"].any()
        np.testing.assert_allclose(first["c"], first["i_g"], atol=TOL)
    else:
        np.testing.assert_allclose(first["h"], first["keep_n"], atol=TOL)
    assert first.char == "t" and first.next_char == "h"
    assert first.token_id == vocab.encode("t")[0] and first.token == "t"
    assert first.X_t[first.token_id] == 1.0 and first.X_t.sum() == 1.0
    last = gated_step_detail(model, vocab, TEXT, len(TEXT) - 1)
    assert last.next_char is None and last.char == "d"
    unknown = gated_step_detail(model, vocab, "h§e", 1)
    assert unknown.token == "<unk>" and unknown.token_id == 0 and unknown.char == "§"


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_arrays_are_read_only_copies(kind, vocab):
    model = _model(kind, vocab)
    d = gated_step_detail(model, vocab, TEXT, 3)
    for array in (*d.vectors.values(), d.X_t, d.O_t, d.softmax):
        assert not array.flags.writeable
    assert all(v.shape == (HIDDEN,) for v in d.vectors.values())
    assert d.O_t.shape == d.softmax.shape == d.X_t.shape == (len(vocab),)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_probes_gate_record_gives_the_same_detail(kind, vocab):
    model = _model(kind, vocab, seed=4)
    result = probe(model, vocab, TEXT, with_grad_flow=False)
    for t in (0, 4, len(TEXT) - 1):
        own = gated_step_detail(model, vocab, TEXT, t)
        reused = gated_step_detail(model, vocab, TEXT, t, gates=result.gates)
        for name in own.rows:
            np.testing.assert_allclose(reused[name], own[name], atol=1e-6)
        np.testing.assert_allclose(reused.O_t, own.O_t, atol=1e-6)
    shorter = probe(model, vocab, TEXT[:4], with_grad_flow=False)
    with pytest.raises(ValueError, match="steps"):
        gated_step_detail(model, vocab, TEXT, 2, gates=shorter.gates)


def test_errors(vocab):
    scratch = build_model(len(vocab), ModelConfig(kind="scratch", hidden_size=4), seed=0)
    with pytest.raises(ValueError, match="GRU and LSTM"):
        gated_step_detail(scratch, vocab, TEXT, 0)
    model = _model("lstm", vocab)
    with pytest.raises(ValueError, match="outside"):
        gated_step_detail(model, vocab, TEXT, len(TEXT))
    with pytest.raises(ValueError, match="outside"):
        gated_step_detail(model, vocab, TEXT, -1)
    with pytest.raises(ValueError, match="empty"):
        gated_step_detail(model, vocab, "", 0)
    with pytest.raises(ValueError, match="vocabulary"):
        gated_step_detail(model, Vocab.from_text("ab"), "ab", 0)


def test_cell_levels_floor_and_rounding():
    assert step_gates.cell_levels(np.zeros((3, 2))) == (-1.0, 1.0)
    assert step_gates.cell_levels(np.array([[0.3, -0.2]])) == (-1.0, 1.0)
    assert step_gates.cell_levels(np.array([[1.3, -2.7]])) == (-5.0, 5.0)
    assert step_gates.cell_levels(np.array([[np.nan, -1.5]])) == (-2.0, 2.0)


def _stacked(kind: str, vocab: Vocab, layers: int, seed: int = 5) -> LSTMModel | GRUModel:
    config = ModelConfig(kind=kind, hidden_size=HIDDEN, num_layers=layers)
    model = build_model(len(vocab), config, seed=seed)
    torch.manual_seed(seed + 10)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1.0, 1.0)
    model.eval()
    assert isinstance(model, LSTMModel | GRUModel)
    return model


@torch.no_grad()
def _stacked_reference(
    model: LSTMModel | GRUModel, vocab: Vocab, text: str, layer: int
) -> list[dict[str, np.ndarray]]:
    """Per step, the rows of ``layer`` from a fresh torch.nn.LSTM/GRU with copied weights,
    stepped one character at a time: its h_n gives every layer's h_t (and c_t); the gates are
    PyTorch's documented formulas on layer ``layer``'s weights and its input, h_n[layer − 1]."""
    cls = nn.LSTM if isinstance(model, LSTMModel) else nn.GRU
    L, H = model.num_layers, model.hidden_size
    rnn = cls(model.vocab_size, H, num_layers=L).double()
    rnn.load_state_dict({k: v.double() for k, v in model.rnn.state_dict().items()})
    w_ih, w_hh = (getattr(rnn, f"{n}_l{layer}") for n in ("weight_ih", "weight_hh"))
    b_ih, b_hh = (getattr(rnn, f"{n}_l{layer}") for n in ("bias_ih", "bias_hh"))
    x = nn.functional.one_hot(torch.tensor(vocab.encode(text)), model.vocab_size).double()
    h = torch.zeros(L, 1, H, dtype=torch.float64)
    c = torch.zeros_like(h)
    steps = []
    for t in range(len(x)):
        if cls is nn.LSTM:
            _, (h_new, c_new) = rnn(x[t : t + 1, None], (h, c))
        else:
            _, h_new = rnn(x[t : t + 1, None], h)
        layer_in = x[t : t + 1] if layer == 0 else h_new[layer - 1]
        hp = h[layer]
        ax = layer_in @ w_ih.t() + b_ih
        ah = hp @ w_hh.t() + b_hh
        row: dict[str, Tensor] = {"h_prev": hp, "input": layer_in, "top": h_new[-1]}
        if cls is nn.LSTM:
            i, f, g, o = (ax + ah).chunk(4, 1)
            i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
            cp = c[layer]
            row.update(i=i, f=f, g=g, o=o, c_prev=cp, f_c_prev=f * cp, i_g=i * g)
            row.update(c=c_new[layer], tanh_c=c_new[layer].tanh(), h=h_new[layer])
            torch.testing.assert_close(f * cp + i * g, c_new[layer])
            c = c_new
        else:
            xr, xz, xn = ax.chunk(3, 1)
            hr, hz, hn = ah.chunk(3, 1)
            r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
            n = (xn + r * hn).tanh()
            row.update(r=r, z=z, x_n=xn, h_n=hn, r_h_n=r * hn, n=n)
            row.update(keep_n=(1 - z) * n, keep_h=z * hp, h=h_new[layer])
            torch.testing.assert_close((1 - z) * n + z * hp, h_new[layer])
        h = h_new
        steps.append({name: v[0].numpy() for name, v in row.items()})
    return steps


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [2, 3])
def test_every_layer_of_a_stacked_model_matches_torch_nn_with_copied_weights(kind, layers, vocab):
    model = _stacked(kind, vocab, layers)
    ids = torch.tensor(vocab.encode(TEXT))[None]
    with torch.no_grad():
        logits = model(ids)[0][0]
    gates = probe(model, vocab, TEXT, with_grad_flow=False).gates
    for layer in range(layers):
        reference = _stacked_reference(model, vocab, TEXT, layer)
        for t in (0, 1, 7, len(TEXT) - 1):
            for record in (None, gates):  # computed here, and the probe's record reused
                d = gated_step_detail(model, vocab, TEXT, t, gates=record, layer=layer)
                assert (d.layer, d.num_layers) == (layer, layers)
                for name in d.rows:
                    np.testing.assert_allclose(
                        d[name], reference[t][name], rtol=TOL, atol=TOL, err_msg=f"{name} {t}"
                    )
                np.testing.assert_allclose(d.layer_input, reference[t]["input"], atol=TOL)
                # the output is the top layer's, whichever layer the rows are
                np.testing.assert_allclose(d.O_t, logits[t].numpy(), rtol=TOL, atol=TOL)
                assert d.fused_max_abs_diff < TOL
    # layer 0 reads the one-hot character, a layer above reads an H-wide h_t
    first = gated_step_detail(model, vocab, TEXT, 3, layer=0)
    np.testing.assert_array_equal(first.layer_input, first.X_t)
    above = gated_step_detail(model, vocab, TEXT, 3, layer=1)
    assert above.layer_input.shape == (HIDDEN,) and above.X_t.shape == (len(vocab),)
    np.testing.assert_allclose(above.layer_input, first["h"], atol=TOL)


def test_a_stacked_models_default_layer_is_the_top_one_and_others_are_refused(vocab):
    model = _stacked("gru", vocab, 3)
    top = gated_step_detail(model, vocab, TEXT, 4)
    assert top.layer == 2
    np.testing.assert_array_equal(top["h"], gated_step_detail(model, vocab, TEXT, 4, layer=2)["h"])
    for layer in (-1, 3):
        with pytest.raises(ValueError, match="3 layer"):
            gated_step_detail(model, vocab, TEXT, 4, layer=layer)
