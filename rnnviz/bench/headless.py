"""``rnnviz bench``: the performance figures of this machine.

Every figure is a median over interleaved rounds measured in one process (the machine is shared
and noisy, so ratios are taken between variants measured in the same rounds). Timings are never
asserted in tests; tests only check that the JSON has every field.

Sections
- train: tokens/s of the fast path and of the textbook loop (the scratch model, autograd over a
  Python loop) for d2l's preset A and config B, and the "shape limit": the tokens/s the step would
  reach if it did nothing but its matrix multiplications, timed at these exact shapes. For
  context also d2l's own loop, line for line (`d2l_loop_step`: one-hot inputs, the output layer
  inside the loop); the scratch model reads X_t W_xh as a row of W_xh and runs the output layer
  once over all steps, so it is the stronger baseline of the two.
- gui: training speed with every panel open and redrawing vs the same engine headless, and the
  GUI event loop's lag (a 10 ms heartbeat timer).
- probe: time from a text change to every probe panel showing the new result, and from a
  move of the timeline to every probe panel showing that stored snapshot's probe.
- startup_s: launch to window shown, in a fresh process.
- memory: RSS growth of the GUI process over a long run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

GOALS = {
    "train.ratio_vs_textbook": ">= 2.0",
    "train.fraction_of_limit": ">= 0.60",
    "gui.train_fraction_of_headless": ">= 0.85",
    "gui.lag_p99_ms": "<= 16",
    "gui.lag_max_ms": "<= 50",
    "probe.p95_ms_100_training": "<= 30",
    "probe.p95_ms_100_paused": "<= 15",
    "probe.scrub_p95_ms_100_training": "<= 30",
    "probe.scrub_p95_ms_100_paused": "<= 30",
    "probe_gated.p95_ms_100_training_gru": "<= 30",
    "probe_gated.p95_ms_100_paused_gru": "<= 15",
    "probe_gated.p95_ms_100_training_lstm": "<= 30",
    "probe_gated.p95_ms_100_paused_lstm": "<= 15",
    "probe.scrub_p95_ms_100_training_ahead": "<= 30",
    "probe.scrub_p95_ms_100_paused_ahead": "<= 30",
    "probe.scrub_p95_ms_100_paused_neighbour": "<= 30",
    "startup_s": "<= 2.0",
    "memory.rss_growth_mib_per_10k": "< 2",
}

# the keys `rnnviz bench --json` always has (dots are nested objects); other tools read these
REQUIRED_KEYS = (
    *(
        f"train.{preset}.{key}"
        for preset in ("A", "B")
        for key in ("fast_tok_s", "textbook_tok_s", "ratio_vs_textbook", "fraction_of_limit")
    ),
    "gui.lag_p99_ms",
    "gui.lag_max_ms",
    "gui.train_fraction_of_headless",
    "probe.p95_ms_100_training",
    "probe.p95_ms_100_paused",
    "probe.scrub_p95_ms_100_training",
    "probe.scrub_p95_ms_100_paused",
    "startup_s",
    "memory.rss_growth_mib_per_10k",
)


def missing_keys(result: dict[str, Any]) -> list[str]:
    """The REQUIRED_KEYS that ``result`` lacks or holds as something other than a number."""
    missing = []
    for key in REQUIRED_KEYS:
        node: Any = result
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, int | float):
            missing.append(key)
    return missing


PRESETS = {
    # d2l's preset: hidden 32, batch 1024, num_steps 32, vocabulary 28
    "A": {"hidden": 32, "batch": 1024, "num_steps": 32, "vocab": 28},
    "B": {"hidden": 256, "batch": 32, "num_steps": 35, "vocab": 28},
}


def _median_min_max(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def _percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    i = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[i]


# ------------------------------------------------------------------------------- training


def d2l_loop_step(params: list[Any], X: Any, Y: Any, lr: float, theta: float) -> float:
    """One training step of d2l's RNN from scratch ("Recurrent Neural Network Implementation
    from Scratch"), line for line: one-hot inputs, time-major, the output layer inside the loop,
    the mean cross-entropy, d2l's ``grad_clipping`` and ``sgd``. Returns the loss."""
    import torch
    from torch.nn import functional as F

    W_xh, W_hh, b_h, W_hq, b_q = params
    inputs = F.one_hot(X.T, W_xh.shape[0]).type(torch.float32)  # (T, B, V)
    H = torch.zeros((X.shape[0], W_hh.shape[0]))
    outputs = []
    for X_t in inputs:
        H = torch.tanh(torch.mm(X_t, W_xh) + torch.mm(H, W_hh) + b_h)
        outputs.append(torch.mm(H, W_hq) + b_q)
    y_hat = torch.cat(outputs, dim=0)
    loss = F.cross_entropy(y_hat, Y.T.reshape(-1).long()).mean()
    for p in params:
        p.grad = None
    loss.backward()  # type: ignore[no-untyped-call]
    norm = torch.sqrt(
        torch.stack([torch.sum(p.grad**2) for p in params if p.grad is not None]).sum()
    )
    if norm > theta:
        for p in params:
            p.grad[:] *= theta / norm
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad
    return float(loss.detach())


def _train_step_fns(preset: dict[str, int], seed: int = 0) -> dict[str, Callable[[], None]]:
    """One optimizer step of each variant, on the same shapes and data."""
    import torch

    from rnnviz.core.config import ModelConfig
    from rnnviz.core.model import build_model

    V, H, B, T = preset["vocab"], preset["hidden"], preset["batch"], preset["num_steps"]
    gen = torch.Generator().manual_seed(seed)
    X = torch.randint(0, V, (B, T), generator=gen)
    Y = torch.randint(0, V, (B, T), generator=gen)
    textbook = build_model(V, ModelConfig(kind="scratch", hidden_size=H), seed)
    fast = build_model(V, ModelConfig(kind="fast", hidden_size=H), seed)
    d2l_params = [p.detach().clone().requires_grad_(True) for p in textbook.parameters()]
    lr, theta = 0.01, 1.0  # small lr: the parameters stay in the same regime for every round

    def d2l_step() -> None:
        d2l_loop_step(d2l_params, X, Y, lr, theta)

    def textbook_step() -> None:
        logits, _, _ = textbook(X)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), Y.reshape(-1))
        for p in textbook.parameters():
            p.grad = None
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(textbook.parameters(), theta)
        with torch.no_grad():
            for p in textbook.parameters():
                if p.grad is not None:
                    p.sub_(p.grad, alpha=lr)

    def fast_step() -> None:
        fast.loss_and_grads(X, Y, None)  # type: ignore[operator]
        torch.nn.utils.clip_grad_norm_(fast.parameters(), theta)
        with torch.no_grad():
            for p in fast.parameters():
                p.sub_(p.grad, alpha=lr)  # type: ignore[arg-type]

    def limit_step() -> None:
        # only the matrix multiplications an ideal step needs, at the same shapes:
        # forward recurrence, output projection, its two gradients, backward recurrence,
        # and the recurrent weight gradient
        for _ in range(T):
            torch.mm(h_b, w_hh, out=out_bh)
        torch.mm(hs, w_hq, out=out_o)
        torch.mm(d_o, w_hq_t, out=out_dh)
        torch.mm(hs_t, d_o, out=out_dw_hq)
        for _ in range(T):
            torch.mm(h_b, w_hh_t, out=out_bh)
        torch.mm(hs_t, hs, out=out_dw_hh)

    h_b = torch.randn(B, H)
    w_hh = torch.randn(H, H)
    w_hh_t = w_hh.t().contiguous()
    out_bh = torch.empty(B, H)
    hs = torch.randn(T * B, H)
    hs_t = hs.t().contiguous()
    w_hq = torch.randn(H, V)
    w_hq_t = w_hq.t().contiguous()
    out_o = torch.empty(T * B, V)
    d_o = torch.randn(T * B, V)
    out_dh = torch.empty(T * B, H)
    out_dw_hq = torch.empty(H, V)
    out_dw_hh = torch.empty(H, H)
    return {"textbook": textbook_step, "fast": fast_step, "limit": limit_step, "d2l": d2l_step}


def bench_train(rounds: int, steps_per_round: int, threads: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    out: dict[str, Any] = {}
    for name, preset in PRESETS.items():
        fns = _train_step_fns(preset)
        tokens = preset["batch"] * preset["num_steps"]
        for fn in fns.values():  # warm-up: allocator, caches
            fn()
        samples: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(rounds):
            for variant, fn in fns.items():  # interleaved: the noise hits every variant alike
                t0 = time.perf_counter()
                for _ in range(steps_per_round):
                    fn()
                samples[variant].append(tokens * steps_per_round / (time.perf_counter() - t0))
        fast = statistics.median(samples["fast"])
        textbook = statistics.median(samples["textbook"])
        limit = statistics.median(samples["limit"])
        d2l = statistics.median(samples["d2l"])
        out[name] = {
            "config": preset,
            "threads": threads,
            "fast_tok_s": fast,
            "textbook_tok_s": textbook,
            "limit_tok_s": limit,
            "ratio_vs_textbook": fast / textbook,
            "fraction_of_limit": fast / limit,
            "d2l_loop_tok_s": d2l,
            "ratio_vs_d2l_loop": fast / d2l,
            "fast_tok_s_range": _median_min_max(samples["fast"]),
            "textbook_tok_s_range": _median_min_max(samples["textbook"]),
            "d2l_loop_tok_s_range": _median_min_max(samples["d2l"]),
        }
    return out


# ------------------------------------------------------------------------------- startup


def bench_startup(rounds: int) -> dict[str, Any]:
    """Launch to window shown, in fresh processes: the app prints the seconds since its
    process was created at the moment the window is shown, then exits."""
    import subprocess

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", RNNVIZ_EXIT_AFTER_SHOW="1")
    times = []
    for _ in range(rounds):
        done = subprocess.run(
            [sys.executable, "-m", "rnnviz"], env=env, capture_output=True, text=True, timeout=60
        )
        shown = [line for line in done.stdout.splitlines() if line.startswith("shown ")]
        if done.returncode != 0 or not shown:
            raise RuntimeError(f"startup run failed: {done.stderr[-2000:]}")
        times.append(float(shown[-1].split()[1]))
    return {"startup_s": statistics.median(times), "startup_s_range": _median_min_max(times)}


# ------------------------------------------------------------------------------- TensorBoard


def bench_tensorboard(blocks: int, steps_per_block: int) -> dict[str, Any] | None:
    """What ``--tensorboard`` adds to a default training step: blocks of steps with and
    without the log, interleaved; each step's write (scalars, histograms when due) timed
    alone. None without the tensorboard package."""
    import tempfile

    from rnnviz.core.config import RunConfig
    from rnnviz.core.runs import build_run
    from rnnviz.core.tensorboard_log import TensorBoardLog, missing_message

    if missing_message() is not None:
        return None
    run = build_run(RunConfig())
    trainer = run.trainer
    with tempfile.TemporaryDirectory(prefix="rnnviz-bench-tb-") as folder:
        log = TensorBoardLog(folder, run)
        for _ in range(10):  # warm-up
            log.write(trainer.train_step())
        blocks_ms: dict[bool, list[float]] = {False: [], True: []}
        writes: list[float] = []
        for block in range(blocks):
            for logging in (block % 2 == 0, block % 2 == 1):
                t0 = time.perf_counter()
                for _ in range(steps_per_block):
                    record = trainer.train_step()
                    if logging:
                        w0 = time.perf_counter()
                        log.write(record)
                        writes.append(time.perf_counter() - w0)
                blocks_ms[logging].append((time.perf_counter() - t0) / steps_per_block * 1e3)
        log.close()
    plain, logged = statistics.median(blocks_ms[False]), statistics.median(blocks_ms[True])
    mean_write = statistics.fmean(writes) * 1e3
    return {
        "step_ms": plain,
        "step_ms_logging": logged,
        "write_ms_p50": _percentile(writes, 50) * 1e3,
        "write_ms_p95": _percentile(writes, 95) * 1e3,
        "write_ms_mean": mean_write,
        "write_fraction_of_step": mean_write / plain,
    }


# ------------------------------------------------------------------------------- main


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(_flatten(v, key + "."))
        else:
            flat[key] = v
    return flat


def run_bench(quick: bool) -> dict[str, Any]:
    import psutil

    from rnnviz.bench.gui import bench_gui, bench_memory, bench_probe, bench_probe_gated

    result: dict[str, Any] = {
        "machine": {
            "cores": os.cpu_count(),
            "physical_cores": psutil.cpu_count(logical=False),
            "python": sys.version.split()[0],
        }
    }
    result["train"] = bench_train(
        rounds=3 if quick else 7, steps_per_round=3 if quick else 6, threads=1
    )
    result["train_2_threads"] = bench_train(
        rounds=3 if quick else 5, steps_per_round=3 if quick else 6, threads=2
    )
    result.update(bench_startup(rounds=2 if quick else 5))
    board = bench_tensorboard(blocks=4 if quick else 12, steps_per_block=20 if quick else 50)
    if board is not None:
        result["tensorboard"] = board
    result["gui"] = bench_gui(seconds=6 if quick else 15, rounds=1 if quick else 3)
    result["probe"] = bench_probe(samples=12 if quick else 30)
    result["probe_gated"] = bench_probe_gated(samples=12 if quick else 30)
    result["memory"] = bench_memory(steps=20_000 if quick else 100_000)
    return result


def format_table(result: dict[str, Any]) -> str:
    rows = []
    for name in ("A", "B"):
        r = result["train"][name]
        rows.append((f"train.{name}.fast_tok_s", f"{r['fast_tok_s']:,.0f}", ""))
        rows.append((f"train.{name}.textbook_tok_s", f"{r['textbook_tok_s']:,.0f}", ""))
        rows.append(
            (
                f"train.{name}.ratio_vs_textbook",
                f"{r['ratio_vs_textbook']:.2f}×",
                GOALS["train.ratio_vs_textbook"],
            )
        )
        rows.append(
            (
                f"train.{name}.fraction_of_limit",
                f"{r['fraction_of_limit']:.0%}",
                GOALS["train.fraction_of_limit"],
            )
        )
        rows.append((f"train.{name}.d2l_loop_tok_s", f"{r['d2l_loop_tok_s']:,.0f}", ""))
        rows.append(
            (f"train.{name}.ratio_vs_d2l_loop", f"{r['ratio_vs_d2l_loop']:.2f}×", "(context)")
        )
    flat = _flatten(
        {k: v for k, v in result.items() if k in ("gui", "probe", "memory", "tensorboard")}
    )
    flat["startup_s"] = result.get("startup_s")
    for key, value in flat.items():
        if isinstance(value, float):
            rows.append((key, f"{value:.3g}", GOALS.get(key, "")))
        elif isinstance(value, int):
            rows.append((key, str(value), GOALS.get(key, "")))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'figure'.ljust(width)}  {'value':>12}  goal"]
    lines += [f"{k.ljust(width)}  {v:>12}  {g}" for k, v, g in rows]
    m = result["machine"]
    lines.append(
        f"machine: {m['cores']} logical cores ({m['physical_cores']} physical), "
        f"Python {m['python']}"
    )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    result = run_bench(quick=bool(getattr(args, "quick", False)))
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, default=float))
    else:
        print(format_table(result))
    return 0
