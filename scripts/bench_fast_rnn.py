"""Tokens/s of one training step: textbook ScratchRNN + autograd vs FastRNN.loss_and_grads.

Both sides do the same clip + SGD update; rounds are interleaved and the median is reported,
because this machine is shared and noisy.

    .venv/bin/python scripts/bench_fast_rnn.py [--rounds 7] [--steps 5] [--threads 1 2]

``--against REV`` also times FastRNN as committed at git revision REV (e.g. HEAD), or as in a
saved copy of fast_rnn.py if REV is a file, interleaved with the working tree's, and prints the
paired ratio: the way to A/B a change to fast_rnn.py.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn import functional as F

from rnnviz.core.config import ModelConfig
from rnnviz.core.fast_rnn import FastRNN
from rnnviz.core.model import ScratchRNN

CONFIGS = {
    "A (H32 B1024 T32 V28)": (32, 1024, 32, 28),
    "B (H256 B32 T35 V28)": (256, 32, 35, 28),
    "B (H256 B32 T35 V100)": (256, 32, 35, 100),
}


def fast_rnn_at(rev: str) -> type[FastRNN]:
    """FastRNN as rnnviz/core/fast_rnn.py stood at git revision ``rev``, or as in the file
    ``rev`` if that is a path (a saved copy of an uncommitted variant)."""
    if Path(rev).is_file():
        src, origin = Path(rev).read_text(), rev
    else:
        path = "rnnviz/core/fast_rnn.py"
        root = Path(__file__).resolve().parent.parent
        src = subprocess.run(
            ["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, text=True, check=True
        ).stdout
        origin = f"{rev}:{path}"
    module = types.ModuleType("fast_rnn_baseline")
    exec(compile(src, origin, "exec"), module.__dict__)
    cls: type[FastRNN] = module.FastRNN
    return cls


def sgd(model: torch.nn.Module, lr: float, theta: float) -> None:
    params: list[torch.Tensor] = list(model.parameters())
    grads = [p.grad for p in params if p.grad is not None]
    torch.nn.utils.clip_grad_norm_(params, theta, foreach=True)
    with torch.no_grad():
        torch._foreach_add_(params, grads, alpha=-lr)


def textbook_step(model: ScratchRNN, X: torch.Tensor, Y: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    logits, _, _ = model(X, None)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1))
    torch.autograd.backward(loss)
    float(loss.detach())
    sgd(model, 0.01, 1.0)


def fast_step(model: FastRNN, X: torch.Tensor, Y: torch.Tensor) -> None:
    model.loss_and_grads(X, Y, None)
    sgd(model, 0.01, 1.0)


def gemm_floor(hidden: int, batch: int, T: int, V: int) -> Callable[[], None]:
    """Only the matrix products any exact step needs, at the same shapes: what no amount of
    overhead removal can go below (the textbook step does the same FLOPs)."""
    N = batch * T
    h, w_hh, out = (
        torch.randn(batch, hidden),
        torch.randn(hidden, hidden),
        torch.empty(batch, hidden),
    )
    hs, w_hq, d_o = torch.randn(N, hidden), torch.randn(hidden, V), torch.randn(N, V)

    def run() -> None:
        for _ in range(T - 1):  # forward recurrence (H_{-1} = 0 needs none)
            torch.mm(h, w_hh, out=out)
        torch.mm(hs, w_hq)  # logits
        torch.mm(d_o, w_hq.t())  # dL/dH through the output layer
        torch.mm(hs.t(), d_o)  # dW_hq
        for _ in range(T - 1):  # backward recurrence
            torch.mm(h, w_hh.t(), out=out)
        torch.mm(hs[batch:].t(), hs[:-batch])  # dW_hh

    return run


def bench(
    steps: int,
    rounds: int,
    hidden: int,
    batch: int,
    T: int,
    V: int,
    baseline: type[FastRNN] | None = None,
) -> dict[str, float]:
    cfg = ModelConfig(kind="scratch", hidden_size=hidden)
    torch.manual_seed(0)
    scratch = ScratchRNN(V, cfg)
    fast = FastRNN(V, cfg)
    X = torch.randint(0, V, (batch, T))
    Y = torch.randint(0, V, (batch, T))
    variants: dict[str, Callable[[], None]] = {
        "textbook": lambda: textbook_step(scratch, X, Y),
        "fast": lambda: fast_step(fast, X, Y),
        "floor": gemm_floor(hidden, batch, T, V),
    }
    if baseline is not None:
        base = baseline(V, cfg)
        base.load_state_dict(fast.state_dict())
        variants["base"] = lambda: fast_step(base, X, Y)
    for fn in variants.values():  # warm-up
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - t0) / steps)
    result = {k: batch * T / statistics.median(v) for k, v in times.items()}
    result["floor"] = batch * T / statistics.median(times["floor"])
    result["best_textbook"] = batch * T / min(times["textbook"])
    result["best_fast"] = batch * T / min(times["fast"])
    # each round's two timings are neighbours in time, so their ratio shares most of the noise
    result["paired"] = statistics.median(
        a / b for a, b in zip(times["textbook"], times["fast"], strict=True)
    )
    if baseline is not None:
        result["paired_vs_base"] = statistics.median(
            a / b for a, b in zip(times["base"], times["fast"], strict=True)
        )
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--only", default="", help="run the configs whose name contains this")
    ap.add_argument("--against", metavar="REV", help="also time FastRNN at this git revision")
    args = ap.parse_args()
    baseline = fast_rnn_at(args.against) if args.against else None
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, shape in CONFIGS.items():
            if args.only not in name:
                continue
            r = bench(args.steps, args.rounds, *shape, baseline=baseline)
            if baseline is not None:
                print(
                    f"threads={threads} {name}: fast@{args.against} {r['base']:,.0f} tok/s, "
                    f"fast {r['fast']:,.0f} tok/s = {r['fast'] / r['base']:.3f}x "
                    f"(paired {r['paired_vs_base']:.3f}x)",
                    flush=True,
                )
            print(
                f"threads={threads} {name}: textbook {r['textbook']:,.0f} tok/s, "
                f"fast {r['fast']:,.0f} tok/s, speed-up {r['fast'] / r['textbook']:.2f}x "
                f"(paired {r['paired']:.2f}x, best-of {r['best_fast'] / r['best_textbook']:.2f}x); "
                f"matmul floor {r['floor']:,.0f} tok/s = {r['floor'] / r['textbook']:.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
