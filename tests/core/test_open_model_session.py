"""The engine's OpenModel: an engineer's PyTorch model as the main run, read-only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rnnviz.core.messages import (
    Failure,
    Fork,
    OpenModel,
    ParamSnapshot,
    ProbeReply,
    ProbeRequest,
    Reset,
    Rollback,
    RunInfo,
    Start,
    Step,
)
from tests.core.test_session import make
from tests.core.test_torch_model import HIDDEN, TEXT, TOL, VOCAB, make_net, reference, save_net

torch.set_num_threads(1)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_an_opened_model_is_the_main_run_and_probes_as_the_module(
    tmp_path: Path, kind: str
) -> None:
    net = make_net(kind=kind)
    weights, spec = save_net(tmp_path, net)
    session, rec = make()
    session.handle(Step(2))
    session.run_until_idle()
    session.handle(Fork({"train": {"clip_enabled": False}}, label="no clip"))
    rec.clear()

    session.handle(OpenModel(str(weights), str(spec)))
    assert not rec.of(Failure)
    assert list(session.runs) == [0]  # the compare run went with the old main run
    (info,) = rec.of(RunInfo)
    assert info.opened == str(weights) and info.label == "opened: model.safetensors"
    assert (
        info.config.model.kind == {"rnn": "scratch"}.get(kind, kind)
        and info.config.model.hidden_size == HIDDEN
    )
    assert info.vocab_tokens[0] == "<unk>" and sorted(info.vocab_tokens) == VOCAB
    assert info.config.corpus == session.main.config.corpus  # the corpus stays
    snapshot = rec.of(ParamSnapshot)[-1]
    assert snapshot.step == 0 and snapshot.vocab_tokens == info.vocab_tokens

    session.handle(ProbeRequest(TEXT))
    (reply,) = rec.of(ProbeReply)
    hidden, probs, G = reference(net, TEXT)
    order = [VOCAB.index(tok) for tok in info.vocab_tokens]
    np.testing.assert_allclose(reply.result.hidden, hidden, atol=TOL, rtol=0)
    np.testing.assert_allclose(reply.result.probs, probs[:, order], atol=TOL, rtol=0)
    assert reply.result.grad_flow is not None
    np.testing.assert_allclose(reply.result.grad_flow, G, atol=TOL, rtol=0)


def test_nothing_trains_an_opened_model_and_reset_trains_a_new_one(tmp_path: Path) -> None:
    net = make_net(kind="lstm")
    weights, spec = save_net(tmp_path, net)
    session, rec = make()
    session.handle(OpenModel(str(weights), str(spec)))
    opened = session.main
    before = {k: v.clone() for k, v in opened.model.state_dict().items()}
    for command in (Start(), Step(1), Fork({"train": {"lr": 0.5}}), Rollback(0)):
        rec.clear()
        session.handle(command)
        session.run_until_idle()
        (failure,) = rec.of(Failure)
        assert "read-only" in failure.message and "Reset (Ctrl+R)" in failure.message
        assert "\n" not in failure.message and not failure.fatal
    assert session.main is opened and opened.trainer.step == 0 and list(session.runs) == [0]
    for name, value in opened.model.state_dict().items():
        assert torch.equal(value, before[name])

    rec.clear()
    session.handle(Reset(None))
    (info,) = rec.of(RunInfo)
    assert info.opened == "" and info.config.model.kind == "lstm"  # the opened model's shape
    assert "<unk>" not in info.vocab_tokens or info.vocab_tokens[0] == "<unk>"
    session.handle(Step(2))
    session.run_until_idle()
    assert session.main.trainer.step == 2


def test_a_bad_model_file_is_one_line_and_keeps_the_run(tmp_path: Path) -> None:
    session, rec = make()
    session.handle(Step(2))
    session.run_until_idle()
    before = session.main
    pickled = tmp_path / "model.pt"
    pickled.write_bytes(b"\x80\x04\x95not really a pickle")
    spec = save_net(tmp_path, make_net(kind="gru"))[1]
    rec.clear()
    session.handle(OpenModel(str(pickled), str(spec)))
    (failure,) = rec.of(Failure)
    assert "pickle" in failure.message and "weights_only=True" in failure.message
    assert not failure.message.startswith("TorchModelError")
    assert session.main is before and before.trainer.step == 2
    rec.clear()
    session.handle(OpenModel(str(tmp_path / "missing.safetensors"), str(spec)))
    (failure,) = rec.of(Failure)
    assert "missing.safetensors" in failure.message and "\n" not in failure.message
    assert session.main is before
