"""`rnnviz bench --peer`: the driver's parsing and figures, the missing-d2l message, the
runner's stubs and its corpus feeding. None of it needs d2l or downloads anything; one tiny
real run happens only where d2l is installed. Timings are never asserted."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from rnnviz.bench import peer
from rnnviz.cli import main

RNNVIZ_OUT = (
    "epoch 1/2: train ppl 20.93, val ppl 17.29\n"
    "epoch 2/2: train ppl 17.03, val ppl 16.43\n"
    "done: 1,000 steps in 10.2 s, 3,400,000 tokens/s in training; final val ppl 5.432\n"
)
D2L_LINE = {
    "runner": "d2l",
    "d2l_version": "1.0.3",
    "epochs": 2,
    "vocab": 28,
    "corpus_chars": 1000,
    "val_ppl": 6.0,
    "board_val_ppl": 6.1,
    "val_ppl_rnnviz_split": 6.5,
    "phases_s": {"import": 1.0, "data": 4.0, "fit": 50.0, "extra_eval": 0.1},
}


def test_parse_rnnviz_reads_the_done_line() -> None:
    got = peer.parse_rnnviz(RNNVIZ_OUT)
    assert got == {"val_ppl": 5.432, "steps": 1000, "loop_s": 10.2}
    spikes = RNNVIZ_OUT.strip() + "; 2 loss spike(s), the first at step 7\n"
    assert peer.parse_rnnviz(spikes)["val_ppl"] == 5.432


@pytest.mark.parametrize(
    "out", ["epoch 1/2: val ppl 3\n", "done: 10 steps in 1.0 s, 5 tokens/s; final val ppl -\n"]
)
def test_parse_rnnviz_refuses_what_it_cannot_read(out: str) -> None:
    with pytest.raises(peer.PeerError):
        peer.parse_rnnviz(out)


def test_parse_d2l_takes_the_runners_json_line() -> None:
    out = "some warning\n" + json.dumps(D2L_LINE) + "\n\n"
    assert peer.parse_d2l(out) == D2L_LINE
    with pytest.raises(peer.PeerError):
        peer.parse_d2l('{"runner": "other"}\nnot json\n')


def _fake_timed(walls: dict[str, list[float]], order: list[str]) -> peer.Timed:
    def timed(cmd: list[str]) -> tuple[float, float | None, subprocess.CompletedProcess[str]]:
        name = "d2l" if "rnnviz.bench.peer" in cmd else "rnnviz"
        order.append(name)
        if name == "d2l":
            text_file = cmd[cmd.index("--text-file") + 1]
            assert Path(text_file).read_text(encoding="utf-8") == "The Time, Machine!"
            out = json.dumps(D2L_LINE)
        else:
            out = RNNVIZ_OUT
        wall = walls[name].pop(0)
        return wall, 2 * wall, subprocess.CompletedProcess(cmd, 0, out, "")

    return timed


def test_driver_interleaves_and_reports_medians_spread_and_ratio() -> None:
    walls = {"d2l": [60.0, 66.0, 63.0], "rnnviz": [20.0, 21.0, 22.0]}
    order: list[str] = []
    lines: list[str] = []
    result = peer.run_peer(
        2,
        3,
        raw_text="The Time, Machine!",
        timed=_fake_timed(walls, order),
        log=lines.append,
    )
    # alternating which goes first: the noise of the machine hits both alike
    assert order == ["d2l", "rnnviz", "rnnviz", "d2l", "d2l", "rnnviz"]
    assert len(lines) == 6
    d, r = result["d2l"], result["rnnviz"]
    assert d["wall_s"] == 63.0 and d["wall_s_range"] == {"median": 63.0, "min": 60.0, "max": 66.0}
    assert r["wall_s"] == 21.0 and r["walls_s"] == [20.0, 21.0, 22.0]
    assert result["ratio"] == pytest.approx(63.0 / 21.0)
    per_round = [60 / 20, 66 / 21, 63 / 22]
    assert result["ratio_range"]["min"] == pytest.approx(min(per_round))
    assert result["ratio_range"]["max"] == pytest.approx(max(per_round))
    assert d["val_ppl"] == 6.0 and d["val_ppl_rnnviz_split"] == 6.5 and r["val_ppl"] == 5.432
    assert d["phases_s"]["fit"] == 50.0 and r["loop_s"] == 10.2
    assert r["outside_loop_s"] == pytest.approx(21.0 - 10.2)
    assert d["cpu_s"] == 126.0 and r["cpu_s_range"]["max"] == 44.0
    assert result["cpu_ratio"] == pytest.approx(3.0)
    assert result["corpus"]["chars"] == len("the time machine ")
    assert result["config"]["epochs"] == 2 and result["config"]["repeats"] == 3
    assert "BUILTIN_TEXT_FILE" in result["commands"]["d2l"]
    assert "--epochs 2" in result["commands"]["rnnviz"]
    text = peer.format_peer(result)
    assert "3.00x" in text and "validation splits" in text and "generous to d2l" in text


def test_driver_names_a_failed_process() -> None:
    def timed(cmd: list[str]) -> tuple[float, float | None, subprocess.CompletedProcess[str]]:
        return 1.0, None, subprocess.CompletedProcess(cmd, 3, "", "boom: diverged")

    with pytest.raises(peer.PeerError, match=r"d2l exited with status 3: boom"):
        peer.run_peer(1, 1, raw_text="abc", timed=timed, log=lambda _: None)


def test_commands_use_d2l_preset_on_both_sides() -> None:
    d2l = peer.d2l_command("/t.txt", 100, 0)
    rnnviz = peer.rnnviz_command(100, 0)
    for cmd in (d2l, rnnviz):
        for flag, value in (
            ("--epochs", "100"),
            ("--hidden", "32"),
            ("--batch-size", "1024"),
            ("--num-steps", "32"),
            ("--lr", "1"),
            ("--clip", "1"),
        ):
            assert cmd[cmd.index(flag) + 1] == value
    assert rnnviz[rnnviz.index("--corpus") + 1] == "builtin"
    # the runner's own parser reads what the driver passes
    args = peer._runner_parser().parse_args(d2l[3:])
    assert (args.num_train, args.num_val, args.val_windows) == (10_000, 5_000, 5_000)
    assert args.val_fraction == 0.1
    # the rnnviz side parses too, as rnnviz train's own flags
    from rnnviz.cli import build_parser

    assert build_parser().parse_args(rnnviz[3:]).epochs == 100


def test_missing_d2l_is_one_line_naming_the_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "d2l", None)  # find_spec then says: not installed
    assert not peer.d2l_available()
    assert main(["bench", "--peer"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "pip install --no-deps d2l==1.0.3" in err


def test_repeats_without_peer_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--repeats", "2"]) == 2
    assert "--peer" in capsys.readouterr().err


def test_stubs_are_inert_and_leave_again() -> None:
    names = ("matplotlib", "IPython", "scipy", "rnnviz_no_such_pkg")
    with peer.stubbed_modules(names):
        import rnnviz_no_such_pkg.sub  # noqa: F401
        from IPython import display
        from matplotlib import pyplot as plt
        from scipy.spatial import distance_matrix

        # what d2l's ProgressBoard.draw calls
        fig = plt.figure(figsize=(3.5, 2.5))
        line = plt.plot([1, 2], [3, 4], linestyle="-")[0]
        plt.gca().set_xlim([0, 1])
        display.display(fig)
        display.clear_output(wait=True)
        assert isinstance(line, peer._Inert) and list(distance_matrix()) == []
    assert not any(isinstance(m, peer._StubModule) for m in sys.modules.values())
    assert "rnnviz_no_such_pkg" not in sys.modules
    assert not any(isinstance(f, peer._StubFinder) for f in sys.meta_path)


# A stand-in for d2l.torch with the structure the runner relies on: TimeMachine builds its
# corpus from _download() as d2l's does, the model outputs uniform logits, so every
# perplexity is exactly the vocabulary size.
FAKE_D2L = """
import collections, re
import torch
from matplotlib import pyplot as plt   # stubbed by the runner, as in d2l
from IPython import display
import torchvision, pandas, requests

FED = []

def download(*args, **kwargs):
    raise AssertionError("the runner must never download")

Point = collections.namedtuple("Point", ["x", "y"])

class Vocab:
    def __init__(self, tokens):
        self.idx_to_token = sorted(set(["<unk>", *tokens]))
        self.token_to_idx = {t: i for i, t in enumerate(self.idx_to_token)}
    def __len__(self):
        return len(self.idx_to_token)
    def __getitem__(self, token):
        return self.token_to_idx.get(token, 0)

class TimeMachine:
    def _download(self):
        return download("timemachine.txt")
    def _preprocess(self, text):
        return re.sub("[^A-Za-z]+", " ", text).lower()
    def _tokenize(self, text):
        return list(text)
    def build(self, raw_text, vocab=None):
        FED.append(raw_text)
        tokens = self._tokenize(self._preprocess(raw_text))
        vocab = Vocab(tokens)
        return [vocab[t] for t in tokens], vocab
    def __init__(self, batch_size, num_steps, num_train=10000, num_val=5000):
        self.batch_size, self.num_train, self.num_val = batch_size, num_train, num_val
        corpus, self.vocab = self.build(self._download())
        array = torch.tensor([corpus[i:i + num_steps + 1] for i in range(len(corpus) - num_steps)])
        self.X, self.Y = array[:, :-1], array[:, 1:]
    def val_dataloader(self):
        idx = slice(self.num_train, self.num_train + self.num_val)
        dataset = torch.utils.data.TensorDataset(self.X[idx], self.Y[idx])
        return torch.utils.data.DataLoader(dataset, self.batch_size)

class RNN(torch.nn.Module):
    def __init__(self, num_inputs, num_hiddens):
        super().__init__()

class Board:
    data = {}

class RNNLM(torch.nn.Module):
    def __init__(self, rnn, vocab_size, lr=0.01):
        super().__init__()
        self.vocab_size, self.board = vocab_size, Board()
    def forward(self, X, state=None):
        return torch.zeros(*X.shape, self.vocab_size)

class Trainer:
    def __init__(self, max_epochs, num_gpus=0, gradient_clip_val=0):
        self.max_epochs = max_epochs
    def fit(self, model, data):
        model.board.data = {"val_ppl": [Point(self.max_epochs, float(len(data.vocab)))]}
"""


@pytest.fixture
def fake_d2l(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    pkg = tmp_path / "fake" / "d2l"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('__version__ = "fake"\n')
    (pkg / "torch.py").write_text(textwrap.dedent(FAKE_D2L))
    monkeypatch.syspath_prepend(str(tmp_path / "fake"))
    for name in ("d2l", "d2l.torch"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield
    for name in ("d2l", "d2l.torch"):
        sys.modules.pop(name, None)


def test_runner_feeds_the_text_file_to_d2l_and_prints_one_json_line(
    fake_d2l: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = "It was the Time Machine, said the Time Traveller. " * 40  # 2,000 characters
    text_file = tmp_path / "text.txt"
    text_file.write_text(raw, encoding="utf-8")
    argv = ["d2l", "--text-file", str(text_file), "--epochs", "1", "--batch-size", "16"]
    argv += ["--num-steps", "8", "--num-train", "100", "--num-val", "50", "--hidden", "4"]
    assert peer.main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    line = json.loads(out[0])
    d2l_torch = sys.modules["d2l.torch"]
    fed = d2l_torch.FED
    assert fed == [raw]  # the file's text, as read: no download, no other text
    vocab = len(set(peer_preprocessed(raw))) + 1  # + <unk>
    assert line["vocab"] == vocab and line["corpus_chars"] == len(peer_preprocessed(raw))
    # uniform logits: every perplexity is the vocabulary size
    for key in ("val_ppl", "board_val_ppl", "val_ppl_rnnviz_split"):
        assert line[key] == pytest.approx(vocab)
    assert line["d2l_version"] == "fake" and line["epochs"] == 1
    assert set(line["phases_s"]) == {"import", "data", "fit", "extra_eval"}
    # the stubs left with the import; d2l keeps its references
    assert not isinstance(sys.modules.get("matplotlib"), peer._StubModule)
    assert isinstance(d2l_torch.plt, peer._Inert)


def peer_preprocessed(raw: str) -> str:
    from rnnviz.core.corpus import preprocess

    return preprocess(raw, "d2l")


def test_rnnviz_split_is_the_one_rnnviz_train_validates_on() -> None:
    ids = list(range(1000))
    batches = peer.rnnviz_val_batches(ids, 4, 8, 0.1, 5)
    inputs = [row for x, _ in batches for row in x.tolist()]
    targets = [row for _, y in batches for row in y.tolist()]
    # the last 10 %: from token 900 on, non-overlapping windows, at most val_windows of them
    assert inputs == [list(range(900 + 8 * i, 908 + 8 * i)) for i in range(5)]
    assert targets == [list(range(901 + 8 * i, 909 + 8 * i)) for i in range(5)]
    assert [len(x) for x, _ in batches] == [4, 1]


def test_tiny_real_d2l_run(tmp_path: Path) -> None:
    pytest.importorskip("d2l")
    raw = "The Time Traveller (for so it will be convenient to speak of him) was expounding "
    text_file = tmp_path / "text.txt"
    text_file.write_text(raw * 40, encoding="utf-8")
    cmd = [sys.executable, "-m", "rnnviz.bench.peer", "d2l", "--text-file", str(text_file)]
    cmd += ["--epochs", "1", "--batch-size", "32", "--num-steps", "8", "--hidden", "8"]
    cmd += ["--num-train", "256", "--num-val", "128"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    line = peer.parse_d2l(done.stdout)
    assert line["d2l_version"] == peer.D2L_VERSION
    assert line["vocab"] == len(set(peer_preprocessed(raw))) + 1
    for key in ("val_ppl", "board_val_ppl", "val_ppl_rnnviz_split"):
        assert math.isfinite(line[key]) and 1.0 < line[key] < 2 * line["vocab"]
