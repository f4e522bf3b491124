"""The core never imports Qt: proven by importing every core module with Qt made unimportable."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import rnnviz.core

FORBIDDEN = ("PySide6", "pyqtgraph", "superqt", "shiboken6", "rnnviz.gui")

_SCRIPT = r"""
import importlib, importlib.abc, sys
FORBIDDEN = {forbidden!r}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN or name.startswith("rnnviz.gui"):
            raise ImportError(f"core imported {{name}}")
        return None

sys.meta_path.insert(0, Block())
for mod in {modules!r}:
    importlib.import_module(mod)
loaded = sorted(
    m for m in sys.modules if m.split(".")[0] in FORBIDDEN or m.startswith("rnnviz.gui")
)
assert not loaded, loaded
print("ok", len({modules!r}))
"""


def core_modules() -> list[str]:
    return [
        f"rnnviz.core.{info.name}"
        for info in pkgutil.iter_modules(rnnviz.core.__path__)
        if not info.name.startswith("_")
    ]


def test_every_core_module_imports_without_qt() -> None:
    modules = core_modules()
    assert "rnnviz.core.model" in modules
    script = _SCRIPT.format(forbidden=FORBIDDEN, modules=modules)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")


def test_import_linter_contracts_are_kept() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 kept, 0 broken" in done.stdout, done.stdout


def _tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def test_ruff_finds_nothing() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [_tool("ruff"), "check", str(root)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_has_nothing_to_change() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [_tool("ruff"), "format", "--check", str(root)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing_strict_on_the_core_and_the_state_layer() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [_tool("mypy"), "rnnviz"], capture_output=True, text=True, timeout=300, cwd=root
    )
    assert done.returncode == 0, done.stdout + done.stderr
