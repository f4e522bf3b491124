"""Command line: the GUI by default, and ``train``, ``probe``, ``sample``, ``bench``.

Heavy imports (torch, Qt) happen inside the subcommands, so ``rnnviz --help`` is fast.
Exit status: 0 ok, 2 bad arguments or an unusable corpus / configuration / checkpoint,
3 training diverged, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnnviz.core.config import RunConfig
    from rnnviz.core.messages import StepRecord
    from rnnviz.core.runs import Run

EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A user mistake found after parsing (shown as ``error: ...``, exit 2)."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message is for the user as it is (no traceback)."""
    from rnnviz.core.config import ConfigError

    errors: list[type[BaseException]] = [UsageError, ConfigError]
    for module, name in (
        ("rnnviz.core.corpus", "CorpusError"),
        ("rnnviz.core.checkpoint", "CheckpointError"),
    ):
        mod = sys.modules.get(module)  # only if already imported: it is then the one raised
        if mod is not None:
            errors.append(getattr(mod, name))
    return tuple(errors)


# ---------------------------------------------------------------------- parser


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, not {value}")
        return value

    parse.__name__ = "integer"  # what argparse names in its messages
    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnviz",
        description="Train a character-level RNN live and watch its hidden states, "
        "predictions and gradients. Without a subcommand: the window.",
    )
    parser.add_argument(
        "--screenshot", metavar="PATH", help="open the window offscreen, train, save a PNG"
    )
    parser.add_argument(
        "--train-steps",
        type=_nonneg_int,
        default=100,
        metavar="N",
        help="steps to train before --screenshot (default 100)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="train headless (progress bar, metrics CSV, checkpoint)",
        description="Train without the window. Defaults are d2l.ai's: hidden 32, batch 1024, "
        "num_steps 32, lr 1, clip theta 1, 100 epochs of 10,000 windows.",
    )
    train.add_argument(
        "--corpus",
        default="builtin",
        metavar="SOURCE",
        help="builtin | time-machine | synthetic:repeat|delay|brackets | PATH (default builtin)",
    )
    train.add_argument("--model", choices=("scratch", "fast", "gru", "lstm"), default="fast")
    train.add_argument("--activation", choices=("tanh", "relu"), default="tanh")
    train.add_argument("--hidden", type=_positive_int, default=32, metavar="H")
    train.add_argument("--num-steps", type=_positive_int, default=32, metavar="T")
    train.add_argument("--batch-size", type=_positive_int, default=1024, metavar="B")
    train.add_argument("--lr", type=_finite_float, default=1.0)
    train.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    train.add_argument(
        "--clip",
        type=_finite_float,
        default=1.0,
        metavar="THETA",
        help="gradient clipping threshold; 0 turns clipping off (default 1)",
    )
    length = train.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_positive_int, default=None, help="default 100")
    length.add_argument("--max-steps", type=_positive_int, default=None, metavar="N")
    train.add_argument("--seed", type=_nonneg_int, default=0)
    train.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps (default cpu)")
    train.add_argument("--preprocess", choices=("d2l", "keep"), default="d2l")
    train.add_argument("--init", choices=("d2l", "uniform"), default=None)
    train.add_argument("--partition", choices=("random", "sequential"), default=None)
    train.add_argument(
        "--val-every",
        type=_positive_int,
        default=None,
        metavar="N",
        help="also validate every N steps (default: only at every epoch end)",
    )
    train.add_argument("--metrics-out", metavar="FILE.csv", help="one CSV row per step")
    train.add_argument("--checkpoint-out", metavar="PATH", help="a .safetensors checkpoint")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    probe = sub.add_parser(
        "probe",
        help="per-step predictions of a trained model on TEXT",
        description="For every character of TEXT: the next character, the model's top-k "
        "guesses with probabilities, and the surprisal in bits.",
    )
    probe.add_argument("text", metavar="TEXT")
    probe.add_argument("--checkpoint", required=True, metavar="CK")
    probe.add_argument("--top-k", type=_positive_int, default=5, metavar="K")
    probe.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    probe.add_argument("--device", default="cpu")

    sample = sub.add_parser("sample", help="generate text after PREFIX")
    sample.add_argument("prefix", metavar="PREFIX")
    sample.add_argument("--checkpoint", required=True, metavar="CK")
    sample.add_argument("--num-chars", type=_nonneg_int, default=100, metavar="N")
    sample.add_argument(
        "--temperature", type=_finite_float, default=0.0, help="0 = greedy (default)"
    )
    sample.add_argument("--seed", type=_nonneg_int, default=0)
    sample.add_argument("--device", default="cpu")

    bench = sub.add_parser("bench", help="performance figures of this machine")
    bench.add_argument("--quick", action="store_true")
    bench.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad arguments (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    commands = {"train": cmd_train, "probe": cmd_probe, "sample": cmd_sample, "bench": cmd_bench}
    fn = commands.get(args.command or "", cmd_gui)
    try:
        return fn(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `rnnviz probe ... | head`: the reader left; not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush stays quiet
        return 0
    except _user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


# ---------------------------------------------------------------------- gui, bench


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        from rnnviz.gui.app import run_app
    except ImportError as exc:
        print(
            f"error: the window is not available ({exc}). The headless commands work: "
            "rnnviz train | probe | sample | bench (see rnnviz --help).",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return int(run_app(sys.argv[:1], screenshot=args.screenshot, train_steps=args.train_steps))


def cmd_bench(args: argparse.Namespace) -> int:
    import importlib

    try:
        bench = importlib.import_module("rnnviz.bench")
    except ImportError as exc:
        print(f"error: the benchmark module is not available ({exc})", file=sys.stderr)
        return EXIT_USAGE
    return int(bench.main(args))


# ---------------------------------------------------------------------- train


def config_from_args(args: argparse.Namespace) -> RunConfig:
    from rnnviz.core.config import CorpusConfig, ModelConfig, RunConfig, TrainConfig

    model: dict[str, Any] = {"kind": args.model, "activation": args.activation}
    model["hidden_size"] = args.hidden
    if args.init is not None:
        model["init"] = args.init
    clip = float(args.clip)
    if clip < 0:
        raise UsageError(f"--clip must be >= 0 (0 turns clipping off), not {args.clip}")
    train: dict[str, Any] = {
        "lr": args.lr,
        "optimizer": args.optimizer,
        "clip_enabled": clip > 0,
        "clip_theta": clip if clip > 0 else 1.0,
        "batch_size": args.batch_size,
        "num_steps": args.num_steps,
        "seed": args.seed,
        "device": args.device,
    }
    if args.partition is not None:
        train["partition"] = args.partition
    # d2l validates once an epoch (always done here); --val-every adds more validations
    train["val_every"] = args.val_every if args.val_every is not None else 0
    return RunConfig(
        corpus=CorpusConfig(source=args.corpus, preprocess=args.preprocess),
        model=ModelConfig(**model),
        train=TrainConfig(**train),
    )


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}g}" if math.isfinite(x) else str(x)


class _TrainReport:
    """What the train command prints: epoch lines, the divergence, the summary."""

    def __init__(self, run: Run, total_steps: int, quiet: bool) -> None:
        from tqdm import tqdm

        self.run = run
        self.total = total_steps
        self.bar = tqdm(
            total=total_steps,
            file=sys.stderr,
            unit="step",
            disable=quiet,
            dynamic_ncols=True,
            leave=False,
        )
        self.epoch_losses: list[float] = []
        self.last_val: float | None = None
        self.streak: list[StepRecord] = []  # the non-finite steps in a row

    def step(self, record: StepRecord) -> None:
        if math.isfinite(record.loss) and not record.nonfinite:
            self.epoch_losses.append(record.loss)
            self.streak = []
        else:
            self.streak.append(record)
        if record.val_ppl is not None:
            self.last_val = record.val_ppl
        self.bar.update(1)
        if record.step % 10 == 0 or record.step == self.total:
            self.bar.set_postfix(ppl=_fmt(record.ppl), refresh=False)

    def epoch_end(self, epoch: int, epochs: int | None, val_ppl: float, partial: str = "") -> None:
        train_ppl = (
            math.exp(sum(self.epoch_losses) / len(self.epoch_losses))
            if self.epoch_losses
            else math.nan
        )
        self.epoch_losses = []
        of = f"/{epochs}" if epochs else ""
        self.bar.write(
            f"epoch {epoch + 1}{of}{partial}: train ppl {_fmt(train_ppl)}, val ppl {_fmt(val_ppl)}",
            file=sys.stdout,
        )

    def close(self) -> None:
        self.bar.close()


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from rnnviz.core.history import MetricsCsvWriter
    from rnnviz.core.runs import build_run
    from rnnviz.core.session import likely_cause

    config = config_from_args(args)
    run = build_run(config)
    trainer = run.trainer
    per_epoch = run.batches.steps_per_epoch
    epochs: int | None
    if args.max_steps is not None:
        total, epochs = args.max_steps, None
    else:
        epochs = args.epochs if args.epochs is not None else 100
        total = epochs * per_epoch
    for note in (*run.corpus.notes, *getattr(run.batches, "notes", ())):
        print(f"note: {note}", file=sys.stderr)
    print(
        f"corpus {run.corpus.name}: {len(run.corpus.text):,} characters, vocab {len(run.vocab)}; "
        f"model {config.model.kind} H={config.model.hidden_size} {config.model.activation}; "
        f"{total:,} steps ({per_epoch:,} per epoch) on {config.train.device}",
        file=sys.stderr,
    )
    writer = MetricsCsvWriter(args.metrics_out) if args.metrics_out else None
    report = _TrainReport(run, total, args.quiet)
    tokens = 0
    train_s = 0.0  # time in optimizer steps (tokens/s), without validation
    start = time.perf_counter()
    diverged: StepRecord | None = None
    interrupted = False
    try:
        for _ in range(total):
            epoch_before, index_before = trainer.epoch, trainer.batch_index
            t0 = time.perf_counter()
            record = trainer.train_step()
            train_s += time.perf_counter() - t0
            tokens += run.batches.rows * config.train.num_steps
            epoch_done = trainer.epoch != epoch_before or trainer.step >= total
            partial = (
                f" (partial: {index_before + 1:,}/{per_epoch:,} steps)"
                if trainer.epoch == epoch_before
                else ""
            )
            if epoch_done and not trainer.diverged:
                val = trainer.evaluate()
                record = dataclasses.replace(record, val_ppl=val)
            report.step(record)
            if writer is not None:
                writer.write(record)
            if epoch_done and record.val_ppl is not None:
                report.epoch_end(epoch_before, epochs, record.val_ppl, partial)
            if trainer.diverged:
                diverged = report.streak[0] if report.streak else record
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        report.close()
        if writer is not None:
            writer.close()
    elapsed = time.perf_counter() - start
    if args.checkpoint_out:
        from rnnviz.core.checkpoint import save_run

        save_run(args.checkpoint_out, run)
        print(f"checkpoint: {args.checkpoint_out} (step {trainer.step})", file=sys.stderr)
    if diverged is not None:
        if not math.isfinite(diverged.loss):
            reason = f"the loss became {diverged.loss}"
        elif not math.isfinite(diverged.grad_norm_before_clip):
            reason = "a gradient became non-finite"
        else:
            reason = "the update made a parameter non-finite (it was undone)"
        print(
            f"diverged at step {diverged.step}: {reason}; ||g|| before clipping was "
            f"{_fmt(diverged.grad_norm_before_clip)} at that step",
            file=sys.stderr,
        )
        cause = likely_cause(diverged, config.train.optimizer, "nonfinite")
        print(f"likely cause: {cause}", file=sys.stderr)
        if args.checkpoint_out:
            print("the checkpoint holds the last good parameters", file=sys.stderr)
        return EXIT_DIVERGED
    if interrupted:
        print(f"interrupted at step {trainer.step}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(
        f"done: {trainer.step:,} steps in {elapsed:.1f} s, {tokens / max(train_s, 1e-9):,.0f} "
        f"tokens/s in training; final val ppl {_fmt(report.last_val)}"
    )
    return 0


# ---------------------------------------------------------------------- probe, sample


def _load_model(path: str, device: str) -> tuple[Any, Any, Any]:
    from rnnviz.core.checkpoint import load_checkpoint, restore_model
    from rnnviz.core.runs import check_device

    check_device(device)
    ckpt = load_checkpoint(path)
    return ckpt, restore_model(ckpt, device), ckpt.vocab


def _show(ch: str) -> str:
    """A character as a table cell: visible whitespace."""
    return {" ": "␣", "\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, ch)


def _none_if_nan(values: Any) -> list[float | None]:
    return [None if not math.isfinite(float(v)) else float(v) for v in values]


def probe_json(result: Any) -> dict[str, Any]:
    tokens = result.vocab_tokens
    out: dict[str, Any] = {
        "text": result.text,
        "vocab": list(tokens),
        "tokens": result.tokens.tolist(),
        "unknown": list(result.unknown),
        "hidden": result.hidden.tolist(),
        "probs": result.probs.tolist(),
        "topk": [
            [[tokens[int(i)], float(p)] for i, p in zip(ids, ps, strict=True)]
            for ids, ps in zip(result.topk_ids, result.topk_probs, strict=True)
        ],
        "step_loss": _none_if_nan(result.step_loss),
        "surprisal_bits": _none_if_nan(result.surprisal_bits),
        "grad_flow": result.grad_flow.tolist(),
    }
    if result.cell is not None:
        out["cell"] = result.cell.tolist()
    return out


def probe_table(result: Any) -> str:
    tokens = result.vocab_tokens
    text = result.text
    unknown = set(result.unknown)
    rows = [("pos", "char", "next", "top-k next (p)", "surprisal")]
    for t, ch in enumerate(text):
        nxt = text[t + 1] if t + 1 < len(text) else ""
        guesses = "  ".join(
            f"{_show(tokens[int(i)])} {float(p):.3f}"
            for i, p in zip(result.topk_ids[t], result.topk_probs[t], strict=True)
        )
        bits = float(result.surprisal_bits[t])
        mark = "?" if t in unknown else ""
        nxt_mark = "?" if t + 1 in unknown else ""
        rows.append(
            (
                str(t),
                _show(ch) + mark,
                (_show(nxt) + nxt_mark) if nxt else "-",
                guesses,
                f"{bits:.2f} bits" if math.isfinite(bits) else "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if unknown:
        lines.append("? = not in the vocabulary (read as <unk>)")
    return "\n".join(lines)


def _check_known(text: str, vocab: Any, what: str) -> None:
    unknown = vocab.unknown_positions(text)
    if text and len(unknown) == len(text):
        shown = "".join(sorted(set(vocab.tokens[1:])))
        raise UsageError(
            f"every character of the {what} is unknown to this model; its vocabulary is {shown!r}"
        )
    if unknown:
        chars = "".join(sorted({text[i] for i in unknown}))
        print(
            f"note: {len(unknown)} character(s) not in the vocabulary, read as <unk>: {chars!r}",
            file=sys.stderr,
        )


def cmd_probe(args: argparse.Namespace) -> int:
    from rnnviz.core.probe import probe

    if not args.text:
        raise UsageError("TEXT is empty")
    _ckpt, model, vocab = _load_model(args.checkpoint, args.device)
    _check_known(args.text, vocab, "probe text")
    top_k = min(args.top_k, len(vocab))
    result = probe(model, vocab, args.text, top_k=top_k)
    if args.json:
        print(json.dumps(probe_json(result)))
    else:
        print(probe_table(result))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from rnnviz.core.probe import generate

    if not args.prefix:
        raise UsageError("PREFIX is empty: generation needs at least one character")
    if args.temperature < 0:
        raise UsageError(f"--temperature must be >= 0, not {args.temperature}")
    _ckpt, model, vocab = _load_model(args.checkpoint, args.device)
    _check_known(args.prefix, vocab, "prefix")
    text = generate(
        model, vocab, args.prefix, args.num_chars, temperature=args.temperature, seed=args.seed
    )
    print(text)
    return 0
