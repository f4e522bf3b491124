"""rnnviz's plain SGD is torch.optim.SGD (no momentum) bit for bit, and training with it
never imports torch._dynamo (the second of start-up it costs: core/sgd.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from rnnviz.core.sgd import PlainSGD


def _params(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(5, 3, generator=g).requires_grad_(), torch.randn(3, generator=g)]


def test_a_step_equals_torch_optim_sgd_bit_for_bit() -> None:
    ours, theirs = _params(0), _params(0)
    theirs[1].requires_grad_()
    ours[1].requires_grad_()
    mine, ref = PlainSGD(ours, lr=0.7), torch.optim.SGD(theirs, lr=0.7, foreach=False)
    for step in range(5):
        g = torch.Generator().manual_seed(10 + step)
        grads = [torch.randn(p.shape, generator=g) for p in ours]
        for p, q, grad in zip(ours, theirs, grads, strict=True):
            p.grad, q.grad = grad.clone(), grad.clone()
        ours[1].grad = None if step == 2 else ours[1].grad  # a parameter without a gradient
        theirs[1].grad = None if step == 2 else theirs[1].grad
        mine.step()
        ref.step()
        for p, q in zip(ours, theirs, strict=True):
            assert torch.equal(p, q)


def test_the_state_dict_has_torch_optims_layout_and_restores_the_lr() -> None:
    params = _params(1)
    sgd = PlainSGD(params, lr=0.5)
    saved = sgd.state_dict()
    assert saved == {"state": {}, "param_groups": [{"lr": 0.5, "params": [0, 1]}]}
    sgd.param_groups[0]["lr"] = 2.0
    sgd.load_state_dict(saved)
    assert sgd.param_groups[0]["lr"] == 0.5
    # torch.optim.SGD's own state dict (an older checkpoint's) loads too
    sgd.load_state_dict(torch.optim.SGD(_params(2), lr=0.25).state_dict())
    assert sgd.param_groups[0]["lr"] == 0.25
    with pytest.raises(ValueError, match="keeps no state"):
        sgd.load_state_dict({"state": {0: {"momentum_buffer": torch.zeros(1)}}})


def test_training_with_sgd_never_imports_torch_dynamo() -> None:
    code = (
        "import sys\n"
        "from rnnviz.cli import main\n"
        "assert main(['train', '--corpus', 'synthetic:repeat', '--hidden', '8', '--batch-size',"
        " '8', '--num-steps', '8', '--max-steps', '5', '--val-every', '5', '--quiet']) == 0\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
