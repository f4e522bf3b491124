"""rnnviz train --task NAME, probe of a task's checkpoint, and their refusals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from rnnviz.cli import TASK_CHOICES, main
from rnnviz.core.checkpoint import load_checkpoint
from rnnviz.core.config import TASKS

torch.set_num_threads(1)


def _train(tmp: Path, task: str, *extra: str) -> Path:
    ck = tmp / f"{task}.safetensors"
    rc = main(["train", "--task", task, "--quiet", "--checkpoint-out", str(ck), *extra])
    assert rc == 0
    return ck


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("tasks")
    small = ["--hidden", "16", "--max-steps", "30"]
    return {
        "names": _train(tmp, "names", *small),
        "tagging": _train(tmp, "tagging", "--bidirectional", *small),
        "name_gen": _train(tmp, "name_gen", *small),
        "dates": _train(tmp, "dates", *small),
    }


def test_the_cli_names_every_task_core_has() -> None:
    assert TASK_CHOICES == TASKS


def test_train_prints_the_metric_and_the_checkpoint_holds_the_task(
    checkpoints: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    for task, ck in checkpoints.items():
        ckpt = load_checkpoint(ck)
        assert ckpt.task == task and ckpt.step == 30
        assert ckpt.config.model.kind == "gru" and ckpt.config.model.hidden_size == 16
    assert load_checkpoint(checkpoints["tagging"]).config.model.bidirectional


def test_train_stops_at_the_target_and_reports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = tmp_path / "m.csv"
    rc = main(["train", "--task", "tagging", "--bidirectional", "--quiet", "--hidden", "16",
               "--val-every", "20", "--metrics-out", str(metrics)])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    first = out.splitlines()[0]
    assert first.startswith("tagging: held-out per-character accuracy ") and "reached" in first
    assert float(first.split()[4]) >= 0.995
    assert "per-position accuracy" in out
    with open(metrics, newline="") as fh:
        rows = list(csv.DictReader(fh))
    scored = [float(r["val_metric"]) for r in rows if r["val_metric"]]
    assert scored and scored[-1] >= 0.995 and len(rows) % 20 == 0


def test_probe_json_works_for_every_task(
    checkpoints: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    texts = {"names": "Schmidt", "tagging": "bado ki.", "name_gen": "German", "dates": "mar 3 2020"}
    for task, text in texts.items():
        capsys.readouterr()
        assert main(["probe", "--checkpoint", str(checkpoints[task]), text, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["task"] == task and out["text"] == text
        if task == "names":
            assert [p["prefix"] for p in out["prefixes"]][:3] == ["S", "Sc", "Sch"]
            assert len(out["probs"]) == 9 and out["prediction"] in out["languages"]
            assert abs(sum(out["probs"]) - 1) < 1e-4
        elif task == "tagging":
            assert len(out["probs"]) == len(text) and len(out["predicted"]) == len(text)
        elif task == "name_gen":
            assert out["language"] == "German"
            assert len(out["probs"]) == len(out["chars"]) + int(out["ended"])
        else:
            assert isinstance(out["output"], str) and out["read"] == "mar 3 2020"
        # the table too
        assert main(["probe", "--checkpoint", str(checkpoints[task]), text]) == 0


@pytest.mark.parametrize(
    ("task", "text", "message"),
    [
        ("names", "", "the names task's name is empty"),
        ("names", "Sch€☃", "'€', '☃'"),
        ("tagging", "BADO", "'B', 'A', 'D', 'O'"),
        ("name_gen", "klingon", "not one of the name_gen task's languages"),
        ("dates", "march 3 2020!", "'!'"),
        ("dates", "", "the dates task's date is empty"),
    ],
)
def test_bad_task_inputs_exit_2_with_one_line(
    checkpoints: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    task: str,
    text: str,
    message: str,
) -> None:
    assert main(["probe", "--checkpoint", str(checkpoints[task]), text]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "names", "--bidirectional"], "tagging task only"),
        (["--task", "names", "--model", "fast"], "fast RNN"),
        (["--task", "dates", "--model", "scratch"], "GRUs or LSTMs"),
        (["--task", "tagging", "--corpus", "time-machine"], "--corpus"),
        (["--task", "names", "--no-teacher-forcing"], "dates task"),
        (["--task", "names", "--session-out", "x.rnnviz"], "language model"),
    ],
)
def test_train_refuses_what_a_task_cannot_train(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["train", *argv, "--max-steps", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_sample_refuses_a_task_s_checkpoint(
    checkpoints: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sample", "--checkpoint", str(checkpoints["names"]), "Sch"]) == 2
    assert "rnnviz probe" in capsys.readouterr().err


def test_dates_trains_without_teacher_forcing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ck = _train(tmp_path, "dates", "--hidden", "8", "--max-steps", "3", "--no-teacher-forcing")
    assert load_checkpoint(ck).step == 3
    assert "held-out exact match" in capsys.readouterr().out


def test_bench_tasks_wiring_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    from rnnviz.bench.tasks import format_tasks

    assert main(["bench", "--tasks", "--epochs", "3"]) == 2
    assert "--epochs only applies with --peer" in capsys.readouterr().err
    run = {"seconds_to_target": 5.5, "metric": 0.71, "best_metric": 0.71, "steps": 400}
    never = {**run, "seconds_to_target": None, "metric": 0.87}
    result = {
        "repeats": 2,
        "budget_s": 60.0,
        "tasks": {
            "names": {"target": 0.7, "reached": "2/2", "median_seconds_to_target": 5.5,
                      "median_metric": 0.71, "runs": [run, run], "model": "gru hidden 128"},
            "tagging (one-way)": {"target": 0.995, "reached": "0/2",
                                  "median_seconds_to_target": None, "median_metric": 0.87,
                                  "runs": [never, never], "model": "gru hidden 32"},
        },
    }  # fmt: skip
    table = format_tasks(result)
    names, one_way = table.splitlines()[2:]
    assert names.split()[:4] == ["names", "0.7", "2/2", "5.5"] and "0.7100" in names
    assert "0/2" in one_way and "(-, -)" in one_way and "0.8700" in one_way
