"""Probe of a typed string: every number against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from rnnviz.core.config import ModelConfig
from rnnviz.core.model import CharModel, GRUModel, LSTMModel, ScratchRNN, build_model
from rnnviz.core.probe import (
    MAX_GRAD_FLOW_CHARS,
    generate,
    grad_flow_to_distance,
    hidden_jacobian_norms,
    model_from_params,
    nice_ceiling,
    params_to_numpy,
    probe,
    step_detail,
)
from rnnviz.core.vocab import Vocab

torch.set_num_threads(1)

CORPUS = "the time traveller for so it will be convenient to speak of him"
TEXT = "the time"  # T = 8, every character known
HIDDEN = 6

# (kind, activation): every model and phi a probe must handle
VARIANTS = [
    ("scratch", "tanh"),
    ("scratch", "relu"),
    ("fast", "tanh"),
    ("fast", "relu"),
    ("gru", "tanh"),
    ("lstm", "tanh"),
]


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab.from_text(CORPUS)


def make_model(
    vocab: Vocab, kind: str, activation: str = "tanh", hidden: int = HIDDEN, seed: int = 1
) -> CharModel:
    model = build_model(
        len(vocab),
        ModelConfig(kind=kind, activation=activation, hidden_size=hidden),  # type: ignore[arg-type]
        seed=seed,
    )
    # larger recurrent weights than the init: long-range gradients that neither vanish to
    # nothing nor saturate, and ReLU units that are not all dead
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "hh" in name:
                p.mul_(2.5)
    return model


def ids_of(vocab: Vocab, text: str) -> Tensor:
    return torch.from_numpy(vocab.encode(text))


# ------------------------------------------------------------ independent references


def naive_hidden_nodes(model: CharModel, ids: Tensor) -> list[Tensor]:
    """Each H_k a (1, H) node of one graph: the textbook recurrence, one step at a time."""
    H = model.hidden_size
    h = torch.zeros(1, H, dtype=torch.get_default_dtype())
    hs: list[Tensor] = []
    if isinstance(model, ScratchRNN):
        h = h.to(model.W_hh.dtype)
        for t in range(len(ids)):
            h = model.phi(model.W_xh[ids[t]][None] + h @ model.W_hh + model.b_h)
            hs.append(h)
        return hs
    assert isinstance(model, GRUModel | LSTMModel)
    x = nn.functional.one_hot(ids, model.vocab_size).to(model.W_hq.dtype)[None]
    c = torch.zeros_like(h)
    for t in range(len(ids)):
        if isinstance(model, LSTMModel):
            _, (h_n, c_n) = model.rnn(x[:, t : t + 1], (h[None], c[None]))
            h, c = h_n[0], c_n[0]
        else:
            _, h_n = model.rnn(x[:, t : t + 1], h[None])
            h = h_n[0]
        hs.append(h)
    return hs


def naive_grad_flow(model: CharModel, ids: Tensor) -> np.ndarray:
    """G[t, k] by one autograd.grad call per (t, k): slow, obviously right."""
    T = len(ids)
    hs = naive_hidden_nodes(model, ids)
    assert isinstance(model, ScratchRNN | GRUModel | LSTMModel)
    W_hq, b_q = model.W_hq, model.b_q
    G = np.zeros((T, T))
    for t in range(T - 1):
        loss = nn.functional.cross_entropy(hs[t] @ W_hq + b_q, ids[t + 1 : t + 2])
        for k in range(t + 1):
            (g,) = torch.autograd.grad(loss, hs[k], retain_graph=True)
            G[t, k] = float(g.norm())
    return G


def autograd_jacobian_norms(model: CharModel, ids: Tensor, t: int) -> np.ndarray:
    """||dH_t/dH_k||_F by torch.autograd.functional.jacobian of steps k+1..t (c_k fixed)."""
    with torch.no_grad():
        if isinstance(model, LSTMModel):
            _, hidden, cells, _ = model.forward_with_cells(ids[None])
        else:
            _, hidden, _ = model(ids[None])
            cells = None
    x = nn.functional.one_hot(ids, model.vocab_size).to(hidden.dtype)[None]
    out = np.zeros(t + 1)
    for k in range(t + 1):

        def run_from(h: Tensor, k: int = k) -> Tensor:
            h = h[None]
            c = None if cells is None else cells[:, k]
            for j in range(k + 1, t + 1):
                if isinstance(model, ScratchRNN):
                    h = model.phi(model.W_xh[ids[j]][None] + h @ model.W_hh + model.b_h)
                elif isinstance(model, LSTMModel):
                    assert c is not None
                    _, (h_n, c_n) = model.rnn(x[:, j : j + 1], (h[None], c[None]))
                    h, c = h_n[0], c_n[0]
                else:
                    assert isinstance(model, GRUModel)
                    _, h_n = model.rnn(x[:, j : j + 1], h[None])
                    h = h_n[0]
            return h[0]

        J = torch.autograd.functional.jacobian(run_from, hidden[0, k])  # type: ignore[no-untyped-call]
        out[k] = float(torch.linalg.matrix_norm(J))
    return out


# ------------------------------------------------------------------- the probe result


@pytest.mark.parametrize(("kind", "activation"), VARIANTS)
def test_shapes_dtypes_and_read_only(vocab: Vocab, kind: str, activation: str) -> None:
    model = make_model(vocab, kind, activation)
    res = probe(model, vocab, TEXT, top_k=3)
    T, H, V = len(TEXT), HIDDEN, len(vocab)
    assert res.text == TEXT and res.vocab_tokens == vocab.tokens
    assert res.kind == kind and res.activation == activation
    assert res.tokens.dtype == np.int64 and res.tokens.shape == (T,)
    assert np.array_equal(res.tokens, vocab.encode(TEXT))
    assert res.hidden.shape == (T, H)
    assert (res.cell is not None) == (kind == "lstm")
    assert res.probs.shape == (T, V)
    assert res.topk_ids.shape == res.topk_probs.shape == (T, 3)
    assert res.topk_ids.dtype == np.int64
    assert res.step_loss.shape == res.surprisal_bits.shape == (T,)
    assert res.grad_flow is not None and res.grad_flow.shape == (T, T)
    arrays = [
        res.tokens,
        res.hidden,
        res.probs,
        res.topk_ids,
        res.topk_probs,
        res.step_loss,
        res.surprisal_bits,
        res.grad_flow,
    ]
    if res.cell is not None:
        arrays.append(res.cell)
    for a in arrays:
        assert isinstance(a, np.ndarray) and not a.flags.writeable


@pytest.mark.parametrize(("kind", "activation"), VARIANTS)
def test_hidden_and_probs_match_the_model(vocab: Vocab, kind: str, activation: str) -> None:
    model = make_model(vocab, kind, activation)
    ids = ids_of(vocab, TEXT)
    res = probe(model, vocab, TEXT)
    np.testing.assert_allclose(res.probs.sum(axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        _, hidden, _ = model(ids[None])
        np.testing.assert_allclose(res.hidden, hidden[0].numpy(), atol=1e-6)
        for t in range(len(TEXT)):
            # row t is the prediction after reading text[:t+1], i.e. of character t+1
            logits, _, _ = model(ids[None, : t + 1])
            expected = torch.softmax(logits[0, -1], dim=-1).numpy()
            np.testing.assert_allclose(res.probs[t], expected, atol=1e-6)


def test_lstm_cell_states_are_forward_with_cells(vocab: Vocab) -> None:
    model = make_model(vocab, "lstm")
    assert isinstance(model, LSTMModel)
    res = probe(model, vocab, TEXT)
    with torch.no_grad():
        _, hidden, cells, _ = model.forward_with_cells(ids_of(vocab, TEXT)[None])
    assert res.cell is not None
    np.testing.assert_allclose(res.cell, cells[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(res.hidden, hidden[0].numpy(), atol=1e-6)


def test_topk_is_sorted_and_consistent_with_probs(vocab: Vocab) -> None:
    res = probe(make_model(vocab, "scratch"), vocab, TEXT, top_k=4)
    assert np.all(np.diff(res.topk_probs, axis=1) <= 0)
    np.testing.assert_array_equal(
        res.topk_probs, np.take_along_axis(res.probs, res.topk_ids, axis=1)
    )
    # nothing left out of the top k is more likely than the k-th
    for t in range(len(TEXT)):
        rest = np.delete(res.probs[t], res.topk_ids[t])
        assert rest.max() <= res.topk_probs[t, -1]
    # top_k larger than the vocabulary shrinks to it
    assert probe(make_model(vocab, "scratch"), vocab, TEXT, top_k=999).topk_ids.shape[1] == len(
        vocab
    )


def test_step_loss_and_surprisal(vocab: Vocab) -> None:
    res = probe(make_model(vocab, "gru"), vocab, TEXT)
    T = len(TEXT)
    expected = -np.log(res.probs[np.arange(T - 1), res.tokens[1:]])
    np.testing.assert_allclose(res.step_loss[:-1], expected, rtol=1e-5)
    assert math.isnan(res.step_loss[-1]) and math.isnan(res.surprisal_bits[-1])
    np.testing.assert_allclose(res.surprisal_bits[:-1], expected / math.log(2), rtol=1e-5)
    assert res.mean_loss == pytest.approx(float(expected.mean()), rel=1e-5)


# ------------------------------------------------------------------------ gradient flow


@pytest.mark.parametrize(("kind", "activation"), VARIANTS)
def test_grad_flow_equals_naive_autograd(vocab: Vocab, kind: str, activation: str) -> None:
    model = make_model(vocab, kind, activation)
    res = probe(model, vocab, TEXT)
    expected = naive_grad_flow(model, ids_of(vocab, TEXT))
    assert res.grad_flow is not None
    assert expected[:-1].max() > 1e-3  # the comparison is not of zeros with zeros
    np.testing.assert_allclose(res.grad_flow, expected, rtol=1e-5, atol=1e-6)
    # structure: nothing above the diagonal, no loss (so no gradient) at the last step
    assert np.all(np.triu(res.grad_flow, k=1) == 0)
    assert np.all(res.grad_flow[-1] == 0)


def test_grad_flow_finite_difference_float64(vocab: Vocab) -> None:
    model = make_model(vocab, "scratch").double()
    assert isinstance(model, ScratchRNN)
    ids = ids_of(vocab, TEXT)
    t, k = 6, 2
    res = probe(model, vocab, TEXT)
    assert res.grad_flow is not None and res.grad_flow.dtype == np.float64

    @torch.no_grad()
    def loss_with_nudge(unit: int, delta: float) -> float:
        h = torch.zeros(model.hidden_size, dtype=torch.float64)
        for j in range(t + 1):
            h = model.phi(model.W_xh[ids[j]] + h @ model.W_hh + model.b_h)
            if j == k:  # perturb H_k alone, then let the recurrence carry it on
                h = h.clone()
                h[unit] += delta
        logits = h @ model.W_hq + model.b_q
        return float(-torch.log_softmax(logits, dim=-1)[ids[t + 1]])

    eps = 1e-6
    grad = np.array(
        [
            (loss_with_nudge(i, eps) - loss_with_nudge(i, -eps)) / (2 * eps)
            for i in range(model.hidden_size)
        ]
    )
    assert res.grad_flow[t, k] == pytest.approx(np.linalg.norm(grad), rel=1e-6)


def test_grad_flow_on_a_one_character_text(vocab: Vocab) -> None:
    res = probe(make_model(vocab, "lstm"), vocab, "t")
    assert res.grad_flow is not None and res.grad_flow.shape == (1, 1)
    assert res.grad_flow[0, 0] == 0 and math.isnan(res.step_loss[0])
    assert math.isnan(res.mean_loss)
    np.testing.assert_allclose(res.probs.sum(), 1.0, atol=1e-5)


def test_without_grad_flow(vocab: Vocab) -> None:
    res = probe(make_model(vocab, "scratch"), vocab, TEXT, with_grad_flow=False)
    assert res.grad_flow is None


def test_grad_flow_length_limit(vocab: Vocab) -> None:
    model = make_model(vocab, "scratch", hidden=2)
    long_text = "t" * (MAX_GRAD_FLOW_CHARS + 1)
    with pytest.raises(ValueError, match="with_grad_flow=False"):
        probe(model, vocab, long_text)
    assert probe(model, vocab, long_text, with_grad_flow=False).hidden.shape[0] == len(long_text)


@pytest.mark.parametrize(("kind", "activation"), VARIANTS)
def test_hidden_jacobian_norms_equal_autograd(vocab: Vocab, kind: str, activation: str) -> None:
    model = make_model(vocab, kind, activation)
    t = 6
    norms = hidden_jacobian_norms(model, vocab, TEXT, t)
    assert norms.shape == (t + 1,) and not norms.flags.writeable
    assert norms[t] == pytest.approx(math.sqrt(HIDDEN), rel=1e-6)  # dH_t/dH_t = I
    expected = autograd_jacobian_norms(model, ids_of(vocab, TEXT), t)
    np.testing.assert_allclose(norms, expected, rtol=1e-5, atol=1e-6)


def test_grad_flow_to_distance(vocab: Vocab) -> None:
    res = probe(make_model(vocab, "scratch"), vocab, TEXT)
    assert res.grad_flow is not None
    distances, values = grad_flow_to_distance(res.grad_flow, 5)
    np.testing.assert_array_equal(distances, np.arange(6))
    np.testing.assert_array_equal(values, [res.grad_flow[5, 5 - d] for d in range(6)])
    with pytest.raises(ValueError, match="outside"):
        grad_flow_to_distance(res.grad_flow, len(TEXT))
    with pytest.raises(ValueError, match="square"):
        grad_flow_to_distance(np.zeros((2, 3)), 0)


# ------------------------------------------------------------------------- step detail


@pytest.mark.parametrize(("kind", "activation"), VARIANTS[:4])
def test_step_detail_is_the_equation(vocab: Vocab, kind: str, activation: str) -> None:
    model = make_model(vocab, kind, activation)
    assert isinstance(model, ScratchRNN)
    res = probe(model, vocab, TEXT)
    for t in (0, 3, len(TEXT) - 1):
        d = step_detail(model, vocab, TEXT, t)
        assert d.t == t and d.char == TEXT[t] and d.token_id == int(res.tokens[t])
        assert d.next_char == (TEXT[t + 1] if t + 1 < len(TEXT) else None)
        assert d.X_t.sum() == 1 and d.X_t[d.token_id] == 1
        expected_prev = np.zeros(HIDDEN) if t == 0 else res.hidden[t - 1]
        np.testing.assert_allclose(d.H_prev, expected_prev, atol=1e-6)
        np.testing.assert_allclose(d.xW, model.W_xh[d.token_id].detach().numpy(), atol=1e-7)
        np.testing.assert_allclose(d.hW, d.H_prev @ model.W_hh.detach().numpy(), atol=1e-6)
        np.testing.assert_allclose(d.pre_activation, d.xW + d.hW + d.b_h, atol=1e-6)
        phi = np.tanh if activation == "tanh" else (lambda a: np.maximum(a, 0.0))
        np.testing.assert_allclose(d.H_t, phi(d.pre_activation), atol=1e-6)
        np.testing.assert_allclose(d.H_t, res.hidden[t], atol=1e-6)
        assert d.concat_max_abs_diff < 1e-6
        np.testing.assert_allclose(d.concat, d.xW + d.hW, atol=1e-6)
        np.testing.assert_allclose(
            d.O_t, d.H_t @ model.W_hq.detach().numpy() + model.b_q.detach().numpy(), atol=1e-6
        )
        np.testing.assert_allclose(d.softmax, res.probs[t], atol=1e-6)
        for a in (d.X_t, d.H_prev, d.pre_activation, d.H_t, d.O_t, d.softmax, d.concat):
            assert not a.flags.writeable


def test_step_detail_refuses_gated_models_and_bad_steps(vocab: Vocab) -> None:
    for kind in ("gru", "lstm"):
        with pytest.raises(ValueError, match="gates"):
            step_detail(make_model(vocab, kind), vocab, TEXT, 0)
    with pytest.raises(ValueError, match="outside"):
        step_detail(make_model(vocab, "scratch"), vocab, TEXT, len(TEXT))


# ---------------------------------------------------------------------------- generate


@pytest.mark.parametrize("kind", ["scratch", "gru", "lstm"])
def test_greedy_generation_is_the_argmax_chain(vocab: Vocab, kind: str) -> None:
    model = make_model(vocab, kind)
    out = generate(model, vocab, "the ", 12)
    assert out.startswith("the ") and len(out) == 4 + 12
    # re-read the whole text from scratch each time: the same as carrying the state
    text = "the "
    with torch.no_grad():
        for _ in range(12):
            logits, _, _ = model(ids_of(vocab, text)[None])
            text += vocab.tokens[int(torch.argmax(logits[0, -1]))]
    assert out == text


def test_sampled_generation_is_deterministic_per_seed(vocab: Vocab) -> None:
    model = make_model(vocab, "scratch")
    a = generate(model, vocab, "time", 40, temperature=1.0, seed=3)
    assert a == generate(model, vocab, "time", 40, temperature=1.0, seed=3)
    others = {generate(model, vocab, "time", 40, temperature=1.0, seed=s) for s in range(4, 8)}
    assert others != {a}
    assert generate(model, vocab, "time", 0) == "time"


def test_generate_rejects_bad_arguments(vocab: Vocab) -> None:
    model = make_model(vocab, "scratch")
    with pytest.raises(ValueError, match="prefix"):
        generate(model, vocab, "", 5)
    with pytest.raises(ValueError, match="num_chars"):
        generate(model, vocab, "t", -1)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, vocab, "t", 3, temperature=-1.0)


# ------------------------------------------------------------------ parameter snapshots


@pytest.mark.parametrize(("kind", "activation"), VARIANTS)
def test_model_from_params_round_trip(vocab: Vocab, kind: str, activation: str) -> None:
    model = make_model(vocab, kind, activation)
    params = params_to_numpy(model)
    assert all(not a.flags.writeable for a in params.values())
    rebuilt = model_from_params(model.config, len(vocab), params)
    assert type(rebuilt) is type(model) and not rebuilt.training
    a, b = probe(model, vocab, TEXT), probe(rebuilt, vocab, TEXT)
    for field in ("hidden", "probs", "topk_ids", "step_loss", "grad_flow"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    # the rebuilt model owns its memory: changing it leaves the snapshot alone
    with torch.no_grad():
        next(rebuilt.parameters()).add_(1.0)
    np.testing.assert_array_equal(
        params_to_numpy(model)[next(iter(params))], next(iter(params.values()))
    )


def test_model_from_params_rejects_a_mismatch(vocab: Vocab) -> None:
    params = params_to_numpy(make_model(vocab, "scratch"))
    with pytest.raises(ValueError, match="do not fit"):
        model_from_params(ModelConfig(kind="scratch", hidden_size=HIDDEN + 1), len(vocab), params)
    with pytest.raises(ValueError, match="do not fit"):
        model_from_params(ModelConfig(kind="gru", hidden_size=HIDDEN), len(vocab), params)


def test_fast_and_scratch_probe_alike(vocab: Vocab) -> None:
    for activation in ("tanh", "relu"):
        scratch = make_model(vocab, "scratch", activation)
        fast = model_from_params(
            ModelConfig(kind="fast", activation=activation, hidden_size=HIDDEN),
            len(vocab),
            params_to_numpy(scratch),
        )
        a, b = probe(scratch, vocab, TEXT), probe(fast, vocab, TEXT)
        for field in ("hidden", "probs", "grad_flow"):
            np.testing.assert_allclose(getattr(a, field), getattr(b, field), atol=1e-5)


# ------------------------------------------------------------------ side effects, input


@pytest.mark.parametrize("kind", ["scratch", "fast", "gru", "lstm"])
def test_optimizer_gradients_and_mode_untouched(vocab: Vocab, kind: str) -> None:
    model = make_model(vocab, kind)
    model.train()
    known = {n: torch.full_like(p, 0.125) for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.grad = known[n].clone()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    probe(model, vocab, TEXT)
    hidden_jacobian_norms(model, vocab, TEXT, 5)
    generate(model, vocab, "the", 5, temperature=0.5)
    if kind in ("scratch", "fast"):
        step_detail(model, vocab, TEXT, 3)
    for n, p in model.named_parameters():
        assert p.grad is not None and torch.equal(p.grad, known[n]), n
        assert torch.equal(p.detach(), before[n]) and p.requires_grad, n
    assert model.training


def test_unknown_characters(vocab: Vocab) -> None:
    model = make_model(vocab, "scratch")
    text = "the Z#time"
    res = probe(model, vocab, text)
    assert res.unknown == (4, 5) and not res.all_unknown
    assert res.tokens[4] == res.tokens[5] == 0
    only_unknown = probe(model, vocab, "ZZ#")
    assert only_unknown.all_unknown and only_unknown.unknown == (0, 1, 2)
    np.testing.assert_allclose(only_unknown.probs.sum(axis=1), 1.0, atol=1e-5)


def test_empty_text_and_wrong_vocab(vocab: Vocab) -> None:
    model = make_model(vocab, "scratch")
    with pytest.raises(ValueError, match="empty"):
        probe(model, vocab, "")
    with pytest.raises(ValueError, match="empty"):
        hidden_jacobian_norms(model, vocab, "", 0)
    with pytest.raises(ValueError, match="top_k"):
        probe(model, vocab, TEXT, top_k=0)
    with pytest.raises(ValueError, match="vocabulary has"):
        probe(model, Vocab.from_text("ab"), "ab")


def test_hidden_levels(vocab: Vocab) -> None:
    assert probe(make_model(vocab, "lstm"), vocab, TEXT).hidden_levels == (-1.0, 1.0)
    assert probe(make_model(vocab, "scratch"), vocab, TEXT).hidden_levels == (-1.0, 1.0)
    res = probe(make_model(vocab, "scratch", "relu"), vocab, TEXT)
    low, high = res.hidden_levels
    assert low == 0.0 and high >= max(1.0, float(res.hidden.max()))
    # a 1-2-5 value: fixed while the activations move a little, and a readable scale
    assert high / 10.0 ** math.floor(math.log10(high)) in (1.0, 2.0, 5.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.3, 0.5), (1.0, 1.0), (1.01, 2.0), (2.0, 2.0), (4.2, 5.0), (7.0, 10.0), (6.5e16, 1e17)],
)
def test_nice_ceiling(value: float, expected: float) -> None:
    assert nice_ceiling(value) == pytest.approx(expected)
    assert nice_ceiling(value) >= value


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", ["scratch", "gru", "lstm"])
def test_probe_on_cuda_equals_cpu(vocab: Vocab, kind: str) -> None:
    model = make_model(vocab, kind)
    cpu = probe(model, vocab, TEXT)
    gpu = probe(model.to("cuda"), vocab, TEXT)
    for field in ("hidden", "probs", "step_loss", "grad_flow"):
        np.testing.assert_allclose(getattr(gpu, field), getattr(cpu, field), atol=1e-5)
    np.testing.assert_allclose(
        hidden_jacobian_norms(model, vocab, TEXT, 5),
        hidden_jacobian_norms(model.to("cpu"), vocab, TEXT, 5),
        rtol=1e-4,
    )


# --------------------------------------------------------- the incremental Prober


def assert_same_result(got, expected) -> None:  # type: ignore[no-untyped-def]
    """Two ProbeResults agree: equal text and tokens, numbers equal up to float rounding.

    1e-5 as for the fast path against the scratch model: the fast RNN's tanh is computed as
    2 sigmoid(2a) - 1 with the constants folded into the weights, so a step continued from a
    cached state and the same step inside one pass differ by ~1e-6 (seen: 1.5e-6).
    """
    assert got.text == expected.text
    np.testing.assert_array_equal(got.tokens, expected.tokens)
    assert got.unknown == expected.unknown
    for name in ("hidden", "probs", "topk_probs", "step_loss", "surprisal_bits"):
        np.testing.assert_allclose(
            getattr(got, name), getattr(expected, name), rtol=1e-5, atol=1e-5, err_msg=name
        )
    if expected.cell is None:
        assert got.cell is None
    else:
        np.testing.assert_allclose(got.cell, expected.cell, rtol=1e-5, atol=1e-5)
    if expected.grad_flow is None:
        assert got.grad_flow is None
    else:
        assert got.grad_flow is not None and got.grad_flow.shape == expected.grad_flow.shape
        np.testing.assert_allclose(got.grad_flow, expected.grad_flow, rtol=1e-4, atol=1e-5)
    assert got.hidden_levels == expected.hidden_levels


# a typing session: append, backspace, edit in the middle, paste over, unknown characters
EDITS = [
    "t",
    "th",
    "the",
    "the ",
    "the t",
    "the ti",
    "the t",
    "the tim",
    "the time",
    "the lime",  # a change in the middle: everything after it is recomputed
    "the lime!",  # an unknown character
    "xhe lime!",  # a change at the start: nothing is reused
    "speak of him",  # pasted over
    "speak of him",  # the same text again
    "speak",
]


@pytest.mark.parametrize(("kind", "activation"), VARIANTS)
def test_prober_over_a_typing_session_equals_fresh_probes(
    vocab: Vocab, kind: str, activation: str
) -> None:
    from rnnviz.core.probe import Prober

    model = make_model(vocab, kind, activation)
    prober = Prober(model, vocab)
    reused = []
    for i, text in enumerate(EDITS):
        with_grad_flow = i != 4  # one probe without: the next must not reuse a missing G
        got = prober.probe(text, with_grad_flow=with_grad_flow)
        assert_same_result(got, probe(model, vocab, text, with_grad_flow=with_grad_flow))
        reused.append(prober.reused_steps)
    # the cache really is used where the texts share a beginning, and only there
    assert reused[:4] == [0, 1, 2, 3]
    assert reused[EDITS.index("the lime")] == 4
    assert reused[EDITS.index("xhe lime!")] == 0
    assert reused[EDITS.index("speak of him") + 1] == len("speak of him")


def test_prober_after_a_probe_without_grad_flow_recomputes_all_rows(vocab: Vocab) -> None:
    from rnnviz.core.probe import Prober

    model = make_model(vocab, "fast")
    prober = Prober(model, vocab)
    prober.probe("the tim", with_grad_flow=False)
    got = prober.probe("the time")
    assert prober.reused_steps == 7
    assert_same_result(got, probe(model, vocab, "the time"))
    assert got.grad_flow is not None and got.grad_flow[:6].max() > 0


@pytest.mark.parametrize("kind", ["fast", "lstm"])
def test_prober_random_edits_equal_fresh_probes(vocab: Vocab, kind: str) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from rnnviz.core.probe import Prober

    model = make_model(vocab, kind)
    alphabet = "the timravl!"
    edit = st.tuples(
        st.sampled_from(["append", "backspace", "insert", "delete", "replace"]),
        st.integers(0, 40),
        st.sampled_from(alphabet),
    )

    @settings(max_examples=60, deadline=None)
    @given(start=st.text(alphabet, min_size=1, max_size=12), edits=st.lists(edit, max_size=8))
    def check(start: str, edits: list[tuple[str, int, str]]) -> None:
        prober = Prober(model, vocab)
        text = start
        prober.probe(text)
        for op, pos, ch in edits:
            i = pos % (len(text) + 1)
            if op == "append":
                text += ch
            elif op == "backspace" and len(text) > 1:
                text = text[:-1]
            elif op == "insert":
                text = text[:i] + ch + text[i:]
            elif op == "delete" and len(text) > 1:
                text = text[: min(i, len(text) - 1)] + text[min(i, len(text) - 1) + 1 :]
            elif op == "replace":
                text = text[:i] + ch + text[i + 1 :] if i < len(text) else text
            assert_same_result(prober.probe(text), probe(model, vocab, text))

    check()


def test_prober_refuses_a_wrong_vocabulary(vocab: Vocab) -> None:
    from rnnviz.core.probe import Prober

    with pytest.raises(ValueError, match="vocabulary"):
        Prober(make_model(vocab, "fast"), Vocab.from_text("ab"))


def test_scratch_grad_flow_without_the_step_history_is_the_same(
    vocab: Vocab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Long texts take the sweep that keeps no history of M (too large): same numbers."""
    import rnnviz.core.probe as probe_module

    model = make_model(vocab, "fast")
    text = "the time traveller for so"
    kept = probe(model, vocab, text)
    monkeypatch.setattr(probe_module, "_HISTORY_MAX_ELEMENTS", 0)
    swept = probe(model, vocab, text)
    assert kept.grad_flow is not None and swept.grad_flow is not None
    assert kept.grad_flow[:-1].max() > 1e-3
    np.testing.assert_allclose(swept.grad_flow, kept.grad_flow, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        swept.grad_flow, naive_grad_flow(model, ids_of(vocab, text)), rtol=1e-4, atol=1e-6
    )


def test_prober_work_counts_only_what_the_cache_lacks(vocab: Vocab) -> None:
    from rnnviz.core.probe import Prober

    model = make_model(vocab, "fast")
    H, V = model.hidden_size, model.vocab_size
    prober = Prober(model, vocab)
    assert prober.work("the time") == (8 * (H * H + H * V), 7 * 8 * H * H)
    prober.probe("the time")
    # one more character: one forward step, and one row of G (the old last character gains
    # a loss; the new last one has none)
    assert prober.work("the times") == (H * H + H * V, 9 * H * H)
    assert prober.work("the tim") == (0, 0)  # a backspace: everything is cached
    assert prober.work("the times", with_grad_flow=False)[1] == 0
    lstm = Prober(make_model(vocab, "lstm"), vocab)
    assert lstm.work("the")[0] == 3 * (4 * H * H + H * V)


def test_a_cancelled_probe_raises_and_leaves_the_cache_as_it_was(vocab: Vocab) -> None:
    from rnnviz.core.probe import ProbeCancelled, Prober

    model = make_model(vocab, "fast")
    prober = Prober(model, vocab)
    prober.probe("the time")
    asked: list[int] = []

    def cancelled() -> bool:
        asked.append(1)
        return True

    with pytest.raises(ProbeCancelled):
        prober.probe("xhe time traveller", cancelled=cancelled)
    assert asked  # it looked
    got = prober.probe("the times")
    assert prober.reused_steps == len("the time")  # the cache is the one before the cancel
    assert_same_result(got, probe(model, vocab, "the times"))
    # never cancelled: the same numbers as without the callback
    assert_same_result(
        Prober(model, vocab).probe("the time", cancelled=lambda: False),
        probe(model, vocab, "the time"),
    )


# ------------------------------------------------------------------- the recurrence cut


def _mlp_reference(model: CharModel, vocab: Vocab, text: str) -> tuple[np.ndarray, np.ndarray]:
    """Per step: the prediction of a probe of character t alone (a zero state before it, which
    is the recurrence cut), as (probs (T, V), loss (T,))."""
    rows = [probe(model, vocab, c, with_grad_flow=False).probs[0] for c in text]
    probs = np.stack(rows).astype(np.float64)
    ids = vocab.encode(text)
    loss = np.full(len(text), np.nan)
    loss[:-1] = [-math.log(probs[t, ids[t + 1]]) for t in range(len(text) - 1)]
    return probs, loss


@pytest.mark.parametrize(("kind", "activation"), VARIANTS)
def test_no_recurrence_reads_each_character_alone(vocab: Vocab, kind: str, activation: str) -> None:
    model = make_model(vocab, kind, activation)
    res = probe(model, vocab, TEXT)
    mlp = res.no_recurrence
    probs, loss = _mlp_reference(model, vocab, TEXT)
    np.testing.assert_allclose(mlp.step_loss, loss, atol=1e-5)
    np.testing.assert_array_equal(mlp.top_ids, probs.argmax(axis=1))
    np.testing.assert_allclose(mlp.top_probs, probs.max(axis=1), atol=1e-6)
    assert math.isclose(mlp.mean_loss, float(np.mean(loss[:-1])), rel_tol=1e-6)
    # the recurrence carried something: the RNN's predictions are not the MLP's
    assert not np.allclose(res.step_loss[1:-1], mlp.step_loss[1:-1], atol=1e-4)


def test_no_recurrence_is_the_rnn_with_w_hh_zero(vocab: Vocab) -> None:
    """The slide's MLP H = phi(X W_xh + b_h): the scratch RNN with W_hh = 0 gives it."""
    model = make_model(vocab, "scratch")
    assert isinstance(model, ScratchRNN)
    mlp = probe(model, vocab, TEXT).no_recurrence
    with torch.no_grad():
        model.W_hh.zero_()
    cut = probe(model, vocab, TEXT)
    np.testing.assert_allclose(mlp.step_loss, cut.step_loss, atol=1e-6)
    np.testing.assert_array_equal(mlp.top_ids, cut.topk_ids[:, 0])


def test_no_recurrence_of_a_cached_probe_is_the_fresh_one(vocab: Vocab) -> None:
    from rnnviz.core.probe import Prober

    model = make_model(vocab, "fast")
    prober = Prober(model, vocab)
    for text in ("t", "th", "the tim", "the time", "the"):
        cached = prober.probe(text).no_recurrence
        fresh = probe(model, vocab, text).no_recurrence
        np.testing.assert_allclose(cached.step_loss, fresh.step_loss, atol=1e-6)
        assert len(cached.top_ids) == len(text)
    assert math.isnan(probe(model, vocab, "t").no_recurrence.mean_loss)
