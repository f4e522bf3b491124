"""core.tasks: the applications' data, shapes, losses, tiny training runs and checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnviz.core.checkpoint import (
    CheckpointError,
    checkpoint_bytes,
    encode_checkpoint,
    load_checkpoint_bytes,
    restore_model,
    task_vocab,
)
from rnnviz.core.config import (
    BIDIRECTIONAL_TASKS,
    TASKS,
    ConfigError,
    ModelConfig,
    RunConfig,
    bidirectional_allowed,
    training_refusal,
)
from rnnviz.core.history import MetricHistory
from rnnviz.core.model import build_model
from rnnviz.core.tasks import APPLICATION_TASKS, IGNORE_INDEX, TaskInputError, get_task
from rnnviz.core.tasks.base import step_accuracy
from rnnviz.core.tasks.run import build_task_run, task_config, train_task
from rnnviz.core.vocab import Vocab

torch.set_num_threads(1)


def _trained(name: str, steps: int, hidden: int, **model: object):
    task = get_task(name)
    config = task_config(task, hidden_size=hidden, **model).replace(train={"val_every": 0})
    run = build_task_run(task, config)
    result = train_task(run, max_steps=steps)
    return run, result


# ---------------------------------------------------------------- declarations and data


def test_every_application_is_registered_and_declared() -> None:
    assert TASKS[0] == "lm" and set(APPLICATION_TASKS) == {"names", "tagging", "name_gen", "dates"}
    shapes = {name: get_task(name).shape for name in APPLICATION_TASKS}
    assert shapes == {
        "names": "many_to_one",
        "tagging": "many_to_many",
        "name_gen": "one_to_many",
        "dates": "encoder_decoder",
    }
    for name in APPLICATION_TASKS:
        task = get_task(name)
        assert task.input_tokens[0] == "<pad>"
        assert 0 < task.chance < 1 or (name == "dates" and task.chance == 0)
        assert 0 < task.target <= 1 and task.metric_name and task.reads and task.emits
    with pytest.raises(ConfigError, match="task must be one of"):
        get_task("lm")


def test_names_has_nine_languages_of_real_surnames_each_in_one_language() -> None:
    from rnnviz.core.tasks.names import surnames

    task = get_task("names")
    assert len(task.output_tokens) == 9 and "German" in task.output_tokens
    pairs = surnames()
    names = [n for n, _ in pairs]
    assert len(names) == len(set(names)) > 5000  # deduplicated, names in two lists dropped
    counts = np.bincount([li for _, li in pairs])
    assert counts.min() >= 300
    assert ("Müller", task.output_tokens.index("German")) in pairs or any(
        "ü" in n for n, li in pairs if task.output_tokens[li] == "German"
    )  # diacritics kept
    assert {"ä", "é", "ć"} <= set("".join(names))


@pytest.mark.parametrize("name", APPLICATION_TASKS)
def test_data_is_a_pure_function_of_the_seed(name: str) -> None:
    task = get_task(name)
    a, b, c = task.data(0), task.data(0), task.data(1)
    for field in ("train_x", "train_y", "held_x", "held_y"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert a.held_items == b.held_items
    assert not np.array_equal(a.held_x, c.held_x)  # another seed, another split
    assert len(a.held_x) >= 500 and len(a.train_x) > 3 * len(a.held_x)


def test_held_out_names_and_dates_are_never_trained_on() -> None:
    names = get_task("names")
    data = names.data(0)
    held = {n for n, _ in data.held_items}
    inputs = names.input_tokens
    train = {"".join(inputs[i] for i in row if i) for row in data.train_x}
    assert held and not held & train
    dates = get_task("dates").data(0)
    held_days = {iso for _, iso in dates.held_items}
    out = get_task("dates").output_tokens
    train_days = {"".join(out[i] for i in row[-11:-1]) for row in dates.train_y}
    assert held_days and not held_days & train_days


def test_many_to_one_scores_the_last_character_only() -> None:
    task = get_task("names")
    data = task.data(0)
    scored = data.train_y != IGNORE_INDEX
    assert (scored.sum(axis=1) == 1).all()
    last = (data.train_x != 0).sum(axis=1) - 1
    assert (scored.argmax(axis=1) == last).all()
    # the loss ignores every other step: outputs there may be anything
    x, y = torch.from_numpy(data.train_x[:8]), torch.from_numpy(data.train_y[:8])
    logits = torch.randn(*x.shape, task.output_size)
    other = logits.clone()
    other[torch.from_numpy(~scored[:8])] = torch.randn(int((~scored[:8]).sum()), task.output_size)
    assert torch.equal(task.loss(logits, y), task.loss(other, y))


def test_one_to_many_reads_the_language_once_then_its_own_outputs() -> None:
    task = get_task("name_gen")
    data = task.data(0)
    markers = {i for i, t in enumerate(task.input_tokens) if t.startswith("<") and t != "<pad>"}
    assert len(markers) == 9
    assert set(data.train_x[:, 0]) <= markers  # the one input: the language
    assert not set(np.unique(data.train_x[:, 1:])) & markers
    end = task.output_tokens.index("<end>")
    for x, y in zip(data.train_x[:50], data.train_y[:50], strict=True):
        n = int((y != IGNORE_INDEX).sum())
        assert y[n - 1] == end and (y[n:] == IGNORE_INDEX).all()
        # each step reads the character the step before emitted (output id = input id)
        assert np.array_equal(x[1:n], y[: n - 1])


def test_tagging_tags_every_character_by_the_next_one() -> None:
    from rnnviz.core.tasks.tagging import tags_of

    assert tags_of("ba kilo.") == [0, 1, 0, 0, 0, 0, 1, 0]
    task = get_task("tagging")
    data = task.data(0)
    real = data.train_x != 0
    assert np.array_equal(real, data.train_y != IGNORE_INDEX)  # T_x = T_y


def test_encoder_decoder_scores_the_decoder_only() -> None:
    task = get_task("dates")
    data = task.data(0)
    S = task.extra["source_len"]
    assert (data.train_y[:, :S] == IGNORE_INDEX).all()
    assert (data.train_y[:, S:] != IGNORE_INDEX).all()
    bos = task.extra["decoder_tokens"].index("<bos>")
    assert (data.train_x[:, S] == bos).all()
    import datetime

    from rnnviz.core.tasks.dates import formats

    written = formats(datetime.date(2020, 3, 3))
    assert "tuesday march 3 2020" in written and "march 3rd, 2020" in written


# ---------------------------------------------------------------- the model's output layer


def test_an_output_layer_of_its_own_width_leaves_the_language_model_as_it_was() -> None:
    for kind in ("scratch", "fast", "gru", "lstm"):
        cfg = ModelConfig(kind=kind, hidden_size=8)  # type: ignore[arg-type]
        a = build_model(11, cfg, 3)
        b = build_model(11, cfg, 3, output_size=11)
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
        c = build_model(11, cfg, 3, output_size=4)
        logits, _, _ = c(torch.zeros(2, 5, dtype=torch.int64))
        assert logits.shape == (2, 5, 4) and c.output_size == 4


# ---------------------------------------------------------------- refusals


def test_bidirectional_training_is_the_tagging_task_s_alone() -> None:
    assert frozenset({"tagging"}) == BIDIRECTIONAL_TASKS and bidirectional_allowed("tagging")
    bi = ModelConfig(kind="gru", bidirectional=True)
    assert training_refusal(bi, "tagging") is None
    for task in ("lm", "names", "name_gen", "dates"):
        assert training_refusal(bi, task) is not None
    assert "tagging" in training_refusal(bi, "names")  # type: ignore[operator]
    fast = training_refusal(ModelConfig(kind="fast"), "names")
    assert fast is not None and "scratch" in fast
    with pytest.raises(ConfigError, match="fast RNN"):
        build_task_run(get_task("names"), RunConfig())


def test_bad_inputs_are_named_in_one_line() -> None:
    names = get_task("names")
    with pytest.raises(TaskInputError, match="the names task's name is empty"):
        names.encode_text("", "name")
    with pytest.raises(TaskInputError) as info:
        names.encode_text("Sch€m☃", "name")
    assert "'€', '☃'" in str(info.value) and "\n" not in str(info.value)
    from rnnviz.core.tasks.name_gen import language_of

    gen = get_task("name_gen")
    assert language_of(gen, "german") == "German"
    with pytest.raises(TaskInputError, match="not one of the name_gen task's languages"):
        language_of(gen, "klingon")


def test_missing_faker_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from rnnviz.core.tasks import TaskUnavailable, names

    real = importlib.import_module

    def no_faker(module: str, *args: object):
        if module.startswith("faker"):
            raise ImportError("No module named 'faker'")
        return real(module, *args)

    monkeypatch.setattr(importlib, "import_module", no_faker)
    with pytest.raises(TaskUnavailable, match=r"pip install 'rnnviz\[tasks\]'"):
        names._faker_list("de_DE")


# ---------------------------------------------------------------- tiny models learn


def test_a_tiny_model_learns_the_names_task_above_chance() -> None:
    run, result = _trained("names", 100, 32)
    assert result.metric > run.task.chance + 0.2  # chance (the commonest language) is ~0.19
    from rnnviz.core.tasks.names import confusion, prefix_beliefs

    matrix = confusion(run.model, run.data, 9)
    assert matrix.sum() == len(run.data.held_x)
    assert np.trace(matrix) / matrix.sum() == pytest.approx(result.metric)
    beliefs = prefix_beliefs(run.model, run.task, "Schmidt")
    assert beliefs.probs.shape == (7, 9)
    assert np.allclose(beliefs.probs.sum(axis=1), 1.0)


def test_tagging_one_way_falls_short_where_bidirectional_does_not() -> None:
    bi_run, bi = _trained("tagging", 40, 16, bidirectional=True)
    one_run, one = _trained("tagging", 40, 16)
    assert bi.metric >= 0.99
    assert one_run.task.chance + 0.03 < one.metric < 0.95
    from rnnviz.core.tasks.tagging import per_position_accuracy

    per = per_position_accuracy(bi_run.model, bi_run.data)
    assert np.nanmin(per) >= 0.98
    assert np.nanmin(per_position_accuracy(one_run.model, one_run.data)) < 0.95


def test_a_tiny_model_learns_to_generate_names() -> None:
    run, result = _trained("name_gen", 100, 32)
    assert result.metric > run.task.chance + 0.05
    from rnnviz.core.tasks.name_gen import generate_name

    greedy = generate_name(run.model, run.task, "Italian")
    again = generate_name(run.model, run.task, "italian")
    assert greedy == again and greedy.language == "Italian"
    assert len(greedy.probs) == len(greedy.chars) + int(greedy.ended)
    drawn = generate_name(run.model, run.task, "Finnish", temperature=1.0, top_k=3, seed=5)
    assert drawn == generate_name(run.model, run.task, "Finnish", 1.0, 3, 5)
    assert all(0 < p <= 1 for p in drawn.probs)


def test_a_tiny_encoder_decoder_learns_dates_above_chance() -> None:
    run, _ = _trained("dates", 100, 48)
    # teacher-forced per-character accuracy: far above a uniform guess over 12 outputs
    assert step_accuracy(run.model, run.data) > 0.5
    from rnnviz.core.tasks.dates import translate

    out = translate(run.model, run.task, "Tuesday March 3 2021")  # type: ignore[arg-type]
    assert out.text == "tuesday march 3 2021" and len(out.probs) >= 1


def test_the_trainer_s_telemetry_works_for_every_task() -> None:
    cases = (("names", {}), ("tagging", {"bidirectional": True}), ("name_gen", {}), ("dates", {}))
    for name, model in cases:
        task = get_task(name)
        config = task_config(task, hidden_size=16, **model).replace(train={"val_every": 2})
        run = build_task_run(task, config)
        records = [run.trainer.train_step() for _ in range(2)]
        last = records[-1]
        assert math.isfinite(last.grad_norm_before_clip) and last.param_grad_norms
        assert last.val_metric is not None and 0 <= last.val_metric <= 1
        assert last.val_ppl is not None and math.isfinite(last.val_ppl)
        assert records[0].val_metric is None
        assert len(last.grad_flow) >= 1 and np.isfinite(last.grad_flow).all()
        assert not last.nonfinite


def test_a_non_finite_step_is_skipped_for_a_task_too() -> None:
    task = get_task("names")
    run = build_task_run(task, task_config(task, hidden_size=8))
    before = [p.detach().clone() for p in run.model.parameters()]

    def bad(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return task.loss(logits, y) * float("nan")

    run.trainer.loss_fn = bad
    record = run.trainer.train_step()
    assert record.nonfinite
    assert all(torch.equal(p, q) for p, q in zip(before, run.model.parameters(), strict=True))


# ---------------------------------------------------------------- checkpoints and history


@pytest.mark.parametrize(
    ("name", "model"), [("names", {}), ("tagging", {"bidirectional": True}), ("dates", {})]
)
def test_the_checkpoint_round_trips_the_task(name: str, model: dict[str, object]) -> None:
    task = get_task(name)
    config = task_config(task, hidden_size=8, **model).replace(train={"val_every": 0})
    run = build_task_run(task, config)
    for _ in range(2):
        run.trainer.train_step()
    data = checkpoint_bytes(
        config=config, vocab=task_vocab(task), model=run.model, trainer=run.trainer, task=task
    )
    ckpt = load_checkpoint_bytes(data, "ck")
    assert ckpt.task == name and ckpt.task_object() == task and ckpt.step == 2
    restored = restore_model(ckpt)
    x = torch.from_numpy(run.data.held_x[:4])
    run.model.eval()
    assert torch.equal(restored(x)[0], run.model(x)[0])


def test_a_checkpoint_without_a_task_is_a_language_model() -> None:
    config = RunConfig(model=ModelConfig(kind="gru", hidden_size=4))
    vocab = Vocab(("<unk>", "a", "b"))
    model = build_model(3, config.model, 0)
    ckpt = load_checkpoint_bytes(checkpoint_bytes(config=config, vocab=vocab, model=model), "ck")
    assert ckpt.task == "lm" and ckpt.task_inputs == ()
    with pytest.raises(CheckpointError, match="language model"):
        ckpt.task_object()


def test_a_checkpoint_s_task_is_checked() -> None:
    import json

    from safetensors.torch import load as st_load

    task = get_task("tagging")
    config = task_config(task, hidden_size=4)
    model = build_task_run(task, config).model
    data = checkpoint_bytes(config=config, vocab=task_vocab(task), model=model, task=task)
    tensors = st_load(data)
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    meta = json.loads(header["__metadata__"]["rnnviz"])
    meta["task"]["name"] = "poetry"
    with pytest.raises(CheckpointError, match="task.name must be one of"):
        load_checkpoint_bytes(encode_checkpoint(tensors, meta), "ck")
    meta["task"] = {"name": "tagging", "inputs": meta["task"]["inputs"], "outputs": ["x"] * 3}
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint_bytes(encode_checkpoint(tensors, meta), "ck")


def test_the_metric_is_a_csv_column_of_a_task_s_run_only(tmp_path) -> None:
    task = get_task("tagging")
    run = build_task_run(task, task_config(task, hidden_size=4).replace(train={"val_every": 2}))
    history = MetricHistory()
    history.append(run.trainer.train_step() for _ in range(4))
    path = tmp_path / "m.csv"
    history.to_csv(path)
    back = MetricHistory.from_csv(path).columns()
    assert np.isnan(back["val_metric"][0]) and 0 <= back["val_metric"][1] <= 1
    assert "val_metric" not in MetricHistory().column_names()


def test_teacher_forcing_is_switchable() -> None:
    task = get_task("dates")
    run = build_task_run(task, task_config(task, hidden_size=8))
    model = run.model
    S = task.extra["source_len"]
    x = torch.from_numpy(run.data.train_x[:4].copy())
    other = x.clone()
    other[:, S + 1 :] = torch.flip(other[:, S + 1 :], dims=[1])  # other decoder inputs, same BOS
    with torch.no_grad():
        model.teacher_forcing = True  # type: ignore[assignment]
        assert not torch.equal(model(x)[0], model(other)[0])  # the true previous characters
        model.teacher_forcing = False  # type: ignore[assignment]
        assert torch.equal(model(x)[0], model(other)[0])  # its own guesses: the inputs unread
