from __future__ import annotations

import numpy as np
import pytest

from rnnviz.core.config import ModelConfig
from rnnviz.core.film import FilmCache, film_row
from rnnviz.core.model import build_model
from rnnviz.core.probe import model_from_params, params_to_numpy, probe
from rnnviz.core.snapshots import DEFAULT_CAP_BYTES, MAX_COUNT, MIN_COUNT, SnapshotStore
from rnnviz.core.vocab import Vocab


def params_of(hidden: int, vocab: int, fill: float = 0.0) -> dict[str, np.ndarray]:
    shapes = {
        "W_xh": (vocab, hidden),
        "W_hh": (hidden, hidden),
        "b_h": (hidden,),
        "W_hq": (hidden, vocab),
        "b_q": (vocab,),
    }
    out = {}
    for name, shape in shapes.items():
        a = np.full(shape, fill, dtype=np.float32)
        a.setflags(write=False)
        out[name] = a
    return out


def test_hidden_256_over_100000_steps_stays_under_the_cap_and_covers_the_run() -> None:
    store = SnapshotStore()
    params = params_of(256, 60)
    per = sum(a.nbytes for a in params.values())
    for step in range(0, 100_001, 5):  # a snapshot every 5 steps: 20,001 of them
        store.add(step, params)
        assert store.nbytes <= DEFAULT_CAP_BYTES
    steps = store.steps()
    assert store.count_cap == DEFAULT_CAP_BYTES // per
    assert len(steps) == len(store) <= store.count_cap
    assert steps[0] == 0 and steps[-1] == 100_000
    assert steps == sorted(steps)
    # the recent ring holds every one of the newest snapshots
    assert steps[-store.recent_cap :] == list(
        range(100_000 - 5 * (store.recent_cap - 1), 100_001, 5)
    )
    # the older tier is spread over the run: no gap wider than a few times the mean spacing
    old = np.diff(steps[: -store.recent_cap])
    assert old.max() <= 4 * (100_000 / store.old_cap)
    assert len(steps) > store.count_cap // 2  # thinning keeps at least half the room in use


def test_capacity_follows_the_snapshot_size() -> None:
    assert SnapshotStore(cap_bytes=1).count_cap == MAX_COUNT  # nothing stored: the largest
    tiny = SnapshotStore(cap_bytes=1)
    tiny.add(0, params_of(8, 5))
    assert tiny.count_cap == MIN_COUNT  # a cap below one snapshot still keeps a few
    big = SnapshotStore()
    big.add(0, params_of(4, 3))
    assert big.count_cap == MAX_COUNT


def test_a_step_again_replaces_what_came_after_it() -> None:
    store = SnapshotStore()
    for step in (0, 10, 20, 30):
        store.add(step, params_of(4, 3, fill=step))
    store.add(20, params_of(4, 3, fill=-1))  # a rollback re-trained step 20
    assert store.steps() == [0, 10, 20]
    assert store.nearest(20).params["b_h"][0] == -1  # type: ignore[union-attr]
    store.truncate_after(5)
    assert store.steps() == [0]


def test_nearest_and_neighbours() -> None:
    store = SnapshotStore()
    for step in (0, 10, 20):
        store.add(step, params_of(4, 3))
    assert [store.nearest(s).step for s in (-5, 4, 5, 6, 14, 16, 99)] == [  # type: ignore[union-attr]
        0,
        0,
        0,
        10,
        10,
        20,
        20,
    ]
    assert store.neighbour(10, -1).step == 0  # type: ignore[union-attr]
    assert store.neighbour(10, +1).step == 20  # type: ignore[union-attr]
    assert store.neighbour(0, -1) is None
    assert store.neighbour(20, +1) is None
    assert SnapshotStore().nearest(3) is None


def test_another_model_is_refused_and_arrays_are_not_shared() -> None:
    store = SnapshotStore()
    mine = {k: np.array(v) for k, v in params_of(4, 3).items()}  # writeable: copied
    store.add(0, mine)
    mine["b_h"][:] = 7
    assert store.nearest(0).params["b_h"][0] == 0  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="differ"):
        store.add(1, params_of(5, 3))


def test_to_arrays_round_trips() -> None:
    store = SnapshotStore(cap_bytes=40 * sum(a.nbytes for a in params_of(4, 3).values()))
    for step in range(0, 400, 3):
        store.add(step, params_of(4, 3, fill=step))
    arrays, meta = store.to_arrays()
    again = SnapshotStore.from_arrays(arrays, meta)
    assert again.steps() == store.steps()
    assert again.gap == store.gap
    for a, b in zip(again.snapshots(), store.snapshots(), strict=True):
        for name in a.params:
            np.testing.assert_array_equal(a.params[name], b.params[name])
    # and it goes on thinning as the original would
    store.add(400, params_of(4, 3))
    again.add(400, params_of(4, 3))
    assert again.steps() == store.steps()
    with pytest.raises(ValueError, match="unexpected"):
        SnapshotStore.from_arrays({**arrays, "x/W_hh": arrays["0/W_hh"]}, meta)


def test_film_row_is_the_probe_of_those_parameters() -> None:
    vocab = Vocab(("<unk>", " ", "a", "b", "c"))
    config = ModelConfig(hidden_size=8)
    model = build_model(len(vocab), config, seed=3)
    params = params_to_numpy(model)
    text = "abc cab"
    row = film_row(config, vocab, 40, params, text)
    expect = probe(model_from_params(config, len(vocab), params), vocab, text, with_grad_flow=False)
    assert row.step == 40
    np.testing.assert_array_equal(row.top1, expect.topk_ids[:, 0])
    ids = vocab.encode(text)
    np.testing.assert_allclose(
        row.p_true[:-1], expect.probs[np.arange(len(text) - 1), ids[1:]], rtol=1e-5
    )
    assert np.isnan(row.p_true[-1])
    assert film_row(config, vocab, 0, params, "").top1.shape == (0,)


def test_film_cache_keeps_rows_of_one_text() -> None:
    vocab = Vocab(("<unk>", " ", "a"))
    config = ModelConfig(hidden_size=4)
    params = params_to_numpy(build_model(len(vocab), config, seed=0))
    cache = FilmCache()
    cache.use("aa", config, vocab.tokens)
    assert cache.missing([0, 10, 20]) == [20, 10, 0]
    for step in (0, 20):
        cache.put(film_row(config, vocab, step, params, "aa"))
    assert cache.missing([0, 10, 20]) == [10]
    rows = cache.rows([10, 20])  # step 0 is no longer stored: dropped
    assert rows[0] is None and rows[1] is not None and rows[1].step == 20
    assert cache.missing([0, 20]) == [0]
    cache.forget_after(10)
    assert cache.missing([20]) == [20]
    cache.use("ab", config, vocab.tokens)  # another text: everything again
    cache.put(film_row(config, vocab, 20, params, "ab"))
    cache.use("ab", config, vocab.tokens)
    assert cache.missing([20]) == []
