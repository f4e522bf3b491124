"""rnnviz.telemetry driven from a plain PyTorch loop (nn.LSTM + nn.Linear, CPU, tiny sizes)."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from rnnviz import telemetry
from rnnviz.core.history import (
    FLOW_PREFIX,
    PARAM_PREFIX,
    MetricHistory,
    flow_columns,
    read_metrics_csv,
)

V, H, B, T = 7, 5, 3, 6


class Net(nn.Module):
    def __init__(self, layers: int = 1) -> None:
        super().__init__()
        self.lstm = nn.LSTM(V, H, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(H, V)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.fc(out)


def batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, V, generator=g)
    y = torch.randint(0, V, (B, T), generator=g)
    return x, y


def loss_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x).flatten(0, 1), y.flatten())


def backward(model: nn.Module, seed: int, scale: float = 1.0) -> None:
    model.zero_grad()
    x, y = batch(seed)
    (scale * loss_of(model, x, y)).backward()


# ---------------------------------------------------------------- clipping


@pytest.mark.parametrize(("scale", "max_norm"), [(1.0, 0.05), (1.0, 100.0), (1e4, 1.0)])
def test_clipping_equals_torch_clip_grad_norm(scale: float, max_norm: float) -> None:
    torch.manual_seed(0)
    ours = Net()
    theirs = copy.deepcopy(ours)
    backward(ours, 1, scale)
    backward(theirs, 1, scale)
    report = telemetry.clip_grad_norm(ours, max_norm)
    total = torch.nn.utils.clip_grad_norm_(theirs.parameters(), max_norm)
    assert report.norm_before == float(total)
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None
        assert torch.equal(p.grad, q.grad), name
    after = float(torch.nn.utils.get_total_norm([p.grad for p in theirs.parameters()]))
    assert report.norm_after == after
    assert report.clipped == (float(total) > max_norm)
    assert report.max_norm == max_norm and report.enabled and not report.nonfinite
    if report.clipped:
        assert report.norm_after == pytest.approx(max_norm, rel=1e-4)
        assert report.norm_before > report.norm_after
    else:
        assert report.norm_after == report.norm_before


def test_per_parameter_norms_are_each_grads_norm_before_clipping() -> None:
    torch.manual_seed(0)
    model = Net(layers=2)
    backward(model, 2, scale=100.0)
    expected = {n: float(p.grad.norm()) for n, p in model.named_parameters() if p.grad is not None}
    report = telemetry.clip_grad_norm(model, 0.01)
    assert report.clipped
    assert list(report.param_norms) == [n for n, _ in model.named_parameters()]
    for name, value in expected.items():
        assert report.param_norms[name] == pytest.approx(value, rel=1e-6), name
    total = math.sqrt(sum(v * v for v in expected.values()))
    assert report.norm_before == pytest.approx(total, rel=1e-5)
    layers = report.layer_norms()
    assert set(layers) == {"lstm.l0", "lstm.l1", "fc"}
    fc = math.hypot(expected["fc.weight"], expected["fc.bias"])
    assert layers["fc"] == pytest.approx(fc, rel=1e-9)
    name, value = report.largest() or ("", 0.0)
    assert value == max(report.param_norms.values()) and report.param_norms[name] == value


def test_parameter_forms_and_measure_only() -> None:
    torch.manual_seed(0)
    model = Net()
    backward(model, 3)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    by_module = telemetry.grad_norms(model)
    assert not by_module.enabled and not by_module.clipped and math.isnan(by_module.max_norm)
    assert by_module.norm_after == by_module.norm_before
    for n, p in model.named_parameters():
        assert torch.equal(p.grad, grads[n])  # measured, not touched
    pairs = telemetry.grad_norms(list(model.named_parameters()))
    mapping = telemetry.grad_norms(dict(model.named_parameters()))
    plain = telemetry.grad_norms(model.parameters())
    assert pairs.param_norms == mapping.param_norms == by_module.param_norms
    assert list(plain.param_norms) == [f"param{i}" for i in range(len(grads))]
    assert plain.norm_before == by_module.norm_before
    model.fc.bias.grad = None  # a parameter without a gradient is left out, as torch does
    assert "fc.bias" not in telemetry.grad_norms(model).param_norms
    assert telemetry.layer_of("weight_hh_l0_reverse") == "l0_reverse"
    assert telemetry.layer_of("encoder.rnn.bias_ih_l3") == "encoder.rnn.l3"
    assert telemetry.layer_of("scale") == "scale"


def test_nonfinite_gradients_are_flagged_and_left_alone() -> None:
    torch.manual_seed(0)
    model = Net()
    backward(model, 4)
    model.lstm.weight_hh_l0.grad[0, 0] = math.inf
    model.fc.bias.grad[1] = math.nan
    kept = {n: p.grad.clone() for n, p in model.named_parameters()}
    report = telemetry.clip_grad_norm(model, 1.0)
    assert report.nonfinite and not report.clipped
    assert math.isnan(report.norm_before) and math.isnan(report.norm_after)
    for n, p in model.named_parameters():
        assert torch.equal(p.grad, kept[n]) or torch.equal(p.grad.isnan(), kept[n].isnan())
    assert math.isinf(report.param_norms["lstm.weight_hh_l0"])
    assert math.isnan(report.param_norms["fc.bias"])
    assert math.isfinite(report.param_norms["fc.weight"])
    assert report.largest() is not None
    assert report.largest()[0] in ("lstm.weight_hh_l0", "fc.bias")  # type: ignore[index]


# ---------------------------------------------------------------- gradient flow


def manual_flow(model: Net, x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
    """‖∂L/∂h_t‖ by an explicit LSTMCell unroll with the same weights and autograd.grad."""
    lstm = model.lstm
    cell = nn.LSTMCell(V, H)
    with torch.no_grad():
        cell.weight_ih.copy_(lstm.weight_ih_l0)
        cell.weight_hh.copy_(lstm.weight_hh_l0)
        cell.bias_ih.copy_(lstm.bias_ih_l0)
        cell.bias_hh.copy_(lstm.bias_hh_l0)
    h = torch.zeros(B, H)
    c = torch.zeros(B, H)
    hs = []
    for t in range(T):
        h, c = cell(x[:, t], (h, c))
        hs.append(h)
    logits = model.fc(torch.stack(hs, dim=1))
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
    grads = torch.autograd.grad(loss, hs)
    flow = np.array([float(g.norm(dim=-1).mean()) for g in grads])
    return flow, loss.detach()


def test_flow_probe_equals_autograd_on_an_explicit_unroll() -> None:
    torch.manual_seed(0)
    model = Net()
    x, y = batch(5)
    with torch.no_grad():
        fused = model(x)
    with telemetry.FlowProbe(model.lstm) as probe:
        logits = model(x)
    assert "forward" not in vars(model.lstm)  # the module is itself again
    torch.testing.assert_close(logits, fused)
    assert np.isnan(probe.values).all()  # no backward yet
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
    loss.backward()
    expected, manual_loss = manual_flow(model, x, y)
    torch.testing.assert_close(loss.detach(), manual_loss)
    assert probe.values.shape == (T,)
    np.testing.assert_allclose(probe.values, expected, rtol=1e-5)
    # the total derivative, not the fused output's own gradient (the part through the head
    # at t only): the two agree at the last step, where no later step adds to it
    fused_model = copy.deepcopy(model)
    fused_model.zero_grad()
    out, _ = fused_model.lstm(x)
    out.retain_grad()
    F.cross_entropy(fused_model.fc(out).flatten(0, 1), y.flatten()).backward()
    assert out.grad is not None
    direct = out.grad.norm(dim=-1).mean(dim=0).numpy()
    np.testing.assert_allclose(probe.values[-1], direct[-1], rtol=1e-5)
    assert not np.allclose(probe.values[:-1], direct[:-1], rtol=1e-3)
    # the parameters' gradients are the fused forward's
    for (n, p), q in zip(model.named_parameters(), fused_model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=n)


CELLS: dict[type[nn.RNNBase], type[nn.Module]] = {
    nn.RNN: nn.RNNCell,
    nn.GRU: nn.GRUCell,
    nn.LSTM: nn.LSTMCell,
}


@pytest.mark.parametrize("cls", [nn.RNN, nn.GRU, nn.LSTM])
def test_flow_probe_stacked_and_time_major(cls: type[nn.RNNBase]) -> None:
    torch.manual_seed(0)
    rnn = cls(V, H, num_layers=2)  # time-major: (T, B, V)
    head = nn.Linear(H, V)
    x, y = batch(6)
    x = x.transpose(0, 1).contiguous()
    target = y.transpose(0, 1).flatten()
    with torch.no_grad():
        fused_out, fused_state = rnn(x)
    with telemetry.FlowProbe(rnn) as probe:
        out, state = rnn(x)
    torch.testing.assert_close(out, fused_out)
    if isinstance(state, tuple):
        for a, b in zip(state, fused_state, strict=True):
            torch.testing.assert_close(a, b)
    else:
        torch.testing.assert_close(state, fused_state)
    F.cross_entropy(head(out).flatten(0, 1), target).backward()

    # the other way: two cells per step with the same weights, autograd.grad on the top ones
    cells = [CELLS[cls](V if k == 0 else H, H) for k in range(2)]
    with torch.no_grad():
        for k, cell in enumerate(cells):
            for part in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, part).copy_(getattr(rnn, f"{part}_l{k}"))
    states: list[object] = [None, None]
    tops = []
    for t in range(T):
        inp = x[t]
        for k, cell in enumerate(cells):
            states[k] = cell(inp, states[k])
            inp = states[k][0] if isinstance(states[k], tuple) else states[k]  # type: ignore[index]
        tops.append(inp)
    loss = F.cross_entropy(head(torch.stack(tops)).flatten(0, 1), target)
    grads = torch.autograd.grad(loss, tops)
    expected = np.array([float(g.norm(dim=-1).mean()) for g in grads])
    np.testing.assert_allclose(probe.values, expected, rtol=1e-5)
    assert np.isfinite(probe.values).all()


def test_flow_probe_refuses_what_it_cannot_measure() -> None:
    with pytest.raises(ValueError, match="unidirectional"):
        telemetry.FlowProbe(nn.GRU(V, H, bidirectional=True))
    with pytest.raises(TypeError):
        telemetry.FlowProbe(nn.Linear(V, H))  # type: ignore[arg-type]
    rnn = nn.RNN(V, H)
    with pytest.raises(ValueError, match="3-D"), telemetry.FlowProbe(rnn):
        rnn(torch.zeros(T, V))
    assert "forward" not in vars(rnn)


# ---------------------------------------------------------------- the CSV, from a plain loop


def test_plain_loop_csv_reads_back_equal(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    path = tmp_path / "run.csv"
    logged = []
    flows = []
    with telemetry.TelemetryLog(path, flush_every=2) as log:
        for step in range(1, 6):
            x, y = batch(step)
            opt.zero_grad()
            with telemetry.FlowProbe(model.lstm) as flow:
                logits = model(x)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
            loss.backward()
            if step == 4:  # a bad step: flagged, skipped, counted
                model.lstm.weight_hh_l0.grad[0, 0] = math.nan
            report = telemetry.clip_grad_norm(model, max_norm=0.25)
            if not report.nonfinite:
                opt.step()
            flows.append(flow.values)
            val = 9.5 if step % 2 == 0 else None
            logged.append(
                log.log(step, loss=loss.item(), report=report, lr=0.5, val_ppl=val, flow=flow)
            )
    assert log.rows_written == 5 and log.nonfinite_total == 1
    assert log.param_names == [n for n, _ in model.named_parameters()]

    history = MetricHistory.from_csv(path)
    cols = history.columns()
    np.testing.assert_array_equal(cols["step"], [1, 2, 3, 4, 5])
    for column, attr in [
        ("loss", "loss"),
        ("ppl", "ppl"),
        ("grad_norm_before_clip", "grad_norm_before_clip"),
        ("grad_norm_after_clip", "grad_norm_after_clip"),
        ("clipped", "clipped"),
        ("lr", "lr"),
        ("clip_theta", "clip_theta"),
        ("clip_enabled", "clip_enabled"),
        ("nonfinite", "nonfinite"),
        ("nonfinite_total", "nonfinite_total"),
        ("wall_s", "wall_s"),
    ]:
        np.testing.assert_array_equal(cols[column], [getattr(r, attr) for r in logged], column)
    np.testing.assert_array_equal(cols["val_ppl"], [np.nan, 9.5, np.nan, 9.5, np.nan])
    for name in log.param_names:
        np.testing.assert_array_equal(
            cols[PARAM_PREFIX + name], [r.param_grad_norms[name] for r in logged], name
        )
    assert cols["nonfinite"].tolist() == [False, False, False, True, False]
    assert cols["clipped"].tolist() == [True, False, False, False, True]
    assert not cols["clipped"][3] and np.isnan(cols["grad_norm_before_clip"][3])
    assert all(np.isfinite(f).all() for f in flows)
    # the time-step gradient flow, a column per position, as the window reads it
    T = len(flows[0])
    for t in range(T):
        np.testing.assert_array_equal(cols[f"{FLOW_PREFIX}{t}"], [f[t] for f in flows])
    steps, flow = flow_columns(cols)
    np.testing.assert_array_equal(steps, [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(flow, np.stack(flows, axis=1))
    np.testing.assert_array_equal(logged[0].grad_flow, flows[0])

    # the same history, written by rnnviz's own to_csv, is the same file
    again = tmp_path / "again.csv"
    history.to_csv(again)
    assert again.read_bytes() == path.read_bytes()
    raw = read_metrics_csv(path)
    assert list(raw) == history.column_names()


def test_log_without_report_and_later_parameters(tmp_path: Path) -> None:
    path = tmp_path / "bare.csv"
    log = telemetry.TelemetryLog(path)
    log.log(1, loss=2.0)
    report = telemetry.ClipReport(1.0, 1.0, False, 2.0, True, False, {"w": 1.0})
    with pytest.warns(UserWarning, match="grad_norm:w"):
        log.log(2, loss=math.inf, report=report, wall_s=3.0)
    log.log(3, loss=1.5, report=report)  # warned once only
    log.close()
    log.close()  # a second close is harmless
    cols = MetricHistory.from_csv(path).columns()
    assert "grad_norm:w" not in cols
    assert np.isnan(cols["grad_norm_before_clip"][0]) and cols["grad_norm_before_clip"][1] == 1.0
    assert cols["nonfinite"].tolist() == [False, True, False]
    assert cols["wall_s"][1] == 3.0 and math.isinf(cols["ppl"][1])
    empty = tmp_path / "empty.csv"
    telemetry.TelemetryLog(empty).close()
    assert len(MetricHistory.from_csv(empty)) == 0


def test_telemetry_never_imports_qt() -> None:
    code = "import sys, rnnviz.telemetry; print(any(m.startswith('PySide6') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
