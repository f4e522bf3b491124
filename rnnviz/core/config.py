"""Frozen, validated configuration for corpus, model and training.

Every field has the d2l.ai default where the book has one, so that a student's numbers match
the chapter "Recurrent Neural Networks" (hidden 32, batch 1024, num_steps 32, lr 1, theta 1).
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass, field
from typing import Any, Literal

ModelKind = Literal["scratch", "fast", "gru", "lstm"]
Activation = Literal["tanh", "relu"]
InitScheme = Literal["d2l", "uniform"]
OptimizerName = Literal["sgd", "adam"]
Partition = Literal["random", "sequential"]
Preprocess = Literal["d2l", "keep"]

MODEL_KINDS: tuple[str, ...] = ("scratch", "fast", "gru", "lstm")
ACTIVATIONS: tuple[str, ...] = ("tanh", "relu")


class ConfigError(ValueError):
    """A configuration value is out of range; the message says which and why."""


# The ranges every setting is validated against on the way in (a file, a checkpoint, the CLI,
# a widget), so a RunConfig never holds a value a widget cannot show or a step cannot use.
# The window's widgets span exactly these ranges.
SEED_RANGE = (0, 2**31 - 1)  # a Qt spin box is a signed 32-bit int
HIDDEN_RANGE = (1, 8192)
LAYERS_RANGE = (1, 4)  # d2l ch. 10.3's deep RNNs: a few stacked layers
BATCH_RANGE = (1, 65536)
NUM_STEPS_RANGE = (1, 4096)
LR_RANGE = (1e-6, 9999.0)  # inclusive; a 6-decimal spin box shows 1e-6 as its smallest step
THETA_RANGE = (1e-4, 1e6)  # inclusive
SYNTHETIC_LENGTH_RANGE = (100, 50_000_000)
DELAY_K_RANGE = (1, 1000)
WINDOWS_RANGE = (1, 10_000_000)  # windows_per_epoch and val_windows
VAL_EVERY_RANGE = (0, 10**9)  # 0: only when asked (the CLI validates at every epoch end)
MAX_NONFINITE_RANGE = (1, 10_000)
SPIKE_FACTOR_RANGE = (1.0, 1e6)  # or exactly 0 (never)
# distinct characters + <unk>: the Basic Multilingual Plane; a checkpoint declaring more is refused
VOCAB_SIZE_RANGE = (1, 65536)

# The tasks a model is trained on (core.tasks declares each: its shape, data, loss and
# metric). The language model is the default; the others are the lecture's applications.
LANGUAGE_MODEL = "lm"
TASKS: tuple[str, ...] = (LANGUAGE_MODEL, "names", "tagging", "name_gen", "dates")
# The tasks a bidirectional model may be trained on: the one verdict the CLI, the engine
# session and the window read. Not the language model: its reverse direction reads character
# t+1 before step t predicts it, so it would learn to copy the answer. Tagging reads the
# whole text before it tags, which is what the reverse direction is for.
BIDIRECTIONAL_TASKS: frozenset[str] = frozenset({"tagging"})
BIDIRECTIONAL_LM_REFUSAL = (
    "a bidirectional model is not trained as a language model: its reverse direction would "
    "see the next character it is asked to predict; train one on the tagging task "
    "(--task tagging), or open or probe one instead"
)
# the window's short form of the same verdict, beside a greyed checkbox
BIDIRECTIONAL_LM_SHORT = (
    "a bidirectional LM would see the next character; the tagging task trains one"
)


def bidirectional_allowed(task: str = LANGUAGE_MODEL) -> bool:
    """Whether a bidirectional model may be trained on ``task``."""
    if task not in TASKS:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    return task in BIDIRECTIONAL_TASKS


def training_refusal(model: ModelConfig, task: str = LANGUAGE_MODEL) -> str | None:
    """Why ``model`` may not be trained on ``task`` (one line), or None if it may."""
    if model.bidirectional and not bidirectional_allowed(task):
        if task == LANGUAGE_MODEL:
            return BIDIRECTIONAL_LM_REFUSAL
        return (
            f"a bidirectional model is trained on the tagging task only; the {task} task "
            "reads its input one way (its output would see what it is asked for)"
        )
    if task != LANGUAGE_MODEL and model.kind == "fast":
        return (
            "the fast RNN's hand-written backward pass scores every step as the language model "
            f"does; train the {task} task with model.kind=scratch, gru or lstm"
        )
    if task == "dates" and model.kind not in ("gru", "lstm"):
        return "the dates task's encoder-decoder is built of GRUs or LSTMs: --model gru or lstm"
    return None


def _check_int(name: str, value: object, bounds: tuple[int, int]) -> None:
    low, high = bounds
    # bool is an int to Python, but hidden_size=True is a mistake, not 1
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an integer in {low}..{high}, not {value!r}")
    number = int(value)
    if not low <= number <= high:
        # str() of an int beyond ~4,300 digits raises; such a value is shown by its size
        shown = str(number) if number.bit_length() <= 256 else f"a {number.bit_length()}-bit number"
        raise ConfigError(f"{name} must be in {low}..{high}, not {shown}")


def _check_float(name: str, value: object, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number in [{low:g}, {high:g}], not {value!r}")
    # written so that NaN fails too
    if not low <= float(value) <= high:
        raise ConfigError(f"{name} must be in [{low:g}, {high:g}], not {value}")


@dataclass(frozen=True)
class CorpusConfig:
    """Where the text comes from.

    ``source`` is ``builtin``, ``time-machine``, ``synthetic:NAME`` (``repeat``, ``delay``,
    ``brackets``) or a path to a text file.
    """

    source: str = "builtin"
    preprocess: Preprocess = "d2l"
    # synthetic corpora
    synthetic_length: int = 200_000
    repeat_word: str = "machine"
    delay_k: int = 10
    # fraction of the token stream held out for validation
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.preprocess not in ("d2l", "keep"):
            raise ConfigError(f"preprocess must be 'd2l' or 'keep', not {self.preprocess!r}")
        if not isinstance(self.source, str):
            raise ConfigError(f"corpus source must be a string, not {self.source!r}")
        if not isinstance(self.repeat_word, str):
            raise ConfigError(f"repeat_word must be a string, not {self.repeat_word!r}")
        if isinstance(self.val_fraction, bool) or not isinstance(self.val_fraction, numbers.Real):
            raise ConfigError(f"val_fraction must be a number, not {self.val_fraction!r}")
        if not 0.0 < self.val_fraction < 0.9:
            raise ConfigError(f"val_fraction must be in (0, 0.9), not {self.val_fraction}")
        _check_int("delay_k", self.delay_k, DELAY_K_RANGE)
        _check_int("synthetic_length", self.synthetic_length, SYNTHETIC_LENGTH_RANGE)


@dataclass(frozen=True)
class ModelConfig:
    kind: ModelKind = "fast"
    activation: Activation = "tanh"
    hidden_size: int = 32
    init: InitScheme = "uniform"
    # False: W_hh held at 0 while training, the slide's MLP H_t = phi(X_t W_xh + b_h) (RNN only)
    recurrence: bool = True
    # stacked recurrent layers (scratch, GRU, LSTM): layer l > 0 reads layer l-1's H_t; the
    # output layer reads the top one
    num_layers: int = 1
    # a second recurrence over the reversed text per layer (PyTorch's layout: the output
    # layer, and layer l > 0, read concat(H_fwd, H_rev), 2H wide); see ``training_refusal``
    bidirectional: bool = False

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ConfigError(f"model must be one of {', '.join(MODEL_KINDS)}, not {self.kind!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be tanh or relu, not {self.activation!r}")
        _check_int("hidden size", self.hidden_size, HIDDEN_RANGE)
        if self.init not in ("d2l", "uniform"):
            raise ConfigError(f"init must be 'd2l' or 'uniform', not {self.init!r}")
        if self.kind in ("gru", "lstm") and self.activation != "tanh":
            raise ConfigError(f"{self.kind.upper()} uses its own gates; activation must be tanh")
        if not isinstance(self.recurrence, bool):
            raise ConfigError(f"recurrence must be true or false, not {self.recurrence!r}")
        _check_int("number of layers", self.num_layers, LAYERS_RANGE)
        if self.num_layers > 1 and self.kind == "fast":
            # its hand-written BPTT is one layer's; autograd runs the scratch RNN's stack
            raise ConfigError(
                f"{self.num_layers} layers: the fast RNN is one layer; the stacked plain RNN "
                "is the scratch kind (--model scratch)"
            )
        if self.num_layers > 1 and not self.recurrence and self.kind == "scratch":
            raise ConfigError(
                "a run without recurrence (the slide's MLP) holds one W_hh at 0: one layer"
            )
        if not self.recurrence and self.kind in ("gru", "lstm"):
            raise ConfigError(
                "a run without recurrence (the slide's MLP) holds the RNN's W_hh at 0; "
                f"the {self.kind.upper()} has no single W_hh"
            )
        if not isinstance(self.bidirectional, bool):
            raise ConfigError(f"bidirectional must be true or false, not {self.bidirectional!r}")
        if self.bidirectional and self.kind == "fast":
            raise ConfigError(
                "the fast RNN's hand-written backward pass is one direction; "
                "a bidirectional RNN is the scratch kind (model.kind=scratch)"
            )
        if self.bidirectional and self.kind == "scratch" and self.num_layers > 1:
            raise ConfigError(
                "the scratch RNN is bidirectional with one layer (d2l ch. 10.4's pair of "
                "loops); a stacked bidirectional model is the GRU or the LSTM"
            )
        if self.bidirectional and not self.recurrence:
            raise ConfigError(
                "a run without recurrence (the slide's MLP) has no direction to reverse; "
                "bidirectional needs recurrence"
            )


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 1.0
    optimizer: OptimizerName = "sgd"
    clip_enabled: bool = True
    clip_theta: float = 1.0
    batch_size: int = 1024
    num_steps: int = 32
    partition: Partition = "random"
    # d2l trains on 10,000 windows per epoch and validates on 5,000
    windows_per_epoch: int = 10_000
    val_windows: int = 5_000
    val_every: int = 50
    max_nonfinite_in_row: int = 5
    # a loss above this multiple of the recent median counts as a spike (0 = never)
    loss_spike_factor: float = 10.0
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        _check_float("lr", self.lr, LR_RANGE)
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"optimizer must be sgd or adam, not {self.optimizer!r}")
        if not isinstance(self.clip_enabled, bool):
            raise ConfigError(f"clip_enabled must be true or false, not {self.clip_enabled!r}")
        _check_float("clip theta", self.clip_theta, THETA_RANGE)
        _check_int("batch size", self.batch_size, BATCH_RANGE)
        _check_int("num_steps", self.num_steps, NUM_STEPS_RANGE)
        if self.partition not in ("random", "sequential"):
            raise ConfigError(f"partition must be random or sequential, not {self.partition!r}")
        _check_int("windows_per_epoch", self.windows_per_epoch, WINDOWS_RANGE)
        _check_int("val_windows", self.val_windows, WINDOWS_RANGE)
        _check_int("val_every", self.val_every, VAL_EVERY_RANGE)
        _check_int("max_nonfinite_in_row", self.max_nonfinite_in_row, MAX_NONFINITE_RANGE)
        if self.loss_spike_factor != 0:
            _check_float("loss_spike_factor (or 0)", self.loss_spike_factor, SPIKE_FACTOR_RANGE)
        _check_int("seed", self.seed, SEED_RANGE)
        if not isinstance(self.device, str):
            raise ConfigError(f"device must be a string such as 'cpu', not {self.device!r}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a run; two runs with equal RunConfig compute equal numbers."""

    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunConfig:
        try:
            return cls(
                corpus=CorpusConfig(**data.get("corpus", {})),
                model=ModelConfig(**data.get("model", {})),
                train=TrainConfig(**data.get("train", {})),
            )
        except TypeError as exc:  # unknown or missing keys
            raise ConfigError(
                f"configuration does not match this version of rnnviz: {exc}"
            ) from exc

    def replace(self, **sections: Any) -> RunConfig:
        """``cfg.replace(train={"lr": 2.0})`` returns a copy with those fields changed."""
        kwargs: dict[str, Any] = {}
        for name, changes in sections.items():
            kwargs[name] = dataclasses.replace(getattr(self, name), **changes)
        return dataclasses.replace(self, **kwargs)


def with_overrides(config: RunConfig, items: list[str]) -> RunConfig:
    """``config`` with ``section.field=value`` items applied (``rnnviz --set``), each value
    read as JSON where it parses (``50``, ``false``), else as a string (``synthetic:delay``).
    An unknown section or field, or a value out of range, raises ConfigError naming it."""
    changes: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise ConfigError(f"{item!r}: use SECTION.FIELD=VALUE, for example train.lr=50")
        if section not in ("corpus", "model", "train"):
            raise ConfigError(f"{item!r}: the sections are corpus, model and train")
        fields = {f.name for f in dataclasses.fields(getattr(config, section))}
        if name not in fields:
            raise ConfigError(f"{item!r}: {section} has {', '.join(sorted(fields))}")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        changes.setdefault(section, {})[name] = value
    try:
        return config.replace(**changes)
    except TypeError as exc:
        raise ConfigError(f"--set: {exc}") from exc
