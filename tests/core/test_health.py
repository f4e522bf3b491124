from __future__ import annotations

import math

import pytest
import torch

from rnnviz.core import health
from rnnviz.core.health import (
    UNIFORM_MARGIN,
    UNIFORM_MIN_STEPS,
    UNIFORM_WINDOW,
    LossWatch,
    perplexity,
    recent_worse_than_uniform,
    uniform_loss,
    uniform_sentence,
    useless_loss,
    worse_than_uniform,
    worse_than_uniform_ppl,
)

torch.set_num_threads(1)


@pytest.mark.parametrize(
    ("loss", "expected"),
    [
        (0.0, 1.0),
        (math.log(28), 28.0),
        (709.0, math.exp(709.0)),
        (709.8, math.inf),  # math.exp raises OverflowError here
        (1e6, math.inf),
        (1e308, math.inf),
        (math.inf, math.inf),
        (-math.inf, 0.0),
        (-1e6, 0.0),
    ],
)
def test_perplexity_never_raises(loss: float, expected: float) -> None:
    assert perplexity(loss) == pytest.approx(expected)


def test_perplexity_of_nan_is_nan() -> None:
    assert math.isnan(perplexity(math.nan))


def test_perplexity_is_the_only_exp_in_core_and_cli() -> None:
    # one overflow-safe function: no math.exp of a loss anywhere else in core or the CLI
    from pathlib import Path

    root = Path(health.__file__).parents[1]
    offenders = [
        str(path.relative_to(root))
        for path in [*sorted((root / "core").glob("*.py")), root / "cli.py"]
        if path.name != "health.py" and "math.exp(" in path.read_text()
    ]
    assert offenders == []


def test_uniform_rule_margin() -> None:
    V = 28
    assert uniform_loss(V) == pytest.approx(math.log(28))
    assert useless_loss(V) == pytest.approx(math.log(UNIFORM_MARGIN * 28))
    assert not worse_than_uniform(math.log(28), V)  # uniform itself is not "worse"
    assert not worse_than_uniform(math.log(41.9), V)
    assert worse_than_uniform(math.log(42.1), V)
    assert worse_than_uniform(math.inf, V)
    assert worse_than_uniform(math.nan, V)
    assert not worse_than_uniform_ppl(28.0, V)
    assert worse_than_uniform_ppl(1677.0, V)  # relu, clip off, lr 50
    assert worse_than_uniform_ppl(1.3e171, V)  # GRU at lr 50
    assert worse_than_uniform_ppl(math.inf, V) and worse_than_uniform_ppl(math.nan, V)
    assert "perplexity 42" in uniform_sentence(V)
    with pytest.raises(ValueError):
        uniform_loss(0)


def test_recent_rule_waits_for_min_steps_and_a_full_window() -> None:
    bad = [100.0] * UNIFORM_WINDOW
    assert not recent_worse_than_uniform(bad, 28, UNIFORM_MIN_STEPS - 1)
    assert recent_worse_than_uniform(bad, 28, UNIFORM_MIN_STEPS)
    assert not recent_worse_than_uniform(bad[:-1], 28, 10_000)  # window not full
    with pytest.raises(ValueError):
        recent_worse_than_uniform(bad, 28, 200, window=0)


def test_recent_rule_ignores_lone_spikes_and_counts_skipped_steps() -> None:
    healthy = [2.0] * UNIFORM_WINDOW
    spiky = healthy[:]
    for i in range(0, UNIFORM_WINDOW, 5):  # one step in five spikes: the median holds
        spiky[i] = 1e6
    assert not recent_worse_than_uniform(spiky, 28, 500)
    skipped = [math.nan] * (UNIFORM_WINDOW // 2 + 1) + [2.0] * (UNIFORM_WINDOW // 2 - 1)
    assert recent_worse_than_uniform(skipped, 28, 500)  # mostly non-finite: useless
    # only the newest window counts: an old bad stretch is forgotten
    assert not recent_worse_than_uniform([100.0] * 500 + healthy, 28, 550)


def test_loss_watch_marks_the_bad_stretch_and_forgets_a_recovered_spike() -> None:
    watch = LossWatch(28, window=10, min_steps=20)
    for step in range(1, 31):
        watch.add(step, 2.0)
    assert watch.bad_since is None and watch.last_good_step() is None and not watch.useless
    watch.add(31, 50.0, spike=True)
    assert watch.bad_since == 31
    watch.add(32, 2.0)  # recovered: the median is fine again
    assert watch.bad_since is None
    watch.add(33, 1.0, spike=True)  # a spike below the uniform line is still bad
    assert watch.bad_since == 33
    watch.add(34, 1.0)
    for step in range(40, 52):
        watch.add(step, math.inf if step % 2 else 1e3)
    assert watch.bad_since == 40 and watch.useless
    # step 40's loss came from the parameters after 39 updates; 38 were the last good ones
    assert watch.last_good_step() == 38
    with pytest.raises(ValueError):
        LossWatch(28, window=0)


def test_loss_watch_first_step_bad_keeps_the_initial_parameters() -> None:
    watch = LossWatch(9)
    watch.add(1, 1e9)
    assert watch.last_good_step() == 0


@pytest.mark.parametrize("kind", ["fast", "gru", "lstm"])
def test_never_fires_on_a_healthy_d2l_run(kind: str) -> None:
    """d2l's settings (hidden 32, lr 1, theta 1) on the built-in corpus: every step healthy."""
    from rnnviz.core.config import RunConfig
    from rnnviz.core.runs import build_run

    batch = 1024 if kind == "fast" else 64  # the gated models are slower per window
    config = RunConfig().replace(model={"kind": kind}, train={"val_every": 0, "batch_size": batch})
    run = build_run(config)
    V = len(run.vocab)
    watch = LossWatch(V)
    for _ in range(UNIFORM_MIN_STEPS + 20):
        record = run.trainer.train_step()
        watch.add(record.step, record.loss, spike=run.trainer.last_spike)
        assert watch.bad_since is None, record
        assert not watch.useless
    assert not worse_than_uniform_ppl(run.trainer.evaluate(), V)


def test_dead_units_are_the_ones_zero_at_every_step() -> None:
    import numpy as np

    from rnnviz.core.health import dead_units

    hidden = np.zeros((5, 4))
    hidden[2, 1] = 0.3
    assert dead_units(hidden) == 3
    assert dead_units(np.ones((5, 4))) == 0
    assert dead_units(np.zeros((0, 4))) == 0
