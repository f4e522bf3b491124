"""A panel (any widget) written as a PNG at its physical pixel size, or as an SVG with the
pyqtgraph plots in it as vector drawing; "export all" writes every panel and the extra files
the window hands over (the metrics CSV, the probe JSON). GUI thread only.

The functions here take a path and never open a dialog, so tests call them directly;
:func:`export_actions` / :func:`attach_export_menu` are the dialog side for a context menu.
Every write is atomic (``core.atomic``) and every target is checked before anything is
rendered: a bad path costs no rendering and leaves no file. Each failure raises
:class:`ExportError`, whose message is one sentence the window can show as it is.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPoint, QRect, Qt
from PySide6.QtGui import QAction, QImage, QImageWriter, QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QFileDialog, QGraphicsItem, QGraphicsView, QWidget

from rnnviz.core.atomic import OutputPathError, atomic_write_bytes, check_output_path

# CSS's pixel is 1/96 inch: an SVG written at 96 dpi opens in a browser or Inkscape at the size
# the panel had on screen (QSvgGenerator's default, 72, made it a third larger)
SVG_DPI = 96
_INCH_M = 0.0254
# Windows refuses these as file names whatever the extension; a panel named so gets a suffix
_RESERVED_STEMS = {"con", "prn", "aux", "nul"} | {
    f"{p}{i}" for p in ("com", "lpt") for i in range(10)
}


class ExportError(Exception):
    """An export failed; the message is one sentence that says what and, where it can, why."""


# --------------------------------------------------------------------------- single panels


def export_png(widget: QWidget, path: str | os.PathLike[str]) -> Path:
    """Write ``widget`` as shown to ``path`` (PNG) at its physical pixel size; returns the path.

    ``QWidget.grab`` paints at the screen's device pixel ratio, so on a 2x screen a 400x300
    panel becomes an 800x600 PNG, as sharp as on screen. The PNG's resolution field says
    96 dpi times that ratio: a slide or word processor that reads it places the picture at the
    size it had on screen instead of twice that.
    """
    target = _checked(path)
    try:
        image = _grab(widget)
    except ExportError as exc:
        raise ExportError(f"cannot export {os.fspath(path)}: {exc}") from None
    data = _encode_png(image, f"cannot encode {os.fspath(path)} as PNG")
    _write(target, data, path)
    return target


def export_svg(widget: QWidget, path: str | os.PathLike[str], title: str = "") -> Path:
    """Write ``widget`` to ``path`` as SVG, its pyqtgraph plots as paths and text; returns it.

    ``QWidget.render`` into a ``QSvgGenerator`` turns what Qt paints into SVG elements, with
    three exceptions that would come out as embedded bitmaps, which :func:`_vector_painting`
    turns off around the render: pyqtgraph's views cache their background as a pixmap, the
    app's axes cache their drawing as one (``plotting.cache_axes``: every tick label was an
    image, no text), and scatter symbols are stamped from a pixmap atlas unless the item is in
    pyqtgraph's export mode. Images (heatmaps) stay images: they are pixels.
    (``exports.svg_closed_paths`` is not needed here: it fixes pyqtgraph's own SVG exporter,
    which this does not use.)
    """
    target = _checked(path)
    size = widget.size()
    if size.isEmpty():
        raise ExportError(f"cannot export {os.fspath(path)}: the panel has no size (is it shown?)")
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    generator = QSvgGenerator()
    generator.setOutputDevice(buffer)
    generator.setSize(size)
    generator.setViewBox(QRect(0, 0, size.width(), size.height()))
    generator.setResolution(SVG_DPI)
    generator.setTitle(title or widget.windowTitle() or "rnnviz")
    generator.setDescription("Exported from rnnviz")
    with _vector_painting(widget):
        painter = QPainter()
        if not painter.begin(generator):
            raise ExportError(f"cannot export {os.fspath(path)}: Qt could not start an SVG drawing")
        try:
            _render_widget(widget, painter)
        finally:
            # a painter left active on the generator crashes Qt when the generator is freed
            painter.end()
    buffer.close()
    data = bytes(buffer.data().data())
    if not data:
        raise ExportError(f"cannot export {os.fspath(path)}: Qt wrote an empty SVG")
    _write(target, data, path)
    return target


def _render_widget(widget: QWidget, painter: QPainter) -> None:
    # QWidget's render, named: a pyqtgraph view's own render() is QGraphicsView's, which takes
    # a target rectangle and draws only the scene, not the widget
    QWidget.render(widget, painter, QPoint())


@contextmanager
def _vector_painting(widget: QWidget) -> Iterator[None]:
    """Caches off and pyqtgraph's export mode on for every plot in ``widget``, put back after."""
    views = [widget] if isinstance(widget, QGraphicsView) else []
    views += widget.findChildren(QGraphicsView)
    restore: list[Callable[[], None]] = []
    try:
        for view in views:
            view_mode = view.cacheMode()
            view.setCacheMode(QGraphicsView.CacheModeFlag.CacheNone)
            restore.append(partial(view.setCacheMode, view_mode))
            scene = view.scene()
            if scene is None:
                continue
            for item in scene.items():
                item_mode = item.cacheMode()
                if item_mode != QGraphicsItem.CacheMode.NoCache:
                    item.setCacheMode(QGraphicsItem.CacheMode.NoCache)
                    restore.append(partial(item.setCacheMode, item_mode))
                set_export = getattr(item, "setExportMode", None)
                if callable(set_export):
                    # what pyqtgraph's own exporters do: symbols drawn as paths, the plot's
                    # "A" (auto-range) button hidden
                    set_export(True, {"antialias": True})
                    restore.append(partial(set_export, False))
        yield
    finally:
        for undo in reversed(restore):
            undo()


# --------------------------------------------------------------------------- export all


def export_all(
    folder: str | os.PathLike[str],
    panels: Mapping[str, QWidget],
    extras: Mapping[str, bytes | str] | None = None,
    *,
    before_grab: Callable[[str, QWidget], None] | None = None,
) -> list[Path]:
    """Write ``<name>.png`` for each panel and each extra file into ``folder``; returns the paths.

    Panel names become file-name-safe stems (``"Softmax / top-k"`` -> ``softmax-top-k.png``);
    an extra's key is its file name (``"metrics.csv"``), made safe the same way, and its value
    is written as given (text as UTF-8). Every target is checked before the first panel is
    grabbed, so a folder that cannot be written, two names that come out the same, or a folder
    in place of one of the files fails at once with nothing written. A later failure (the disk
    fills) says how many files were written.

    A panel is grabbed as it is: one hidden behind a tab has the size it had when last laid
    out (often squashed). ``before_grab(name, widget)`` runs before each panel is grabbed, so
    the window can bring its dock to the front there first.
    """
    base = Path(os.fspath(folder))
    if not base.is_dir():
        what = "does not exist" if not base.exists() else "is not a folder"
        raise ExportError(f"cannot export into {base}: it {what}; choose an existing folder")
    jobs: list[tuple[Path, Callable[[], bytes]]] = []
    owners: dict[str, str] = {}

    def add(file_name: str, owner: str, make: Callable[[], bytes]) -> None:
        key = file_name.lower()  # case-insensitive file systems (macOS, Windows) collide too
        if key in owners:
            raise ExportError(
                f"cannot export: {owner!r} and {owners[key]!r} would both be written to "
                f"{file_name}; give them different names"
            )
        owners[key] = owner
        jobs.append((base / file_name, make))

    def grab(widget: QWidget, name: str) -> bytes:
        if before_grab is not None:
            before_grab(name, widget)
        return _panel_png(widget, name)

    for name, widget in panels.items():
        add(f"{safe_file_stem(name)}.png", name, partial(grab, widget, name))
    for name, content in (extras or {}).items():
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        add(safe_file_name(name), name, partial(bytes, data))
    for target, _ in jobs:
        _checked(target)
    written: list[Path] = []
    for target, make in jobs:
        try:
            data = make()
            _write(target, data, target)
        except ExportError as exc:
            if not written:
                raise
            raise ExportError(f"{exc} ({len(written)} of {len(jobs)} files were written)") from None
        written.append(target)
    return written


def _panel_png(widget: QWidget, name: str) -> bytes:
    try:
        image = _grab(widget)
    except ExportError as exc:
        raise ExportError(f"cannot export the panel {name!r}: {exc}") from None
    return _encode_png(image, f"cannot encode the panel {name!r} as PNG")


def safe_file_stem(name: str) -> str:
    """``name`` as a file name stem any file system takes: ASCII letters, digits, ``-``, ``_``.

    Accents are dropped (``"é"`` -> ``"e"``), every other run of characters becomes one ``-``,
    and the stem is lower case; an empty result is ``"panel"``.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^a-z0-9_]+", "-", ascii_name.lower()).strip("-_")
    stem = stem or "panel"
    return f"{stem}_" if stem in _RESERVED_STEMS else stem


def safe_file_name(name: str) -> str:
    """``safe_file_stem`` of the name's stem, with its extension made safe the same way."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:  # no extension (or a dot file such as ".csv")
        return safe_file_stem(name)
    ext = re.sub(r"[^a-z0-9]+", "", ext.lower())
    return f"{safe_file_stem(stem)}.{ext}" if ext else safe_file_stem(stem)


# --------------------------------------------------------------------------- shared steps


def _checked(path: str | os.PathLike[str]) -> Path:
    """The target ``path`` writes, checked writable before anything is rendered."""
    try:
        check_output_path(path)
    except OutputPathError as exc:
        raise ExportError(str(exc)) from None
    return Path(os.path.realpath(os.fspath(path)))


def _grab(widget: QWidget) -> QImage:
    if widget.size().isEmpty():
        raise ExportError("the panel has no size (is it shown?)")
    pixmap = widget.grab()
    if pixmap.isNull():
        raise ExportError("Qt could not draw the panel")
    image = pixmap.toImage()
    # QImage's resolution defaults to 96 dpi whatever the ratio; a 2x grab is 192 dpi
    dots_per_m = round(widget.logicalDpiX() * pixmap.devicePixelRatio() / _INCH_M)
    image.setDotsPerMeterX(dots_per_m)
    image.setDotsPerMeterY(dots_per_m)
    return image


def _encode_png(image: QImage, failure: str) -> bytes:
    array = QByteArray()
    buffer = QBuffer(array)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QImageWriter(buffer, QByteArray(b"png"))
    ok = writer.write(image)
    buffer.close()
    if not ok or array.isEmpty():
        raise ExportError(f"{failure}: {writer.errorString()}")
    return bytes(array.data())


def _write(target: Path, data: bytes, shown: str | os.PathLike[str]) -> None:
    try:
        atomic_write_bytes(target, data)
    except OutputPathError as exc:
        raise ExportError(str(exc)) from None
    except OSError as exc:
        raise ExportError(f"cannot write {os.fspath(shown)}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- the dialog side

# Where the last export went, this session: the next dialog opens there
_last_folder: Path | None = None

AskPath = Callable[[QWidget | None, str, str, str], str]


def ask_save_path(parent: QWidget | None, caption: str, suggested: str, file_filter: str) -> str:
    """The file dialog: the path chosen, or "" when cancelled."""
    path, _ = QFileDialog.getSaveFileName(parent, caption, suggested, file_filter)
    return str(path)


def export_actions(
    panel: QWidget,
    name: str,
    report: Callable[[str], None],
    dialog_parent: QWidget | None = None,
    *,
    done: Callable[[Path], None] | None = None,
    ask_path: AskPath = ask_save_path,
    action_parent: QWidget | None = None,
) -> list[QAction]:
    """The actions "Export PNG…" and "Export SVG…" for ``panel``.

    Each asks for a file (``ask_path``, the save dialog over ``dialog_parent``; ".png"/".svg"
    is added to a name without it), exports, and passes an error's sentence to ``report`` and
    a written path to ``done``. The actions belong to ``action_parent`` (default: ``panel``).
    """
    owner = action_parent if action_parent is not None else panel
    stem = safe_file_stem(name)

    def run(kind: str, suffix: str, export: Callable[[QWidget, Path], Path]) -> None:
        global _last_folder
        folder = _last_folder or Path.home()
        chosen = ask_path(
            dialog_parent,
            f"Export {name} as {kind}",
            str(folder / f"{stem}{suffix}"),
            f"{kind} image (*{suffix})",
        )
        if not chosen:
            return
        path = Path(chosen)
        if path.suffix.lower() != suffix:
            path = path.with_name(path.name + suffix)
        try:
            written = export(panel, path)
        except ExportError as exc:
            report(str(exc))
            return
        _last_folder = written.parent
        if done is not None:
            done(written)

    png = QAction("Export PNG…", owner)
    png.setObjectName(f"export_png_{stem}")
    png.triggered.connect(lambda *_: run("PNG", ".png", export_png))
    svg = QAction("Export SVG…", owner)
    svg.setObjectName(f"export_svg_{stem}")
    svg.triggered.connect(lambda *_: run("SVG", ".svg", lambda w, p: export_svg(w, p, name)))
    return [png, svg]


def attach_export_menu(
    target: QWidget,
    panel: QWidget,
    name: str,
    report: Callable[[str], None],
    **options: Any,
) -> list[QAction]:
    """Give ``target`` (a dock's title bar) a right-click menu with :func:`export_actions`.

    ``target`` shows its actions as its context menu (``Qt.ActionsContextMenu``); its child
    buttons leave the right click to it. ``options`` go to :func:`export_actions`.
    """
    options.setdefault("dialog_parent", target.window())
    actions = export_actions(panel, name, report, action_parent=target, **options)
    target.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
    target.addActions(actions)
    return actions
