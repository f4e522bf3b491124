"""Where Qt's xcb plugin cannot load, rnnviz names the missing libraries and the packages."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rnnviz.gui import platform_check


def test_missing_libraries_are_named_with_the_install_command() -> None:
    hint = platform_check.install_hint(["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libfoo.so.2"])
    assert hint.startswith("sudo apt-get install libxcb-icccm4 libxcb-keysyms1")
    assert "libfoo.so.2" in hint and "apt-file search" in hint


def test_only_an_x_display_without_another_platform_uses_xcb() -> None:
    assert platform_check.uses_xcb({"DISPLAY": ":0"}) == sys.platform.startswith("linux")
    assert not platform_check.uses_xcb({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"})
    assert not platform_check.uses_xcb({})
    assert platform_check.uses_xcb({"QT_QPA_PLATFORM": "xcb"}) == sys.platform.startswith("linux")


def test_ldd_output_is_read_for_unresolved_libraries(monkeypatch, tmp_path) -> None:
    fake = tmp_path / "ldd"
    fake.write_text(
        "#!/bin/sh\necho '\tlibxcb.so.1 => /usr/lib/libxcb.so.1 (0x1)'\n"
        "echo '\tlibxcb-icccm.so.4 => not found'\necho '\tlibxcb-icccm.so.4 => not found'\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(platform_check.shutil, "which", lambda name: str(fake))
    assert platform_check.missing_libraries(tmp_path / "plugin.so") == ["libxcb-icccm.so.4"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the xcb plugin is Linux's")
def test_the_app_says_what_is_missing_instead_of_aborting(tmp_path) -> None:
    plugin = platform_check.xcb_plugin()
    if plugin is None or not platform_check.missing_libraries(plugin):
        pytest.skip("every library of the xcb plugin is installed here")
    env = dict(os.environ, DISPLAY=":99", XDG_CONFIG_HOME=str(tmp_path))
    env.pop("QT_QPA_PLATFORM", None)
    done = subprocess.run(
        [sys.executable, "-m", "rnnviz"], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 2
    assert "missing" in done.stderr and "sudo apt-get install" in done.stderr
    assert "Could not load the Qt platform plugin" not in done.stderr
