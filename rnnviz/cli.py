"""Command line: the GUI by default, and ``train``, ``probe``, ``sample``, ``export``, ``bench``.

Heavy imports (torch, Qt) happen inside the subcommands, so ``rnnviz --help`` is fast.
Exit status: 0 ok, 2 bad arguments or an unusable corpus / configuration / checkpoint /
output path (every output path is checked before training starts), 3 training diverged
(a non-finite streak, or a run worse than uniform guessing, see ``core.health``; the
checkpoint then holds the last good parameters), 4 training finished but an output could not
be written (the others were, and the message says where the model went), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# torch-free: `rnnviz --help` names the limit
from rnnviz.core.probe_json import JSON_GRAD_FLOW_MAX_CHARS, grad_flow_omitted, state_arrays

if TYPE_CHECKING:
    from rnnviz.core.config import RunConfig
    from rnnviz.core.distributed import DataParallel, Launch
    from rnnviz.core.health import LossWatch
    from rnnviz.core.messages import StepRecord
    from rnnviz.core.runs import Run

EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_OUTPUT = 4
EXIT_INTERRUPTED = 130

# Limits of the arguments that no configuration check covers. The seed's is TrainConfig's
# (a Qt spin box holds a signed 32-bit int); the rest keep a typo from asking for years.
SEED_MAX = 2**31 - 1
MAX_TOTAL_STEPS = 10**9
MAX_EPOCHS = 10**6
MAX_SAMPLE_CHARS = 1_000_000
MAX_TOP_K = 10**6
MAX_SCREENSHOT_STEPS = 10**7
TEMPERATURE_RANGE = (1e-3, 1e3)  # or exactly 0, greedy
DEVICES = "cpu, cuda, cuda:N or mps"
# `probe --json` refuses to write more numbers than this (about 40 MB of JSON)
JSON_MAX_VALUES = 2_000_000
# core.config.TASKS, written out so that `rnnviz --help` imports no torch (a test compares)
TASK_CHOICES = ("lm", "names", "tagging", "name_gen", "dates")
LM_DEFAULTS: dict[str, Any] = {
    "model": "fast",
    "hidden": 32,
    "lr": 1.0,
    "batch_size": 1024,
    "optimizer": "sgd",
}
# any probe: hidden (T, H) and probs (T, V) kept at once, at most this many numbers (512 MiB)
PROBE_MAX_VALUES = 2**27


class UsageError(Exception):
    """A user mistake found after parsing (shown as ``error: ...``, exit 2)."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message is for the user as it is (no traceback)."""
    from rnnviz.core.config import ConfigError

    errors: list[type[BaseException]] = [UsageError, ConfigError]
    for module, name in (
        ("rnnviz.core.corpus", "CorpusError"),
        ("rnnviz.core.checkpoint", "CheckpointError"),
        ("rnnviz.core.atomic", "OutputPathError"),
        ("rnnviz.core.session_file", "SessionError"),
        ("rnnviz.core.tasks.base", "TaskInputError"),
        ("rnnviz.core.tasks.base", "TaskUnavailable"),
    ):
        mod = sys.modules.get(module)  # only if already imported: it is then the one raised
        if mod is not None:
            errors.append(getattr(mod, name))
    return tuple(errors)


# ---------------------------------------------------------------------- parser


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:40] + "...")


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # also a number of more than 4,300 digits
            raise argparse.ArgumentTypeError(f"{_shown(text)} is not an integer") from None
        if high is None and value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, not {value}")
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in {low}..{high}, not {text.strip()}")
        return value

    parse.__name__ = "integer"  # what argparse names in its messages
    return parse


_positive_int = _int_in(1)
_nonneg_int = _int_in(0)
_seed = _int_in(0, SEED_MAX)


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a finite number")
    return value


_DEVICE = re.compile(r"(cpu|mps|cuda(:[0-9]{1,3})?)")


def _size(text: str) -> tuple[int, int]:
    """WxH in pixels, each 200..10000."""
    match = re.fullmatch(r"\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not WxH, e.g. 1280x720")
    width, height = int(match.group(1)), int(match.group(2))
    if not (200 <= width <= 10_000 and 200 <= height <= 10_000):
        raise argparse.ArgumentTypeError(f"{width}x{height}: each side must be 200..10000 px")
    return width, height


def _device(text: str) -> str:
    """cpu, cuda, cuda:N or mps; whether it exists on this machine is checked later."""
    if not _DEVICE.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"unknown device {_shown(text)}: use {DEVICES}")
    return text.strip()


def _window_arguments(parser: argparse.ArgumentParser) -> None:
    """The window's options: ``rnnviz [OPTIONS]`` and ``rnnviz open F [OPTIONS]``."""
    from rnnviz.gui.launch import HIDDEN_LAYERS, THEN_ACTIONS  # Qt-free

    parser.add_argument(
        "--screenshot", metavar="PATH", help="open the window offscreen, train, save a PNG"
    )
    parser.add_argument(
        "--train-steps",
        type=_int_in(0, MAX_SCREENSHOT_STEPS),
        default=None,
        metavar="N",
        help="steps to train before --screenshot (default 100, 0 with --session; a divergence "
        "stops sooner)",
    )
    window = parser.add_argument_group(
        "the window's starting state (with or without --screenshot)",
        "For example, the divergence path: rnnviz --screenshot out.png --set model.activation=relu "
        "--set train.lr=50 --set train.clip_enabled=false --then resume-clipped",
    )
    window.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="change one setting of the run, e.g. train.lr=50, model.kind=lstm, "
        "corpus.source=synthetic:delay (repeatable; the sections are corpus, model, train)",
    )
    window.add_argument("--probe", metavar="TEXT", help="the probe string")
    window.add_argument("--size", type=_size, metavar="WxH", help="window size, e.g. 1280x720")
    window.add_argument(
        "--scheme",
        "--theme",
        choices=("light", "dark"),
        help="light or dark colours, whatever the desktop says (default: the desktop's)",
    )
    window.add_argument(
        "--lecture",
        action="store_true",
        help="lecture mode, as F11: full screen (the --size given, with --size), large text "
        "and thick lines, one or two views (the unrolled network, or --full's)",
    )
    window.add_argument(
        "--zoom",
        type=_int_in(67, 200),
        metavar="PERCENT",
        help="text and lines at PERCENT of their size, as Ctrl+= / Ctrl+- (default: the last "
        "session's, else 100)",
    )
    window.add_argument(
        "--then",
        action="append",
        default=[],
        choices=THEN_ACTIONS,
        help="with --screenshot: after training, roll back a diverged run, resume it with "
        "clipping on (30 more steps), reset, or switch the open window to light or dark "
        "colours (View > Colours); repeatable, in order",
    )
    window.add_argument(
        "--show",
        action="append",
        default=[],
        metavar="PANEL",
        help="bring a panel to the front: unrolled, softmax, gradflow, stepview, hidden, "
        "curves, gradnorms, ... (repeatable)",
    )
    window.add_argument(
        "--full",
        metavar="PANEL",
        help="one panel full size, as its number key raises it (Esc returns): unrolled, "
        "probe_text, hidden, softmax, ...",
    )
    window.add_argument(
        "--cursor",
        type=_int_in(0, 10**6),
        metavar="T",
        help="put the time cursor on step T of the probe string",
    )
    window.add_argument(
        "--hidden-layer",
        type=str.lower,
        choices=HIDDEN_LAYERS,
        metavar="NAME",
        help="what the hidden-state heatmap shows for a GRU or LSTM: h (H_t, the default), c "
        "(the LSTM's cell state C_t) or a gate: LSTM i, f, g, o; GRU r, z, n",
    )
    from rnnviz.core.config import LAYERS_RANGE  # torch-free

    window.add_argument(
        "--stacked-layer",
        type=_int_in(*LAYERS_RANGE),
        metavar="N",
        help="of a stacked model (model.num_layers > 1), the layer the hidden-state panel, "
        "the step view and the saturation scatter show: 1 is the bottom one (default: the "
        "top one)",
    )
    window.add_argument(
        "--direction",
        type=str.lower,
        choices=("forward", "backward"),
        help="of a bidirectional model (e.g. rnnviz open F.safetensors of one), the direction "
        "the hidden-state panel shows (default: forward)",
    )
    window.add_argument(
        "--lesson",
        metavar="LESSON[:STEP]",
        help="start a lesson: 'chapter' (the one that ships) or a lesson file, at step STEP "
        "(from 1), e.g. --lesson chapter:3",
    )
    window.add_argument(
        "--mlp", action="store_true", help="the unrolled view compares with the MLP (H_{t-1} = 0)"
    )
    window.add_argument(
        "--session",
        metavar="FILE",
        help="open a saved session (File > Save session..., rnnviz train --session-out): the "
        "run, its curves, the timeline, the probe; with --screenshot, --train-steps default 0",
    )
    window.add_argument(
        "--at-step",
        type=_int_in(0, 10**9),
        metavar="N",
        help="the timeline on the stored snapshot nearest step N (with --screenshot, before "
        "the grab; with --session, once it is open): every probe panel shows that model",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnviz",
        description="Train a character-level RNN live and watch its hidden states, "
        "predictions and gradients. Without a subcommand: the window.",
    )
    _window_arguments(parser)
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
    train.add_argument(
        "--task",
        choices=TASK_CHOICES,
        default="lm",
        help="lm (the language model, default) | names (surname -> language, many to one) | "
        "tagging (last letter of its word, many to many) | name_gen (a surname of a language, "
        "one to many) | dates (written date -> ISO, encoder-decoder); a task has its own "
        "data and defaults (model, hidden, lr, batch), which the options below change",
    )
    # None: the task's default (the language model's: fast, 32, 1, 1024, sgd; LM_DEFAULTS)
    train.add_argument("--model", choices=("scratch", "fast", "gru", "lstm"), default=None)
    train.add_argument("--activation", choices=("tanh", "relu"), default="tanh")
    train.add_argument("--hidden", type=_positive_int, default=None, metavar="H")
    train.add_argument(
        "--num-layers",
        type=_positive_int,
        default=1,
        metavar="L",
        help="stacked recurrent layers, 1-4 (scratch, GRU and LSTM; default 1)",
    )
    train.add_argument(
        "--bidirectional",
        action="store_true",
        help="a second recurrence over the reversed text (scratch, GRU, LSTM); refused for "
        "the language model, which it would let see the next character",
    )
    train.add_argument("--num-steps", type=_positive_int, default=32, metavar="T")
    train.add_argument("--batch-size", type=_positive_int, default=None, metavar="B")
    train.add_argument("--lr", type=_finite_float, default=None)
    train.add_argument("--optimizer", choices=("sgd", "adam"), default=None)
    train.add_argument(
        "--no-teacher-forcing",
        action="store_true",
        help="dates task: the decoder is fed its own guesses while training, not the truth",
    )
    train.add_argument(
        "--clip",
        type=_finite_float,
        default=1.0,
        metavar="THETA",
        help="gradient clipping threshold; 0 turns clipping off (default 1)",
    )
    length = train.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_int_in(1, MAX_EPOCHS), default=None, help="default 100")
    length.add_argument("--max-steps", type=_int_in(1, MAX_TOTAL_STEPS), default=None, metavar="N")
    train.add_argument("--seed", type=_seed, default=0, help=f"0..{SEED_MAX} (default 0)")
    train.add_argument(
        "--device", type=_device, default="cpu", help="cpu, cuda, cuda:1, mps (default cpu)"
    )
    train.add_argument("--preprocess", choices=("d2l", "keep"), default="d2l")
    train.add_argument("--init", choices=("d2l", "uniform"), default=None)
    train.add_argument("--partition", choices=("random", "sequential"), default=None)
    train.add_argument(
        "--val-every",
        type=_int_in(1, MAX_TOTAL_STEPS),
        default=None,
        metavar="N",
        help="also validate every N steps (default: only at every epoch end)",
    )
    train.add_argument("--metrics-out", metavar="FILE.csv", help="one CSV row per step")
    train.add_argument("--checkpoint-out", metavar="PATH", help="a .safetensors checkpoint")
    train.add_argument(
        "--session-out",
        metavar="FILE",
        help="a session file (.rnnviz): the checkpoint, the metrics and the timeline of "
        "parameter snapshots, for the window's File > Open session, probe --session and export",
    )
    train.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="TensorBoard event files in DIR: loss, perplexities, gradient norms, clipping, "
        "sigma_max(W_hh), non-finite steps, histograms, hparams (needs: pip install "
        "'rnnviz[tensorboard]'; view: tensorboard --logdir DIR)",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    probe = sub.add_parser(
        "probe",
        help="per-step predictions of a trained model on TEXT",
        description="For every character of TEXT: the next character, the model's top-k "
        "guesses with probabilities, and the surprisal in bits.",
    )
    probe.add_argument("text", metavar="TEXT")
    model = probe.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", metavar="CK")
    model.add_argument(
        "--session", metavar="FILE", help="a session file: its final model, or with --at-step one"
    )
    model.add_argument(
        "--torch-model",
        metavar="F.safetensors",
        help="your own PyTorch model's state_dict (torch.nn.RNN, GRU or LSTM, one layer, with "
        "an Embedding or one-hot input and a Linear output; never a pickle), with --spec",
    )
    probe.add_argument(
        "--spec",
        metavar="F.json",
        help="with --torch-model: the vocabulary and which tensor prefix is which part "
        "(the format: rnnviz/core/torch_model.py)",
    )
    probe.add_argument(
        "--at-step",
        type=_nonneg_int,
        metavar="N",
        help="with --session: the model of the snapshot stored nearest to step N",
    )
    probe.add_argument("--top-k", type=_int_in(1, MAX_TOP_K), default=5, metavar="K")
    probe.add_argument(
        "--json",
        action="store_true",
        help="one JSON object instead of a table (the gradient flow up to "
        f"{JSON_GRAD_FLOW_MAX_CHARS} characters)",
    )
    probe.add_argument("--device", type=_device, default="cpu")
    probe.add_argument(
        "--temperature",
        type=_finite_float,
        default=0.0,
        help="name_gen checkpoints: 0 = greedy (default), else sampling (with --top-k)",
    )
    probe.add_argument("--seed", type=_seed, default=0, help="name_gen checkpoints' sampling")

    opened = sub.add_parser(
        "open",
        help="your own PyTorch model in the window, read-only",
        description="Open the window on your own torch.nn RNN, GRU or LSTM (a safetensors "
        "state_dict and its spec JSON; the format: rnnviz/core/torch_model.py), read-only: "
        "every probe panel shows it; Reset trains a new model of its shape. The window's "
        "options follow the file, e.g. rnnviz open mine.safetensors --screenshot out.png.",
    )
    opened.add_argument("model", metavar="F.safetensors")
    opened.add_argument(
        "--spec",
        metavar="F.json",
        help="the vocabulary and the tensor prefixes (default: the .json beside F.safetensors)",
    )
    _window_arguments(opened)

    sample = sub.add_parser("sample", help="generate text after PREFIX")
    sample.add_argument("prefix", metavar="PREFIX")
    sample.add_argument("--checkpoint", required=True, metavar="CK")
    sample.add_argument("--num-chars", type=_int_in(0, MAX_SAMPLE_CHARS), default=100, metavar="N")
    sample.add_argument(
        "--temperature",
        type=_finite_float,
        default=0.0,
        help=f"0 = greedy (default), or {TEMPERATURE_RANGE[0]:g}..{TEMPERATURE_RANGE[1]:g}",
    )
    sample.add_argument("--seed", type=_seed, default=0)
    sample.add_argument("--device", type=_device, default="cpu")

    export = sub.add_parser(
        "export",
        help="a session file's metrics as one CSV",
        description="Write the metrics of every run of a session file as one wide CSV: a run "
        "column, then step, wall_s, loss, ppl, val_ppl, the gradient norms before and after "
        "clipping, clipped, lr, clip_theta, nonfinite, the per-parameter norms and the rest.",
    )
    export.add_argument("session", metavar="FILE")
    export.add_argument("--csv", required=True, metavar="OUT")

    bench = sub.add_parser("bench", help="performance figures of this machine")
    bench.add_argument("--quick", action="store_true")
    bench.add_argument(
        "--tasks",
        action="store_true",
        help="train every task (one torch thread): the seconds to reach its target, the metric "
        "reached, one-way against bidirectional tagging",
    )
    bench.add_argument("--json", action="store_true")
    bench.add_argument(
        "--peer",
        action="store_true",
        help="the whole `rnnviz train` process against d2l.ai's own code at d2l's preset "
        "(needs: pip install --no-deps d2l==1.0.3)",
    )
    bench.add_argument(
        "--repeats", type=_positive_int, metavar="N", help="with --peer or --tasks (default 3)"
    )
    bench.add_argument(
        "--epochs", type=_int_in(1, MAX_EPOCHS), metavar="N", help="with --peer (default 100)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad arguments (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    commands = {
        "train": cmd_train,
        "probe": cmd_probe,
        "open": cmd_open,
        "sample": cmd_sample,
        "export": cmd_export,
        "bench": cmd_bench,
    }
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


def cmd_open(args: argparse.Namespace) -> int:
    """``rnnviz open F.safetensors [--spec F.json] [window options]``: checked here first, so
    that a bad file is one line in the terminal, not a window with an error in it."""
    from rnnviz.core.torch_model import TorchModelError, open_torch_model, spec_beside

    for flag, given in (
        ("--session", args.session),
        ("--lesson", args.lesson),
        ("--at-step", args.at_step is not None),
        ("--then", args.then),
        ("--train-steps", args.train_steps),
    ):
        if given:
            print(
                f"error: {flag} does not go with open: an opened model is not trained",
                file=sys.stderr,
            )
            return EXIT_USAGE
    spec = args.spec or spec_beside(args.model)
    if args.spec is None and not os.path.isfile(spec):
        print(
            f"error: {args.model}: no spec beside it ({spec}); give one with --spec F.json "
            "(the format: rnnviz/core/torch_model.py)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        open_torch_model(args.model, spec)
    except TorchModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return cmd_gui(args, model=(os.path.abspath(args.model), os.path.abspath(spec)))


def cmd_gui(args: argparse.Namespace, model: tuple[str, str] | None = None) -> int:
    try:
        from rnnviz.gui.app import run_app
    except ImportError as exc:
        print(
            f"error: the window is not available ({exc}). The headless commands work: "
            "rnnviz train | probe | sample | bench (see rnnviz --help).",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from rnnviz.core.config import ConfigError, RunConfig, with_overrides
    from rnnviz.gui.launch import LaunchOptions, lesson_argument

    config = None
    if args.set:
        try:
            base = RunConfig() if args.screenshot else _saved_config()
            config = with_overrides(base, args.set)
        except ConfigError as exc:
            print(f"error: --set {exc}", file=sys.stderr)
            return EXIT_USAGE
    if args.then and not args.screenshot:
        print("error: --then needs --screenshot", file=sys.stderr)
        return EXIT_USAGE
    if args.at_step is not None and not (args.screenshot or args.session):
        print(
            "error: --at-step needs --screenshot or --session (in the window: the timeline, "
            "[ and ])",
            file=sys.stderr,
        )
        return EXIT_USAGE
    lesson, lesson_step = None, 0
    if args.lesson:
        try:
            lesson, lesson_step = lesson_argument(args.lesson)
        except ValueError as exc:
            print(f"error: --lesson {exc}", file=sys.stderr)
            return EXIT_USAGE
    options = LaunchOptions(
        config=config,
        probe_text=args.probe,
        size=args.size,
        scheme=args.scheme,
        then=tuple(args.then),
        show=tuple(args.show),
        cursor=args.cursor,
        mlp=args.mlp,
        full=args.full,
        lesson=lesson,
        lesson_step=lesson_step,
        lecture=args.lecture,
        zoom=None if args.zoom is None else args.zoom / 100,
        at_step=args.at_step,
        session=args.session,
        hidden_layer=args.hidden_layer,
        stacked_layer=args.stacked_layer,
        direction=args.direction,
        model=model,
    )
    steps = args.train_steps
    if steps is None:
        steps = 0 if args.session else 100
    return int(
        run_app(sys.argv[:1], screenshot=args.screenshot, train_steps=steps, options=options)
    )


def _saved_config() -> RunConfig:
    """The last session's run (what the window would start with), else the defaults."""
    from rnnviz.core.config import RunConfig
    from rnnviz.gui.state.settings import SettingsStore

    return SettingsStore().config() or RunConfig()


def cmd_bench(args: argparse.Namespace) -> int:
    import importlib

    try:
        bench = importlib.import_module("rnnviz.bench")
    except ImportError as exc:
        print(f"error: the benchmark module is not available ({exc})", file=sys.stderr)
        return EXIT_USAGE
    return int(bench.main(args))


# ---------------------------------------------------------------------- train


def clip_fields(args: argparse.Namespace) -> dict[str, Any]:
    """TrainConfig's clipping fields from ``--clip THETA`` (0: clipping off)."""
    clip = float(args.clip)
    if clip < 0:
        raise UsageError(f"--clip must be >= 0 (0 turns clipping off), not {args.clip}")
    return {"clip_enabled": clip > 0, "clip_theta": clip if clip > 0 else 1.0}


def fill_lm_defaults(args: argparse.Namespace) -> None:
    """The language model's values for the options left unset (None)."""
    for name, value in LM_DEFAULTS.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    from rnnviz.core.config import CorpusConfig, ModelConfig, RunConfig, TrainConfig

    fill_lm_defaults(args)
    model: dict[str, Any] = {"kind": args.model, "activation": args.activation}
    model["hidden_size"] = args.hidden
    model["num_layers"] = args.num_layers
    model["bidirectional"] = bool(getattr(args, "bidirectional", False))
    if args.init is not None:
        model["init"] = args.init
    train: dict[str, Any] = {
        "lr": args.lr,
        "optimizer": args.optimizer,
        **clip_fields(args),
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


# spike warnings printed at most this many times a run (the summary counts them all)
MAX_SPIKE_WARNINGS = 5


class _TrainReport:
    """What the train command prints: epoch lines, spikes, the divergence, the summary."""

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
        self.spikes = 0
        self.first_spike: int | None = None
        self._spike_armed = True  # one warning per run of spikes, re-armed by a normal step

    def step(self, record: StepRecord, spike: bool, spike_median: float | None) -> None:
        if math.isfinite(record.loss) and not record.nonfinite:
            self.epoch_losses.append(record.loss)
            self.streak = []
        else:
            self.streak.append(record)
        if record.val_ppl is not None:
            self.last_val = record.val_ppl
        if spike:
            self.spikes += 1
            if self.first_spike is None:
                self.first_spike = record.step
            if self._spike_armed and self.spikes <= MAX_SPIKE_WARNINGS:
                self.bar.write(
                    f"warning: loss spike at step {record.step}: loss {_fmt(record.loss)}, "
                    f"more than {self.run.config.train.loss_spike_factor:g}x the recent "
                    f"median {_fmt(spike_median)}; ||g|| before clipping "
                    f"{_fmt(record.grad_norm_before_clip)}",
                    file=sys.stderr,
                )
        self._spike_armed = not spike
        self.bar.update(1)
        if record.step % 10 == 0 or record.step == self.total:
            self.bar.set_postfix(ppl=_fmt(record.ppl), refresh=False)

    def epoch_end(self, epoch: int, epochs: int | None, val_ppl: float, partial: str = "") -> None:
        from rnnviz.core.health import perplexity

        mean = sum(self.epoch_losses) / len(self.epoch_losses) if self.epoch_losses else math.nan
        self.epoch_losses = []
        of = f"/{epochs}" if epochs else ""
        self.bar.write(
            f"epoch {epoch + 1}{of}{partial}: train ppl {_fmt(perplexity(mean))}, "
            f"val ppl {_fmt(val_ppl)}",
            file=sys.stdout,
        )

    def close(self) -> None:
        self.bar.close()


def _check_outputs(args: argparse.Namespace) -> None:
    """Every output path, before anything is loaded or trained (exit 2 with one line)."""
    from rnnviz.core.atomic import OutputPathError, check_output_path

    given = [(flag, path) for flag, path in _outputs(args) if path is not None]
    for flag, path in given:
        if not path.strip():
            raise UsageError(f"{flag} is empty: give a file name")
        try:
            check_output_path(path)
        except OutputPathError as exc:
            raise UsageError(f"{flag}: {exc}") from None
    for i, (flag, path) in enumerate(given):
        for other, other_path in given[i + 1 :]:
            if os.path.realpath(path) == os.path.realpath(other_path):
                raise UsageError(f"{flag} and {other} name the same file")


def _check_tensorboard(args: argparse.Namespace) -> None:
    """--tensorboard: the package is there and DIR takes files, before anything is trained."""
    if args.tensorboard is None:
        return
    from rnnviz.core.atomic import OutputPathError
    from rnnviz.core.tensorboard_log import (
        TensorBoardUnavailable,
        check_log_dir,
        require_tensorboard,
    )

    try:
        require_tensorboard()
        check_log_dir(args.tensorboard)
    except (TensorBoardUnavailable, OutputPathError) as exc:
        raise UsageError(f"--tensorboard: {exc}") from None


class _Board:
    """The --tensorboard log; a failed write stops the log, not the training (as _Metrics)."""

    def __init__(self, path: str | None, run: Run) -> None:
        from rnnviz.core.tensorboard_log import TensorBoardLog

        self.path = path
        self.error: str | None = None
        self.log: TensorBoardLog | None = None
        if path is not None:
            try:
                self.log = TensorBoardLog(path, run)
            except OSError as exc:
                raise UsageError(f"--tensorboard {path}: cannot write: {_os_reason(exc)}") from None

    def write(self, record: StepRecord) -> None:
        if self.log is None:
            return
        try:
            self.log.write(record)
        except Exception as exc:
            self._failed(exc, record.step)
            print(
                f"warning: --tensorboard {self.path}: {self.error}; training goes on, "
                "the TensorBoard log stops here",
                file=sys.stderr,
            )

    def close(self) -> None:
        if self.log is None:
            return
        try:
            self.log.close()
        except Exception as exc:
            self._failed(exc, self.log.run.trainer.step)
        self.log = None

    def _failed(self, exc: BaseException, step: int) -> None:
        self.error = f"write failed at step {step:,}: {_os_reason(exc)}"
        if self.log is not None:
            with contextlib.suppress(Exception):
                self.log.close()
        self.log = None


def _outputs(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    return [
        ("--checkpoint-out", args.checkpoint_out),
        ("--metrics-out", args.metrics_out),
        ("--session-out", args.session_out),
    ]


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class _Metrics:
    """The --metrics-out stream; a failed write stops the stream, not the training."""

    def __init__(self, path: str | None) -> None:
        from rnnviz.core.history import MetricsCsvWriter

        self.path = path
        self.error: str | None = None
        self.writer: MetricsCsvWriter | None = None
        if path is not None:
            try:
                self.writer = MetricsCsvWriter(path)
            except OSError as exc:
                raise UsageError(f"--metrics-out {path}: cannot write: {_os_reason(exc)}") from None

    def write(self, record: StepRecord) -> None:
        if self.writer is None:
            return
        try:
            self.writer.write(record)
        except OSError as exc:
            self._failed(exc)
            print(
                f"warning: --metrics-out {self.path}: {self.error}; training goes on, "
                "the metrics stop here",
                file=sys.stderr,
            )

    def close(self) -> None:
        if self.writer is None:
            return
        try:
            self.writer.close()
        except OSError as exc:
            self._failed(exc)
        self.writer = None

    def _failed(self, exc: OSError) -> None:
        assert self.writer is not None
        rows = self.writer.rows_written
        self.error = f"write failed after {rows:,} rows: {_os_reason(exc)}"
        with contextlib.suppress(OSError):
            self.writer.close()
        self.writer = None


def _save_model(path: str, run: Run) -> tuple[str | None, str | None]:
    """Save the checkpoint to ``path``, or else to the temp folder (see :func:`_rescued`)."""
    from rnnviz.core.checkpoint import save_run

    return _rescued(path, lambda to: save_run(to, run), run.trainer.step, ".safetensors")


def _save_session(path: str, recorder: _SessionRecorder) -> tuple[str | None, str | None]:
    """Save the session to ``path``, or else to the temp folder (see :func:`_rescued`)."""
    from rnnviz.core.atomic import atomic_write_bytes
    from rnnviz.core.session_file import SUFFIX, session_bytes

    try:
        payload = session_bytes(recorder.session_data())
    except Exception as exc:
        return None, _os_reason(exc)
    step = recorder.run.trainer.step
    return _rescued(path, lambda to: atomic_write_bytes(to, payload), step, SUFFIX)


def _rescued(
    path: str, write: Callable[[str], None], step: int, suffix: str
) -> tuple[str | None, str | None]:
    """``write(path)``; if that fails, ``write`` to the temp folder. (where it went, what
    failed): whatever failed, the model must not be lost."""
    import tempfile

    try:
        write(path)
        return path, None
    except Exception as exc:
        error = _os_reason(exc)
    rescue = os.path.join(tempfile.gettempdir(), f"rnnviz-rescued-{os.getpid()}-step{step}{suffix}")
    try:
        write(rescue)
    except Exception:
        return None, error
    return rescue, error


# A session's snapshots may cost this share of the training time (the issue allows 2 %).
SNAPSHOT_BUDGET = 0.005


class _SessionRecorder:
    """What ``train --session-out`` writes at the end: the run's metric history, and its
    timeline of parameter snapshots filled while it trains.

    The spacing of the snapshots is measured, not guessed: a snapshot copies every parameter
    to NumPy and files it in the store, and its cost is timed; the next one comes
    ``ceil(cost / (SNAPSHOT_BUDGET x the mean step time so far))`` steps later. Snapshots then
    take about SNAPSHOT_BUDGET (0.5 %) of the training time, well under 2 %, on any model and
    machine: every step when a step costs far more than a copy (the d2l defaults), every few
    steps for a tiny model whose step is as cheap as the copy. The store keeps the whole run
    at its memory cap by thinning old snapshots itself (core.snapshots).
    """

    def __init__(self, run: Run) -> None:
        from rnnviz.core.history import MetricHistory
        from rnnviz.core.snapshots import SnapshotStore

        self.run = run
        self.history = MetricHistory()
        self.store = SnapshotStore()
        self.snapshot_s = 0.0  # the time spent on snapshots (for the budget's test)
        self._next = 0
        self._take()

    def _take(self) -> float:
        from rnnviz.core.probe import params_to_numpy

        start = time.perf_counter()
        self.store.add(self.run.trainer.step, params_to_numpy(self.run.model))
        cost = time.perf_counter() - start
        self.snapshot_s += cost
        return cost

    def step(self, record: StepRecord, train_s: float) -> None:
        self.history.append([record])
        step = self.run.trainer.step
        if step >= self._next:
            cost = self._take()
            mean_step_s = train_s / max(step, 1)
            self._next = step + max(1, math.ceil(cost / (SNAPSHOT_BUDGET * mean_step_s)))

    def session_data(self) -> Any:
        """The SessionData of the run as it is now. After a divergence the run was returned to
        its last good step: the history and the timeline are cut there too, as the window's
        are after a rollback (the --metrics-out CSV keeps every step)."""
        from rnnviz.core.checkpoint import run_checkpoint_bytes
        from rnnviz.core.probe_defaults import default_probe_text
        from rnnviz.core.session_file import MAIN_LABEL, SessionData

        step = self.run.trainer.step
        self.history.truncate_after(step)
        newest = self.store.newest()
        if newest is None or newest.step != step:
            self._take()  # the checkpoint's own parameters, as the timeline's last point
        return SessionData(
            checkpoint=run_checkpoint_bytes(self.run),
            config=self.run.config,
            probe_text=default_probe_text(self.run.config.corpus),
            cursor=0,
            view={},
            runs=((MAIN_LABEL, self.history),),
            snapshots=self.store,
        )


@dataclass(frozen=True)
class _Verdict:
    """Why a run ended as diverged."""

    step: int  # the first bad step
    reason: str
    record: StepRecord  # the step at which it was judged
    cause_kind: str  # likely_cause's reason: "nonfinite" or "loss_spike"
    final_only: bool = False  # only the final validation was bad


def _keep_last_good(run: Run, watch: LossWatch, final_only: bool) -> str:
    """Return the trainer to the last good parameters; says which the checkpoint holds.

    ``final_only``: only the final validation was bad, the training losses never were.
    """
    trainer = run.trainer
    target = watch.last_good_step()
    if target is None:
        if final_only:
            return "the final parameters; their validation is worse than uniform guessing"
        # the skipped steps changed nothing: these are the last good parameters
        return "the last good parameters"
    try:
        step = trainer.rollback(target)
    except ValueError:
        return (
            f"the final parameters, NOT good ones: no snapshot from before step "
            f"{watch.bad_since:,} was kept"
        )
    return "the last good parameters" + (" (the initial ones)" if step == 0 else "")


def cmd_train(args: argparse.Namespace) -> int:
    from rnnviz.core.distributed import launch_from_env

    launch = launch_from_env()  # torchrun's environment; None in a single process
    if getattr(args, "task", "lm") != "lm":
        if launch is not None:
            raise UsageError(f"the {args.task} task trains in one process, not under torchrun")
        from rnnviz.task_cli import train_task_command

        return train_task_command(args)
    fill_lm_defaults(args)
    if launch is None:
        return _train(args, None)
    return _train_data_parallel(args, launch)


def _train_data_parallel(args: argparse.Namespace, launch: Launch) -> int:
    """``train`` as one of torchrun's processes (core.distributed): this process trains its
    share of every batch; rank 0 alone writes files and output, and every process exits with
    rank 0's status."""
    from contextlib import redirect_stderr, redirect_stdout

    from rnnviz.core.config import ConfigError
    from rnnviz.core.distributed import (
        DataParallel,
        PeerFailed,
        backend_for,
        check_batch_size,
        device_for,
    )

    try:
        device = device_for(launch, args.device)
        check_batch_size(launch, args.batch_size)
    except ConfigError:
        if launch.is_main:
            raise
        return EXIT_USAGE  # the same arguments fail on rank 0, which says why
    args = argparse.Namespace(**vars(args))
    args.device = device
    if launch.is_main:
        rows = args.batch_size // launch.world_size
        print(
            f"data parallel: {launch.world_size} processes ({backend_for(device)}), "
            f"{rows:,} of every batch's {args.batch_size:,} rows each",
            file=sys.stderr,
        )
    else:
        args.metrics_out = args.checkpoint_out = args.session_out = args.tensorboard = None
        args.quiet = True
    with DataParallel(launch, device) as dp:
        try:
            if launch.is_main:
                status = _train(args, dp)
            else:
                # an exception escapes the redirect, so its traceback still shows
                with open(os.devnull, "w") as null, redirect_stdout(null), redirect_stderr(null):
                    status = _train(args, dp)
        except PeerFailed:
            return EXIT_USAGE  # the process that failed said why
        except _user_errors() as exc:
            if launch.is_main:
                raise
            raise UsageError(f"rank {launch.rank}: {exc}") from None
        if status == EXIT_INTERRUPTED:  # the others may be gone: nothing to agree with
            return status
        return dp.agree_status(status)


def _train(args: argparse.Namespace, dp: DataParallel | None) -> int:
    """The train command; ``dp``: this process is one of several (core.distributed)."""
    import dataclasses
    from collections import deque

    from rnnviz.core.config import training_refusal
    from rnnviz.core.health import (
        UNIFORM_WINDOW,
        LossWatch,
        perplexity,
        uniform_sentence,
        worse_than_uniform_ppl,
    )
    from rnnviz.core.runs import build_run
    from rnnviz.core.session import likely_cause

    # every process must learn whether any failed here, or the others would wait for it
    with contextlib.nullcontext() if dp is None else dp.setup():
        config = config_from_args(args)
        refusal = training_refusal(config.model)  # the language model's verdict, in core
        if refusal is not None:
            raise UsageError(refusal)
        _check_outputs(args)
        _check_tensorboard(args)
        run = build_run(config)
        if dp is not None:
            dp.check_rows(run)
    if dp is not None:
        dp.attach(run)  # the trainer now trains this process's rows of every batch
    trainer = run.trainer
    trainer.fused_flow = False  # nothing headless reads a GRU/LSTM's per-step gradient flow
    vocab_size = len(run.vocab)
    per_epoch = run.batches.steps_per_epoch
    epochs: int | None
    if args.max_steps is not None:
        total, epochs = args.max_steps, None
    else:
        epochs = args.epochs if args.epochs is not None else 100
        total = epochs * per_epoch
        if total > MAX_TOTAL_STEPS:
            raise UsageError(
                f"{epochs:,} epochs of {per_epoch:,} steps is more than {MAX_TOTAL_STEPS:,} "
                "steps: ask for fewer epochs"
            )
    for note in (*run.corpus.notes, *getattr(run.batches, "notes", ())):
        print(f"note: {note}", file=sys.stderr)
    layers = config.model.num_layers
    print(
        f"corpus {run.corpus.name}: {len(run.corpus.text):,} characters, vocab {vocab_size}; "
        f"model {config.model.kind} H={config.model.hidden_size} {config.model.activation}"
        f"{f' x {layers} layers' if layers > 1 else ''}; "
        f"{total:,} steps ({per_epoch:,} per epoch) on {config.train.device}",
        file=sys.stderr,
    )
    metrics = _Metrics(args.metrics_out)
    try:
        board = _Board(args.tensorboard, run)
    except BaseException:
        metrics.close()
        raise
    recorder = _SessionRecorder(run) if args.session_out else None
    report = _TrainReport(run, total, args.quiet)
    watch = LossWatch(vocab_size)
    recent: deque[StepRecord] = deque(maxlen=4 * UNIFORM_WINDOW)  # to name the step that broke
    tokens = 0
    train_s = 0.0  # time in optimizer steps (tokens/s), without validation
    start = time.perf_counter()
    verdict: _Verdict | None = None
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
                record = dataclasses.replace(record, val_ppl=val, wall_s=trainer.wall_s)
            recent.append(record)
            watch.add(record.step, record.loss, spike=trainer.last_spike)
            report.step(record, trainer.last_spike, trainer.last_spike_median)
            metrics.write(record)
            board.write(record)
            if recorder is not None:
                recorder.step(record, train_s)
            if epoch_done and record.val_ppl is not None:
                report.epoch_end(epoch_before, epochs, record.val_ppl, partial)
            if trainer.diverged:
                first = report.streak[0] if report.streak else record
                if not math.isfinite(first.loss):
                    reason = f"the loss became {first.loss}"
                elif not math.isfinite(first.grad_norm_before_clip):
                    reason = "a gradient became non-finite"
                else:
                    reason = "the update made a parameter non-finite (it was undone)"
                reason += f", {trainer.nonfinite_in_row} steps in a row"
                verdict = _Verdict(first.step, reason, first, "nonfinite")
                break
            if watch.useless:
                since = watch.bad_since or record.step
                verdict = _Verdict(
                    since,
                    "the loss went worse than uniform guessing and stayed there (median "
                    f"{_fmt(watch.median)} over steps {record.step - watch.window + 1:,}.."
                    f"{record.step:,}, perplexity {_fmt(perplexity(watch.median))}); "
                    f"{uniform_sentence(vocab_size)}",
                    record,
                    "loss_spike",
                )
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        report.close()
        metrics.close()
        board.close()
    elapsed = time.perf_counter() - start
    last_val = report.last_val
    if (
        verdict is None
        and not interrupted
        and last_val is not None
        and worse_than_uniform_ppl(last_val, vocab_size)
    ):
        verdict = _Verdict(
            watch.bad_since or trainer.step,
            f"the final validation perplexity {_fmt(last_val)} is worse than uniform "
            f"guessing; {uniform_sentence(vocab_size)}",
            recent[-1],
            "loss_spike",
            final_only=watch.bad_since is None,
        )
    kept = ""
    if verdict is not None:
        kept = _keep_last_good(run, watch, verdict.final_only)
        by_step = {r.step: r for r in recent}
        # the update that led to the first bad loss is the step before it
        step = verdict.step
        cause_record = by_step.get(step - 1, by_step.get(step, verdict.record))
        print(
            f"diverged at step {step:,}: {verdict.reason}; ||g|| before clipping was "
            f"{_fmt(cause_record.grad_norm_before_clip)} at step {cause_record.step:,}",
            file=sys.stderr,
        )
        cause = likely_cause(cause_record, config.train.optimizer, verdict.cause_kind)
        print(f"likely cause: {cause}", file=sys.stderr)

    if dp is not None:
        # a checkpoint's carried state holds every row of the batch, not this process's
        dp.gather_carried(trainer, interrupted)
    failures: list[str] = []
    if metrics.error is not None:
        failures.append(f"--metrics-out {args.metrics_out}: {metrics.error}")
    if board.error is not None:
        failures.append(f"--tensorboard {args.tensorboard}: {board.error}")
    holds = f": {kept}" if kept else ""
    saved_to: list[str] = []
    if args.checkpoint_out:
        where, error = _save_model(args.checkpoint_out, run)
        if error is not None:
            failures.append(f"--checkpoint-out {args.checkpoint_out}: {error}")
        if where is not None:
            saved_to.append(where)
            print(f"checkpoint: {where} (step {trainer.step:,}){holds}", file=sys.stderr)
    if recorder is not None:
        where, error = _save_session(args.session_out, recorder)
        if error is not None:
            failures.append(f"--session-out {args.session_out}: {error}")
        if where is not None:
            saved_to.append(where)
            steps = recorder.store.steps()
            print(
                f"session: {where} (step {trainer.step:,}; {len(steps):,} snapshots of steps "
                f"{steps[0]:,}..{steps[-1]:,}){holds}",
                file=sys.stderr,
            )
    if saved_to:
        model_at = f"the model (step {trainer.step:,}) went to {' and '.join(saved_to)}"
    elif args.checkpoint_out or args.session_out:
        model_at = "the model could not be saved anywhere"
    else:
        model_at = "the model was not saved (no --checkpoint-out or --session-out)"
    if failures:
        for failure in failures:
            print(f"error: {failure}", file=sys.stderr)
        print(f"error: {model_at}", file=sys.stderr)
        return EXIT_OUTPUT
    if verdict is not None:
        return EXIT_DIVERGED
    if interrupted:
        print(f"interrupted at step {trainer.step}", file=sys.stderr)
        return EXIT_INTERRUPTED
    spikes = ""
    if report.spikes:
        spikes = f"; {report.spikes} loss spike(s), the first at step {report.first_spike:,}"
    print(
        f"done: {trainer.step:,} steps in {elapsed:.1f} s, {tokens / max(train_s, 1e-9):,.0f} "
        f"tokens/s in training; final val ppl {_fmt(last_val)}{spikes}"
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


def _probe_size(args: argparse.Namespace, model: Any, vocab: Any, top_k: int) -> bool:
    """Refuse a probe too large to compute or write; returns whether to add the gradient flow."""
    T = len(args.text)
    # hidden, probs and, for a GRU/LSTM, the gate record (LSTM i f g o c h, GRU r z n h)
    # and the LSTM's cells, held at once
    states = 1 + {"lstm": 7, "gru": 4}.get(model.kind, 0)
    per_char = model.hidden_size * states + len(vocab)
    if T * per_char > PROBE_MAX_VALUES:
        raise UsageError(
            f"the probe text has {T:,} characters; this model (hidden {model.hidden_size}, "
            f"vocabulary {len(vocab)}) probes at most {PROBE_MAX_VALUES // per_char:,} at once: "
            "probe a shorter text"
        )
    if not args.json:
        return False  # the table shows no gradient flow
    # hidden (+ cells and gates), probs, top-k pairs, tokens, step loss, surprisal
    arrays = state_arrays(
        model.kind, model.config.num_layers, 2 if model.config.bidirectional else 1
    )
    per_char_json = model.hidden_size * arrays + len(vocab) + 2 * top_k + 3
    with_flow = grad_flow_omitted(T) is None
    values = T * per_char_json + (T * T if with_flow else 0)
    if values > JSON_MAX_VALUES:
        raise UsageError(
            f"probe --json of {T:,} characters would write {values:,} numbers, more than the "
            f"{JSON_MAX_VALUES:,} allowed (about 40 MB); with this model --json takes at most "
            f"{JSON_MAX_VALUES // per_char_json:,} characters: probe a shorter text, or drop "
            "--json for the table"
        )
    return with_flow


def _probe_model(args: argparse.Namespace, loaded: Any = None) -> tuple[Any, Any]:
    """The model ``probe`` asks for, and its vocabulary: a checkpoint's, a session's final
    one, or (``--at-step``) the session's snapshot nearest to that step, named on stderr;
    or (``--torch-model``) an engineer's own PyTorch model, read-only."""
    if args.torch_model is None and args.spec is not None:
        raise UsageError("--spec goes with --torch-model: it describes that file's tensors")
    if args.torch_model is not None:
        return _probe_torch_model(args)
    if args.session is None:
        if args.at_step is not None:
            raise UsageError("--at-step needs --session (a checkpoint holds one model)")
        if loaded is not None:  # cmd_probe read it already
            from rnnviz.core.checkpoint import restore_model
            from rnnviz.core.runs import check_device

            check_device(args.device)
            return restore_model(loaded, args.device), loaded.vocab
        _ckpt, model, vocab = _load_model(args.checkpoint, args.device)
        return model, vocab
    from rnnviz.core.checkpoint import restore_model
    from rnnviz.core.probe import model_from_params
    from rnnviz.core.runs import check_device
    from rnnviz.core.session_file import load_session

    check_device(args.device)
    session = load_session(args.session)
    ckpt = session.load_checkpoint()
    if args.at_step is None:
        return restore_model(ckpt, args.device), ckpt.vocab
    snap = session.snapshots.nearest(args.at_step) if session.snapshots is not None else None
    if snap is None:
        raise UsageError(
            f"{args.session} holds no parameter snapshots; probe without --at-step for the "
            f"model at its end (step {ckpt.step:,})"
        )
    how = (
        "a stored snapshot"
        if snap.step == args.at_step
        else f"the stored snapshot nearest to {args.at_step:,}"
    )
    print(f"model at step {snap.step:,} ({how})", file=sys.stderr)
    model = model_from_params(ckpt.config.model, len(ckpt.vocab), dict(snap.params))
    return model.to(args.device), ckpt.vocab


def _probe_torch_model(args: argparse.Namespace) -> tuple[Any, Any]:
    """``--torch-model F --spec S``: the user's PyTorch model as an rnnviz model."""
    if args.spec is None:
        raise UsageError(
            "--torch-model needs --spec F.json: the vocabulary and which tensor prefix is which "
            "part (see README, Open your own PyTorch model)"
        )
    if args.at_step is not None:
        raise UsageError("--at-step needs --session (a --torch-model file holds one model)")
    from rnnviz.core.runs import check_device
    from rnnviz.core.torch_model import TorchModelError, open_torch_model

    check_device(args.device)
    try:
        model, vocab = open_torch_model(args.torch_model, args.spec)
    except TorchModelError as exc:
        raise UsageError(str(exc)) from None
    return model.to(args.device), vocab


def cmd_probe(args: argparse.Namespace) -> int:
    from rnnviz.core.probe import probe
    from rnnviz.core.probe_json import probe_json

    loaded = None
    # the arguments' own mistakes (--at-step, --spec without their partners) are named first,
    # by _probe_model, before any file is read
    plain = args.torch_model is None and args.at_step is None and args.spec is None
    if args.checkpoint is not None and plain:
        from rnnviz.core.checkpoint import load_checkpoint

        ckpt = load_checkpoint(args.checkpoint)
        if ckpt.task != "lm":  # a task's model reads the task's input (a name, a date)
            from rnnviz.task_cli import probe_task_command

            return probe_task_command(args, ckpt)
        loaded = ckpt
    if not args.text:
        raise UsageError("TEXT is empty")
    model, vocab = _probe_model(args, loaded)
    _check_known(args.text, vocab, "probe text")
    top_k = min(args.top_k, len(vocab))
    with_flow = _probe_size(args, model, vocab, top_k)
    result = probe(model, vocab, args.text, top_k=top_k, with_grad_flow=with_flow)
    if args.json:
        out = probe_json(result)
        if "grad_flow_omitted" in out:
            print(f"note: {out['grad_flow_omitted']}", file=sys.stderr)
        print(json.dumps(out))
    else:
        print(probe_table(result))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from rnnviz.core.probe import generate

    if not args.prefix:
        raise UsageError("PREFIX is empty: generation needs at least one character")
    low, high = TEMPERATURE_RANGE
    if args.temperature != 0 and not low <= args.temperature <= high:
        raise UsageError(
            f"--temperature must be 0 (greedy) or in {low:g}..{high:g}, not {args.temperature:g}"
        )
    ckpt, model, vocab = _load_model(args.checkpoint, args.device)
    if ckpt.task != "lm":
        raise UsageError(
            f"{args.checkpoint} is a model of the {ckpt.task} task, not a language model: "
            f"rnnviz probe --checkpoint {args.checkpoint} TEXT reads it"
        )
    _check_known(args.prefix, vocab, "prefix")
    try:
        text = generate(
            model, vocab, args.prefix, args.num_chars, temperature=args.temperature, seed=args.seed
        )
    except ValueError as exc:  # the core's reason, for the user: a bidirectional model
        raise UsageError(str(exc)) from None
    print(text)
    return 0


# ---------------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace) -> int:
    """A session's metrics, every run, as one wide CSV (core.history.write_runs_csv)."""
    from rnnviz.core.atomic import OutputPathError, check_output_path
    from rnnviz.core.history import write_runs_csv
    from rnnviz.core.session_file import load_session

    if not args.csv.strip():
        raise UsageError("--csv is empty: give a file name")
    try:
        check_output_path(args.csv)  # before the session is read: a bad path costs nothing
    except OutputPathError as exc:
        raise UsageError(f"--csv: {exc}") from None
    if os.path.realpath(args.csv) == os.path.realpath(args.session):
        raise UsageError("--csv names the session file itself; give another file name")
    session = load_session(args.session)
    try:
        write_runs_csv(args.csv, session.runs)
    except OSError as exc:
        print(f"error: --csv {args.csv}: {_os_reason(exc)}", file=sys.stderr)
        return EXIT_OUTPUT
    rows = sum(len(history) for _, history in session.runs)
    print(f"metrics: {args.csv} ({len(session.runs)} run(s), {rows:,} rows)", file=sys.stderr)
    return 0
