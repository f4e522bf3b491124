"""Lessons and presets (issue 14): the shipped lesson reads, and a malformed one is refused
with the file, the line and the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnnviz.core.lessons import KEEP, PANELS, LessonError, load_lesson, parse_lesson, shipped_path
from rnnviz.core.presets import PRESET_KEYS, PRESETS, preset


def test_the_shipped_lesson_walks_the_chapter() -> None:
    lesson = load_lesson(shipped_path("chapter"))
    titles = [s.title for s in lesson.steps]
    assert titles[0] == "The steps of a language model"
    assert len(titles) == 8 and titles[-1] == "Pros and cons"
    first = lesson.steps[0]
    assert (first.preset, first.probe, first.full, first.cursor, first.play_time) == (
        "d2l",
        "machine",
        "unrolled",
        0,
        True,
    )
    assert lesson.steps[1].full == "stepview" and lesson.steps[1].preset is None
    assert lesson.steps[4].full is None  # null: the overview
    assert all(s.preset in (None, *PRESET_KEYS) for s in lesson.steps)
    assert lesson.line_of_step[0] == 4  # the opening brace of the first step


def test_every_preset_is_a_valid_configuration_from_the_defaults() -> None:
    for p in PRESETS:
        config = p.config()
        for run in p.compare:
            config.replace(**run.changes)  # a compare run the session can fork
    assert preset("machine").config().corpus.repeat_word == "machine"
    assert preset("machine").config().train.batch_size == 1
    assert not preset("exploding").config().train.clip_enabled
    assert preset("mlp").compare[0].changes == {"model": {"recurrence": False}}
    with pytest.raises(KeyError, match="no preset"):
        preset("nope")


def _lesson(steps: list[dict], **top: object) -> str:
    return json.dumps({"title": "t", "steps": steps, **top}, indent=2)


STEP = {"title": "a", "narration": "b"}


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ('{"title": "t",\n "steps": [\n  {"title": "a",, }\n ]}', 3, "not valid JSON"),
        ("[1, 2]", 1, "a JSON object"),
        (_lesson([STEP], extra=1), 9, "unknown key 'extra'"),
        (_lesson([]), 3, "no steps"),
        (_lesson([STEP, {**STEP, "ful": "unrolled"}]), 11, "step 2: unknown key 'ful'"),
        (_lesson([STEP, {**STEP, "full": "unroled"}]), 11, "no panel 'unroled'"),
        (_lesson([{**STEP, "preset": "d3l"}]), 7, "no preset 'd3l'"),
        (_lesson([{**STEP, "cursor": "3"}]), 7, "'cursor' must be int"),
        (_lesson([{**STEP, "cursor": True}]), 7, "'cursor' must be int"),
        (_lesson([{**STEP, "train": 1}]), 7, "'train' must be bool"),
        (_lesson([{**STEP, "show": ["softmax", "x"]}]), 7, "no panel 'x'"),
        (_lesson([{"title": "a"}]), 4, "step 1 has no narration"),
        (_lesson([{**STEP, "probe": ""}]), 7, "empty probe string"),
    ],
)
def test_a_malformed_lesson_names_the_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(LessonError, match=f"^my.json, line {line}: .*{reason}"):
        parse_lesson(text, "my.json")


def test_a_lesson_file_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(LessonError, match="not a regular file"):
        load_lesson(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"title": "t",\n "steps": ["\xff"]}')
    with pytest.raises(LessonError, match="line 2: not UTF-8"):
        load_lesson(bad)
    with pytest.raises(LessonError, match="no lesson named"):
        shipped_path("nope")


def test_a_step_keeps_what_it_leaves_out() -> None:
    lesson = parse_lesson(_lesson([STEP, {**STEP, "full": None}]), "x")
    assert lesson.steps[0].full == KEEP and lesson.steps[1].full is None
    assert lesson.steps[0].train is None and lesson.steps[0].mlp is None


def test_the_panels_are_the_windows_docks() -> None:
    from rnnviz.gui.window.docks import DOCKS

    assert {name.removeprefix("dock_") for name, _ in DOCKS} == set(PANELS)
