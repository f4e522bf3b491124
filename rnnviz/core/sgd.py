"""Plain SGD, ``p <- p - lr * p.grad``: d2l's ``sgd`` and ``torch.optim.SGD`` without momentum,
weight decay or dampening, bit for bit (tests/core/test_sgd.py).

Not ``torch.optim.SGD`` itself: its constructor and its first ``step`` import
``torch._dynamo`` (torch.optim wraps them for ``torch.compile``), about 1 s of the 14 s a
whole ``rnnviz train`` at d2l's preset takes on this machine, for a feature rnnviz never uses.
It offers what the trainer uses of an optimizer: ``param_groups[0]["lr"]``, ``state`` (always
empty: plain SGD keeps none), ``step``, and ``state_dict``/``load_state_dict`` in
``torch.optim``'s layout, so that checkpoints and snapshots read the same either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor


class PlainSGD:
    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        self.param_groups: list[dict[str, Any]] = [{"params": list(params), "lr": float(lr)}]
        self.state: dict[Tensor, dict[str, Any]] = {}

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        params = [p for p in group["params"] if p.grad is not None]
        if params:
            torch._foreach_add_(params, [p.grad for p in params], alpha=-group["lr"])

    def state_dict(self) -> dict[str, Any]:
        group = self.param_groups[0]
        return {
            "state": {},
            "param_groups": [{"lr": group["lr"], "params": list(range(len(group["params"])))}],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("state"):
            raise ValueError("plain SGD keeps no state; this optimizer state is another's")
        groups = state_dict.get("param_groups") or [{}]
        if "lr" in groups[0]:
            self.param_groups[0]["lr"] = float(groups[0]["lr"])
