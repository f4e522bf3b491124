"""`rnnviz bench --tasks`: each task (core.tasks) trained with its defaults on one torch
thread until its held-out metric reaches the target: the seconds it took (the trainer's
clock: its steps and validations) and the metric reached. Tagging is trained twice, one-way
and bidirectional, for the same budget: the one-way model cannot reach the target.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

# the budget: every task reaches its target within a minute of training
BUDGET_S = 60.0
# the one-way tagger never reaches its target; it is given this long to show where it stops
ONE_WAY_S = 20.0


def _one(name: str, seed: int, bidirectional: bool, budget_s: float) -> dict[str, Any]:
    from rnnviz.core.tasks import get_task
    from rnnviz.core.tasks.run import build_task_run, task_config, train_task

    task = get_task(name)
    config = task_config(task, bidirectional=bidirectional).replace(train={"seed": seed})
    run = build_task_run(task, config)
    one_way_tagging = name == "tagging" and not bidirectional
    result = train_task(
        run,
        max_steps=10**9,
        max_seconds=budget_s,
        stop_at_target=not one_way_tagging,
    )
    return {
        "seconds_to_target": result.target_s,
        "metric": result.metric,
        "best_metric": result.best_metric,
        "steps": result.steps,
        "train_s": result.train_s,
    }


def bench_tasks(repeats: int, quick: bool = False) -> dict[str, Any]:
    import torch

    from rnnviz.core.tasks import get_task

    torch.set_num_threads(1)
    cases = [
        ("names", "names", False),
        ("tagging (bidirectional)", "tagging", True),
        ("tagging (one-way)", "tagging", False),
        ("name_gen", "name_gen", False),
        ("dates", "dates", False),
    ]
    out: dict[str, Any] = {"threads": 1, "repeats": repeats, "budget_s": BUDGET_S, "tasks": {}}
    for label, name, bidirectional in cases:
        task = get_task(name)
        one_way = name == "tagging" and not bidirectional
        # --quick shortens the one run that never stops early; the others stop at the target
        budget = (ONE_WAY_S / (4 if quick else 1)) if one_way else BUDGET_S
        runs = [_one(name, seed, bidirectional, budget) for seed in range(repeats)]
        reached = [r["seconds_to_target"] for r in runs if r["seconds_to_target"] is not None]
        out["tasks"][label] = {
            "model": f"{task.defaults.kind}{' bidirectional' if bidirectional else ''} "
            f"hidden {task.defaults.hidden_size}, {task.defaults.optimizer} lr "
            f"{task.defaults.lr:g}, batch {task.defaults.batch_size}",
            "metric_name": task.metric_name,
            "target": task.target,
            "chance": task.chance,
            "runs": runs,
            "reached": f"{len(reached)}/{len(runs)}",
            "median_seconds_to_target": statistics.median(reached) if reached else None,
            "median_metric": statistics.median(r["metric"] for r in runs),
        }
    return out


def format_tasks(result: dict[str, Any]) -> str:
    lines = [
        f"tasks, one torch thread, {result['repeats']} run(s) each (seeds 0..), "
        f"budget {result['budget_s']:g} s",
        f"{'task':<25} {'target':>7} {'reached':>8} {'s to target (median)':>21} "
        f"{'metric (median)':>16}  model",
    ]
    for label, r in result["tasks"].items():
        secs = r["median_seconds_to_target"]
        shown = "-" if secs is None else f"{secs:.1f}"
        each = ", ".join(
            "-" if x["seconds_to_target"] is None else f"{x['seconds_to_target']:.1f}"
            for x in r["runs"]
        )
        lines.append(
            f"{label:<25} {r['target']:>7g} {r['reached']:>8} {shown:>8} ({each})".ljust(70)
            + f" {r['median_metric']:>9.4f}  {r['model']}"
        )
    return "\n".join(lines)


def main_tasks(args: argparse.Namespace) -> int:
    from rnnviz.core.tasks import TaskUnavailable

    quick = bool(getattr(args, "quick", False))
    repeats = getattr(args, "repeats", None) or (1 if quick else 3)
    try:
        result = bench_tasks(repeats, quick=quick)
    except TaskUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, default=float))
    else:
        print(format_tasks(result))
    return 0
