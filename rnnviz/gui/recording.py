"""Record the window or one panel as an animated GIF, or as MP4 when the video extra is in.

:class:`Recorder` takes a frame on the GUI thread every 1/fps s and hands it to an encoder
thread, which scales it, encodes it and appends it to a temp file beside the target; at the
end the temp file is renamed over the target (``core.atomic``'s naming and lock, so a temp
file of a recorder that died is cleaned up by the next write there). Stopped by an error, by
the app quitting or by the recorder being deleted, it removes the temp file and writes nothing.
:class:`RecordBar` shows a recording's progress with a Stop button.

Why the GUI thread stays free (the full window at 1280x720, training, on a 2-core machine
whose other core runs the engine; ``Recorder.grab_ms`` keeps each frame's cost):

* A frame is a copy of what the window system already holds (``QScreen.grabWindow``):
  0.5 ms median with the conversion to a QImage offscreen (95th percentile 7 ms, when the
  encoder thread has the core), 6-10 ms on X11 (Xvfb). ``QWidget.grab`` instead paints every
  panel again in Python: 20 ms median, up to 60 ms; drawing at half the size cost the same,
  so downscaling before the grab saves nothing. Where the platform cannot copy a window
  (Wayland), frames are painted (``grab_method == "render"``) and the rate drops so that
  grabbing takes at most a tenth of the GUI thread (``RENDER_SHARE``).
* Scaling, the per-frame palette, the GIF's LZW and ffmpeg all run off the GUI thread (Qt's
  scaling, Pillow and NumPy release the GIL); a full queue drops a frame instead of waiting,
  and the next frame's time stamp keeps the GIF's timing right. The event loop's lateness
  (a 5 ms timer) had the same 95th percentile, about 16-20 ms, with and without recording.

GIFs are for slides, so they stay small: at most ``DEFAULT_MAX_SIZE`` (the window, scaled to
fit 960x540), each frame only the rectangle that changed since the one before, with its own
palette (at most 256 colours, only those used) and no dithering (dither noise differs from
frame to frame and defeats the rectangle); 10 s of training came to about 2 MB (MP4: 0.45 MB).
``DEFAULT_FPS`` is 10: GIF delays are whole centiseconds, so 10 fps is exact (12 or 15 fps
alternate delays); the probe panels change with each snapshot (about 4 a second) and a curve
gaining points ten times a second already looks smooth, so more frames add bytes, not
motion, and GUI time. GIF frames are written as they come (Pillow's legacy
``GifImagePlugin.getheader``/``getdata``), not collected for Pillow's ``save_all``: that
keeps every frame in memory until the end and merges identical frames into one, and a
recording should hold the frames it counted.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
import queue
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QPoint, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from rnnviz.core.atomic import (
    TMP_SUFFIX,
    OutputPathError,
    _tmp_prefix,  # the same temp naming as every other write: clean_stale_temps knows it
    check_output_path,
    clean_stale_temps,
    resolve_target,
)
from rnnviz.gui import theme
from rnnviz.gui.widgets import SteadyLabel

DEFAULT_FPS = 10
MAX_FPS = 50  # GIF viewers play delays under 2 cs at 10 cs
DEFAULT_MAX_FRAMES = 300  # 30 s at 10 fps: a slide's loop, not a lecture
DEFAULT_MAX_SIZE = (960, 540)  # pixels; larger frames are scaled down to fit
RENDER_SHARE = 0.1  # painting frames (no window copy) takes at most this share of the GUI
QUEUE_FRAMES = 8  # frames waiting for the encoder; beyond this one is dropped
FFMPEG_TIMEOUT_S = 20.0
_POLL_S = 0.05  # how often an idle encoder looks whether it was told to finish

RECORD_INSTALL = 'pip install "rnnviz[record]"'
VIDEO_INSTALL = 'pip install "rnnviz[video]"'


@dataclass(frozen=True)
class _Format:
    name: str
    modules: tuple[str, ...]
    install: str


FORMATS = {
    ".gif": _Format("GIF", ("PIL.Image", "PIL.GifImagePlugin"), RECORD_INSTALL),
    ".mp4": _Format("MP4", ("imageio_ffmpeg",), VIDEO_INSTALL),
}


class RecordError(Exception):
    """A recording cannot start; the message is one sentence, with what to do."""


def check_recording(path: str | os.PathLike[str]) -> str:
    """The format (".gif" or ".mp4") ``path`` records to, once its library and path are checked.

    Raises :class:`RecordError` for another extension, a missing library (the sentence names
    the pip command) or a path that cannot be written; nothing is grabbed or created.
    """
    raw = os.fspath(path)
    suffix = Path(raw).suffix.lower()
    fmt = FORMATS.get(suffix)
    if fmt is None:
        raise RecordError(f"cannot record to {raw}: give a .gif or .mp4 file name")
    for module in fmt.modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise RecordError(
                f"recording {fmt.name} needs {module.split('.')[0]}, which is not installed: "
                f"{fmt.install}"
            ) from None
    if suffix == ".mp4":
        ffmpeg: Any = importlib.import_module("imageio_ffmpeg")
        try:
            ffmpeg.get_ffmpeg_exe()
        except RuntimeError:
            raise RecordError(
                f"recording MP4 needs the ffmpeg program, which was not found: {fmt.install}"
            ) from None
    try:
        check_output_path(raw)
    except OutputPathError as exc:
        raise RecordError(str(exc)) from None
    return suffix


# --------------------------------------------------------------------------- frames


def _grab_from_screen(widget: QWidget) -> QImage | None:
    """A copy of what the window system shows of ``widget`` (no repaint), or None if it cannot."""
    top = widget.window()
    handle = top.windowHandle()
    screen = handle.screen() if handle is not None else None
    if screen is None:
        return None
    origin = widget.mapTo(top, QPoint(0, 0)) if widget is not top else QPoint(0, 0)
    pixmap = screen.grabWindow(top.winId(), origin.x(), origin.y(), widget.width(), widget.height())
    # a copy of another size is not the widget: offscreen at a device pixel ratio of 2 returns
    # the window's logical size, a part of the panel; a window partly off an X11 screen is cut
    ratio = widget.devicePixelRatioF()
    wanted = (round(widget.width() * ratio), round(widget.height() * ratio))
    if pixmap.isNull() or (pixmap.width(), pixmap.height()) != wanted:
        return None
    return pixmap.toImage()


def _grab_by_painting(widget: QWidget) -> QImage | None:
    pixmap = widget.grab()
    return None if pixmap.isNull() else pixmap.toImage()


_GRABS: dict[str, Callable[[QWidget], QImage | None]] = {
    "screen": _grab_from_screen,
    "render": _grab_by_painting,
}

# QImage's RGB32 is 0xffRRGGBB per 32-bit word: its bytes in memory, for PIL's raw decoder
_RGB32_RAW = "BGRX" if sys.byteorder == "little" else "XRGB"


def _frame_array(image: QImage, scale: float) -> np.ndarray:
    """``image`` (scaled by ``scale``) as an (h, w) uint32 array of 0xffRRGGBB, a copy."""
    if scale < 1.0:
        width = max(1, round(image.width() * scale))
        height = max(1, round(image.height() * scale))
        image = image.scaled(
            width,
            height,
            Qt.AspectRatioMode.IgnoreAspectRatio,
            Qt.TransformationMode.SmoothTransformation,  # area-averaged: no aliased text
        )
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    h, w, stride = image.height(), image.width(), image.bytesPerLine()
    raw = np.frombuffer(image.constBits(), np.uint8, count=stride * h).reshape(h, stride)
    return raw[:, : w * 4].copy().view(np.uint32).reshape(h, w)


def _fit(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``array`` cut or padded (black) to ``shape``: a panel resized while recording."""
    if array.shape == shape:
        return array
    out = np.full(shape, 0xFF000000, np.uint32)
    h, w = min(shape[0], array.shape[0]), min(shape[1], array.shape[1])
    out[:h, :w] = array[:h, :w]
    return out


# --------------------------------------------------------------------------- writers


class _GifWriter:
    """An animated GIF written frame by frame: each frame the rectangle that changed, with
    its own palette, left in place for the next (disposal 1)."""

    def __init__(self, out: IO[bytes], fps: float) -> None:
        from PIL import GifImagePlugin, Image

        self._gif: Any = GifImagePlugin
        self._image: Any = Image
        self._out = out
        self._interval_cs = max(2, round(100 / fps))
        self._previous: np.ndarray | None = None
        self._pending: tuple[Any, tuple[int, int], dict[str, Any]] | None = None
        self._t0 = 0.0
        self._pending_cs = 0  # centiseconds from the first frame to the pending one
        self.frames = 0

    def add(self, array: np.ndarray, stamp: float) -> None:
        params: dict[str, Any] = {}
        if self._previous is None:
            self._t0 = stamp
            box: tuple[int, int, int, int] | None = (0, 0, array.shape[1], array.shape[0])
        else:
            box = _changed_box(self._previous, array)
        if box is None:
            # an unchanged frame is still a frame (it holds its time): one transparent pixel,
            # which leaves the picture as it is (the pixel's own colour, quantized anew, may
            # differ from what the first frame's palette made of it)
            x0, y0 = 0, 0
            image = self._image.new("P", (1, 1), 0)
            image.putpalette([0, 0, 0])
            params["transparency"] = 0
        else:
            x0, y0, x1, y1 = box
            image = self._paletted(array[y0:y1, x0:x1])
        if self._previous is None:
            header, _ = self._gif.getheader(image, info={"loop": 0})
            for chunk in header:
                self._out.write(chunk)
        at_cs = round((stamp - self._t0) * 100)
        if self._pending is not None:
            # a frame's delay is known when the next one comes: the time between their grabs,
            # so a dropped or late frame does not make the GIF play faster than it happened
            self._write_pending(max(2, at_cs - self._pending_cs))
        self._pending = (image, (x0, y0), params)
        self._pending_cs = at_cs
        self._previous = array

    def close(self) -> None:
        if self._pending is not None:
            self._write_pending(self._interval_cs)
        self._out.write(b";")  # the GIF trailer

    def abort(self) -> None:
        self._pending = None

    def _paletted(self, rgb32: np.ndarray) -> Any:
        h, w = rgb32.shape
        data = np.ascontiguousarray(rgb32).tobytes()
        rgb = self._image.frombuffer("RGB", (w, h), data, "raw", _RGB32_RAW, 0, 1)
        # fast octree: about 7 ms for a whole 1280x720 frame (median cut: 50 ms)
        paletted = rgb.quantize(
            256, method=self._image.Quantize.FASTOCTREE, dither=self._image.Dither.NONE
        )
        # the palette cut to the entries used: a small change's frame (a step count) would
        # otherwise carry all 256 colours, 768 bytes, often more than its pixels
        used = int(paletted.getextrema()[1]) + 1
        palette = paletted.getpalette() or []
        paletted.putpalette(palette[: 3 * used])
        return paletted

    def _write_pending(self, delay_cs: int) -> None:
        assert self._pending is not None
        image, offset, params = self._pending
        chunks = self._gif.getdata(
            image, offset, duration=delay_cs * 10, disposal=1, include_color_table=True, **params
        )
        for chunk in chunks:
            self._out.write(chunk)
        self._pending = None
        self.frames += 1


def _changed_box(before: np.ndarray, after: np.ndarray) -> tuple[int, int, int, int] | None:
    """The (x0, y0, x1, y1) box of the pixels that differ; None if none does."""
    diff = before != after
    rows = np.flatnonzero(diff.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(diff[rows[0] : rows[-1] + 1].any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


class _Mp4Writer:
    """H.264 through imageio-ffmpeg's ffmpeg process, at a constant frame rate: a frame late
    by more than half an interval is repeated to hold the time."""

    def __init__(self, path: Path, fps: float) -> None:
        self._path = path
        self._fps = fps
        self._gen: Any = None
        self._t0 = 0.0
        self.frames = 0

    def add(self, array: np.ndarray, stamp: float) -> None:
        if self._gen is None:
            import imageio_ffmpeg

            self._t0 = stamp
            h, w = array.shape
            self._gen = imageio_ffmpeg.write_frames(
                str(self._path),
                (w, h),
                fps=self._fps,
                codec="libx264",
                pix_fmt_out="yuv420p",
                quality=7,
                macro_block_size=2,  # the canvas is made even; 16 would rescale it
                ffmpeg_log_level="error",
                ffmpeg_timeout=FFMPEG_TIMEOUT_S,
                # the temp name has no .mp4, so the container is named; one encoder thread and
                # a fast preset leave the CPU to training (the engine has a core of its own)
                output_params=["-f", "mp4", "-preset", "veryfast", "-threads", "1"]
                + ["-movflags", "+faststart"],
            )
            self._gen.send(None)  # starts ffmpeg
        # RGB32 words in memory are B, G, R, X: reversed to R, G, B for ffmpeg's rgb24
        rgb = np.ascontiguousarray(array.view(np.uint8).reshape(*array.shape, 4)[..., 2::-1])
        due = round((stamp - self._t0) * self._fps) + 1
        for _ in range(max(1, due - self.frames)):
            self._gen.send(rgb)
            self.frames += 1

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()  # ffmpeg writes the rest and ends

    def abort(self) -> None:
        self.close()


# --------------------------------------------------------------------------- the encoder


class _Encoder(QThread):
    """The thread that turns frames into the file. ``done(serial, path)`` / ``error(serial,
    sentence)``: emitted from the thread, received queued on the GUI thread."""

    done = Signal(int, str)
    error = Signal(int, str)

    def __init__(self, serial: int, target: Path, suffix: str, fps: float, scale: float) -> None:
        super().__init__()
        self.setObjectName(f"rnnviz-recorder-{serial}")
        self.serial = serial
        self.target = target
        self.suffix = suffix
        self.fps = fps
        self.scale = scale
        self.frames_written = 0
        self._queue: queue.Queue[tuple[QImage, float]] = queue.Queue(maxsize=QUEUE_FRAMES)
        self._finish = threading.Event()
        self._abort = threading.Event()
        self.temp: Path | None = None

    def offer(self, image: QImage, stamp: float) -> bool:
        """Queue a frame; False (the frame dropped) when the encoder is behind."""
        try:
            self._queue.put_nowait((image, stamp))
        except queue.Full:
            return False
        return True

    def has_room(self) -> bool:
        return not self._queue.full()

    def finish(self) -> None:
        """Write the frames queued, then the file (non-blocking)."""
        self._finish.set()

    def abort(self) -> None:
        """Stop at once and remove the temp file (non-blocking; ``wait()`` for the end)."""
        self._abort.set()

    def run(self) -> None:
        fd = -1
        writer: _GifWriter | _Mp4Writer | None = None
        out: IO[bytes] | None = None
        try:
            clean_stale_temps(self.target)
            fd, self.temp = _open_temp(self.target)
            if self.suffix == ".gif":
                out = os.fdopen(os.dup(fd), "wb")
                writer = _GifWriter(out, self.fps)
            else:
                writer = _Mp4Writer(self.temp, self.fps)
            shape: tuple[int, int] | None = None
            while True:
                if self._abort.is_set():
                    raise _Aborted
                try:
                    image, stamp = self._queue.get(timeout=_POLL_S)
                except queue.Empty:
                    if self._finish.is_set():
                        break
                    continue
                array = _frame_array(image, self.scale)
                if shape is None:
                    h, w = array.shape
                    # yuv420p needs even sides; one row or column less is invisible
                    shape = (h - h % 2, w - w % 2) if self.suffix == ".mp4" else (h, w)
                    if min(shape) < 1:
                        raise RecordError("the recorded area is too small to record")
                writer.add(_fit(array, shape), stamp)
            if shape is None:
                raise RecordError("no frame was recorded (was the panel shown?)")
            writer.close()
            if out is not None:
                out.flush()
                out.close()
                out = None
            os.fsync(fd)
            self.frames_written = writer.frames
            os.replace(self.temp, self.target)
            self.temp = None
            _fsync_dir(self.target.parent)
            self.done.emit(self.serial, str(self.target))
        except _Aborted:
            self._discard(writer, out)
        except Exception as exc:  # noqa: BLE001 - any failure is the user's one sentence
            self._discard(writer, out)
            self.error.emit(self.serial, _sentence(exc, self.target))
        finally:
            if out is not None:
                with contextlib.suppress(OSError):
                    out.close()
            if fd >= 0:
                os.close(fd)  # releases the lock; the file is renamed or removed by now

    def _discard(self, writer: _GifWriter | _Mp4Writer | None, out: IO[bytes] | None) -> None:
        with contextlib.suppress(Exception):
            if writer is not None:
                writer.abort()
        if out is not None:
            with contextlib.suppress(OSError):
                out.close()
        if self.temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)
            self.temp = None


class _Aborted(Exception):
    pass


def _open_temp(target: Path) -> tuple[int, Path]:
    """A new locked temp file beside ``target``, named as ``core.atomic`` names its own."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    while True:
        temp = target.parent / f"{_tmp_prefix(target)}{secrets.token_hex(8)}{TMP_SUFFIX}"
        try:
            fd = os.open(temp, flags, 0o666)
            break
        except FileExistsError:
            continue
    # held until the rename: a temp file whose lock can be taken belongs to a dead writer
    fcntl.flock(fd, fcntl.LOCK_EX)
    with contextlib.suppress(FileNotFoundError):
        os.fchmod(fd, os.stat(target).st_mode & 0o7777)
    return fd, temp


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sentence(exc: BaseException, target: Path) -> str:
    if isinstance(exc, RecordError):
        return f"the recording to {target} failed: {exc}; nothing was written"
    if isinstance(exc, OSError):
        return f"the recording could not be written to {target}: {exc.strerror or exc}"
    first = str(exc).strip().splitlines()
    return f"the recording to {target} failed: {first[0] if first else type(exc).__name__}"


def _abort_all(encoders: list[_Encoder]) -> None:
    """Stop every encoder in ``encoders`` and wait for it: a QThread deleted running aborts."""
    for encoder in list(encoders):
        encoder.abort()
        encoder.wait()
    encoders.clear()


# --------------------------------------------------------------------------- the recorder


class Recorder(QObject):
    """Records a widget (the window or a panel) to a GIF or MP4 file; one recording at a time.

    ``start(widget, path)`` checks everything first and raises :class:`RecordError` (nothing
    grabbed or written); then ``progress(frames, cap)`` follows each frame, and the recording
    ends with ``finished(path)`` (the cap reached, or ``stop()``) or ``failed(sentence)``
    (a write failed, the widget was deleted, ``abort()``; no file is left). The app quitting
    aborts it, and so does deleting the recorder: no thread outlives it.
    """

    started = Signal(str)  # the target path
    progress = Signal(int, int)  # frames recorded, the cap
    finished = Signal(str)  # the file written
    failed = Signal(str)  # one sentence; nothing was written

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)  # even GIF delays
        self._timer.timeout.connect(self._tick)
        self._encoder: _Encoder | None = None
        self._serial = 0
        self._widget: QWidget | None = None
        self._grab: Callable[[QWidget], QImage | None] = _grab_from_screen
        self.state = "idle"  # "recording", "finishing"
        self.frames = 0
        self.max_frames = DEFAULT_MAX_FRAMES
        self.dropped = 0
        self.fps = float(DEFAULT_FPS)
        self.grab_method = ""
        self.path: Path | None = None
        self.grab_ms: list[float] = []  # the GUI thread's cost of each frame, for benches
        # the hook holds the list, not self: it runs while the C++ object is destroyed
        live: list[_Encoder] = []
        self._live = live
        self.destroyed.connect(lambda *_: _abort_all(live))
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.abort)

    @property
    def is_recording(self) -> bool:
        return self.state != "idle"

    def start(
        self,
        widget: QWidget,
        path: str | os.PathLike[str],
        *,
        fps: float = DEFAULT_FPS,
        max_frames: int = DEFAULT_MAX_FRAMES,
        max_size: tuple[int, int] = DEFAULT_MAX_SIZE,
    ) -> None:
        """Start recording ``widget`` to ``path`` (.gif or .mp4); the first frame at once."""
        if self.state != "idle":
            raise RecordError("a recording is running; stop it before starting another")
        if not 0 < fps <= MAX_FPS:
            raise RecordError(f"the frame rate must be above 0 and at most {MAX_FPS} fps")
        if max_frames < 1:
            raise RecordError("the frame cap must be at least 1")
        suffix = check_recording(path)
        if not widget.isVisible() or widget.size().isEmpty():
            raise RecordError("the panel to record is not shown; show it first")
        target = resolve_target(path)
        first = _grab_from_screen(widget)
        self._grab, self.grab_method, self.fps = _grab_from_screen, "screen", float(fps)
        if first is None:
            begun = time.perf_counter()
            first = _grab_by_painting(widget)
            cost_s = time.perf_counter() - begun
            if first is None:
                raise RecordError("Qt could not draw the panel to record")
            self._grab, self.grab_method = _grab_by_painting, "render"
            self.fps = min(float(fps), RENDER_SHARE / max(cost_s, 1e-6))
        scale = min(1.0, max_size[0] / first.width(), max_size[1] / first.height())
        self._serial += 1
        encoder = _Encoder(self._serial, target, suffix, self.fps, scale)
        encoder.done.connect(self._on_done)
        encoder.error.connect(self._on_error)
        self._encoder, self._widget, self.path = encoder, widget, target
        self._live.append(encoder)
        self.frames, self.max_frames, self.dropped = 0, max_frames, 0
        self.grab_ms = []
        self.state = "recording"
        # normal priority: at IdlePriority (SCHED_IDLE on Linux) the encoder was descheduled
        # while holding the GIL, and the GUI thread waited for it up to 150 ms
        encoder.start()
        self.started.emit(str(target))
        self._take(first)
        if self.state == "recording":
            self._timer.start(max(1, round(1000 / self.fps)))

    @Slot()
    def stop(self) -> None:
        """End the recording and write the file (``finished`` follows); idle: nothing."""
        if self.state != "recording" or self._encoder is None:
            return
        self._timer.stop()
        self.state = "finishing"
        self._encoder.finish()

    @Slot()
    def abort(self) -> None:
        """End the recording now, writing nothing (``failed`` says so); blocks until done."""
        if self.state == "idle":
            return
        self._end_with_failure("the recording was cancelled; nothing was written")

    @Slot()
    def _tick(self) -> None:
        widget, encoder = self._widget, self._encoder
        if self.state != "recording" or encoder is None or widget is None:
            return
        if not shiboken6.isValid(widget):
            self._end_with_failure("the recorded panel was closed; nothing was written")
            return
        if not widget.isVisible() or widget.size().isEmpty():
            return  # behind a tab or closed: the last frame holds until it is back
        if not encoder.has_room():
            self.dropped += 1  # the encoder is behind: skip the grab too, it costs the GUI
            return
        begun = time.perf_counter()
        image = self._grab(widget)
        if image is not None:
            self._take(image, begun)

    def _take(self, image: QImage, begun: float | None = None) -> None:
        assert self._encoder is not None
        now = time.monotonic()
        if not self._encoder.offer(image, now):
            self.dropped += 1
            return
        if begun is not None:
            self.grab_ms.append((time.perf_counter() - begun) * 1000)
        self.frames += 1
        self.progress.emit(self.frames, self.max_frames)
        if self.frames >= self.max_frames:
            self.stop()

    def _end_with_failure(self, sentence: str) -> None:
        self._timer.stop()
        encoder = self._encoder
        if encoder is not None:
            _abort_all([encoder])
            with contextlib.suppress(ValueError):
                self._live.remove(encoder)
        self._reset()
        self.failed.emit(sentence)

    @Slot(int, str)
    def _on_done(self, serial: int, path: str) -> None:
        if self._finish_encoder(serial):
            self.finished.emit(path)

    @Slot(int, str)
    def _on_error(self, serial: int, sentence: str) -> None:
        if self._finish_encoder(serial):
            self.failed.emit(sentence)

    def _finish_encoder(self, serial: int) -> bool:
        """Wait for the encoder that sent ``serial`` (it has ended); False for an old one."""
        encoder = self._encoder
        if encoder is None or encoder.serial != serial:
            return False  # a recording aborted before its signal arrived
        self._timer.stop()
        encoder.wait()
        with contextlib.suppress(ValueError):
            self._live.remove(encoder)
        self._reset()
        return True

    def _reset(self) -> None:
        self._encoder = None
        self._widget = None
        self.state = "idle"


# --------------------------------------------------------------------------- the bar


class RecordBar(QWidget):
    """A recording's progress: what is recorded, a progress bar, "n / cap frames", Stop.

    Shown while ``recorder`` records, hidden otherwise (the window can keep it in its status
    bar). Stop writes the file; the button then waits for the encoder ("Finishing…").
    """

    def __init__(self, recorder: Recorder, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("record_bar")
        self._recorder = recorder
        self.title = QLabel("Recording")
        self.title.setFont(theme.font(bold=True))
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)  # macOS's style never draws it; the count says it
        self.bar.setFixedWidth(round(10 * theme.point_size()))
        # a count changing ten times a second must not re-lay out the window (SteadyLabel)
        self.count = SteadyLabel()
        self.count.label().setFont(theme.font())
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("record_stop")
        self.stop_button.setToolTip("Stop recording and write the file")
        self.stop_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Space stays Play
        self.stop_button.clicked.connect(self._stop)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        for widget in (self.title, self.bar, self.count, self.stop_button):
            layout.addWidget(widget)
        recorder.started.connect(self._on_started)
        recorder.progress.connect(self._on_progress)
        recorder.finished.connect(self._on_ended)
        recorder.failed.connect(self._on_ended)
        self.hide()

    @Slot(str)
    def _on_started(self, path: str) -> None:
        self.title.setText(f"Recording {Path(path).name}")
        self.bar.setRange(0, self._recorder.max_frames)
        self._on_progress(0, self._recorder.max_frames)
        self.stop_button.setEnabled(True)
        self.stop_button.setText("Stop")
        self.show()

    @Slot(int, int)
    def _on_progress(self, frames: int, cap: int) -> None:
        self.bar.setValue(frames)
        self.count.setText(f"{frames} / {cap} frames")

    @Slot()
    def _stop(self) -> None:
        self.stop_button.setEnabled(False)
        self.stop_button.setText("Finishing…")
        self._recorder.stop()

    @Slot(str)
    def _on_ended(self, _text: str) -> None:
        self.hide()
