"""Probe fuzz (issue 12): any text through the core probe and through the window's probe panels.

Figure lines (``pytest -s``)::

    probe fuzz core: examples=300 violations=0
    probe fuzz window: examples=60 violations=0 max_stall_ms=…   (300 with -m slow)

The texts are hypothesis strings (any code point: emoji and ZWJ sequences, RTL text and
marks, NUL, combining marks, BOMs, lone surrogates in the core) up to 10,000 characters. For
every probe: each softmax row sums to 1 ± 1e-5, no number is non-finite (the last step's loss
is NaN by definition: nothing follows it), and the characters outside the vocabulary are the
ones marked unknown (``core.vocab`` against a plain set lookup, and against what the probe-text
panel marks and says).

The window test types into a real window's probe box (set from the event loop, as a paste)
with every probe panel on screen and the gradient flow wanted, and measures the GUI thread's
longest stall: the longest gap between the beats of a 10 ms QTimer while the panels update
(reported raw, the 10 ms included). The box takes ``MAX_PROBE_CHARS`` characters (UTF-16 code
units, as QLineEdit counts them): Qt cuts a longer paste there, and drops a surrogate pair it
would split. No engine runs: the window is given a parameter snapshot as the engine sends it.

Run the long version with::

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest tests/reliability/test_probe_fuzz.py \
        -m slow -s -p no:cacheprovider
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from PySide6.QtCore import QObject, Qt, QTimer, Slot  # noqa: E402

from rnnviz.core.config import ModelConfig, RunConfig  # noqa: E402
from rnnviz.core.messages import ParamSnapshot  # noqa: E402
from rnnviz.core.model import build_model  # noqa: E402
from rnnviz.core.probe import MAX_GRAD_FLOW_CHARS, Prober, ProbeResult, params_to_numpy  # noqa: E402
from rnnviz.core.vocab import Vocab  # noqa: E402

OFFSCREEN_NOISE = r"This plugin does not support propagateSizeHints\(\)"
pytestmark = pytest.mark.qt_log_ignore(OFFSCREEN_NOISE)

CORE_EXAMPLES = 300
WINDOW_EXAMPLES = 60
WINDOW_EXAMPLES_SLOW = 300
MAX_STALL_MS = 100.0  # the bound on a GUI-thread stall
HEARTBEAT_MS = 10
WAIT_MS = 20_000

ALPHABET = "abcdefghijklmnopqrstuvwxyz "  # d2l's time machine: 26 letters and the space
VOCAB = Vocab(("<unk>", *ALPHABET))
SPECIAL = (
    "\x00",
    "\x7f",
    "\t",
    "\r\n",
    "\u202e",  # right-to-left override
    "\u202b",  # right-to-left embedding
    "\u200f",  # right-to-left mark
    "\u200d",  # zero-width joiner
    "\u0301",  # a combining acute on whatever comes before
    "e\u0301",
    "a\u0308\u0304\u0323",
    "שלום עולם",
    "مرحبا",
    "😀",
    "👨\u200d👩\u200d👧",
    "🏳\ufe0f\u200d🌈",
    "\ufeff",
    "\uffff",
    "\U0010fffd",
    "<unk>",
)
LONG = (100, 500, 501, 1000, 4096, 10_000)


@st.composite
def probe_texts(draw: st.DrawFn, surrogates: bool = False) -> str:
    """Pieces of vocabulary text, any Unicode and the specials above, often repeated to a long
    length (a paste)."""
    specials = (*SPECIAL, "\ud800", "\udfff", "a\udc00b") if surrogates else SPECIAL
    piece = st.one_of(
        st.text(alphabet=ALPHABET, max_size=30), st.text(max_size=20), st.sampled_from(specials)
    )
    text = "".join(draw(st.lists(piece, max_size=6)))
    length = draw(st.sampled_from((None,) * 12 + LONG))
    if length is not None and text:
        text = (text * (length // len(text) + 1))[:length]
    return text


def expected_unknown(text: str) -> tuple[int, ...]:
    """The positions outside the vocabulary, by a plain lookup (no code-point table)."""
    known = set(VOCAB.tokens[1:])
    return tuple(i for i, c in enumerate(text) if c not in known)


def probe_problems(result: ProbeResult, text: str, with_flow: bool) -> list[str]:
    """What is wrong with a probe of ``text`` (empty: nothing)."""
    problems = []
    T, V = len(text), len(VOCAB)
    if result.text != text:
        problems.append(f"probed {len(result.text)} characters, not the {T} given")
        return problems
    if result.probs.shape != (T, V) or result.tokens.shape != (T,):
        problems.append(f"shapes {result.probs.shape} {result.tokens.shape} for T={T} V={V}")
        return problems
    sums = result.probs.astype(np.float64).sum(axis=1)
    if not np.all(np.abs(sums - 1.0) <= 1e-5):
        problems.append(f"softmax rows sum to {sums.min()!r}..{sums.max()!r}")
    arrays = {
        "probs": result.probs,
        "hidden": result.hidden,
        "top-k": result.topk_probs,
        "loss": result.step_loss[:-1],
        "surprisal": result.surprisal_bits[:-1],
    }
    if result.cell is not None:
        arrays["cell"] = result.cell
    if with_flow:
        if result.grad_flow is None:
            problems.append("no gradient flow")
        else:
            arrays["gradient flow"] = result.grad_flow
    problems += [f"{name} not finite" for name, a in arrays.items() if not np.isfinite(a).all()]
    if not np.isnan(result.step_loss[-1]):
        problems.append("the last step has a loss (nothing follows it)")
    if result.unknown != expected_unknown(text) or result.unknown != tuple(
        VOCAB.unknown_positions(text)
    ):
        problems.append(f"unknown positions {result.unknown[:5]}… wrong")
    return problems


# ---------------------------------------------------------------------------- the core probe

KINDS = ("fast", "scratch", "gru", "lstm")
# GRU/LSTM step in Python with autograd per step: shorter texts keep the suite inside its time
MAX_CHARS = {"fast": 10_000, "scratch": 10_000, "gru": 1_000, "lstm": 500}
MAX_FLOW_CHARS = {"fast": 600, "scratch": 300, "gru": 40, "lstm": 40}
_core_stats = {"examples": 0, "violations": 0}
_probers: dict[str, Prober] = {}


def _prober(kind: str) -> Prober:
    """One Prober per kind for the whole run: each example reuses the last one's cache."""
    if kind not in _probers:
        config = ModelConfig(kind=kind, hidden_size=16)  # type: ignore[arg-type]
        _probers[kind] = Prober(build_model(len(VOCAB), config, seed=0), VOCAB)
    return _probers[kind]


@settings(
    max_examples=CORE_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(probe_texts(surrogates=True), st.sampled_from(KINDS))
def _core_examples(text: str, kind: str) -> None:
    text = text[: MAX_CHARS[kind]] or "a"  # an empty text is refused (tested below)
    with_flow = len(text) <= MAX_FLOW_CHARS[kind]
    cached = _prober(kind)
    result = cached.probe(text, with_grad_flow=with_flow)
    problems = probe_problems(result, text, with_flow)
    fresh = Prober(cached.model, VOCAB).probe(text, with_grad_flow=False)
    if not np.allclose(fresh.probs, result.probs, rtol=0, atol=1e-5):
        problems.append(f"the cached probe (reused {cached.reused_steps} steps) differs")
    _core_stats["examples"] += 1
    _core_stats["violations"] += bool(problems)
    assert problems == [], (kind, len(text), problems)


def test_core_probe_fuzz() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the GUI probes while training: one core
    try:
        _core_examples()
        # the documented limits: an empty text and the gradient flow of a long one are refused
        # with a sentence, before any work
        prober = _prober("fast")
        with pytest.raises(ValueError, match="empty"):
            prober.probe("")
        with pytest.raises(ValueError, match=f"limited to {MAX_GRAD_FLOW_CHARS}"):
            prober.probe("a" * (MAX_GRAD_FLOW_CHARS + 1), with_grad_flow=True)
    finally:
        torch.set_num_threads(threads)
    examples, violations = _core_stats["examples"], _core_stats["violations"]
    print(f"\nprobe fuzz core: examples={examples} violations={violations}")
    assert examples >= CORE_EXAMPLES and violations == 0


# ---------------------------------------------------------------------------- the window


class Heartbeat(QObject):
    """A 10 ms timer in the GUI thread. A gap between two beats is a stall of the event loop:
    its wall length, and ``busy``, the GUI thread's CPU time in it (what the window itself
    computed and drew, without the time this shared machine gave to other processes)."""

    def __init__(self) -> None:
        super().__init__()
        self.busy_ms = self.wall_ms = 0.0  # the longest gap of the period measured last
        self.max_raw_busy_ms = 0.0  # of every period measured
        self._last: tuple[float, float] | None = None
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(HEARTBEAT_MS)
        self._timer.timeout.connect(self._beat)

    def arm(self) -> None:
        self.busy_ms = self.wall_ms = 0.0
        self._last = (time.perf_counter(), time.thread_time())
        self._timer.start()

    def disarm(self) -> None:
        self._timer.stop()
        self._last = None
        self.max_raw_busy_ms = max(self.max_raw_busy_ms, self.busy_ms)

    @Slot()
    def _beat(self) -> None:
        now = (time.perf_counter(), time.thread_time())
        if self._last is not None:
            wall, busy = ((a - b) * 1000 for a, b in zip(now, self._last, strict=True))
            if busy > self.busy_ms:
                self.busy_ms, self.wall_ms = busy, wall
        self._last = now


def qt_cut(text: str, max_length: int) -> str:
    """``text`` as a QLineEdit with ``maxLength`` keeps it when it is set from Python: at most
    that many UTF-16 code units, without the half of a pair it would split."""
    # PySide6 hands a Python str to Qt through QString::fromUtf16, which takes a leading U+FEFF
    # for a byte-order mark and drops it (a paste from the clipboard keeps it: it never passes
    # through Python)
    text = text.removeprefix("\ufeff")
    units = text.encode("utf-16-le")
    if len(units) <= 2 * max_length:
        return text
    return units[: 2 * max_length].decode("utf-16-le", errors="ignore")


def _show_every_probe_panel(window: Any) -> None:
    """The gradient-flow dock out of its tab group, beside the hidden states (as the bench):
    every probe panel on screen and painted."""
    docks = window.docks
    gradflow = docks["dock_gradflow"]
    window.removeDockWidget(gradflow)
    window.splitDockWidget(docks["dock_hidden"], gradflow, Qt.Orientation.Horizontal)
    gradflow.show()


def _snapshot(config: RunConfig) -> ParamSnapshot:
    model = build_model(len(VOCAB), config.model, seed=0)
    return ParamSnapshot(
        run_id=0, step=0, config=config, vocab_tokens=VOCAB.tokens, params=params_to_numpy(model)
    )


@pytest.fixture
def probe_window(qtbot: Any, tmp_path: Any) -> Iterator[Any]:
    """A window as the app shows it (default model), paused, every probe panel on screen, and
    a snapshot given as the engine gives it; gc frozen after the first probe, as the app."""
    from rnnviz.gui import plotting
    from rnnviz.gui.app import freeze_after_first_probe
    from rnnviz.gui.state.settings import SettingsStore
    from rnnviz.gui.window.main_window import MainWindow

    plotting.configure_pyqtgraph()
    config = RunConfig()
    window = MainWindow(config, settings=SettingsStore(tmp_path / "settings.json"), persist=False)
    qtbot.addWidget(window)
    freeze_after_first_probe(window)
    window.resize(1600, 1000)
    window.show()
    qtbot.waitExposed(window)
    _show_every_probe_panel(window)
    qtbot.wait(200)
    window.probes.set_grad_flow_wanted(True)
    window.app_state.apply(_snapshot(config))
    qtbot.waitUntil(lambda: window.probe_result is not None, timeout=WAIT_MS)
    _warm_up_fonts(window, qtbot)
    try:
        yield window
    finally:
        window.close()
        gc.unfreeze()
        assert not window.probes.worker.isRunning()


# one code point in every 128, in the planes that have scripts: the first sight of a script
# makes Qt search its font database for a fallback font (once per process, in QLineEdit's
# layout and in every text drawn); a session has seen its scripts before it pastes them
WARM_UP = "".join(
    chr(c)
    for plane in (0, 1, 2, 3, 14, 15, 16)
    for c in range(plane << 16, (plane + 1) << 16, 128)
    if not 0xD800 <= c < 0xE000
)


def _warm_up_fonts(window: Any, qtbot: Any) -> None:
    edit = window.panels.probe_text.line_edit()
    chunk = edit.maxLength() // 2  # UTF-16 units: a code point past the BMP takes two
    for i in range(0, len(WARM_UP), chunk):
        edit.setText(WARM_UP[i : i + chunk])
        qtbot.waitUntil(lambda: _settled(window, edit.text()), timeout=WAIT_MS)
    edit.setText("the time machine")
    qtbot.waitUntil(lambda: _settled(window, edit.text()), timeout=WAIT_MS)


def _settled(window: Any, text: str) -> bool:
    probes = window.probes
    current = probes.current
    if current is None or probes.pending or not probes.worker.idle() or window.redraw.pending:
        return False
    return (
        (current.result is None)
        if not text
        else current.result is not None and (current.result.text == text)
    )


def window_problems(window: Any, text: str) -> list[str]:
    """The probe on screen and what each probe panel shows, against ``text``."""
    p = window.panels
    if p.probe_text.text() != text:
        return [f"the box holds {len(p.probe_text.text())} characters, not {len(text)}"]
    if window.probes.error:
        return [f"probe failed: {window.probes.error}"]
    result = window.probe_result
    if not text:
        return [] if result is None else ["a result for an empty text"]
    with_flow = len(text) <= MAX_GRAD_FLOW_CHARS
    problems = probe_problems(result, text, with_flow)
    unknown = expected_unknown(text)
    note = p.probe_text.unknown_text()
    if unknown:
        n = len(unknown)
        if not note.startswith(f"{n} character{'s' if n != 1 else ''} not in the vocabulary"):
            problems.append(f"the panel says {note[:60]!r} for {n} unknown")
        if "not in the vocabulary" not in p.probe_text.tooltip_text(unknown[-1]):
            problems.append(f"character {unknown[-1]} not marked unknown")
    elif note:
        problems.append(f"the panel says {note[:60]!r} with nothing unknown")
    known = sorted(set(range(len(text))) - set(unknown))
    if known and "not in the vocabulary" in p.probe_text.tooltip_text(known[0]):
        problems.append(f"character {known[0]} marked unknown")
    T, V, H = len(text), len(VOCAB), result.hidden.shape[1]
    shapes = {
        "softmax": (p.softmax.heatmap_array(), (V, T)),
        "hidden states": (p.hidden.displayed_array(), (H, T)),
    }
    if with_flow:
        shapes["gradient flow"] = (p.gradflow.probe_image_array(), (T, T))
    for name, (array, shape) in shapes.items():
        if array is None or array.shape != shape:
            problems.append(f"{name} shows {None if array is None else array.shape}, not {shape}")
    return problems


class WindowFuzz:
    """Pastes texts into the window's probe box and measures the stall of each."""

    def __init__(self, window: Any, qtbot: Any) -> None:
        self.window, self.qtbot = window, qtbot
        self.edit = window.panels.probe_text.line_edit()
        self.heartbeat = Heartbeat()
        self.examples = self.violations = self.retried = 0
        self.stalls: list[tuple[float, float, str]] = []  # (busy, wall, text) per example
        self._pasted = False

    def paste(self, text: str, *, measure: bool = True) -> tuple[float, float]:
        """Set ``text`` from the event loop (as a paste); wait until every probe panel shows
        it. Returns the longest stall meanwhile: (busy, wall) ms."""
        self._pasted = False

        def set_text() -> None:
            self.edit.setText(text)
            self._pasted = True

        if measure:
            self.heartbeat.arm()
        QTimer.singleShot(0, set_text)
        self.qtbot.waitUntil(
            lambda: self._pasted and _settled(self.window, self.edit.text()), timeout=WAIT_MS
        )
        self.qtbot.wait(3 * HEARTBEAT_MS)  # the paints that follow, and a beat after them
        self.heartbeat.disarm()
        return self.heartbeat.busy_ms, self.heartbeat.wall_ms

    def example(self, text: str) -> None:
        expected = qt_cut(text, self.edit.maxLength())
        before = self.edit.text()
        busy, wall = self.paste(text)
        if busy >= MAX_STALL_MS:
            # the machine is shared: a stall of the window's own comes back when the same
            # edit is made again; one that another process caused does not
            self.retried += 1
            self.paste(before, measure=False)
            busy, wall = min((busy, wall), self.paste(text))
        self.stalls.append((busy, wall, f"{len(expected)} characters {expected[:24]!r}"))
        problems = window_problems(self.window, expected)
        self.examples += 1
        self.violations += bool(problems)
        assert problems == [], (len(expected), problems)

    def run(self, examples: int) -> None:
        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(probe_texts())
        def one(text: str) -> None:
            self.example(text)

        one()

    def report(self, wanted: int) -> None:
        worst = sorted(self.stalls, reverse=True)
        busy, wall, _ = worst[0] if worst else (0.0, 0.0, "")
        print(
            f"\nprobe fuzz window: examples={self.examples} violations={self.violations} "
            f"max_stall_ms={busy:.0f} (wall {wall:.0f}; before a retry "
            f"{self.heartbeat.max_raw_busy_ms:.0f}, {self.retried} retried)"
        )
        assert self.examples >= wanted and self.violations == 0
        lines = "\n".join(f"busy {b:.0f} ms (wall {w:.0f}) at {label}" for b, w, label in worst[:5])
        assert busy < MAX_STALL_MS, lines


def test_window_probe_fuzz(probe_window: Any, qtbot: Any) -> None:
    fuzz = WindowFuzz(probe_window, qtbot)
    fuzz.run(WINDOW_EXAMPLES)
    fuzz.report(WINDOW_EXAMPLES)


@pytest.mark.slow
def test_window_probe_fuzz_long(probe_window: Any, qtbot: Any) -> None:
    fuzz = WindowFuzz(probe_window, qtbot)
    fuzz.run(WINDOW_EXAMPLES_SLOW)
    fuzz.report(WINDOW_EXAMPLES_SLOW)


def test_a_leading_byte_order_mark_is_probed_as_the_box_holds_it(
    probe_window: Any, qtbot: Any
) -> None:
    """Found by the fuzz: the probe text reached the prober through two str signals, and each
    dropped a leading U+FEFF on its way through QString, so the probe was of a shorter text
    than the box showed. The box is made to hold one by an edit (a str set from Python would
    lose it on the way in)."""
    edit = probe_window.panels.probe_text.line_edit()
    edit.setText("x\ufeff\ufeffab")
    edit.setSelection(0, 1)
    edit.del_()  # as the user's Delete key: the box now begins with two BOMs
    assert edit.text() == "\ufeff\ufeffab"
    qtbot.waitUntil(lambda: _settled(probe_window, edit.text()), timeout=WAIT_MS)
    assert window_problems(probe_window, "\ufeff\ufeffab") == []
