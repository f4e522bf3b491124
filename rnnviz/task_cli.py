"""``rnnviz train --task NAME`` and ``rnnviz probe`` of a task's checkpoint (core.tasks).

A task trains on its own data with its own defaults (TaskDefaults); the options the user gave
change them. Training stops once the held-out metric reaches the task's target, unless
``--max-steps`` or ``--epochs`` asks for a fixed length. The metric is printed on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from rnnviz.cli import EXIT_DIVERGED, EXIT_OUTPUT, UsageError, _check_outputs, clip_fields

# options of `train` that are the language model's alone
_LM_ONLY = {
    "session_out": "--session-out",
    "tensorboard": "--tensorboard",
    "partition": "--partition",
}


def _task(name: str) -> Any:
    from rnnviz.core.tasks import get_task

    return get_task(name)  # TaskUnavailable names the extra to install


def task_run_config(args: argparse.Namespace, task: Any) -> Any:
    """The task's defaults with the options given on the command line."""
    from rnnviz.core.tasks.run import task_config

    config = task_config(task)
    model: dict[str, Any] = {
        "num_layers": args.num_layers,
        "bidirectional": bool(args.bidirectional),
        "activation": args.activation,
    }
    if args.model is not None:
        model["kind"] = args.model
    if args.hidden is not None:
        model["hidden_size"] = args.hidden
    if args.init is not None:
        model["init"] = args.init
    train: dict[str, Any] = {"seed": args.seed, "device": args.device, **clip_fields(args)}
    for name, key in (("lr", "lr"), ("batch_size", "batch_size"), ("optimizer", "optimizer")):
        if getattr(args, name) is not None:
            train[key] = getattr(args, name)
    if args.val_every is not None:
        train["val_every"] = args.val_every
    return config.replace(model=model, train=train)


def _progress(task: Any, quiet: bool) -> Any:
    def show(record: Any) -> None:
        if quiet or record.val_metric is None:
            return
        print(
            f"step {record.step:,}  loss {record.loss:.4f}  {task.metric_name} "
            f"{record.val_metric:.4f}  |g| {record.grad_norm_before_clip:.3g}  "
            f"{record.wall_s:.1f} s",
            file=sys.stderr,
        )

    return show


def train_task_command(args: argparse.Namespace) -> int:
    from rnnviz.core.checkpoint import save_checkpoint, task_vocab
    from rnnviz.core.config import training_refusal
    from rnnviz.core.history import MetricHistory
    from rnnviz.core.runs import check_device
    from rnnviz.core.tasks.dates import Seq2Seq
    from rnnviz.core.tasks.run import build_task_run, train_task

    for name, flag in _LM_ONLY.items():
        if getattr(args, name, None) is not None:
            raise UsageError(f"{flag} is for the language model; the {args.task} task has none")
    if args.corpus != "builtin":
        raise UsageError(f"--corpus is the language model's; the {args.task} task makes its data")
    task = _task(args.task)
    config = task_run_config(args, task)
    refusal = training_refusal(config.model, task.name)
    if refusal is not None:
        raise UsageError(refusal)
    if args.no_teacher_forcing and task.shape != "encoder_decoder":
        raise UsageError("--no-teacher-forcing is for the dates task's decoder")
    _check_outputs(args)
    check_device(config.train.device)
    import torch

    # a task's batches are small (64 rows of 20-40 steps): a second thread waits on the
    # first more than it helps, and on a busy 2-core machine it makes steps several times
    # slower (the budget is one thread)
    torch.set_num_threads(1)
    run = build_task_run(task, config)
    if isinstance(run.model, Seq2Seq):
        run.model.teacher_forcing = not args.no_teacher_forcing
    steps = run.trainer.batches.steps_per_epoch
    if args.max_steps is not None:
        max_steps, stop = args.max_steps, False
    elif args.epochs is not None:
        max_steps, stop = args.epochs * steps, False
    else:
        max_steps, stop = task.defaults.max_steps, True
    history = MetricHistory(capacity=max(2, min(max_steps, 1_000_000)))
    show = _progress(task, args.quiet)

    def on_record(record: Any) -> None:
        history.append([record])
        show(record)

    result = train_task(run, max_steps=max_steps, stop_at_target=stop, on_record=on_record)
    # the files first: a reader of stdout that leaves early (| head) must not cost the model
    status = 0
    if args.checkpoint_out is not None:
        save_checkpoint(
            args.checkpoint_out,
            config=config,
            vocab=task_vocab(task),
            model=run.model,
            trainer=run.trainer,
            task=task,
        )
        print(f"checkpoint: {args.checkpoint_out}", file=sys.stderr)
    if args.metrics_out is not None:
        try:
            history.to_csv(args.metrics_out)
            print(f"metrics: {args.metrics_out}", file=sys.stderr)
        except OSError as exc:
            print(f"error: --metrics-out {args.metrics_out}: {exc}", file=sys.stderr)
            status = EXIT_OUTPUT
    reached = "reached" if result.target_s is not None else "not reached"
    print(
        f"{task.name}: {task.metric_name} {result.metric:.4f} after {result.steps:,} steps, "
        f"{result.train_s:.1f} s (target {task.target:g} {reached}; chance {task.chance:.3f})"
    )
    for line in _details(run):
        print(line)
    if result.diverged:
        print("error: training diverged (non-finite steps in a row)", file=sys.stderr)
        return EXIT_DIVERGED
    return status


def _details(run: Any) -> list[str]:
    """What the metric alone does not say: the confusion matrix, the per-position accuracy."""
    import numpy as np

    task, model = run.task, run.model
    model.eval()
    if task.name == "names":
        from rnnviz.core.tasks.names import confusion

        matrix = confusion(model, run.data, task.output_size)
        short = [lang[:3] for lang in task.output_tokens]
        lines = ["confusion (rows: true language, columns: predicted)"]
        lines.append(" " * 9 + " ".join(f"{s:>4}" for s in short))
        for lang, row in zip(task.output_tokens, matrix, strict=True):
            lines.append(f"{lang[:8]:>8} " + " ".join(f"{int(v):>4}" for v in row))
        return lines
    if task.name == "tagging":
        from rnnviz.core.tasks.tagging import per_position_accuracy

        acc = per_position_accuracy(model, run.data)
        shown = " ".join("-" if np.isnan(a) else f"{a:.2f}" for a in acc)
        return [f"per-position accuracy (t = 0, 1, ...): {shown}"]
    return []


def probe_task_command(args: argparse.Namespace, ckpt: Any) -> int:
    """``rnnviz probe --checkpoint CK TEXT`` of a task's model (one JSON object with --json)."""
    from rnnviz.core.checkpoint import restore_model
    from rnnviz.core.runs import check_device

    if args.session is not None or args.at_step is not None:
        raise UsageError("a task's model is probed from its checkpoint (--checkpoint)")
    check_device(args.device)
    task = ckpt.task_object()
    model = restore_model(ckpt, args.device)
    out = probe_task(model, task, args.text, args)
    if args.json:
        print(json.dumps(out))
    else:
        print(_table(out))
    return 0


def probe_task(model: Any, task: Any, text: str, args: argparse.Namespace) -> dict[str, Any]:
    """The task's answer to ``text`` as JSON-able data (TaskInputError for a bad input)."""
    out: dict[str, Any] = {"task": task.name, "shape": task.shape, "text": text}
    if task.name == "names":
        from rnnviz.core.tasks.names import prefix_beliefs

        beliefs = prefix_beliefs(model, task, text)
        out["languages"] = list(task.output_tokens)
        out["prefixes"] = [
            {
                "prefix": text[: t + 1],
                "probs": [round(float(p), 6) for p in row],
                "top": task.output_tokens[int(row.argmax())],
            }
            for t, row in enumerate(beliefs.probs)
        ]
        out["prediction"] = beliefs.prediction
        out["probs"] = out["prefixes"][-1]["probs"]
    elif task.name == "tagging":
        from rnnviz.core.tasks.tagging import tag_probs

        probs = tag_probs(model, task, text)
        out["tags"] = list(task.output_tokens)
        out["probs"] = [[round(float(p), 6) for p in row] for row in probs]
        out["predicted"] = "".join(str(int(row.argmax())) for row in probs)
    elif task.name == "name_gen":
        from rnnviz.core.tasks.name_gen import generate_name

        low_t = args.temperature
        if low_t != 0 and not 1e-3 <= low_t <= 1e3:
            raise UsageError(f"--temperature must be 0 (greedy) or in 0.001..1000, not {low_t:g}")
        top_k = args.top_k if low_t else 0
        gen = generate_name(model, task, text, low_t, top_k, args.seed)
        out.update(
            language=gen.language,
            name=gen.name,
            chars=list(gen.chars),
            probs=[round(p, 6) for p in gen.probs],
            model_probs=[round(p, 6) for p in gen.model_probs],
            ended=gen.ended,
            temperature=low_t,
            top_k=top_k,
            seed=args.seed,
        )
    elif task.name == "dates":
        from rnnviz.core.tasks.dates import translate

        try:
            tr = translate(model, task, text)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        out.update(
            output=tr.output, probs=[round(p, 6) for p in tr.probs], ended=tr.ended, read=tr.text
        )
    else:  # pragma: no cover - every task is above
        raise UsageError(f"no probe for the {task.name} task")
    return out


def _table(out: dict[str, Any]) -> str:
    task = out["task"]
    if task == "names":
        lines = [f"{'prefix':<26} top language (p)"]
        for row in out["prefixes"]:
            p = max(row["probs"])
            lines.append(f"{row['prefix']:<26} {row['top']} {p:.3f}")
        lines.append(f"prediction: {out['prediction']}")
        return "\n".join(lines)
    if task == "tagging":
        lines = ["char  P(last letter of its word)"]
        for ch, row in zip(out["text"], out["probs"], strict=True):
            lines.append(f"{'␣' if ch == ' ' else ch:<5} {row[1]:.3f}")
        return "\n".join(lines)
    if task == "name_gen":
        chars = "  ".join(f"{c} {p:.3f}" for c, p in zip(out["chars"], out["probs"], strict=False))
        end = f"  <end> {out['probs'][-1]:.3f}" if out["ended"] else "  (no end token)"
        return f"{out['language']}: {out['name']}\n{chars}{end}"
    probs = " ".join(f"{p:.2f}" for p in out["probs"])
    mean = math.fsum(out["probs"]) / max(1, len(out["probs"]))
    return f"{out['read']} -> {out['output']}\nper character p: {probs} (mean {mean:.3f})"
