"""Generation (d2l's ``predict``) with the probability of each character, against references
computed independently: the whole text re-read from a zero state at every step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor

from rnnviz.core.config import ModelConfig
from rnnviz.core.generation import Generating, Generation, generate_detail
from rnnviz.core.model import CharModel, build_model
from rnnviz.core.probe import generate
from rnnviz.core.vocab import Vocab

torch.set_num_threads(1)

CORPUS = "the time traveller for so it will be convenient to speak of him"
PREFIX = "the time "
KINDS = ["scratch", "fast", "gru", "lstm"]


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab.from_text(CORPUS)


def sharp_model(vocab: Vocab, kind: str = "scratch", seed: int = 1) -> CharModel:
    """Uniform init with larger output weights: distributions far from uniform, so that the
    argmax has no near-ties and greedy text is not one repeated character."""
    model = build_model(
        len(vocab),
        ModelConfig(kind=kind, hidden_size=12, init="uniform"),  # type: ignore[arg-type]
        seed=seed,
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "hq" in name or "xh" in name or "ih" in name:
                p.mul_(3.0)
    return model


def flat_model(vocab: Vocab) -> CharModel:
    """d2l's init (sigma 0.01): every distribution close to uniform, so seeds differ."""
    return build_model(len(vocab), ModelConfig(kind="scratch", hidden_size=8), seed=0)


def reread_logits(model: CharModel, ids: list[int]) -> Tensor:
    """The logits after reading ``ids`` from a zero state, the whole sequence at once."""
    with torch.no_grad():
        logits, _, _ = model(torch.tensor([ids], dtype=torch.int64))
    return logits[0, -1].double()


def prefix_ids(vocab: Vocab, prefix: str = PREFIX) -> list[int]:
    ids: list[int] = vocab.encode(prefix).tolist()
    return ids


# ------------------------------------------------------------------ what a call returns


def test_a_seed_reproduces_the_generation(vocab: Vocab) -> None:
    model = flat_model(vocab)
    a = generate_detail(model, vocab, PREFIX, 60, temperature=1.0, top_k=5, seed=11)
    b = generate_detail(model, vocab, PREFIX, 60, temperature=1.0, top_k=5, seed=11)
    assert a.tokens == b.tokens
    assert np.array_equal(a.probs, b.probs) and np.array_equal(a.model_probs, b.model_probs)
    assert isinstance(a, Generation) and a.prefix == PREFIX and len(a.tokens) == 60
    assert a.text == PREFIX + a.generated and a.generated == "".join(a.tokens)
    assert (a.temperature, a.top_k, a.seed) == (1.0, 5, 11)
    for array in (a.ids, a.probs, a.model_probs):
        assert not array.flags.writeable and array.shape == (60,)


def test_different_seeds_give_different_samples(vocab: Vocab) -> None:
    model = flat_model(vocab)
    texts = {generate_detail(model, vocab, PREFIX, 40, 1.0, seed=s).generated for s in range(5)}
    assert len(texts) == 5
    # greedy has no dice: the seed changes nothing
    greedy = {generate_detail(model, vocab, PREFIX, 40, 0.0, seed=s).generated for s in range(3)}
    assert len(greedy) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_is_the_argmax_chain_with_the_softmax_maximum(vocab: Vocab, kind: str) -> None:
    model = sharp_model(vocab, kind)
    out = generate_detail(model, vocab, PREFIX, 15)
    ids = prefix_ids(vocab)
    expected_p = []
    for _ in range(15):
        probs = torch.softmax(reread_logits(model, ids), dim=-1)
        ids.append(int(torch.argmax(probs)))
        expected_p.append(float(probs.max()))
    assert out.ids.tolist() == ids[len(PREFIX) :]
    assert len(set(out.generated)) > 1  # a chain that says something (not one letter)
    np.testing.assert_allclose(out.probs, expected_p, rtol=1e-5)
    np.testing.assert_array_equal(out.probs, out.model_probs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_one_is_greedy(vocab: Vocab, seed: int) -> None:
    model = sharp_model(vocab)
    greedy = generate_detail(model, vocab, PREFIX, 30)
    top1 = generate_detail(model, vocab, PREFIX, 30, temperature=1.7, top_k=1, seed=seed)
    assert top1.tokens == greedy.tokens
    np.testing.assert_array_equal(top1.probs, np.ones(30))  # the one choice it had
    np.testing.assert_allclose(top1.model_probs, greedy.model_probs, rtol=1e-12)


@pytest.mark.parametrize(("temperature", "top_k"), [(1.0, 0), (0.5, 0), (1.8, 0), (1.3, 3)])
def test_each_p_is_the_one_it_was_drawn_with(vocab: Vocab, temperature: float, top_k: int) -> None:
    model = flat_model(vocab) if temperature > 1 else sharp_model(vocab)
    out = generate_detail(model, vocab, PREFIX, 40, temperature=temperature, top_k=top_k, seed=4)
    assert np.all((out.probs > 0) & (out.probs <= 1))
    assert np.all((out.model_probs > 0) & (out.model_probs <= 1))
    ids = prefix_ids(vocab)
    for i, nxt in enumerate(out.ids.tolist()):
        logits = reread_logits(model, ids)
        own = torch.softmax(logits, dim=-1)
        scaled = torch.softmax(logits / temperature, dim=-1)
        if top_k:
            keep = torch.topk(scaled, top_k).indices.tolist()
            assert nxt in keep, (i, nxt, keep)
            p = float(scaled[nxt] / scaled[keep].sum())
        else:
            p = float(scaled[nxt])
        assert out.probs[i] == pytest.approx(p, rel=1e-5)
        assert out.model_probs[i] == pytest.approx(float(own[nxt]), rel=1e-5)
        ids.append(nxt)
    if temperature == 1.0 and not top_k:  # nothing changed the distribution
        np.testing.assert_allclose(out.probs, out.model_probs, rtol=1e-12)


def test_top_k_of_the_whole_vocabulary_is_off(vocab: Vocab) -> None:
    model = flat_model(vocab)
    off = generate_detail(model, vocab, PREFIX, 30, temperature=1.0, seed=2)
    for k in (len(vocab), len(vocab) + 5):
        every = generate_detail(model, vocab, PREFIX, 30, temperature=1.0, top_k=k, seed=2)
        assert every.tokens == off.tokens and np.array_equal(every.probs, off.probs)
        assert every.top_k == k  # what was asked for, as asked


def test_in_chunks_it_is_the_same_generation(vocab: Vocab) -> None:
    model = sharp_model(vocab, "gru")
    whole = generate_detail(model, vocab, PREFIX, 25, temperature=1.0, top_k=4, seed=9)
    run = Generating(model, vocab, PREFIX, 25, temperature=1.0, top_k=4, seed=9)
    chunks = 0
    while not run.advance(4):
        chunks += 1
        assert run.count == 4 * chunks and not run.done
    assert run.done and run.count == 25 and chunks == 6
    part = run.result()
    assert part.tokens == whole.tokens and np.array_equal(part.probs, whole.probs)
    assert run.advance(1) is True  # done stays done, and nothing more is made
    assert run.count == 25


def test_zero_characters_is_the_prefix(vocab: Vocab) -> None:
    out = generate_detail(sharp_model(vocab), vocab, PREFIX, 0, temperature=1.0)
    assert out.text == PREFIX and out.tokens == () and out.probs.shape == (0,)


# ------------------------------------------------------------------ refused


def test_bad_arguments_are_refused_with_a_reason(vocab: Vocab) -> None:
    model = sharp_model(vocab)
    cases: list[tuple[dict[str, object], str]] = [
        ({"prefix": ""}, "prefix"),
        ({"num_chars": -1}, "num_chars"),
        ({"num_chars": True}, "num_chars"),
        ({"num_chars": 2.5}, "num_chars"),
        ({"temperature": -0.5}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"temperature": math.inf}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**63}, "seed"),
    ]
    for change, word in cases:
        kwargs: dict[str, object] = {"prefix": "the", "num_chars": 5, **change}
        with pytest.raises(ValueError, match=word):
            generate_detail(model, vocab, **kwargs)  # type: ignore[arg-type]
    other = Vocab.from_text("abc")
    with pytest.raises(ValueError, match="vocabulary has 4 entries"):
        generate_detail(model, other, "abc", 5)


def test_a_prefix_character_outside_the_vocabulary_is_refused(vocab: Vocab) -> None:
    model = sharp_model(vocab)
    with pytest.raises(ValueError, match=r"the prefix has 'é', 'Z': they are not in") as info:
        generate_detail(model, vocab, "thé Zé", 5)
    assert "\n" not in str(info.value)  # one line, for the panel
    with pytest.raises(ValueError, match=r"'é': it is not in the model's vocabulary"):
        generate_detail(model, vocab, "é", 5)
    # read as <unk> when asked, as the old generate did
    assert len(generate_detail(model, vocab, "thé", 5, allow_unknown=True).tokens) == 5


def test_a_diverged_model_is_refused(vocab: Vocab) -> None:
    model = sharp_model(vocab)
    with torch.no_grad():
        next(model.parameters()).fill_(math.nan)
    with pytest.raises(ValueError, match="not finite"):
        generate_detail(model, vocab, PREFIX, 5, temperature=1.0)


def test_the_model_is_left_as_it_was(vocab: Vocab) -> None:
    model = sharp_model(vocab, "lstm")
    model.train()
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.25)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    generate_detail(model, vocab, PREFIX, 10, temperature=0.8, top_k=3)
    assert model.training
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), before[n]) and p.requires_grad, n
        assert p.grad is not None and bool((p.grad == 0.25).all()), n


# ------------------------------------------------------------------ the old generate


def old_generate(
    model: CharModel, vocab: Vocab, prefix: str, num_chars: int, temperature: float, seed: int
) -> str:
    """``core.probe.generate`` as it was before ``core.generation``, copied verbatim."""
    with torch.no_grad():
        ids = torch.from_numpy(np.asarray(vocab.encode(prefix), dtype=np.int64))
        zeros = torch.zeros(1, model.hidden_size)
        state0 = (zeros, zeros.clone()) if model.kind == "lstm" else zeros
        logits, _, state = model(ids[None], state0)
        last = logits[0, -1]
        gen = torch.Generator(device="cpu").manual_seed(seed)
        out: list[str] = []
        for i in range(num_chars):
            if temperature == 0.0:
                nxt = int(torch.argmax(last))
            else:
                p = torch.softmax(last.double().cpu() / temperature, dim=-1)
                nxt = int(torch.multinomial(p, 1, generator=gen))
            out.append(vocab.tokens[nxt])
            if i + 1 < num_chars:
                step = torch.tensor([[nxt]], dtype=torch.int64)
                logits, _, state = model(step, state)
                last = logits[0, -1]
    return prefix + "".join(out)


@pytest.mark.parametrize("kind", KINDS)
def test_generate_is_what_it_was(vocab: Vocab, kind: str) -> None:
    for model in (sharp_model(vocab, kind), flat_model(vocab)):
        # an unknown character in the prefix is read as <unk>, as before
        for prefix in (PREFIX, "t", "thé "):
            for temperature, seed in ((0.0, 0), (0.7, 3), (1.0, 0), (2.0, 5)):
                args = (model, vocab, prefix, 50, temperature, seed)
                assert generate(*args) == old_generate(*args), (prefix, temperature, seed)
        assert generate(model, vocab, PREFIX, 0) == PREFIX


def test_a_drawn_unk_is_written_as_d2l_writes_it() -> None:
    # a vocabulary whose model always prefers <unk> (id 0): d2l writes the token's text
    vocab = Vocab.from_text("ab")
    model = build_model(len(vocab), ModelConfig(kind="scratch", hidden_size=4), seed=0)
    with torch.no_grad():
        model.b_q.copy_(torch.tensor([9.0, 0.0, 0.0]))
    out = generate_detail(model, vocab, "ab", 3)
    assert out.tokens == ("<unk>",) * 3 and out.generated == "<unk>" * 3
    assert generate(model, vocab, "ab", 3) == "ab" + "<unk>" * 3
