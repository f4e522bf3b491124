from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnviz.core.batches import BatchSource
from rnnviz.core.config import TrainConfig
from rnnviz.core.corpus import CorpusError
from rnnviz.core.vocab import Vocab


def source(n: int, val_fraction: float = 0.1, **train: Any) -> BatchSource:
    # ids = positions, so every value says where in the stream it came from
    return BatchSource(np.arange(n), TrainConfig(**train), val_fraction)


def test_random_shapes_and_targets_are_the_next_characters() -> None:
    bs = source(5000, batch_size=64, num_steps=7, windows_per_epoch=300)
    n_train = 4500
    assert len(bs.train_ids) == n_train and len(bs.val_ids) == 500
    assert bs.steps_per_epoch == math.ceil(300 / 64)
    starts = []
    for i in range(bs.steps_per_epoch):
        X, Y = bs.batch(0, i)
        assert X.dtype == torch.int64 and Y.dtype == torch.int64
        rows = 64 if i < bs.steps_per_epoch - 1 else 300 - 64 * 4
        assert X.shape == Y.shape == (rows, 7)
        assert torch.equal(Y, X + 1)  # Y is X shifted by one character
        assert torch.equal(X[:, 1:], X[:, :-1] + 1)  # windows are contiguous text
        assert int(Y.max()) < n_train  # never reaches into the validation split
        starts += X[:, 0].tolist()
        assert not bs.continues_state(i)
    assert len(set(starts)) == 300  # distinct windows within an epoch


def test_random_epoch_uses_every_window_when_there_are_fewer_than_requested() -> None:
    bs = source(200, batch_size=16, num_steps=5, windows_per_epoch=10_000)
    n_windows = 180 - 5
    assert bs.steps_per_epoch == math.ceil(n_windows / 16)
    starts = sorted(s for i in range(bs.steps_per_epoch) for s in bs.batch(2, i)[0][:, 0].tolist())
    assert starts == list(range(n_windows))  # every offset of the train split, once


def test_batches_are_a_pure_function_of_seed_epoch_and_index() -> None:
    kw: dict[str, Any] = dict(batch_size=32, num_steps=10, windows_per_epoch=500, seed=7)
    a = source(20_000, **kw)
    b = source(20_000, **kw)
    expected = a.batch(3, 2)
    # out of order, and through other epochs in between (the per-epoch cache)
    b.batch(0, 5)
    b.batch(9, 0)
    got = b.batch(3, 2)
    assert torch.equal(expected[0], got[0]) and torch.equal(expected[1], got[1])
    assert not torch.equal(a.batch(4, 2)[0], expected[0])
    other_seed = source(20_000, **{**kw, "seed": 8})
    assert not torch.equal(other_seed.batch(3, 2)[0], expected[0])


def test_sequential_rows_continue_from_batch_to_batch() -> None:
    bs = source(40_000, batch_size=8, num_steps=16, partition="sequential", windows_per_epoch=10**6)
    stream_len = (36_000 - 1) // 8
    assert bs.steps_per_epoch == stream_len // 16
    for epoch in (0, 1):
        prev = None
        for i in range(bs.steps_per_epoch):
            X, Y = bs.batch(epoch, i)
            assert X.shape == Y.shape == (8, 16)
            assert torch.equal(Y, X + 1)
            assert bs.continues_state(i) == (i > 0)
            if prev is not None:
                # row r of batch i starts right where row r of batch i-1 ended
                assert torch.equal(X[:, 0], prev[:, -1] + 1)
            prev = X
        assert prev is not None and int(prev.max()) < 36_000


def test_sequential_offset_is_seeded_and_a_capped_epoch_moves_over_the_text() -> None:
    kw: dict[str, Any] = dict(
        batch_size=4, num_steps=10, partition="sequential", windows_per_epoch=8, seed=3
    )
    bs = source(10_000, **kw)
    assert bs.steps_per_epoch == 2  # 8 windows / 4 streams, far fewer than the chunks
    firsts = {int(bs.batch(e, 0)[0][0, 0]) for e in range(40)}
    assert len(firsts) > 10  # epochs start at many places, not only in the first num_steps
    assert max(firsts) > 1000
    again = source(10_000, **kw)
    assert torch.equal(again.batch(17, 1)[0], bs.batch(17, 1)[0])


def test_sequential_on_a_short_split_uses_fewer_streams() -> None:
    bs = source(400, batch_size=1024, num_steps=32, partition="sequential")
    assert bs.rows == (360 - 1) // 32
    X, Y = bs.batch(0, 0)
    assert X.shape == (bs.rows, 32)
    assert any("streams" in note for note in bs.notes)


def test_val_batches_are_fixed_non_overlapping_and_from_the_val_split() -> None:
    bs = source(10_000, val_fraction=0.2, batch_size=16, num_steps=9, val_windows=50, seed=1)
    other = source(10_000, val_fraction=0.2, batch_size=16, num_steps=9, val_windows=50, seed=2)
    val = bs.val_batches()
    assert [x.shape[0] for x, _ in val] == [16, 16, 16, 2]
    starts = torch.cat([x[:, 0] for x, _ in val]).tolist()
    assert starts == [8000 + 9 * i for i in range(50)]  # tiled, in order
    for (x, y), (x2, y2), (x3, _) in zip(val, bs.val_batches(), other.val_batches(), strict=True):
        assert torch.equal(y, x + 1)
        assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(x, x3)


def test_val_batches_stop_at_the_end_of_the_split() -> None:
    bs = source(1000, batch_size=64, num_steps=9)
    val = bs.val_batches()
    n = sum(x.shape[0] for x, _ in val)
    assert n == (100 - 1) // 9
    assert int(val[-1][1].max()) <= 999


@pytest.mark.parametrize("n, split", [(30, "training"), (300, "validation")])
def test_too_short_corpus_is_a_clear_error(n: int, split: str) -> None:
    with pytest.raises(CorpusError, match=f"the {split} split has .*num_steps\\+1 = 33"):
        source(n, num_steps=32)


def test_with_a_real_vocabulary_windows_are_slices_of_the_text() -> None:
    text = "the time traveller for so it will be convenient to speak of him " * 40
    vocab = Vocab.from_text(text)
    bs = BatchSource(vocab.encode(text), TrainConfig(batch_size=8, num_steps=12), 0.1)
    X, Y = bs.batch(0, 0)
    for x, y in zip(X.tolist(), Y.tolist(), strict=True):
        window = vocab.decode(x) + vocab.decode(y)[-1]
        assert window in text
        assert vocab.decode(y) == window[1:]


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(60, 3000),
    T=st.integers(1, 20),
    B=st.integers(1, 50),
    wpe=st.integers(1, 400),
    seed=st.integers(0, 2**31 - 1),  # the seed range RunConfig accepts
    epoch=st.integers(0, 1000),
    partition=st.sampled_from(["random", "sequential"]),
)
def test_every_batch_is_well_formed(
    n: int, T: int, B: int, wpe: int, seed: int, epoch: int, partition: str
) -> None:
    bs = source(
        n,
        val_fraction=0.5,
        batch_size=B,
        num_steps=T,
        windows_per_epoch=wpe,
        seed=seed,
        partition=partition,
    )
    n_train = len(bs.train_ids)
    assert bs.steps_per_epoch >= 1
    for i in range(bs.steps_per_epoch):
        X, Y = bs.batch(epoch, i)
        assert 1 <= X.shape[0] <= B and X.shape[1] == T
        assert torch.equal(Y, X + 1)
        assert int(Y.max()) < n_train
    with pytest.raises(IndexError):
        bs.batch(epoch, bs.steps_per_epoch)
