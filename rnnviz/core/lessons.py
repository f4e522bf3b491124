"""Lessons: a sequence of steps, each of which sets the app's state and says a few sentences.

A lesson is a JSON file (documented in ``docs/lessons.md``)::

    {
      "title": "The RNN chapter",
      "steps": [
        {"title": "The steps of a language model",
         "narration": "The network reads 'machine' one character at a time ...",
         "preset": "d2l", "probe": "machine", "full": "unrolled", "cursor": 0,
         "play_time": true}
      ]
    }

Every key of a step but ``title`` and ``narration`` is optional; what a step leaves out stays
as the step before left it. A file that does not parse, or breaks this schema, is refused with
one sentence that names the file, the line and what is wrong. Nothing in it runs: a lesson is
data, read with ``json`` and checked field by field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from rnnviz.core.presets import PRESET_KEYS

MAX_LESSON_BYTES = 1 << 20  # a lesson is a page of text, not a data file
# the panels a step may raise or show (the window's dock names without "dock_")
PANELS = (
    "controls",
    "curves",
    "gradnorms",
    "probe_text",
    "hidden",
    "softmax",
    "gradflow",
    "stepview",
    "unrolled",
    "film",
    "generation",
    "saturation",
)
SHIPPED = ("chapter",)  # lessons that come with rnnviz, by name: rnnviz/lessons/NAME.json


KEEP = ""  # a step's "full" when the file leaves it out: the view stays as it is


class LessonError(ValueError):
    """A lesson that cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class LessonStep:
    title: str
    narration: str
    preset: str | None = None  # a core.presets key: the run restarts from it if it differs
    probe: str | None = None  # the probe string
    full: str | None = KEEP  # one panel full size; None (null): the overview; KEEP: as it is
    show: tuple[str, ...] = ()  # panels brought to the front in the overview
    cursor: int | None = None  # the time step
    train: bool | None = None  # True: training runs; False: paused; None: as it is
    mlp: bool | None = None  # the unrolled view's MLP row
    play_time: bool = False  # start playing through time


@dataclass(frozen=True)
class Lesson:
    title: str
    steps: tuple[LessonStep, ...]
    source: str  # where it came from, for messages
    line_of_step: tuple[int, ...] = field(default_factory=tuple)  # 1-based, per step


_STEP_KEYS: dict[str, tuple[type, ...]] = {
    "title": (str,),
    "narration": (str,),
    "preset": (str,),
    "probe": (str,),
    "full": (str,),
    "show": (list,),
    "cursor": (int,),
    "train": (bool,),
    "mlp": (bool,),
    "play_time": (bool,),
}


def shipped_path(name: str) -> Path:
    """The file of a lesson that ships with rnnviz."""
    if name not in SHIPPED:
        raise LessonError(
            f"no lesson named {name!r} ships with rnnviz (one of {', '.join(SHIPPED)})"
        )
    return Path(str(resources.files("rnnviz") / "lessons" / f"{name}.json"))


def load_lesson(path: str | Path) -> Lesson:
    """Read and check a lesson file; LessonError with the line of the first problem."""
    path = Path(path)
    try:
        if not path.is_file():
            raise LessonError(f"{path}: not a regular file")
        if path.stat().st_size > MAX_LESSON_BYTES:
            raise LessonError(f"{path}: over {MAX_LESSON_BYTES // 1024} KiB, too big for a lesson")
        raw = path.read_bytes()
    except OSError as exc:
        raise LessonError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise LessonError(f"{path}, line {line}: not UTF-8 text") from None
    return parse_lesson(text, str(path))


def parse_lesson(text: str, source: str) -> Lesson:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LessonError(f"{source}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise LessonError(f"{source}, line 1: a lesson is a JSON object with a title and steps")
    for key in data:
        if key not in ("title", "steps"):
            line = _line_of_key(text, key, 0)
            raise LessonError(f"{source}, line {line}: unknown key {key!r} (title, steps)")
    title, steps = data.get("title"), data.get("steps")
    if not isinstance(title, str) or not title.strip():
        raise LessonError(f"{source}, line {_line_of_key(text, 'title', 0)}: no title")
    if not isinstance(steps, list) or not steps:
        raise LessonError(f"{source}, line {_line_of_key(text, 'steps', 0)}: no steps")
    starts = _step_offsets(text, len(steps))
    lines = tuple(text.count("\n", 0, start) + 1 for start in starts)
    parsed = tuple(
        _step(raw, source, text, starts[i], i + 1, lines[i]) for i, raw in enumerate(steps)
    )
    return Lesson(title=title.strip(), steps=parsed, source=source, line_of_step=lines)


def _step(raw: Any, source: str, text: str, start: int, number: int, line: int) -> LessonStep:
    where = f"{source}, line {line}: step {number}"
    if not isinstance(raw, dict):
        raise LessonError(f"{where} is not a JSON object")
    for key, value in raw.items():
        at = f"{source}, line {_line_of_key(text, key, start)}: step {number}"
        if key not in _STEP_KEYS:
            raise LessonError(f"{at}: unknown key {key!r} (one of {', '.join(_STEP_KEYS)})")
        types = _STEP_KEYS[key]
        if value is not None and (
            not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
        ):
            kind = " or ".join("a list" if t is list else t.__name__ for t in types)
            raise LessonError(f"{at}: {key!r} must be {kind}, not {value!r}")
        problem = _value_problem(key, value)
        if problem:
            raise LessonError(f"{at}: {problem}")
    for key in ("title", "narration"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise LessonError(f"{where} has no {key}")
    return LessonStep(
        title=raw["title"].strip(),
        narration=" ".join(raw["narration"].split()),
        preset=raw.get("preset"),
        probe=raw.get("probe"),
        full=raw.get("full", KEEP),
        show=tuple(raw.get("show") or ()),
        cursor=raw.get("cursor"),
        train=raw.get("train"),
        mlp=raw.get("mlp"),
        play_time=bool(raw.get("play_time", False)),
    )


def _value_problem(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if key == "preset" and value not in PRESET_KEYS:
        return f"no preset {value!r} (one of {', '.join(PRESET_KEYS)})"
    if key == "full" and value not in PANELS:
        return f"no panel {value!r} (one of {', '.join(PANELS)})"
    if key == "show":
        unknown = [v for v in value if v not in PANELS]
        if unknown:
            return f"no panel {unknown[0]!r} (one of {', '.join(PANELS)})"
    if key == "cursor" and value < 0:
        return f"the cursor is a time step, 0 or more, not {value}"
    if key == "probe" and not value:
        return "an empty probe string (leave 'probe' out to keep the one shown)"
    return None


def _line_of_key(text: str, key: str, start: int) -> int:
    """The line of the first ``"key":`` at or after ``start`` (the step's opening brace)."""
    found = re.compile(r'"' + re.escape(key) + r'"\s*:').search(text, start)
    return text.count("\n", 0, found.start() if found else start) + 1


def _step_offsets(text: str, count: int) -> list[int]:
    """Where each element of the top-level "steps" array begins (to name lines in messages)."""
    decoder = json.JSONDecoder()
    match = re.compile(r'"steps"\s*:\s*\[').search(text)
    if match is None:  # pragma: no cover - json.loads found a steps list
        return [0] * count
    offsets, index = [], match.end()
    for _ in range(count):
        index = _skip_space(text, index)
        offsets.append(index)
        _, index = decoder.raw_decode(text, index)
        index = _skip_space(text, index)
        if index < len(text) and text[index] == ",":
            index += 1
    return offsets


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index
