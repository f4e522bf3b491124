"""One of torchrun's processes for test_distributed: trains the runs of a JSON file of configs
data parallel and, on rank 0, writes every step record and the final state as JSON.

Usage: dp_worker.py CONFIGS.json STEPS OUT.json
"""

from __future__ import annotations

import json
import sys

import torch

from rnnviz.core.config import RunConfig
from rnnviz.core.distributed import DataParallel, launch_from_env
from rnnviz.core.messages import StepRecord
from rnnviz.core.runs import build_run


def record_json(r: StepRecord) -> dict[str, object]:
    return {
        "loss": r.loss,
        "before": r.grad_norm_before_clip,
        "after": r.grad_norm_after_clip,
        "clipped": r.clipped,
        "nonfinite": r.nonfinite,
        "per_param": dict(r.param_grad_norms),
        "grad_flow": [float(x) for x in r.grad_flow],
        "val_ppl": r.val_ppl,
    }


def train(config: RunConfig, steps: int, dp: DataParallel | None) -> dict[str, object]:
    run = build_run(config)
    # as `rnnviz train` runs: a GRU/LSTM's exact flow is measured on each process's own first
    # rows, a different sample from one process's (core.recurrence_vjp)
    run.trainer.fused_flow = False
    if dp is not None:
        dp.attach(run)
    records = [record_json(run.trainer.train_step()) for _ in range(steps)]
    val = run.trainer.evaluate()
    if dp is not None:
        dp.gather_carried(run.trainer, interrupted=False)
    tensors, _ = run.trainer.state_dict()
    state = {k: v.detach().double().tolist() for k, v in run.model.state_dict().items()}
    state.update({f"trainer.{k}": v.double().tolist() for k, v in tensors.items()})
    return {"records": records, "val_ppl": val, "state": state}


def main() -> None:
    torch.set_num_threads(1)
    configs_path, steps, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(configs_path) as fh:
        configs = [RunConfig.from_json(c) for c in json.load(fh)]
    launch = launch_from_env()
    assert launch is not None, "start me with torchrun"
    with DataParallel(launch, "cpu") as dp:
        results = [train(config, steps, dp) for config in configs]
    if launch.is_main:
        with open(out, "w") as fh:
            json.dump(results, fh)


if __name__ == "__main__":
    main()
