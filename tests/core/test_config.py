"""RunConfig overrides from the command line (rnnviz --set)."""

import pytest


def test_overrides_name_what_is_wrong() -> None:
    from rnnviz.core.config import ConfigError, RunConfig, with_overrides

    config = with_overrides(
        RunConfig(), ["model.kind=lstm", "train.clip_theta=0.5", "corpus.source=synthetic:delay"]
    )
    assert (config.model.kind, config.train.clip_theta) == ("lstm", 0.5)
    assert config.corpus.source == "synthetic:delay"
    for item, words in (
        ("lr=5", "SECTION.FIELD=VALUE"),
        ("net.lr=5", "sections"),
        ("train.speed=5", "clip_theta"),
        ("train.lr=nan", "lr"),
        ("model.hidden_size=0", "hidden size"),
    ):
        with pytest.raises(ConfigError, match=words):
            with_overrides(RunConfig(), [item])
