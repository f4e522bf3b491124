"""A stand-in for ``rnnviz.gui.app``: what the command line hands the window, with no window."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from rnnviz.gui.launch import LaunchOptions


def stub_window(monkeypatch: pytest.MonkeyPatch) -> list[LaunchOptions]:
    """Every ``run_app`` call's LaunchOptions from now on, in order; each call returns 0."""
    seen: list[LaunchOptions] = []

    def run_app(
        argv: Any, screenshot: Any = None, train_steps: int = 100, options: Any = None
    ) -> int:
        seen.append(options)
        return 0

    fake = types.ModuleType("rnnviz.gui.app")
    fake.run_app = run_app  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rnnviz.gui.app", fake)
    return seen
