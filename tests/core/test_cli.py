from __future__ import annotations

import csv
import json
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

    def run_app(argv: list[str], screenshot: str | None = None, train_steps: int = 100) -> int:
        seen.update(screenshot=screenshot, train_steps=train_steps)
        return 0

    fake.run_app = run_app  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rnnviz.gui.app", fake)
    assert main(["--screenshot", "shot.png", "--train-steps", "7"]) == 0
    assert seen == {"screenshot": "shot.png", "train_steps": 7}
    assert main([]) == 0
    assert seen == {"screenshot": None, "train_steps": 100}


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
