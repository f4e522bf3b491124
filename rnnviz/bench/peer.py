"""``rnnviz bench --peer``: the whole ``rnnviz train`` process against the whole process of
d2l.ai's own code, the one a student would otherwise run.

The peer is the ``d2l`` package 1.0.3 (``d2l.torch``) as the chapter "Concise Implementation
of Recurrent Neural Networks" uses it: ``RNNLM`` on ``RNN`` (which wraps ``torch.nn.RNN``),
trained by d2l's ``Trainer`` at the chapter's preset (hidden 32, batch 1024, num_steps 32,
lr 1, gradient clipping at 1, 100 epochs) on d2l's ``TimeMachine`` data class.

Both processes train on the same text, rnnviz's built-in corpus, with d2l's preprocessing
(letters only, lower case, character tokens; rnnviz's ``preprocess(text, "d2l")`` is the
same regular expression). d2l's ``TimeMachine`` downloads its text; here a subclass
overrides ``_download`` to read the built-in text from a file the driver wrote, as d2l reads
its downloaded file. Nothing is downloaded.

Each process is timed from outside, start to exit (``time.perf_counter`` around
``subprocess.run``), a few times, interleaved and alternating which goes first, because the
machine is shared and noisy; the figures are medians with their min-max spread.

d2l's ``torch.py`` imports packages the RNN code never uses (pandas, requests, torchvision,
scipy, PIL) and plots with matplotlib in a notebook. The runner stubs all of them (see
:func:`stubbed_modules`): d2l's ``ProgressBoard`` still collects and averages its points,
but draws nothing. A notebook redraws the figure a few times an epoch, so this is faster
than d2l as a student sees it: the comparison is generous to d2l.

Validation splits. d2l's ``TimeMachine`` cuts every overlapping window of the text and
trains on windows 0..9,999 (the first 10,032 characters, the same windows every epoch),
validating on windows 10,000..14,999. rnnviz trains on 10,000 random windows an epoch from
the first 90 % of the text and validates on the first 5,000 non-overlapping windows of the
last 10 %. Their own figures therefore measure different text. The comparable figure is
d2l's trained model measured on rnnviz's split (the same windows, from a zero state, exp of
the token-mean cross-entropy, as ``Trainer.evaluate``): the runner reports it beside d2l's
own validation perplexity.

The d2l runner is this module run as ``python -m rnnviz.bench.peer d2l ...``; it prints one
JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

D2L_VERSION = "1.0.3"
# --no-deps: d2l 1.0.3 pins old numpy, matplotlib, pandas, ... that its RNN code does not use
INSTALL_COMMAND = f"{shlex.quote(sys.executable)} -m pip install --no-deps d2l=={D2L_VERSION}"
GOAL = ">= 3.0"  # d2l's wall time / rnnviz's

# d2l's preset, chapter "Concise Implementation of Recurrent Neural Networks"
PRESET: dict[str, Any] = {
    "hidden": 32,
    "batch_size": 1024,
    "num_steps": 32,
    "lr": 1.0,
    "clip": 1.0,
    "epochs": 100,
}
# d2l's TimeMachine defaults: the windows it trains and validates on
D2L_NUM_TRAIN = 10_000
D2L_NUM_VAL = 5_000
# What d2l.torch imports and the RNN code never calls, plus its plotting. PIL is in the list
# though it may be installed: d2l only shows images with it, and stubbing it whatever the
# machine has keeps the measured process the same everywhere.
STUBBED = (
    "matplotlib",
    "matplotlib_inline",
    "IPython",
    "pandas",
    "requests",
    "torchvision",
    "scipy",
    "PIL",
)
PROCESS_TIMEOUT_S = 4 * 3600  # a process that hangs must not hold the bench forever
EXIT_USAGE = 2
EXIT_FAILED = 1

VAL_SPLITS = (
    "d2l's own: overlapping windows {num_train:,}..{last_val:,} of the text (characters "
    "{num_train:,}..{last_char:,}), right after the {train_chars:,} characters it trains on; "
    "rnnviz's: the first {val_windows:,} non-overlapping windows of the last {val_pct:.0%} of "
    "the text (characters {val_start:,}..). The comparable pair is rnnviz's val ppl and d2l's "
    "model on rnnviz's split (same windows, zero initial state, exp of the token-mean "
    "cross-entropy)."
)


# ------------------------------------------------------------------ stubs (runner side)


class _Inert:
    """Any object of a stubbed package: every call, attribute and item gives itself back,
    so d2l's ``ProgressBoard.draw`` runs its code (collects and averages the points) and its
    matplotlib and IPython calls do nothing."""

    def __call__(self, *args: Any, **kwargs: Any) -> _Inert:
        return self

    def __getattr__(self, name: str) -> _Inert:
        if name.startswith("__"):  # copy, pickle and friends probe dunders: say it has none
            raise AttributeError(name)
        return self

    def __getitem__(self, key: Any) -> _Inert:
        return self

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def __iter__(self) -> Iterator[Any]:
        return iter(())


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Inert()


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports every module of the named top-level packages as a :class:`_StubModule`."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] not in self.names:
            return None
        # a package: `from matplotlib import pyplot` and `scipy.spatial` import through here
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _StubModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        pass


@contextlib.contextmanager
def stubbed_modules(names: Iterable[str] = STUBBED) -> Iterator[None]:
    """While open, the packages ``names`` (and their submodules) import as inert stubs,
    ahead of any installed copy; modules already imported stay what they are. On exit the
    stubs leave ``sys.modules`` again; whoever imported one keeps its reference (d2l binds
    them at import, so nothing of it imports them later)."""
    finder = _StubFinder(names)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
        for name, module in list(sys.modules.items()):
            if isinstance(module, _StubModule):
                del sys.modules[name]


# ------------------------------------------------------------------ the d2l runner


def _text_data_class(d2l: Any, text_file: str) -> Any:
    """d2l's ``TimeMachine`` on the text of ``text_file`` instead of its download."""

    class BuiltinText(d2l.TimeMachine):  # type: ignore[misc]
        def _download(self) -> str:
            # as d2l's own: read the (here: already present) file; never the network
            with open(text_file, encoding="utf-8") as f:
                return f.read()

        def build(self, raw_text: str, vocab: Any = None) -> tuple[list[int], Any]:
            corpus, vocab = super().build(raw_text, vocab)
            # kept (d2l drops it) to cut rnnviz's validation split from the same tokens
            self.corpus_ids = corpus
            return corpus, vocab

    return BuiltinText


def rnnviz_val_split() -> tuple[float, int]:
    """What ``rnnviz train`` holds out for validation: (fraction of the text, windows)."""
    from rnnviz.core.config import CorpusConfig, TrainConfig

    return CorpusConfig().val_fraction, TrainConfig().val_windows


def rnnviz_val_batches(
    ids: Sequence[int], batch_size: int, num_steps: int, val_fraction: float, val_windows: int
) -> list[tuple[Any, Any]]:
    """rnnviz's validation batches of the token stream ``ids``, cut by rnnviz's own
    ``BatchSource`` (so they are the windows ``rnnviz train`` validates on)."""
    import numpy as np

    from rnnviz.core.batches import BatchSource
    from rnnviz.core.config import TrainConfig

    cfg = TrainConfig(batch_size=batch_size, num_steps=num_steps, val_windows=val_windows)
    return BatchSource(np.asarray(ids, dtype=np.int64), cfg, val_fraction).val_batches()


def _perplexity(model: Any, batches: Iterable[Sequence[Any]]) -> float:
    """exp(token-mean cross-entropy) of ``model`` over ``batches`` of (X, Y), each window
    from a zero state (d2l's ``forward(X)`` with no state), as rnnviz's ``evaluate``."""
    import torch
    from torch.nn import functional as F

    total, count = 0.0, 0
    with torch.no_grad():
        for X, Y in batches:
            logits = model(X)
            total += float(
                F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), Y.reshape(-1), reduction="sum"
                )
            )
            count += Y.numel()
    return math.exp(total / count) if count else math.nan


def run_d2l(args: argparse.Namespace) -> dict[str, Any]:
    """d2l's concise RNN language model, trained as the chapter does; returns what the JSON
    line says."""
    t0 = time.perf_counter()
    import torch  # before the stubs: torch itself must see the real packages, if any

    with stubbed_modules():
        import d2l as d2l_package
        from d2l import torch as d2l
    t_import = time.perf_counter()

    torch.manual_seed(args.seed)  # d2l seeds nothing; a fixed seed makes repeats comparable
    data = _text_data_class(d2l, args.text_file)(
        batch_size=args.batch_size,
        num_steps=args.num_steps,
        num_train=args.num_train,
        num_val=args.num_val,
    )
    t_data = time.perf_counter()
    # the chapter's code, with num_gpus=0 (this benchmark runs on the CPU)
    rnn = d2l.RNN(num_inputs=len(data.vocab), num_hiddens=args.hidden)
    model = d2l.RNNLM(rnn, vocab_size=len(data.vocab), lr=args.lr)
    trainer = d2l.Trainer(max_epochs=args.epochs, gradient_clip_val=args.clip, num_gpus=0)
    trainer.fit(model, data)
    t_fit = time.perf_counter()

    # measured here, not by d2l: the second and third figures are this benchmark's
    board = getattr(model.board, "data", {}).get("val_ppl") or []
    model.eval()
    own = _perplexity(model, data.val_dataloader())
    default_fraction, default_windows = rnnviz_val_split()
    val_fraction = default_fraction if args.val_fraction is None else args.val_fraction
    val_windows = default_windows if args.val_windows is None else args.val_windows
    on_rnnviz = _perplexity(
        model,
        rnnviz_val_batches(
            data.corpus_ids, args.batch_size, args.num_steps, val_fraction, val_windows
        ),
    )
    t_eval = time.perf_counter()
    return {
        "runner": "d2l",
        "d2l_version": getattr(d2l_package, "__version__", None),
        "epochs": args.epochs,
        "vocab": len(data.vocab),
        "corpus_chars": len(data.corpus_ids),
        # exp of the token-mean loss over d2l's validation windows, after the last epoch
        "val_ppl": own,
        # what d2l's plot shows for the last epoch: the mean of the batches' exp(loss)
        "board_val_ppl": float(board[-1].y) if board else None,
        "val_ppl_rnnviz_split": on_rnnviz,
        "phases_s": {
            "import": t_import - t0,  # torch and d2l
            "data": t_data - t_import,  # TimeMachine: read, preprocess, vocab, windows
            "fit": t_fit - t_data,  # Trainer.fit: training and d2l's validation
            "extra_eval": t_eval - t_fit,  # this benchmark's two evaluations
        },
    }


def _runner_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rnnviz.bench.peer",
        description="The d2l side of `rnnviz bench --peer`: d2l's RNNLM on nn.RNN, trained by "
        "d2l's Trainer on a text file; prints one JSON line.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    d2l = sub.add_parser("d2l", help="train d2l's concise RNN language model")
    d2l.add_argument("--text-file", required=True, help="the raw text (UTF-8); not downloaded")
    d2l.add_argument("--epochs", type=int, default=PRESET["epochs"])
    d2l.add_argument("--hidden", type=int, default=PRESET["hidden"])
    d2l.add_argument("--batch-size", type=int, default=PRESET["batch_size"])
    d2l.add_argument("--num-steps", type=int, default=PRESET["num_steps"])
    d2l.add_argument("--lr", type=float, default=PRESET["lr"])
    d2l.add_argument("--clip", type=float, default=PRESET["clip"])
    d2l.add_argument("--seed", type=int, default=0)
    d2l.add_argument("--num-train", type=int, default=D2L_NUM_TRAIN)
    d2l.add_argument("--num-val", type=int, default=D2L_NUM_VAL)
    # rnnviz's validation split, for the comparable perplexity (default: rnnviz's defaults)
    d2l.add_argument("--val-fraction", type=float, default=None)
    d2l.add_argument("--val-windows", type=int, default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _runner_parser().parse_args(argv)
    print(json.dumps(run_d2l(args)), flush=True)
    return 0


# ------------------------------------------------------------------ the driver


class PeerError(RuntimeError):
    """One of the two processes failed or said something this driver cannot read."""


def d2l_available() -> bool:
    try:
        return importlib.util.find_spec("d2l") is not None
    except (ImportError, ValueError):
        return False


def d2l_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("d2l")
    except metadata.PackageNotFoundError:
        return None


def missing_d2l_message() -> str:
    return (
        f"error: rnnviz bench --peer compares with d2l.ai's own code, and the d2l package is "
        f"not installed; install it without its dependencies (the benchmark stubs the ones "
        f"its RNN code does not use): {INSTALL_COMMAND}"
    )


_DONE = re.compile(r"^done: ([\d,]+) steps in ([\d.]+) s,.*final val ppl ([^;\s]+)", re.M)


def parse_rnnviz(stdout: str) -> dict[str, float]:
    """The final validation perplexity (4 significant digits, as printed), the steps and the
    training loop's seconds from ``rnnviz train``'s ``done:`` line."""
    found = _DONE.findall(stdout)
    if not found:
        raise PeerError(f"rnnviz train printed no 'done:' line; its output ended {stdout[-300:]!r}")
    steps, loop_s, ppl = found[-1]
    try:
        val_ppl = float(ppl)
    except ValueError:
        raise PeerError(f"rnnviz train's final val ppl is {ppl!r}, not a number") from None
    return {"val_ppl": val_ppl, "steps": int(steps.replace(",", "")), "loop_s": float(loop_s)}


def parse_d2l(stdout: str) -> dict[str, Any]:
    """The runner's JSON line (its last line that is a JSON object of the runner)."""
    for line in reversed(stdout.strip().splitlines()):
        with contextlib.suppress(ValueError):
            data = json.loads(line)
            if isinstance(data, dict) and data.get("runner") == "d2l":
                return data
    raise PeerError(f"the d2l runner printed no JSON line; its output ended {stdout[-300:]!r}")


def d2l_command(text_file: str, epochs: int, seed: int) -> list[str]:
    val_fraction, val_windows = rnnviz_val_split()
    return [
        sys.executable,
        "-m",
        "rnnviz.bench.peer",
        "d2l",
        "--text-file",
        text_file,
        *_preset_arguments(epochs, seed),
        "--num-train",
        str(D2L_NUM_TRAIN),
        "--num-val",
        str(D2L_NUM_VAL),
        "--val-fraction",
        f"{val_fraction:g}",
        "--val-windows",
        str(val_windows),
    ]


def _preset_arguments(epochs: int, seed: int) -> list[str]:
    """The preset's options, spelt alike by both trainers' command lines."""
    p = PRESET
    return [
        "--epochs",
        str(epochs),
        "--hidden",
        str(p["hidden"]),
        "--batch-size",
        str(p["batch_size"]),
        "--num-steps",
        str(p["num_steps"]),
        "--lr",
        f"{p['lr']:g}",
        "--clip",
        f"{p['clip']:g}",
        "--seed",
        str(seed),
    ]


def rnnviz_command(epochs: int, seed: int) -> list[str]:
    """``rnnviz train`` as a student runs it (progress bar and all) at d2l's preset, on the
    built-in corpus; its model is the default (``fast``)."""
    return [
        sys.executable,
        "-m",
        "rnnviz",
        "train",
        "--corpus",
        "builtin",
        "--preprocess",
        "d2l",
        *_preset_arguments(epochs, seed),
    ]


Timed = Callable[[list[str]], tuple[float, float | None, subprocess.CompletedProcess[str]]]


def _children_cpu_s() -> float | None:
    try:
        import resource
    except ImportError:  # Windows: no rusage of children
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_process(cmd: list[str]) -> tuple[float, float | None, subprocess.CompletedProcess[str]]:
    """Wall seconds from process start to exit, measured from outside; the CPU seconds
    (user + sys, all threads) it used, where the platform says; its outputs. The CPU time
    is the steadier figure on a shared machine: waiting for a core costs wall time only."""
    cpu0 = _children_cpu_s()
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    wall = time.perf_counter() - t0
    cpu1 = _children_cpu_s()
    cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    return wall, cpu, done


@dataclass
class Samples:
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)


def _spread(xs: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def _median_of(runs: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
    return statistics.median(values) if values else None


def _cpu(samples: Samples) -> dict[str, Any]:
    if len(samples.cpus) != len(samples.walls):  # not measured on this platform
        return {"cpu_s": None, "cpu_s_range": None}
    return {"cpu_s": statistics.median(samples.cpus), "cpu_s_range": _spread(samples.cpus)}


def summarize(
    d2l: Samples, rnnviz: Samples, *, epochs: int, corpus_chars: int, seed: int
) -> dict[str, Any]:
    """The bench JSON's ``peer`` section from the interleaved samples (round i of one
    process beside round i of the other)."""
    ratios = [a / b for a, b in zip(d2l.walls, rnnviz.walls, strict=True)]
    d2l_cpu, rnnviz_cpu = _cpu(d2l), _cpu(rnnviz)
    cpu_ratio = (
        d2l_cpu["cpu_s"] / rnnviz_cpu["cpu_s"]
        if d2l_cpu["cpu_s"] is not None and rnnviz_cpu["cpu_s"]
        else None
    )
    loop_s = _median_of(rnnviz.runs, "loop_s")
    phases = {
        name: statistics.median(r["phases_s"][name] for r in d2l.runs)
        for name in d2l.runs[0]["phases_s"]
    }
    val_pct, val_windows = rnnviz_val_split()
    val_start = int(corpus_chars * (1 - val_pct))
    splits = VAL_SPLITS.format(
        num_train=D2L_NUM_TRAIN,
        last_val=D2L_NUM_TRAIN + D2L_NUM_VAL - 1,
        last_char=D2L_NUM_TRAIN + D2L_NUM_VAL - 1 + PRESET["num_steps"],
        train_chars=D2L_NUM_TRAIN - 1 + PRESET["num_steps"] + 1,
        val_windows=val_windows,
        val_pct=val_pct,
        val_start=val_start,
    )
    return {
        "config": {**PRESET, "epochs": epochs, "seed": seed, "repeats": len(ratios)},
        "corpus": {"source": "builtin", "preprocess": "d2l", "chars": corpus_chars},
        "d2l": {
            "version": d2l.runs[0].get("d2l_version"),
            "wall_s": statistics.median(d2l.walls),
            "wall_s_range": _spread(d2l.walls),
            "walls_s": d2l.walls,
            **d2l_cpu,
            "val_ppl": _median_of(d2l.runs, "val_ppl"),
            "board_val_ppl": _median_of(d2l.runs, "board_val_ppl"),
            "val_ppl_rnnviz_split": _median_of(d2l.runs, "val_ppl_rnnviz_split"),
            "val_ppls": [r["val_ppl"] for r in d2l.runs],
            "phases_s": phases,
        },
        "rnnviz": {
            "wall_s": statistics.median(rnnviz.walls),
            "wall_s_range": _spread(rnnviz.walls),
            "walls_s": rnnviz.walls,
            **rnnviz_cpu,
            "val_ppl": _median_of(rnnviz.runs, "val_ppl"),
            "val_ppls": [r["val_ppl"] for r in rnnviz.runs],
            # its own 'done:' figure: the training loop, validation included
            "loop_s": loop_s,
            # start-up (imports, corpus, model, optimizer) and exit: the rest of the process
            "outside_loop_s": None if loop_s is None else statistics.median(rnnviz.walls) - loop_s,
        },
        "ratio": statistics.median(d2l.walls) / statistics.median(rnnviz.walls),
        "ratio_range": _spread(ratios),
        "cpu_ratio": cpu_ratio,
        "goal": GOAL,
        "val_splits": splits,
        "notes": [
            "wall times: process start to exit, measured from outside",
            "d2l's plotting and the packages its RNN code does not use are stubbed: its "
            "ProgressBoard draws nothing, faster than in a notebook (generous to d2l)",
            "d2l's figures are seeded with torch.manual_seed; d2l itself seeds nothing",
        ],
    }


def run_peer(
    epochs: int,
    repeats: int,
    *,
    seed: int = 0,
    raw_text: str | None = None,
    timed: Timed = timed_process,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Both processes ``repeats`` times, interleaved, the first of each round alternating."""
    from rnnviz.core.corpus import builtin_text, preprocess

    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    # also fills rnnviz's cache, so each rnnviz process reads the text as any later run does
    text = builtin_text() if raw_text is None else raw_text
    corpus_chars = len(preprocess(text, "d2l"))
    d2l, rnnviz = Samples(), Samples()
    with tempfile.TemporaryDirectory(prefix="rnnviz-peer-") as folder:
        text_file = os.path.join(folder, "builtin.txt")
        with open(text_file, "w", encoding="utf-8") as f:
            f.write(text)
        sides = {
            "d2l": (d2l_command(text_file, epochs, seed), d2l, parse_d2l),
            "rnnviz": (rnnviz_command(epochs, seed), rnnviz, parse_rnnviz),
        }
        for r in range(repeats):
            order = ("d2l", "rnnviz") if r % 2 == 0 else ("rnnviz", "d2l")
            for name in order:
                cmd, samples, parse = sides[name]
                wall, cpu, done = timed(cmd)
                if done.returncode != 0:
                    raise PeerError(
                        f"{name} exited with status {done.returncode}: {done.stderr.strip()[-600:]}"
                    )
                info = parse(done.stdout)
                samples.walls.append(wall)
                if cpu is not None:
                    samples.cpus.append(cpu)
                samples.runs.append(info)
                say(f"round {r + 1}/{repeats}: {name} {wall:.1f} s, val ppl {info['val_ppl']:.4g}")
    result = summarize(d2l, rnnviz, epochs=epochs, corpus_chars=corpus_chars, seed=seed)
    result["commands"] = {
        "d2l": shlex.join(sides["d2l"][0]).replace(text_file, "BUILTIN_TEXT_FILE"),
        "rnnviz": shlex.join(sides["rnnviz"][0]),
    }
    return result


def _g(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def _cpu_text(side: dict[str, Any]) -> str:
    if side.get("cpu_s") is None:
        return ""
    spread = side["cpu_s_range"]
    return f"; CPU {side['cpu_s']:.1f} s ({spread['min']:.1f}-{spread['max']:.1f})"


def format_peer(peer: dict[str, Any]) -> str:
    c, d, r = peer["config"], peer["d2l"], peer["rnnviz"]
    dr, rr, ratio = d["wall_s_range"], r["wall_s_range"], peer["ratio_range"]
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in d["phases_s"].items())
    cpu_ratio = "" if peer["cpu_ratio"] is None else f"; CPU time {peer['cpu_ratio']:.2f}x"
    loop = ""
    if r["loop_s"] is not None:
        loop = f"; training loop {r['loop_s']:.1f} s, the rest {r['outside_loop_s']:.1f} s"
    return "\n".join(
        [
            f"whole processes, {c['repeats']} runs each, interleaved; d2l's preset: hidden "
            f"{c['hidden']}, batch {c['batch_size']}, num_steps {c['num_steps']}, lr "
            f"{c['lr']:g}, θ {c['clip']:g}, {c['epochs']} epochs; built-in corpus, "
            f"{peer['corpus']['chars']:,} characters after d2l's preprocessing",
            f"d2l {d['version']} (RNNLM on nn.RNN, Trainer): wall {d['wall_s']:.1f} s "
            f"(min-max {dr['min']:.1f}-{dr['max']:.1f}){_cpu_text(d)}; val ppl "
            f"{_g(d['val_ppl'])} on its own split ({_g(d['board_val_ppl'])} on its plot), "
            f"{_g(d['val_ppl_rnnviz_split'])} on rnnviz's split",
            f"rnnviz train: wall {r['wall_s']:.1f} s (min-max {rr['min']:.1f}-{rr['max']:.1f})"
            f"{_cpu_text(r)}{loop}; val ppl {_g(r['val_ppl'])} on its split",
            f"ratio d2l / rnnviz: {peer['ratio']:.2f}x wall (per round {ratio['min']:.2f}-"
            f"{ratio['max']:.2f}x){cpu_ratio}; goal {peer['goal']} (wall)",
            f"d2l's phases (median): {phases}",
            f"validation splits: {peer['val_splits']}",
            *(f"note: {n}" for n in peer["notes"]),
        ]
    )


def main_peer(args: argparse.Namespace) -> int:
    """``rnnviz bench --peer [--repeats N] [--epochs N] [--json]``."""
    if not d2l_available():
        print(missing_d2l_message(), file=sys.stderr)
        return EXIT_USAGE
    quick = bool(getattr(args, "quick", False))
    repeats = getattr(args, "repeats", None) or (1 if quick else 3)
    epochs = getattr(args, "epochs", None) or (10 if quick else PRESET["epochs"])
    version = d2l_version()
    if version is not None and version != D2L_VERSION:
        print(
            f"note: d2l {version} is installed; this benchmark is written for {D2L_VERSION}",
            file=sys.stderr,
        )
    try:
        peer = run_peer(epochs, repeats)
    except (PeerError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    result = {
        "peer": peer,
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
    }
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, default=float))
    else:
        print(format_peer(peer))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
