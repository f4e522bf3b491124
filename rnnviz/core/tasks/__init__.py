"""The tasks a model is trained on: the language model (the default, core.batches' windows of
a corpus) and the lecture's applications, each a ``Task`` (core.tasks.base): many to one
(``names``), many to many (``tagging``), one to many (``name_gen``) and encoder-decoder
(``dates``). ``get_task`` builds one on first use (the names tasks read faker's lists then).
"""

from __future__ import annotations

import importlib
from functools import cache

from rnnviz.core.config import LANGUAGE_MODEL, TASKS, ConfigError
from rnnviz.core.tasks.base import (
    IGNORE_INDEX,
    PAD,
    Task,
    TaskData,
    TaskDefaults,
    TaskInputError,
    TaskUnavailable,
)

__all__ = [
    "APPLICATION_TASKS",
    "IGNORE_INDEX",
    "PAD",
    "Task",
    "TaskData",
    "TaskDefaults",
    "TaskInputError",
    "TaskUnavailable",
    "get_task",
]

# every task but the language model, in the order the slide's table has them
APPLICATION_TASKS: tuple[str, ...] = tuple(t for t in TASKS if t != LANGUAGE_MODEL)
_MODULES = {"names": "names", "tagging": "tagging", "name_gen": "name_gen", "dates": "dates"}


@cache
def get_task(name: str) -> Task:
    """The task called ``name`` (ConfigError for the language model or an unknown name;
    TaskUnavailable when its data needs a package that is missing)."""
    if name not in _MODULES:
        raise ConfigError(f"task must be one of {', '.join(APPLICATION_TASKS)}, not {name!r}")
    module = importlib.import_module(f"rnnviz.core.tasks.{_MODULES[name]}")
    task: Task = module.build()
    return task
