"""Frozen, validated configuration for corpus, model and training.

Every field has the d2l.ai default where the book has one, so that a student's numbers match
the chapter "Recurrent Neural Networks" (hidden 32, batch 1024, num_steps 32, lr 1, theta 1).
"""

from __future__ import annotations

import dataclasses
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
        if not 0.0 < self.val_fraction < 0.9:
            raise ConfigError(f"val_fraction must be in (0, 0.9), not {self.val_fraction}")
        if self.delay_k < 1:
            raise ConfigError(f"delay_k must be >= 1, not {self.delay_k}")
        if self.synthetic_length < 100:
            raise ConfigError("synthetic_length must be at least 100 characters")


@dataclass(frozen=True)
class ModelConfig:
    kind: ModelKind = "fast"
    activation: Activation = "tanh"
    hidden_size: int = 32
    init: InitScheme = "uniform"

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ConfigError(f"model must be one of {', '.join(MODEL_KINDS)}, not {self.kind!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be tanh or relu, not {self.activation!r}")
        if not 1 <= self.hidden_size <= 8192:
            raise ConfigError(f"hidden size must be in 1..8192, not {self.hidden_size}")
        if self.init not in ("d2l", "uniform"):
            raise ConfigError(f"init must be 'd2l' or 'uniform', not {self.init!r}")
        if self.kind in ("gru", "lstm") and self.activation != "tanh":
            raise ConfigError(f"{self.kind.upper()} uses its own gates; activation must be tanh")


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
        if not (self.lr > 0 and self.lr < 1e4):
            raise ConfigError(f"lr must be in (0, 1e4), not {self.lr}")
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"optimizer must be sgd or adam, not {self.optimizer!r}")
        if not self.clip_theta > 0:
            raise ConfigError(f"clip theta must be > 0, not {self.clip_theta}")
        if not 1 <= self.batch_size <= 65536:
            raise ConfigError(f"batch size must be in 1..65536, not {self.batch_size}")
        if not 1 <= self.num_steps <= 4096:
            raise ConfigError(f"num_steps must be in 1..4096, not {self.num_steps}")
        if self.partition not in ("random", "sequential"):
            raise ConfigError(f"partition must be random or sequential, not {self.partition!r}")
        if self.windows_per_epoch < 1 or self.val_windows < 1:
            raise ConfigError("windows_per_epoch and val_windows must be >= 1")
        if self.max_nonfinite_in_row < 1:
            raise ConfigError("max_nonfinite_in_row must be >= 1")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, not {self.seed}")


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
