"""The window's remembered settings: a JSON file read against a strict schema.

Nothing read from the settings file can run code. QSettings un-pickles an INI value written as
``@Variant(... PyObjectWrapper ...)``, so a crafted value in ``rnnviz.ini`` ran code before the
window showed; this store never constructs a QSettings (an old ``rnnviz.ini`` is left unread)
and imports nothing from Qt. It reads JSON only, and every key has a type and a range: the run
configuration (a ``RunConfig``, checked field by field and by ``RunConfig.from_json``), the
probe text, and the window's geometry and state (bytes, as base64), plus typed keys declared
with ``Key``. A value that is refused (wrong type, out of range, not finite) gives one warning
and its key starts on the default; a file that cannot be read (not a regular file, over
``MAX_FILE_BYTES``, not UTF-8, not JSON, nested deeper than ``MAX_DEPTH``, another format
version) gives one warning and every key starts on its default. Loading never raises: a stored
setting never stops the app from starting. The warnings are in ``store.warnings`` (for the
status bar) and go to ``logging.getLogger("rnnviz")``.

``save()`` writes only values that passed these checks (so what it writes reads back), with
``atomic_write_bytes``: a reader sees the old file or the whole new one. It never raises for an
unwritable path either; it warns and returns False.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import platformdirs

from rnnviz.core.config import RunConfig
from rnnviz.core.history import atomic_write_bytes

log = logging.getLogger("rnnviz")

SETTINGS_FILE = "settings.json"
# QSettings' file in the same folder (IniFormat, UserScope, "rnnviz", "rnnviz")
LEGACY_INI = "rnnviz.ini"
FORMAT_VERSION = 1

MAX_TEXT_CHARS = 4096
MAX_BLOB_BYTES = 256 * 1024
# two blobs as base64 (~683 KiB) plus text and config fit with room to spare
MAX_FILE_BYTES = 2 * 1024 * 1024
# the file is {"config": {"train": {...}}}: three levels; more is not a settings file
MAX_DEPTH = 8
# Qt's spin boxes and most of its integer APIs hold a C int: a larger int from a file raised
# OverflowError in the seed spin box at every start
C_INT_MIN = -(2**31)
C_INT_MAX = 2**31 - 1

CONFIG_KEY = "config"
_RESERVED = frozenset({"version", CONFIG_KEY})

T = TypeVar("T", str, int, float, bool, bytes)


class _Refused(Exception):
    """A value or the file fails the schema; the message says why, in a few words."""


@dataclass(frozen=True)
class Key(Generic[T]):
    """A typed setting: ``Key("probe_text", str, "")``, ``Key("zoom", float, 1.0, 0.1, 10.0)``.

    ``minimum`` and ``maximum`` bound an int (default: a C int) or a float (default: any
    finite value); ``max_length`` bounds a str in characters (default 4,096) or bytes in bytes
    (default 256 KiB). A str never holds NUL or an unpaired surrogate.
    """

    name: str
    kind: type[T]
    default: T
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None

    def __post_init__(self) -> None:
        if self.name in _RESERVED or not self.name:
            raise ValueError(f"{self.name!r} is not a usable setting name")
        if self.kind not in (str, int, float, bool, bytes):
            raise TypeError(f"a setting holds str, int, float, bool or bytes, not {self.kind}")
        if not _is_kind(self.default, self.kind):
            raise TypeError(f"the default of setting {self.name!r} is not {self.kind.__name__}")
        try:
            _decode(self, _encode(self, self.default))
        except _Refused as exc:
            raise ValueError(f"the default of setting {self.name!r} {exc}") from None


def default_settings_path() -> Path:
    """``settings.json`` in the user's config folder (``$XDG_CONFIG_HOME/rnnviz`` on Linux)."""
    return Path(platformdirs.user_config_dir("rnnviz", appauthor=False)) / SETTINGS_FILE


class SettingsStore:
    """The settings file at ``path`` (default: ``default_settings_path()``), read at once.

    ``config()``, ``probe_text()``, ``geometry()`` and ``window_state()`` are checked while
    loading, so ``warnings`` is complete when the constructor returns; a ``Key`` of the
    caller's is checked at its first ``get``. Keys in the file that nothing asks for are not
    written back by ``save()``.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_settings_path()
        self._warnings: list[str] = []
        self._raw: dict[str, object] = {}
        self._values: dict[str, object] = {}
        self._config: RunConfig | None = None
        self._load()
        self._load_config()
        self.get(PROBE_TEXT)
        self.get(GEOMETRY)
        self.get(WINDOW_STATE)

    # ------------------------------------------------------------------ typed API

    @property
    def warnings(self) -> list[str]:
        """One line per refused value or file, oldest first."""
        return list(self._warnings)

    def config(self) -> RunConfig | None:
        """The last run's configuration, or None when there is none (or it was refused)."""
        return self._config

    def set_config(self, config: RunConfig) -> bool:
        try:
            self._config = _check_config(config.to_json())
        except _Refused as exc:
            self._warn(f"did not keep the run configuration: {exc}")
            return False
        return True

    def probe_text(self) -> str:
        return self.get(PROBE_TEXT)

    def set_probe_text(self, text: str) -> bool:
        return self.set(PROBE_TEXT, text)

    def geometry(self) -> bytes | None:
        """``QWidget.saveGeometry()``'s bytes from the last session, or None."""
        return self.get(GEOMETRY) or None

    def set_geometry(self, data: bytes) -> bool:
        return self.set(GEOMETRY, bytes(data))

    def window_state(self) -> bytes | None:
        """``QMainWindow.saveState()``'s bytes from the last session, or None."""
        return self.get(WINDOW_STATE) or None

    def set_window_state(self, data: bytes) -> bool:
        return self.set(WINDOW_STATE, bytes(data))

    # ------------------------------------------------------------------ generic API

    def get(self, key: Key[T]) -> T:
        """The stored value of ``key``, or its default (with one warning if it was refused)."""
        if key.name not in self._values:
            value = _decode(key, _encode(key, key.default))  # checked by Key: an int to float
            if key.name in self._raw:
                try:
                    value = _decode(key, self._raw.pop(key.name))
                except _Refused as exc:
                    self._warn(f"ignored the setting {key.name!r}: it {exc}; using the default")
            self._values[key.name] = value
        return cast(T, self._values[key.name])

    def set(self, key: Key[T], value: T) -> bool:
        """Keep ``value`` for the next ``save()``; False (and a warning) if it is out of range.

        A value of another type is a programming error: TypeError.
        """
        if not _is_kind(value, key.kind):
            raise TypeError(f"setting {key.name!r} holds {key.kind.__name__}, not {value!r}")
        try:
            self._values[key.name] = _decode(key, _encode(key, value))
        except _Refused as exc:
            self._warn(f"did not keep the setting {key.name!r}: it {exc}")
            return False
        self._raw.pop(key.name, None)
        return True

    # ------------------------------------------------------------------ file

    def save(self) -> bool:
        """Write the settings atomically; False, with a warning, if that was not possible."""
        document: dict[str, Any] = {"version": FORMAT_VERSION}
        if self._config is not None:
            document[CONFIG_KEY] = self._config.to_json()
        for name, value in self._values.items():
            if isinstance(value, bytes):
                value = base64.b64encode(value).decode("ascii")
            document[name] = value
        data = json.dumps(document, allow_nan=False, ensure_ascii=False, indent=1).encode()
        # a symlinked settings file (dotfiles) stays a link: write where it points
        target = Path(os.path.realpath(self.path))
        try:
            if len(data) > MAX_FILE_BYTES:
                raise _Refused(f"they would take {len(data)} bytes, over {MAX_FILE_BYTES}")
            if target.exists() and not target.is_file():
                raise _Refused(f"{target} is not a regular file")
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            atomic_write_bytes(target, data)
        except _Refused as exc:
            self._warn(f"did not save the settings: {exc}")
            return False
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._warn(f"could not save the settings to {target}: {reason}")
            return False
        return True

    def _load(self) -> None:
        try:
            data = _read_regular_file(self.path)
        except _Refused as exc:
            self._warn(f"did not read the settings file {self.path}: it {exc}; using defaults")
            return
        if data is None:
            legacy = self.path.with_name(LEGACY_INI)
            if os.path.lexists(legacy):
                self._warn(
                    f"did not read the old settings file {legacy} (that format can run code); "
                    f"settings are kept in {self.path.name} from now on"
                )
            return
        try:
            self._raw = _parse(data)
        except _Refused as exc:
            self._warn(f"did not read the settings file {self.path}: it {exc}; using defaults")

    def _load_config(self) -> None:
        if CONFIG_KEY in self._raw:
            try:
                self._config = _check_config(self._raw.pop(CONFIG_KEY))
            except _Refused as exc:
                self._warn(f"ignored the saved run configuration: {exc}; using the defaults")

    def _warn(self, message: str) -> None:
        self._warnings.append(message)
        log.warning("%s", message)


# ---------------------------------------------------------------------- reading


def _read_regular_file(path: Path) -> bytes | None:
    """The file's bytes; None if there is none. A FIFO, device or directory is refused
    without blocking: it is opened non-blocking and checked with fstat before any read."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _Refused(f"cannot be opened ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Refused("is not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise _Refused(f"is {info.st_size} bytes, over the limit of {MAX_FILE_BYTES}")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES:  # it may grow while we read
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_FILE_BYTES:
            raise _Refused(f"is over the limit of {MAX_FILE_BYTES} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise _Refused(f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def _parse(data: bytes) -> dict[str, object]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _Refused("is not UTF-8 text") from None
    try:
        document = json.loads(text)
    except RecursionError:  # json's own guard, far beyond MAX_DEPTH
        raise _Refused(f"is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, or an int of more than 4,300 digits
        raise _Refused(f"is not valid JSON ({str(exc).splitlines()[0][:100]})") from None
    if _depth(document) > MAX_DEPTH:
        raise _Refused(f"is nested deeper than {MAX_DEPTH} levels")
    if not isinstance(document, dict):
        raise _Refused("is not a JSON object")
    version = document.pop("version", None)
    if version is None:
        raise _Refused("has no format version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise _Refused(f"has format version {_show(version)}, not {FORMAT_VERSION}")
    return cast(dict[str, object], document)


def _depth(document: object) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_DEPTH:
            break
    return deepest


# ---------------------------------------------------------------------- values


def _is_kind(value: object, kind: type) -> bool:
    if kind is float:
        return type(value) in (int, float)
    return type(value) is kind


def _encode(key: Key[T], value: T) -> object:
    """The JSON form of a value: bytes as base64, a float as a float."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if key.kind is float:
        return float(value)
    return value


def _decode(key: Key[T], raw: object) -> object:
    """The value of ``key`` from its JSON form, or _Refused saying what is wrong."""
    if key.kind is bool:
        if type(raw) is not bool:
            raise _Refused(f"is {_show(raw)}, not true or false")
        return raw
    if key.kind is int:
        if type(raw) is not int:
            raise _Refused(f"is {_show(raw)}, not an integer")
        low = C_INT_MIN if key.minimum is None else key.minimum
        high = C_INT_MAX if key.maximum is None else key.maximum
        if not low <= raw <= high:
            raise _Refused(f"is {_show(raw)}, outside {_show(low)}..{_show(high)}")
        return raw
    if key.kind is float:
        number = _finite(raw)
        low = -math.inf if key.minimum is None else key.minimum
        high = math.inf if key.maximum is None else key.maximum
        if not low <= number <= high:
            raise _Refused(f"is {number}, outside {low}..{high}")
        return number
    if key.kind is str:
        return _check_text(raw, MAX_TEXT_CHARS if key.max_length is None else key.max_length)
    limit = MAX_BLOB_BYTES if key.max_length is None else key.max_length
    if type(raw) is not str:
        raise _Refused(f"is {_show(raw)}, not base64 text")
    if len(raw) > 4 * (limit // 3 + 1):
        raise _Refused(f"holds over {limit} bytes")
    try:
        blob = base64.b64decode(raw.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise _Refused("is not valid base64") from None
    if len(blob) > limit:
        raise _Refused(f"holds {len(blob)} bytes, over {limit}")
    return blob


def _finite(raw: object) -> float:
    if type(raw) not in (int, float):
        raise _Refused(f"is {_show(raw)}, not a number")
    try:
        number = float(cast(float, raw))
    except OverflowError:  # an int beyond any float
        number = math.inf
    if not math.isfinite(number):
        raise _Refused(f"is {_show(raw)}, not a finite number")
    return number


def _check_text(raw: object, limit: int) -> str:
    if type(raw) is not str:
        raise _Refused(f"is {_show(raw)}, not text")
    if len(raw) > limit:
        raise _Refused(f"is {len(raw)} characters long, over {limit}")
    if "\0" in raw:
        raise _Refused("contains a NUL character")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise _Refused("contains an unpaired surrogate") from None
    return raw


# the JSON form of RunConfig: which sections and fields exist, and each field's type
_CONFIG_FIELDS: dict[str, dict[str, type]] = {
    section: {name: type(value) for name, value in fields.items()}
    for section, fields in RunConfig().to_json().items()
}


def _check_config(raw: object) -> RunConfig:
    """A RunConfig from its JSON form: known sections and fields only, each of its type and
    in range (ints in a C int, floats finite, text as for the probe text), then
    ``RunConfig.from_json``'s own validation."""
    if not isinstance(raw, dict):
        raise _Refused(f"it is {_show(raw)}, not a JSON object")
    for section, fields in raw.items():
        kinds = _CONFIG_FIELDS.get(section)
        if kinds is None:
            raise _Refused(f"unknown section {section!r}")
        if not isinstance(fields, dict):
            raise _Refused(f"{section} is {_show(fields)}, not a JSON object")
        for name, value in fields.items():
            kind = kinds.get(name)
            if kind is None:
                raise _Refused(f"unknown field {section}.{name}")
            try:
                _check_field(kind, value)
            except _Refused as exc:
                raise _Refused(f"{section}.{name} {exc}") from None
    try:
        return RunConfig.from_json(raw)
    except (TypeError, ValueError) as exc:  # ConfigError is a ValueError
        raise _Refused(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def _check_field(kind: type, value: object) -> None:
    if kind is bool:
        if type(value) is not bool:
            raise _Refused(f"is {_show(value)}, not true or false")
    elif kind is int:
        if type(value) is not int:
            raise _Refused(f"is {_show(value)}, not an integer")
        if not C_INT_MIN <= value <= C_INT_MAX:
            raise _Refused(f"is {_show(value)}, outside {C_INT_MIN}..{C_INT_MAX}")
    elif kind is float:
        _finite(value)
    else:
        _check_text(value, MAX_TEXT_CHARS)


def _show(value: object) -> str:
    """A value for a one-line message: short, and never a whole blob."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"text of {len(value)} characters"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**12:
        return f"{value:.3g}" if abs(value) < 10**300 else "a huge integer"
    return repr(value)


# the window's own keys (here: a Key checks its default with the helpers above)
PROBE_TEXT = Key("probe_text", str, "", max_length=MAX_TEXT_CHARS)
GEOMETRY = Key("geometry", bytes, b"", max_length=MAX_BLOB_BYTES)
WINDOW_STATE = Key("window_state", bytes, b"", max_length=MAX_BLOB_BYTES)
