from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnviz.cli import main
from rnnviz.core.checkpoint import load_checkpoint

torch.set_num_threads(1)

TINY = [
    "--corpus", "synthetic:repeat", "--hidden", "16", "--batch-size", "8",
    "--num-steps", "8", "--quiet",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("train")
    ck, metrics = folder / "ck.safetensors", folder / "m.csv"
    rc = main(
        ["train", *TINY, "--max-steps", "5", "--metrics-out", str(metrics),
         "--checkpoint-out", str(ck)]
    )  # fmt: skip
    assert rc == 0
    return ck, metrics


def test_train_writes_metrics_and_checkpoint(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ck, metrics = trained
    with open(metrics, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames is not None
    required = "step loss ppl val_ppl grad_norm_before_clip grad_norm_after_clip clipped lr"
    assert {*required.split(), "tokens_per_s", "nonfinite"} <= set(reader.fieldnames)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    # validation ran at the end only (the epoch is 1,250 steps long)
    assert [r["val_ppl"] == "" for r in rows] == [True] * 4 + [False]
    assert float(rows[-1]["val_ppl"]) > 1.0
    assert all(r["nonfinite"] == "0" for r in rows)
    ckpt = load_checkpoint(ck)
    assert ckpt.step == 5 and ckpt.config.model.hidden_size == 16
    assert ckpt.config.model.kind == "fast"


def test_train_prints_epoch_lines_and_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["train", *TINY, "--max-steps", "4", "--partition", "sequential"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "epoch 1 (partial: 4/" in out and "val ppl" in out
    assert "done: 4 steps" in out and "tokens/s" in out and "final val ppl" in out


def test_probe_table_and_json(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ck, _ = trained
    assert main(["probe", "machine", "--checkpoint", str(ck), "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["pos", "char", "next"]
    assert len(lines) == 1 + len("machine")
    assert "bits" in lines[1]

    assert main(["probe", "machXne", "--checkpoint", str(ck), "--json", "--top-k", "4"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    T, V = 7, len(data["vocab"])
    assert data["text"] == "machXne" and data["unknown"] == [4]
    assert np.array(data["hidden"]).shape == (T, 16)
    probs = np.array(data["probs"])
    assert probs.shape == (T, V)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert len(data["topk"]) == T and len(data["topk"][0]) == 4
    ch, p = data["topk"][0][0]
    assert ch in data["vocab"] and 0 < p <= 1
    G = np.array(data["grad_flow"])
    assert G.shape == (T, T) and np.all(G[np.triu_indices(T, 1)] == 0)
    assert data["step_loss"][-1] is None and isinstance(data["step_loss"][0], float)
    assert "X" in captured.err  # the unknown character is named


def test_probe_only_unknown_characters_is_an_error(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ck, _ = trained
    assert main(["probe", "XYZ", "--checkpoint", str(ck)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: every character") and "Traceback" not in err


def test_sample(trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    ck, _ = trained
    assert main(["sample", "mach", "--checkpoint", str(ck), "--num-chars", "12"]) == 0
    text = capsys.readouterr().out.rstrip("\n")
    assert text.startswith("mach") and len(text) == 4 + 12
    args = ["sample", "ma", "--checkpoint", str(ck), "--temperature", "1.5", "--seed", "3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first  # seeded


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--model", "rnn"],
        ["train", "--hidden", "0"],
        ["train", "--lr", "abc"],
        ["train", "--epochs", "2", "--max-steps", "3"],
        ["probe", "abc"],
        ["sample"],
        ["nonsense"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", "1e6"], "lr must be"),
        (["--clip", "-1"], "--clip must be >= 0"),
        (["--model", "gru", "--activation", "relu"], "activation must be tanh"),
        (["--corpus", "/no/such/file.txt"], "file not found"),
        (["--corpus", "synthetic:nope"], "unknown synthetic corpus"),
        (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "x"], "device"),
    ],
)
def test_user_errors_exit_2_without_traceback(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", *TINY, "--max-steps", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and message in err and "Traceback" not in err


def test_short_corpus_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = tmp_path / "short.txt"
    short.write_text("a tiny text that is far too short " * 3)
    assert main(["train", *TINY, "--corpus", str(short), "--num-steps", "32"]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "num_steps" in err and "Traceback" not in err


def test_corrupt_checkpoint_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04\x95 definitely a pickle")
    assert main(["probe", "abc", "--checkpoint", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "pickles are never loaded" in err and "Traceback" not in err
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes((200).to_bytes(8, "little") + b'{"a": ')
    assert main(["sample", "abc", "--checkpoint", str(cut)]) == 2
    assert "truncated" in capsys.readouterr().err


def test_divergence_exits_3_and_saves_good_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ck, metrics = tmp_path / "div.safetensors", tmp_path / "div.csv"
    rc = main(
        ["train", *TINY, "--max-steps", "50", "--activation", "relu", "--clip", "0",
         "--lr", "9000", "--checkpoint-out", str(ck), "--metrics-out", str(metrics)]
    )  # fmt: skip
    assert rc == 3
    err = capsys.readouterr().err
    assert "diverged at step" in err and "before clipping was" in err
    assert "clipping is off" in err
    ckpt = load_checkpoint(ck)
    assert all(torch.isfinite(t).all() for t in ckpt.params.values())
    with open(metrics, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[-1]["nonfinite"] == "1"


def test_default_is_the_gui(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    seen: dict[str, object] = {}
    fake = types.ModuleType("rnnviz.gui.app")

    def run_app(
        argv: list[str],
        screenshot: str | None = None,
        train_steps: int = 100,
        options: object = None,
    ) -> int:
        seen.update(screenshot=screenshot, train_steps=train_steps, options=options)
        return 0

    fake.run_app = run_app  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rnnviz.gui.app", fake)
    assert main(["--screenshot", "shot.png", "--train-steps", "7"]) == 0
    assert seen["screenshot"] == "shot.png" and seen["train_steps"] == 7
    assert main([]) == 0
    assert seen["screenshot"] is None and seen["train_steps"] == 100


def test_the_window_state_comes_from_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--set/--probe/--size/--scheme/--then reach the window as LaunchOptions; a bad --set or
    --then without --screenshot is a one-line usage error."""
    from tests.window_stub import stub_window

    seen = stub_window(monkeypatch)
    argv = ["--screenshot", "s.png", "--set", "model.activation=relu", "--set", "train.lr=50"]
    argv += ["--set", "train.clip_enabled=false", "--probe", "abc", "--size", "1280x720"]
    argv += ["--scheme", "dark", "--then", "rollback", "--then", "resume-clipped"]
    assert main(argv) == 0
    options = seen[-1]
    assert options.config is not None
    assert options.config.model.activation == "relu" and options.config.train.lr == 50
    assert options.config.train.clip_enabled is False
    assert (options.probe_text, options.size, options.scheme) == ("abc", (1280, 720), "dark")
    assert options.then == ("rollback", "resume-clipped")
    for bad in (["--set", "train.lr=-1"], ["--set", "train.nope=1"], ["--then", "reset"]):
        assert main(["--screenshot", "s.png", *bad] if bad[0] == "--set" else bad) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and err.count("\n") == 1, err
    assert main(["--size", "12x"]) == 2
    # the lecture's states (issue 14)
    argv = ["--screenshot", "s.png", "--lesson", "chapter:3", "--full", "unrolled"]
    assert main([*argv, "--show", "softmax", "--cursor", "4", "--mlp"]) == 0
    options = seen[-1]
    assert (options.lesson, options.lesson_step, options.full) == ("chapter", 2, "unrolled")
    assert (options.show, options.cursor, options.mlp) == (("softmax",), 4, True)
    assert main(["--lesson", "my.json"]) == 0 and seen[-1].lesson == "my.json"
    assert main(["--lesson", "chapter:0"]) == 2
    assert "steps count from 1" in capsys.readouterr().err
    assert main(["--theme", "light", "--lecture", "--zoom", "125"]) == 0
    options = seen[-1]
    assert (options.scheme, options.lecture, options.zoom) == ("light", True, 1.25)
    assert not seen[-2].lecture and seen[-2].zoom is None
    assert main(["--zoom", "300"]) == 2
    assert "must be in 67..200" in capsys.readouterr().err


def test_gui_missing_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "rnnviz.gui.app", None)
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "window is not available" in err and "rnnviz train" in err


def test_bench_is_dispatched(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    seen = {}
    fake = types.ModuleType("rnnviz.bench")

    def fake_main(args: object) -> int:
        seen["quick"] = getattr(args, "quick", None)
        seen["json"] = getattr(args, "json", None)
        return 0

    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rnnviz.bench", fake)
    assert main(["bench", "--quick", "--json"]) == 0
    assert seen == {"quick": True, "json": True}


def test_bench_missing_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "rnnviz.bench", None)  # import raises ImportError
    assert main(["bench"]) == 2
    assert "not available" in capsys.readouterr().err


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys; from rnnviz.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "usage: rnnviz" in out.stdout and out.stdout.rstrip().endswith("ok")


# ---------------------------------------------------------------------- issue 12: 2, 3, 8, 9


def _initial_params(*extra: str) -> dict[str, torch.Tensor]:
    """The parameters a run with these settings starts from (the seeded initialisation)."""
    from rnnviz.cli import build_parser, config_from_args
    from rnnviz.core.runs import build_run

    run = build_run(config_from_args(build_parser().parse_args(["train", *TINY, *extra])))
    return {k: v.detach().clone() for k, v in run.model.state_dict().items()}


@pytest.mark.parametrize("model", ["gru", "lstm", "fast"])
def test_finite_but_huge_loss_ends_as_diverged(
    model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """lr 50, clipping off: the loss is finite but astronomically high (no NaN ever)."""
    ck = tmp_path / "huge.safetensors"
    settings = ["--model", model, "--lr", "50", "--clip", "0"]
    rc = main(["train", *TINY, *settings, "--max-steps", "400", "--checkpoint-out", str(ck)])
    err = capsys.readouterr().err
    assert rc == 3, err
    assert "Traceback" not in err
    assert "diverged at step" in err and "worse than uniform guessing" in err
    assert "before clipping was" in err and "clipping is off" in err
    assert "the last good parameters" in err
    ckpt = load_checkpoint(ck)
    assert ckpt.step < 100  # stopped by the rule, not run to the end
    start = _initial_params(*settings)
    assert ckpt.step == 0 and all(torch.equal(ckpt.params[k], v) for k, v in start.items())


def test_epoch_report_survives_a_loss_beyond_exp_range(capsys: pytest.CaptureFixture[str]) -> None:
    """math.exp(mean loss) raised OverflowError in the epoch line (a loss of ~760 nats)."""
    import types

    from rnnviz.cli import _TrainReport

    run = types.SimpleNamespace(config=None)
    report = _TrainReport(run, 10, quiet=True)  # type: ignore[arg-type]
    report.epoch_losses = [760.0, 800.0]
    report.epoch_end(0, 1, math.inf)
    report.close()
    assert "train ppl inf, val ppl inf" in capsys.readouterr().out


def test_lr_1000_for_5_steps_is_not_success(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ck = tmp_path / "ck.safetensors"
    rc = main(["train", *TINY, "--lr", "1000", "--max-steps", "5", "--checkpoint-out", str(ck)])
    captured = capsys.readouterr()
    assert rc == 3, captured.err
    assert "done:" not in captured.out
    assert "final validation perplexity" in captured.err and "uniform guessing" in captured.err
    assert load_checkpoint(ck).step == 0  # the last good point: before the first update


def test_loss_spike_is_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rnnviz.core.trainer import Trainer

    real = Trainer.train_step

    def step(self: Trainer) -> object:
        record = real(self)
        if self.step in (7, 8, 12):  # as the trainer flags one: loss > factor x median
            self.last_spike, self.last_spike_median = True, record.loss / 20
        return record

    monkeypatch.setattr(Trainer, "train_step", step)
    assert main(["train", *TINY, "--max-steps", "15"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("warning: loss spike at step") == 2  # 7 (8 continues it), 12
    assert "loss spike at step 7" in captured.err and "10x the recent median" in captured.err
    assert "3 loss spike(s), the first at step 7" in captured.out


def test_outputs_checked_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rnnviz.core.trainer import Trainer

    steps: list[int] = []
    real = Trainer.train_step
    monkeypatch.setattr(Trainer, "train_step", lambda self: steps.append(1) or real(self))
    cases = {
        "--checkpoint-out": [str(tmp_path / "missing" / "ck.safetensors"), str(tmp_path),
                             "/dev/full", "/proc/rnnviz-ck.safetensors", ""],
        "--metrics-out": [str(tmp_path / "missing" / "m.csv"), str(tmp_path), "/dev/full",
                          "/proc/rnnviz-m.csv", ""],
    }  # fmt: skip
    for flag, paths in cases.items():
        for path in paths:
            assert main(["train", *TINY, "--max-steps", "2", flag, path]) == 2, (flag, path)
            err = capsys.readouterr().err
            assert err.startswith("error: ") and err.count("\n") == 1, err
            assert flag in err
    same = str(tmp_path / "same")
    assert main(["train", *TINY, "--checkpoint-out", same, "--metrics-out", same]) == 2
    assert "same file" in capsys.readouterr().err
    assert steps == []


def test_metrics_failing_at_the_end_keeps_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import errno

    from rnnviz.core.history import MetricsCsvWriter

    real = MetricsCsvWriter.write

    def write(self: MetricsCsvWriter, record: object) -> None:
        if self.rows_written >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, record)  # type: ignore[arg-type]

    monkeypatch.setattr(MetricsCsvWriter, "write", write)
    ck, metrics = tmp_path / "ck.safetensors", tmp_path / "m.csv"
    rc = main(["train", *TINY, "--max-steps", "6", "--checkpoint-out", str(ck),
               "--metrics-out", str(metrics)])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 4, err
    assert "Traceback" not in err
    assert f"--metrics-out {metrics}: write failed after 3 rows: No space left on device" in err
    assert f"the model (step 6) went to {ck}" in err
    assert load_checkpoint(ck).step == 6


def test_checkpoint_failing_at_the_end_saves_the_model_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import errno

    from rnnviz.core import checkpoint

    real = checkpoint.save_run
    ck = tmp_path / "ck.safetensors"

    def save_run(path: object, run: object) -> None:
        if Path(str(path)) == ck:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, run)  # type: ignore[arg-type]

    monkeypatch.setattr(checkpoint, "save_run", save_run)
    metrics = tmp_path / "m.csv"
    rc = main(["train", *TINY, "--max-steps", "3", "--checkpoint-out", str(ck),
               "--metrics-out", str(metrics)])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 4, err
    assert f"--checkpoint-out {ck}: No space left on device" in err
    rescued = Path(err.split("went to ")[1].split()[0])
    try:
        assert load_checkpoint(rescued).step == 3
    finally:
        rescued.unlink()
    assert len(metrics.read_text().splitlines()) == 4  # the other output is complete


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seed", str(2**64)], "must be in 0..2147483647"),
        (["--seed", str(2**31)], "must be in 0..2147483647"),
        (["--seed", "3000000000"], "must be in 0..2147483647"),
        (["--device", "meta"], "use cpu, cuda, cuda:N or mps"),
        (["--device", "cuda:99999"], "use cpu, cuda, cuda:N or mps"),
        (["--max-steps", str(2**70)], "must be in 1..1000000000"),
        (["--epochs", str(2**70)], "must be in 1..1000000"),
        (["--val-every", str(2**70)], "must be in 1..1000000000"),
        (["--seed", "9" * 5000], "is not an integer"),
    ],
)
def test_train_arguments_out_of_range_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", *TINY, "--max-steps", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err) < 2000  # a 5,000-digit number is not echoed whole


def test_sample_arguments_out_of_range_exit_2(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ck = str(trained[0])
    for argv, message in [
        (["--seed", str(2**64)], "must be in 0..2147483647"),
        (["--num-chars", str(2**70)], "must be in 0..1000000"),
        (["--temperature", "1e-320"], "must be 0 (greedy) or in 0.001..1000"),
        (["--temperature", "1e308"], "must be 0 (greedy) or in 0.001..1000"),
        (["--device", "meta"], "use cpu, cuda, cuda:N or mps"),
    ]:
        assert main(["sample", "mach", "--checkpoint", ck, *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


def test_probe_longer_than_the_gradient_flow_limit(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from rnnviz.core.probe import MAX_GRAD_FLOW_CHARS

    ck = str(trained[0])
    text = ("machine " * 1000)[: MAX_GRAD_FLOW_CHARS + 100]
    assert main(["probe", text, "--checkpoint", ck]) == 0  # the table: no gradient flow needed
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(text) + 1


def test_probe_json_is_capped(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from rnnviz.cli import JSON_GRAD_FLOW_MAX_CHARS

    ck = str(trained[0])
    text = ("machine " * 512)[:4096]
    assert main(["probe", text, "--checkpoint", ck, "--json"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out) < 10 * 2**20  # was ~95 MB with the 4096 x 4096 gradient flow
    data = json.loads(captured.out)
    assert data["grad_flow"] is None and str(JSON_GRAD_FLOW_MAX_CHARS) in data["grad_flow_omitted"]
    assert "gradient flow" in captured.err and len(data["hidden"]) == 4096
    short = text[:JSON_GRAD_FLOW_MAX_CHARS]
    assert main(["probe", short, "--checkpoint", ck, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "grad_flow_omitted" not in data
    assert np.asarray(data["grad_flow"]).shape == (len(short), len(short))
    # past the JSON budget: refused, with the limit and what to do
    huge = "machine " * 16_000
    assert main(["probe", huge, "--checkpoint", ck, "--json"]) == 2
    err = capsys.readouterr().err
    assert "takes at most" in err and "drop --json" in err
