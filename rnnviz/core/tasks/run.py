"""A task's run: its model, data and the trainer (core.trainer's, with the task's loss and
metric injected), and training until the target is reached or the budget is spent."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from rnnviz.core.config import ConfigError, ModelConfig, RunConfig, TrainConfig, training_refusal
from rnnviz.core.messages import StepRecord
from rnnviz.core.model import CharModel, build_model
from rnnviz.core.tasks.base import Task, TaskBatches, TaskData
from rnnviz.core.trainer import Trainer


def task_config(task: Task, **model: object) -> RunConfig:
    """The task's default configuration (TaskDefaults), with ``model`` fields changed."""
    d = task.defaults
    fields: dict[str, object] = {"kind": d.kind, "hidden_size": d.hidden_size}
    fields.update(model)
    return RunConfig(
        model=ModelConfig(**fields),  # type: ignore[arg-type]
        train=TrainConfig(
            lr=d.lr,
            optimizer=d.optimizer,  # type: ignore[arg-type]
            batch_size=d.batch_size,
            clip_theta=d.clip_theta,
            val_every=d.val_every,
        ),
    )


def build_task_model(task: Task, config: ModelConfig, seed: int) -> CharModel:
    """The task's model: the encoder-decoder for that shape, else one of core.model's, its
    output layer as wide as the task's outputs."""
    if task.shape == "encoder_decoder":
        from rnnviz.core.tasks.dates import build_seq2seq

        return build_seq2seq(task, config, seed)
    return build_model(task.input_size, config, seed, output_size=task.output_size)


@dataclass
class TaskRun:
    task: Task
    config: RunConfig
    data: TaskData
    model: CharModel
    trainer: Trainer


def build_task_run(task: Task, config: RunConfig) -> TaskRun:
    """ConfigError when the model may not train on the task (config.training_refusal)."""
    refusal = training_refusal(config.model, task.name)
    if refusal is not None:
        raise ConfigError(refusal)
    seed = config.train.seed
    data = task.data(seed)
    model = build_task_model(task, config.model, seed).to(config.train.device)
    batches = TaskBatches(data, config.train)

    def metric(m: CharModel) -> float:
        return task.score(m, data)

    trainer = Trainer(model, batches, config.train, loss_fn=task.loss, metric=metric)
    return TaskRun(task, config, data, model, trainer)


@dataclass(frozen=True)
class TrainResult:
    steps: int
    train_s: float  # the trainer's own clock (steps and validations)
    metric: float
    best_metric: float
    # seconds (trainer clock) when the metric first reached the task's target; None: never
    target_s: float | None
    diverged: bool


def train_task(
    run: TaskRun,
    *,
    max_steps: int,
    max_seconds: float = math.inf,
    stop_at_target: bool = False,
    target: float | None = None,
    on_record: Callable[[StepRecord], None] | None = None,
) -> TrainResult:
    """Train up to ``max_steps`` steps or ``max_seconds`` of wall time; the metric is measured
    every ``val_every`` steps and at the end."""
    trainer = run.trainer
    goal = run.task.target if target is None else target
    start = time.perf_counter()
    metric = best = math.nan
    target_s: float | None = None
    while trainer.step < max_steps and time.perf_counter() - start < max_seconds:
        if trainer.diverged:
            break
        record = trainer.train_step()
        if on_record is not None:
            on_record(record)
        if record.val_metric is not None:
            metric = record.val_metric
            best = metric if math.isnan(best) else max(best, metric)
            if target_s is None and metric >= goal:
                target_s = trainer.wall_s
                if stop_at_target:
                    break
    if not trainer.diverged and (math.isnan(metric) or target_s is None or not stop_at_target):
        value = trainer.evaluate_metric()
        if value is not None:
            metric = value
            best = metric if math.isnan(best) else max(best, metric)
            if target_s is None and metric >= goal:
                target_s = trainer.wall_s
    return TrainResult(trainer.step, trainer.wall_s, metric, best, target_s, trainer.diverged)


def with_tokens(task: Task, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> Task:
    """``task`` reading and writing the tokens a checkpoint was trained with."""
    return replace(task, input_tokens=inputs, output_tokens=outputs)
