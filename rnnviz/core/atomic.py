"""Atomic file writes, and a cheap check of an output path before any work is done.

:func:`atomic_write_bytes` writes a temp file next to the target, fsyncs it and renames it over
the target, so a reader (or the next start after a crash) sees the old file or the whole new
one, never a part. Temp files are named ``.<target name>.<random>.rnnviz-tmp`` and hold an
exclusive ``flock`` while they are written: a temp file of that naming whose lock can be taken
belongs to a writer that died (SIGKILL, power cut), and the next save next to it removes it.

:func:`check_output_path` runs the same checks on the target, plus a probe write into its
folder, in a few milliseconds: the CLI calls it before training so that a bad output path is
reported at once rather than after the whole run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
import time
from pathlib import Path

TMP_SUFFIX = ".rnnviz-tmp"
# the target's name in a temp name is cut to this, so the temp name fits NAME_MAX (255)
_NAME_PART = 120
# mkstemp names of earlier versions (".<name>.XXXXXXXX.tmp") carry no lock; such a file is
# removed only when nothing has written to it for this long
_LEGACY_TMP_AGE_S = 3600.0


class OutputPathError(ValueError):
    """An output path cannot be written; the one-line message says why and what to do."""


def file_kind(mode: int) -> str:
    """What a file that is not regular is, for messages ("a folder", "a device", ...)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def resolve_target(path: str | os.PathLike[str]) -> Path:
    """The file a write to ``path`` replaces: symlinks resolved, refused unless regular or absent.

    A symlink is followed to its final target (also a dangling one, which is then created), and
    that file is replaced; the link itself stays and points at the new file.
    """
    raw = os.fspath(path)
    if not raw:
        raise OutputPathError("the output path is empty; give a file name")
    target = Path(os.path.realpath(raw))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target
    except NotADirectoryError:
        blocking = next(p for p in reversed(target.parents) if p.exists() and not p.is_dir())
        raise OutputPathError(f"cannot write {raw}: {blocking} is not a folder") from None
    except OSError as exc:
        raise OutputPathError(f"cannot use {raw} as an output: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise OutputPathError(
            f"{raw} is a folder; give a file name inside it, e.g. {os.path.join(raw, 'out')}"
        )
    if not stat.S_ISREG(st.st_mode):
        raise OutputPathError(
            f"{raw} is {file_kind(st.st_mode)}, not a regular file; "
            "rnnviz writes only regular files"
        )
    return target


def _tmp_prefix(target: Path) -> str:
    return f".{target.name[:_NAME_PART]}."


def _try_remove_stale(path: Path) -> None:
    """Remove ``path`` if no live writer holds its lock (a writer keeps it until its rename)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # a live writer
        # only if the name still is the inode we locked (the writer may have renamed it)
        with contextlib.suppress(OSError):
            st, own = os.lstat(path), os.fstat(fd)
            if (st.st_ino, st.st_dev) == (own.st_ino, own.st_dev) and stat.S_ISREG(st.st_mode):
                os.unlink(path)
    finally:
        os.close(fd)


def clean_stale_temps(path: str | os.PathLike[str]) -> int:
    """Remove dead writers' temp files next to ``path`` (its own temp naming); returns how many."""
    target = Path(os.path.realpath(os.fspath(path)))
    prefix = _tmp_prefix(target)
    legacy_prefix = f".{target.name}."
    removed = 0
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        name = entry.name
        candidate = Path(entry.path)
        if name.startswith(prefix) and name.endswith(TMP_SUFFIX):
            _try_remove_stale(candidate)
        elif (
            name.startswith(legacy_prefix)
            and name.endswith(".tmp")
            and len(name) == len(legacy_prefix) + 8 + len(".tmp")
        ):
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and now - st.st_mtime > _LEGACY_TMP_AGE_S:
                    os.unlink(candidate)
        else:
            continue
        if not os.path.lexists(candidate):
            removed += 1
    return removed


def _fsync_dir(directory: Path) -> None:
    # the rename is durable once the folder is synced; some platforms cannot open a folder
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one.

    A temp file in the target's folder (``.<name>.<random>.rnnviz-tmp``, locked while it is
    written), written whole, fsynced, renamed over the target with ``os.replace``, then the
    folder is fsynced. The file gets the old target's permission bits, or 0666 less the umask.

    * A symlink is resolved and its final target replaced; the link keeps pointing at it.
    * A target that exists and is not a regular file (a folder, a device such as
      ``/dev/full``, a FIFO, a socket) is refused with :class:`OutputPathError`; nothing is
      written.
    * Dead writers' temp files next to the target are removed before the write and after a
      failed one; a failed write removes its own temp file and leaves the target as it was.

    I/O failures raise ``OSError``.
    """
    target = resolve_target(path)
    directory = target.parent
    clean_stale_temps(target)
    try:
        mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    while True:
        tmp = directory / f"{_tmp_prefix(target)}{secrets.token_hex(8)}{TMP_SUFFIX}"
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    replaced = False
    try:
        # held until after the rename: a lock that can be taken marks a dead writer's file
        fcntl.flock(fd, fcntl.LOCK_EX)
        if mode is not None:
            os.fchmod(fd, mode)
        _write_all(fd, data)
        os.fsync(fd)
        os.replace(tmp, target)
        replaced = True
    except BaseException:
        if not replaced:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    finally:
        os.close(fd)
        if not replaced:
            clean_stale_temps(target)
    _fsync_dir(directory)


def check_output_path(path: str | os.PathLike[str]) -> None:
    """Raise :class:`OutputPathError` unless ``path`` can be written by :func:`atomic_write_bytes`.

    Cheap (a few stats and a one-byte probe file, removed again), so the CLI can call it before
    training: a missing folder, a folder or special file (``/dev/full``, a FIFO) as the target,
    a folder or file that is not writable, a read-only file system or a full disk are reported
    at once. A symlink is judged by its final target, as the write will be.
    """
    raw = os.fspath(path)
    target = resolve_target(raw)
    folder = target.parent
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        raise OutputPathError(
            f"cannot write {raw}: the folder {folder} does not exist; create it first"
        ) from None
    except OSError as exc:
        raise OutputPathError(f"cannot write {raw}: {folder}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise OutputPathError(f"cannot write {raw}: {folder} is not a folder")
    if target.exists() and not os.access(target, os.W_OK):
        raise OutputPathError(f"cannot write {raw}: the file is not writable (permission denied)")
    # a probe file finds what os.access cannot (a read-only mount as root, a full disk, quotas)
    probe = folder / f"{_tmp_prefix(target)}probe-{secrets.token_hex(4)}{TMP_SUFFIX}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise OutputPathError(
            f"cannot write {raw}: cannot create files in {folder} ({_reason(exc)})"
        ) from None
    try:
        try:
            os.write(fd, b"\0")
            os.fsync(fd)
        except OSError as exc:
            raise OutputPathError(f"cannot write {raw}: {_reason(exc)}") from None
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the disk"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)
