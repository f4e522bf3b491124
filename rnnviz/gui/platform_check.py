"""Before Qt starts: can its platform plugin load? If not, which libraries are missing.

When the xcb plugin cannot load, Qt aborts with a generic message that names the wrong package
(libxcb-cursor0 even when that one is installed). Run before the QApplication exists, this
lists the plugin's unresolved shared libraries (``ldd``) and the command that installs them.
No Qt import: it must work where Qt cannot start.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# shared library -> Debian/Ubuntu package, for what the Qt xcb plugin links
DEBIAN_PACKAGES = {
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
}
# every package above: what README tells a bare desktop to install
ALL_PACKAGES = " ".join(sorted(set(DEBIAN_PACKAGES.values())))

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


def xcb_plugin() -> Path | None:
    """The xcb platform plugin shipped with PySide6 (None if there is none)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("PySide6")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    plugin = Path(spec.origin).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def missing_libraries(plugin: Path) -> list[str]:
    """The plugin's shared libraries the dynamic loader cannot find (by ``ldd``)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    try:
        done = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return sorted(set(_NOT_FOUND.findall(done.stdout)))


def install_hint(libraries: list[str]) -> str:
    """The command that installs ``libraries`` on Debian/Ubuntu (a look-up hint otherwise)."""
    known = sorted({DEBIAN_PACKAGES[lib] for lib in libraries if lib in DEBIAN_PACKAGES})
    unknown = [lib for lib in libraries if lib not in DEBIAN_PACKAGES]
    parts = []
    if known:
        parts.append("sudo apt-get install " + " ".join(known))
    if unknown:
        parts.append("find the package of " + ", ".join(unknown) + " with `apt-file search`")
    return "; ".join(parts)


def uses_xcb(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Qt will pick the xcb plugin: Linux, an X display, no other platform asked for."""
    if not sys.platform.startswith("linux"):
        return False
    platform = environ.get("QT_QPA_PLATFORM", "")
    if platform:
        return platform.split(":")[0] == "xcb"
    return bool(environ.get("DISPLAY")) and not environ.get("WAYLAND_DISPLAY")


def xcb_problem() -> str | None:
    """A one-line message if the xcb plugin cannot load on this machine, else None."""
    if not uses_xcb():
        return None
    plugin = xcb_plugin()
    if plugin is None:
        return None
    missing = missing_libraries(plugin)
    if not missing:
        return None
    return (
        "rnnviz: Qt's xcb platform plugin cannot load: missing "
        + ", ".join(missing)
        + ". Install them: "
        + install_hint(missing)
        + " (README lists every package a bare desktop needs)."
    )


if __name__ == "__main__":  # `python3 rnnviz/gui/platform_check.py`: the packages, for .ci/run
    print(ALL_PACKAGES)
