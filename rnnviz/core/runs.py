"""One training run, built from a :class:`RunConfig`: corpus, vocab, batches, model, trainer.

The session, the CLI and checkpoint restore all build runs here, so the three agree on what
a configuration means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnviz.core.batches import BatchSource
from rnnviz.core.config import ConfigError, RunConfig
from rnnviz.core.corpus import Corpus, load_corpus
from rnnviz.core.model import CharModel, build_model
from rnnviz.core.trainer import Trainer
from rnnviz.core.vocab import Vocab


@dataclass
class Run:
    config: RunConfig
    corpus: Corpus
    vocab: Vocab
    ids: np.ndarray
    batches: BatchSource
    model: CharModel
    trainer: Trainer
    # the parameters right after initialisation (CPU copies): forks start from these
    initial_params: dict[str, Tensor] = field(default_factory=dict)
    run_id: int = 0
    label: str = ""
    # the file of a model opened read-only (Session's OpenModel); "" for a run that trains
    opened: str = ""


def build_run(
    config: RunConfig,
    *,
    vocab: Vocab | None = None,
    corpus: Corpus | None = None,
    cache_dir: Path | None = None,
    initial_params: dict[str, Tensor] | None = None,
    run_id: int = 0,
    label: str = "",
) -> Run:
    """Load the corpus, build vocab, batches, model (seeded) and trainer; model on the device.

    ``vocab``: use this vocabulary instead of one built from the text (checkpoint restore).
    ``corpus``: an already loaded corpus (the session reuses it when only training settings
    change). ``initial_params``: start from these parameters instead of the seeded init, when
    their shapes fit (forks start from the main run's initialisation).
    """
    check_device(config.train.device)
    if corpus is None:
        corpus = load_corpus(config.corpus, cache_dir=cache_dir, seed=config.train.seed)
    if vocab is None:
        vocab = Vocab.from_text(corpus.text)
    ids = vocab.encode(corpus.text)
    # BatchSource refuses (CorpusError) a text too short for num_steps in either split
    batches = BatchSource(ids, config.train, config.corpus.val_fraction)
    model = build_model(len(vocab), config.model, config.train.seed)
    if initial_params is not None and params_fit(model, initial_params):
        with torch.no_grad():
            model.load_state_dict(initial_params, strict=True)
    kept = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    model.to(config.train.device)
    trainer = Trainer(model, batches, config.train)
    return Run(
        config=config,
        corpus=corpus,
        vocab=vocab,
        ids=ids,
        batches=batches,
        model=model,
        trainer=trainer,
        initial_params=kept,
        run_id=run_id,
        label=label,
    )


def same_corpus(a: RunConfig, b: RunConfig) -> bool:
    """Whether two configurations load the same text (synthetic text depends on the seed)."""
    if a.corpus != b.corpus:
        return False
    return not a.corpus.source.strip().startswith("synthetic:") or a.train.seed == b.train.seed


def check_device(device: str) -> None:
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"unknown device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: CUDA is not available on this machine")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r}: MPS is not available on this machine")


def params_fit(model: CharModel, params: dict[str, Tensor]) -> bool:
    """Whether ``params`` has exactly the model's names and shapes."""
    own = model.state_dict()
    return set(own) == set(params) and all(
        tuple(own[k].shape) == tuple(params[k].shape) for k in own
    )
