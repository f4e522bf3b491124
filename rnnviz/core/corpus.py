"""Where the training text comes from, and the checks that keep bad input out.

Sources (``CorpusConfig.source``):

* ``builtin`` -- real English prose that every machine with Python already has: the
  docstrings of the standard library, read with :mod:`ast` (nothing is imported), filtered to
  prose paragraphs, and cached per Python version. No third-party text ships with rnnviz.
* ``time-machine`` -- d2l's *The Time Machine*, downloaded once, SHA-1 verified, cached.
* ``synthetic:repeat|delay|brackets`` -- small teaching tasks generated from a seed.
* anything else -- a path to a user's text file (size cap, binary check, encoding detection).

Natural text (built-in, Time Machine, files) is passed through :func:`preprocess`; synthetic
text is used exactly as generated, because its alphabet *is* the task (``d2l`` preprocessing
would turn every bracket into a space).
"""

from __future__ import annotations

import ast
import codecs
import collections
import contextlib
import functools
import gc
import hashlib
import os
import random
import re
import stat
import sys
import sysconfig
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnviz.core.config import CorpusConfig
from rnnviz.core.history import atomic_write_bytes

TIME_MACHINE_URL = "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt"
TIME_MACHINE_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"
CACHE_ENV = "RNNVIZ_CACHE_DIR"
SYNTHETIC_NAMES: tuple[str, ...] = ("repeat", "delay", "brackets")

# The built-in corpus must be long enough to be worth training on; a Python installed without
# its .py sources (some embedded builds) cannot provide it, and we say so instead.
BUILTIN_MIN_CHARS = 150_000
# Bounds the cache file and the build time on a future Python with many more docstrings.
BUILTIN_MAX_CHARS = 1_500_000
# Bump when the extraction rules change, so old caches are not mistaken for the new corpus.
_BUILTIN_FORMAT = 1

# Folders of the stdlib whose docstrings are tests, tools, vendored or generated code.
_SKIP_DIRS = frozenset(
    {
        "test",
        "tests",
        "idlelib",
        "site-packages",
        "dist-packages",
        "__pycache__",
        "turtledemo",
        "lib2to3",
        "ensurepip",
        "venv",
        "pydoc_data",
        "encodings",
        "lib-dynload",
    }
)
_DOC_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
_STMT_LISTS = ("body", "orelse", "finalbody", "handlers", "cases")
# A prose word: letters with inner apostrophes/hyphens, optionally quoted, bracketed or
# followed by punctuation. Identifiers (underscores, dots, calls, operators) do not match.
_PROSE_WORD = re.compile(r"[(\"']?[A-Za-z]+(?:['-][A-Za-z]+)*[)\"']?[.,;:!?]?[)\"']?")

_BINARY_PROBE_BYTES = 8192
# Text has almost no C0 control bytes besides tab/newline/CR/form feed; binary has many.
_TEXT_CONTROLS = frozenset(b"\t\n\r\f\b\x1b")
_BINARY_CONTROL_RATIO = 0.10
_BINARY_CONTROL_CODES = [b for b in (*range(32), 127) if b not in _TEXT_CONTROLS]
_BINARY_CONTROLS = tuple(bytes([b]) for b in _BINARY_CONTROL_CODES)
# Decoding may replace at most this fraction of a file's characters (by U+FFFD, or bytes that
# cp1252 leaves undefined; for a file that is not UTF-8, control bytes count too); beyond it
# the text is mostly not what the file says, or not text.
MAX_REPLACED_FRACTION = 0.01
# (byte-order mark, codec, what the notes call it). UTF-32-LE's BOM begins with UTF-16-LE's,
# so UTF-32 is tried first.
_BOMS: tuple[tuple[bytes, str, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8-sig", "UTF-8 (with a byte-order mark)"),
    (b"\xff\xfe\x00\x00", "utf-32", "UTF-32LE (byte-order mark)"),
    (b"\x00\x00\xfe\xff", "utf-32", "UTF-32BE (byte-order mark)"),
    (b"\xff\xfe", "utf-16", "UTF-16LE (byte-order mark)"),
    (b"\xfe\xff", "utf-16", "UTF-16BE (byte-order mark)"),
)
# Formats that are not text but can pass the byte-level binary check (compressed streams have
# no NUL bytes to speak of), named so the message can say what to do instead.
_DECOMPRESS = "decompress it first"
_NOT_TEXT = "give a plain-text file instead"
_MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"\x1f\x8b", "gzip-compressed data", f"{_DECOMPRESS} (gunzip)"),
    (b"\xfd7zXZ\x00", "xz-compressed data", f"{_DECOMPRESS} (unxz)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data", f"{_DECOMPRESS} (unzstd)"),
    (b"\x04\x22\x4d\x18", "LZ4-compressed data", f"{_DECOMPRESS} (unlz4)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "extract the text file from it"),
    (b"Rar!\x1a\x07", "a RAR archive", "extract the text file from it"),
    (
        b"PK\x03\x04",
        "a ZIP archive (.docx, .odt and .epub files are ZIP archives too)",
        "extract the text file from it or export the document as plain text",
    ),
    (b"%PDF-", "a PDF document", "export its text first (for example with pdftotext)"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image", _NOT_TEXT),
    (b"\xff\xd8\xff", "a JPEG image", _NOT_TEXT),
    (b"GIF87a", "a GIF image", _NOT_TEXT),
    (b"GIF89a", "a GIF image", _NOT_TEXT),
    (b"\x7fELF", "an ELF executable", _NOT_TEXT),
)
# bzip2: "BZh", the block size, then the magic of the first block or of the end of stream.
_BZIP2 = re.compile(rb"BZh[1-9](?:1AY&SY|\x17rE8P\x90)")
# Byte entropy (bits per byte) of the first 64 KB, with the Miller-Madow correction for the
# bias of a short sample. Measured: text in 24 languages and 17 encodings 2.9-6.0; uniformly
# random CJK characters in UTF-16 (a bound no real text reaches) 7.58; gzip, bzip2, xz and
# raw deflate streams 7.3-8.0 in their first 1 KB, 7.9-8.0 from 4 KB on; random bytes
# without NUL and control bytes (which pass the checks before this one) 7.75-7.8.
_ENTROPY_PROBE_BYTES = 65536
_ENTROPY_MIN_BYTES = 1024
_ENTROPY_LIMIT = 7.7
# When a file is not UTF-8, a non-Latin legacy encoding the detector proposes replaces the
# cp1252 default only when it decodes the file clearly better. charset-normalizer's "mess"
# (0 is clean), measured on 24 languages: Western European text read as cp1252 is at most
# 0.034 messier than the detector's pick (cp1250 or cp1257, the reported bugs); non-Latin
# scripts (Cyrillic, Greek, Hebrew, Arabic, Thai, CJK) read as cp1252 are 0.9-4 messier.
_DETECT_MARGIN = 0.1
_DETECT_MAX_MESS = 0.2  # charset-normalizer's own threshold for a usable decoding
# The detected reading must also put its non-ASCII letters in words of one script: read as
# Cyrillic, symbol-heavy Western text (° ± ² µ « » ¿) becomes letters standing alone or
# mixed into Latin words (0.0 of them in one-script words), and its mess can still be lower
# than cp1252's. The right readings of the 24 languages: 0.84-1.0.
_CONSISTENT_MIN = 0.8
_COMMON_SUBSET = {"cp949": "euc_kr", "uhc": "euc_kr", "gb18030": "gb2312", "gbk": "gb2312"}
_COMMON_MIN = 0.95
# Detection looks at windows around the non-ASCII bytes of large files.
_SAMPLE_WHOLE = 256 * 1024
_SAMPLE_WINDOWS = 32
_SAMPLE_WINDOW = 4096
_CP1252_UNDEFINED = (0x81, 0x8D, 0x8F, 0x90, 0x9D)
# cp1252 is Latin-1 with printable characters in 0x80-0x9F; the five bytes it leaves
# undefined keep Latin-1's meaning (C1 control characters) and are counted as replaced.
_CP1252_OVER_LATIN1 = "".join(
    chr(b) if b in _CP1252_UNDEFINED else bytes([b]).decode("cp1252") for b in range(256)
)
_WIDE_TEXT_CONTROLS = frozenset("\t\n\r\f\b\x1b\v")
_WORD_SPLIT = re.compile(r"[\s0-9!-/:-@\[-`{-~]+")
SOURCE_CHOICES = (
    "builtin, time-machine, synthetic:repeat, synthetic:delay, synthetic:brackets, "
    "or the path of a text file"
)


class CorpusError(ValueError):
    """The corpus cannot be used; the message is shown to the user as is."""


@dataclass(frozen=True)
class Corpus:
    name: str
    text: str  # already preprocessed
    notes: tuple[str, ...] = ()


# ------------------------------------------------------------------------------ dispatch


def load_corpus(
    cfg: CorpusConfig,
    *,
    cache_dir: Path | None = None,
    max_bytes: int = 50_000_000,
    url: str = TIME_MACHINE_URL,
    sha1: str = TIME_MACHINE_SHA1,
    seed: int = 0,
) -> Corpus:
    """The corpus ``cfg.source`` names. ``seed`` only matters for synthetic corpora."""
    source = cfg.source.strip()
    if not source:
        raise CorpusError(f"the corpus path is empty; choose {SOURCE_CHOICES}")
    if source.startswith("synthetic:"):
        kind = source.split(":", 1)[1].strip()
        text = synthetic_text(kind, cfg, seed)
        return Corpus(
            _synthetic_title(kind, cfg),
            text,
            (f"generated from seed {seed}; preprocessing does not apply",),
        )
    if source == "builtin":
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        name = f"built-in (Python {version} docstrings)"
        raw = builtin_text(cache_dir=cache_dir)
        notes = ["prose paragraphs from the docstrings of Python's standard library"]
    elif source == "time-machine":
        name = "The Time Machine (H. G. Wells)"
        path = fetch_time_machine(cache_dir, url, sha1)
        raw, notes = read_text_file(path, max_bytes)
        notes.insert(0, f"from {url}, SHA-1 verified, cached at {path}")
    else:
        path = Path(source).expanduser()
        name = path.name
        raw, notes = read_text_file(path, max_bytes)
    text = preprocess(raw, cfg.preprocess)
    if not text.strip():
        raise CorpusError(f"{name} contains no usable text after '{cfg.preprocess}' preprocessing")
    return Corpus(name, text, tuple(notes))


def check_length(text: str, num_steps: int) -> None:
    """Refuse a corpus too short for one training window (num_steps inputs + 1 target)."""
    need = num_steps + 1
    if len(text) < need:
        raise CorpusError(
            f"corpus has {len(text):,} characters after preprocessing; one "
            f"training window needs at least num_steps+1 = {need:,}"
        )


def preprocess(text: str, mode: str) -> str:
    """``d2l``: letters only, lower case (d2l's vocabulary: 26 letters + space + <unk>).
    ``keep``: case and punctuation kept, non-printable characters dropped, every run of
    whitespace (newlines, tabs) one space, so line wrapping does not become vocabulary."""
    if mode == "d2l":
        return re.sub("[^A-Za-z]+", " ", text).lower()
    if mode == "keep":
        drop = {ord(c): None for c in set(text) if not c.isprintable() and not c.isspace()}
        return re.sub(r"\s+", " ", text.translate(drop))
    raise CorpusError(f"preprocess must be 'd2l' or 'keep', not {mode!r}")


# ------------------------------------------------------------------------------ cache


def default_cache_dir() -> Path:
    """``$RNNVIZ_CACHE_DIR`` if set (tests point it at a temporary folder), else the user's
    cache folder for rnnviz."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    import platformdirs  # only needed where no folder was given

    return Path(platformdirs.user_cache_dir("rnnviz"))


# ------------------------------------------------------------------------------ built-in


def builtin_text(*, cache_dir: Path | None = None) -> str:
    """English prose from the standard library's docstrings (raw, not preprocessed).

    Deterministic for one Python version: files in sorted order, paragraphs in source order,
    duplicates dropped. Built once (a few seconds), then read from the cache.
    """
    impl = sys.implementation.name
    v = sys.version_info
    cache = (cache_dir or default_cache_dir()) / (
        f"builtin-{impl}{v.major}.{v.minor}.{v.micro}-v{_BUILTIN_FORMAT}.txt"
    )
    with contextlib.suppress(OSError, UnicodeDecodeError):
        cached = cache.read_text(encoding="utf-8")
        if len(cached) >= BUILTIN_MIN_CHARS:
            return cached
    text = build_builtin_text()
    # The cache only saves time; a read-only cache folder must not stop training.
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cache, text.encode("utf-8"))
    return text


def build_builtin_text(
    stdlib: Path | None = None,
    max_chars: int = BUILTIN_MAX_CHARS,
    min_chars: int = BUILTIN_MIN_CHARS,
) -> str:
    """Extract the corpus from ``stdlib`` (default: this Python's) without the cache."""
    root = Path(stdlib or sysconfig.get_paths()["stdlib"])
    seen: set[str] = set()
    paragraphs: list[str] = []
    total = 0
    # ast.parse allocates millions of nodes that are freed right after; the cyclic collector
    # would scan them over and over for nothing (about a third of the build time).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for path in _stdlib_sources(root):
            try:
                with warnings.catch_warnings():
                    # e.g. invalid escape sequences in old modules: not our business here
                    warnings.simplefilter("ignore")
                    tree = ast.parse(path.read_bytes(), filename=str(path))
            except (SyntaxError, ValueError, OSError, RecursionError):
                continue  # a file this Python cannot parse has nothing for us
            for doc in _docstrings(tree):
                for para in _prose_paragraphs(doc):
                    if para in seen:
                        continue
                    seen.add(para)
                    paragraphs.append(para)
                    total += len(para) + 1
                    if total >= max_chars:
                        return "\n".join(paragraphs)
            del tree
    finally:
        if gc_was_enabled:
            gc.enable()
    text = "\n".join(paragraphs)
    if len(text) < min_chars:
        raise CorpusError(
            f"the built-in corpus needs Python's standard-library sources, but {root} gave "
            f"only {len(text):,} characters of docstrings; use source 'time-machine' or a "
            "text file instead"
        )
    return text


def _stdlib_sources(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [
            d for d in dirnames if d not in _SKIP_DIRS and not d.startswith((".", "config-"))
        ]
        found.extend(
            Path(dirpath, f) for f in filenames if f.endswith(".py") and not f.startswith("test_")
        )
    # Sorted by relative path so the order does not depend on the file system's.
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def _docstrings(tree: ast.AST) -> Iterator[str]:
    """Docstrings of the module, classes and functions in source order.

    Only statement lists are followed: docstrings cannot sit inside expressions, and
    skipping them makes this several times faster than ``ast.walk``.
    """
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, _DOC_NODES):
            doc = ast.get_docstring(node)
            if doc:
                yield doc
        for field in _STMT_LISTS:
            children = getattr(node, field, None)
            if children:
                stack.extend(reversed(children))


def _prose_paragraphs(doc: str) -> Iterator[str]:
    """Paragraphs that read like sentences, each joined onto one line.

    Dropped: indented blocks (code examples, argument tables), doctests, and paragraphs in
    which more than one word in ten is not a plain word (identifiers, signatures, markup).
    """
    for para in re.split(r"\n[ \t]*\n", doc):
        lines = para.strip("\n").split("\n")
        if any(line[:1].isspace() for line in lines):
            continue
        if any(line.lstrip().startswith((">>>", "...")) for line in lines):
            continue
        words = " ".join(lines).split()
        if len(words) < 6:
            continue
        text = " ".join(words)
        if not text[0].isupper() or text[-1] not in ".!?":
            continue
        plain = sum(1 for w in words if _PROSE_WORD.fullmatch(w))
        if plain >= 0.9 * len(words):
            yield text


# ------------------------------------------------------------------------------ synthetic


def synthetic_text(name: str, cfg: CorpusConfig, seed: int) -> str:
    """A teaching corpus of exactly ``cfg.synthetic_length`` characters, a pure function of
    (name, cfg, seed).

    * ``repeat``: ``"machine machine machine ..."`` (``cfg.repeat_word``). Trivial after one
      word: loss should fall to nearly zero, a first check that training works at all.
    * ``delay``: segments ``K f_1 ... f_{k-1} K`` followed by a space, ``k = cfg.delay_k``.
      The key ``K`` is drawn from ``abcd``, the fillers from ``wxyz``, all uniformly at
      random. The character at segment position k is a copy of the one k steps back and
      nothing between them carries information about it, so predicting it needs a memory of
      exactly k steps; everything else is unpredictable noise except the space (found by
      counting). Vocabulary: 8 letters + space (+ ``<unk>``). Watch the gradient flow panel:
      the copy is learnable only while ||dL_t/dH_{t-k}|| has not vanished.
    * ``brackets``: balanced expressions over ``()[]{}`` separated by spaces, e.g.
      ``([]{()}) (()) {}``, each with 1-8 bracket pairs and a random depth limit of 1-5. Which
      closing bracket comes next depends on an opener arbitrarily far back: a stack the
      hidden state has to learn.

    The text is cut at ``synthetic_length``, so the last segment may be incomplete.
    """
    length = cfg.synthetic_length
    if name == "repeat":
        word = cfg.repeat_word.strip()
        if not word:
            raise CorpusError("the repeat task needs a non-empty word")
        unit = word + " "
        return (unit * (length // len(unit) + 1))[:length]
    if name == "delay":
        return _delay_text(length, cfg.delay_k, seed)
    if name == "brackets":
        return _brackets_text(length, seed)
    raise CorpusError(
        f"unknown synthetic corpus {name!r}; choose one of {', '.join(SYNTHETIC_NAMES)}"
    )


DELAY_KEYS = "abcd"
DELAY_FILLER = "wxyz"


def _delay_text(length: int, k: int, seed: int) -> str:
    rng = np.random.default_rng([seed, k])
    seg = k + 2  # key, k-1 fillers, key again, space
    n_seg = length // seg + 1
    grid = np.empty((n_seg, seg), dtype="<U1")
    keys = np.array(list(DELAY_KEYS))[rng.integers(0, len(DELAY_KEYS), n_seg)]
    grid[:, 0] = keys
    fillers = rng.integers(0, len(DELAY_FILLER), (n_seg, k - 1))
    grid[:, 1:k] = np.array(list(DELAY_FILLER))[fillers]
    grid[:, k] = keys
    grid[:, k + 1] = " "
    return "".join(grid.ravel().tolist())[:length]


_BRACKETS: tuple[tuple[str, str], ...] = (("(", ")"), ("[", "]"), ("{", "}"))


def _brackets_text(length: int, seed: int) -> str:
    # random.Random: one draw per character, and its scalar draws are much cheaper than
    # NumPy's; its sequence for a given int seed is stable across Python versions.
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < length:
        pairs_left = rng.randint(1, 8)
        max_depth = rng.randint(1, 5)
        stack: list[str] = []
        while pairs_left or stack:
            if not stack or (pairs_left and len(stack) < max_depth and rng.random() < 0.5):
                opener, closer = _BRACKETS[rng.randrange(3)]
                out.append(opener)
                stack.append(closer)
                pairs_left -= 1
            else:
                out.append(stack.pop())
            size += 1
        out.append(" ")
        size += 1
    return "".join(out)[:length]


def _synthetic_title(kind: str, cfg: CorpusConfig) -> str:
    if kind == "repeat":
        return f"synthetic: repeat {cfg.repeat_word.strip()!r}"
    if kind == "delay":
        return f"synthetic: delay k={cfg.delay_k}"
    return f"synthetic: {kind}"


# ------------------------------------------------------------------------------ user files


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit} ({n:,} bytes)"
    return f"{n:,} bytes"


def read_text_file(path: str | os.PathLike[str], max_bytes: int) -> tuple[str, list[str]]:
    """The decoded text of a user's file and notes on how it was decoded.

    Checks, in order: the path is not empty, exists and is a regular file (FIFOs and devices
    are refused before they are opened), its size is within ``max_bytes`` (from ``stat``,
    before reading a byte, and again while reading), it is not empty, and its bytes are text
    (see :func:`_decode`).
    """
    if not os.fspath(path).strip():
        raise CorpusError(f"the corpus path is empty; choose {SOURCE_CHOICES}")
    p = Path(path)
    name = p.name or str(p)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise CorpusError(f"file not found: {p}") from None
    except OSError as exc:
        raise CorpusError(f"cannot open {p}: {exc.strerror or exc}") from None
    _check_regular(p, st)
    _check_size(name, st.st_size, max_bytes)
    # Non-blocking, so a FIFO swapped in after the check cannot hang the open; fstat then
    # checks the file actually opened.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise CorpusError(f"cannot open {p}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        _check_regular(p, st)
        _check_size(name, st.st_size, max_bytes)
        data = _read_capped(fd, max_bytes, name)
    except OSError as exc:
        raise CorpusError(f"cannot read {p}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    text, notes = _decode(data, name)
    if not text.strip():
        raise CorpusError(f"{name} contains only whitespace")
    return text, notes


def _check_regular(p: Path, st: os.stat_result) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    kind = (
        "a directory"
        if stat.S_ISDIR(st.st_mode)
        else "a FIFO"
        if stat.S_ISFIFO(st.st_mode)
        else "a device"
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
        else "a socket"
        if stat.S_ISSOCK(st.st_mode)
        else "a special file"
    )
    raise CorpusError(f"{p} is not a regular file ({kind}); give the path of a text file")


def _check_size(name: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise CorpusError(f"{name} is {_size(size)}; the limit is {_size(max_bytes)}")
    if size == 0:
        raise CorpusError(f"{name} is empty")


def _read_capped(fd: int, max_bytes: int, name: str) -> bytes:
    """The whole file, refusing it as soon as it turns out larger than ``max_bytes`` (it can
    grow after ``stat``)."""
    chunks: list[bytes] = []
    total = 0
    while chunk := os.read(fd, min(1 << 20, max_bytes + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise CorpusError(f"{name} grew past the limit of {_size(max_bytes)} while being read")
    return b"".join(chunks)


def _decode(data: bytes, name: str) -> tuple[str, list[str]]:
    """Text from bytes, deciding the encoding with a margin.

    1. known non-text formats (compressed streams, archives, PDF, images, executables), by
       their signature, unless the file reads as clean UTF-8 text: refused;
    2. a byte-order mark: UTF-8, UTF-16 or UTF-32 as it says;
    3. NUL bytes in the pattern of UTF-32/UTF-16 without a byte-order mark: that encoding;
    4. otherwise NUL or many control bytes, or near-random bytes: refused as binary;
    5. valid UTF-8; UTF-8 with a few invalid sequences (more valid multi-byte characters
       than invalid sequences) is read as UTF-8 with replacement characters;
    6. a non-Latin encoding charset-normalizer detects (Shift-JIS, cp1251, ...), only when
       it reads the text clearly better than cp1252 (see :func:`_detect_legacy`);
    7. else cp1252 (Latin-1 where cp1252 is undefined), the usual legacy encoding of Western
       text, which detectors confuse with cp1250/cp1257.

    Every path counts its replacements (in 6 and 7 control characters too), and a file with
    more than ``MAX_REPLACED_FRACTION`` of its characters replaced is refused.
    """
    _refuse_known_formats(data, name)
    for bom, codec, label in _BOMS:
        if data.startswith(bom):
            text, replaced = _decode_counted(data, codec)
            if codec != "utf-8-sig":
                _check_wide_text(text, label, name)
            return text, _notes(label, text, replaced, name)
    wide = _bomless_wide(data)
    if wide is not None:
        text, replaced = _decode_counted(data, wide)
        label = wide.upper().replace("-LE", "LE").replace("-BE", "BE")
        return text, _notes(
            f"{label} (no byte-order mark; found from its NUL bytes)", text, replaced, name
        )
    _refuse_binary(data, name)
    # ISO-2022-JP is 7-bit, so valid UTF-8 too; its escape sequences switch to JIS X 0208.
    if b"\x1b$B" in data[:_BINARY_PROBE_BYTES] or b"\x1b$@" in data[:_BINARY_PROBE_BYTES]:
        with contextlib.suppress(UnicodeDecodeError):
            return data.decode("iso2022_jp"), ["encoding: ISO-2022-JP (found from its escapes)"]
    try:
        return data.decode("utf-8"), ["encoding: UTF-8"]
    except UnicodeDecodeError:
        pass
    text, replaced = _decode_counted(data, "utf-8")
    histogram = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)
    valid_multibyte = len(text) - int(histogram[:0x80].sum()) - text.count("\ufffd")
    if valid_multibyte >= max(replaced, 1):
        return text, _notes("UTF-8", text, replaced, name)
    # Without UTF-8's structure as evidence, control bytes count against the file too: a
    # short compressed stream has about one in ten, legacy text none.
    controls = int(histogram[_BINARY_CONTROL_CODES].sum())
    detected = _detect_legacy(data)
    if detected is not None:
        text, replaced = _decode_counted(data, detected)
        return text, _notes(
            f"{detected} (detected with confidence; the file is not UTF-8)",
            text,
            replaced,
            name,
            controls,
        )
    text = _decode_western(data)
    undefined = int(histogram[list(_CP1252_UNDEFINED)].sum())
    notes = _notes(
        "cp1252 (assumed: the file is not UTF-8 and no other encoding was detected with "
        "confidence; if accented letters look wrong, save the file as UTF-8)",
        text,
        undefined,
        name,
        controls,
    )
    if undefined:
        notes[1] = (
            f"{undefined:,} byte{'s' if undefined != 1 else ''} of {name} that cp1252 "
            "leaves undefined read as Latin-1 control characters"
        )
    return text, notes


def _refuse_known_formats(data: bytes, name: str) -> None:
    probe = data[:_BINARY_PROBE_BYTES]
    # Some signatures are plain characters ("%PDF-", "GIF89a", "BZh91AY&SY", "x" + an Arabic
    # letter is zlib's "x\xda"): a file that starts with one but reads as clean UTF-8 text is
    # text. Real files of these formats have binary bytes within their first 8 KB.
    if not any(b in probe for b in _BINARY_CONTROLS):
        with contextlib.suppress(UnicodeDecodeError):
            codecs.getincrementaldecoder("utf-8")().decode(probe, final=False)
            return
    head = data[:16]
    for magic, what, todo in _MAGIC:
        if head.startswith(magic):
            raise CorpusError(f"{name} is {what}, not text; {todo}")
    if _BZIP2.match(head):
        raise CorpusError(f"{name} is bzip2-compressed data, not text; {_DECOMPRESS} (bunzip2)")
    # zlib: deflate with a window of 32 KB, header checksum valid; 'x^' (0x78 0x5e) is
    # left out because a text can start with it.
    if len(head) >= 2 and head[0] == 0x78 and head[1] in (0x01, 0x9C, 0xDA):
        raise CorpusError(f"{name} is zlib-compressed data, not text; {_DECOMPRESS}")


def _refuse_binary(data: bytes, name: str) -> None:
    head = data[:_BINARY_PROBE_BYTES]
    if b"\x00" in head:
        raise CorpusError(
            f"{name} looks like a binary file (it contains NUL bytes), not text; {_NOT_TEXT}"
        )
    controls = sum(head.count(b) for b in _BINARY_CONTROLS)
    if controls > _BINARY_CONTROL_RATIO * len(head):
        raise CorpusError(
            f"{name} looks like a binary file ({controls} control bytes in its "
            f"first {len(head):,}), not text; {_NOT_TEXT}"
        )
    probe = data[:_ENTROPY_PROBE_BYTES]
    if len(probe) >= _ENTROPY_MIN_BYTES:
        counts = np.bincount(np.frombuffer(probe, dtype=np.uint8), minlength=256)
        freq = counts[counts > 0] / len(probe)
        entropy = float(-(freq * np.log2(freq)).sum()) + (freq.size - 1) / (
            2 * len(probe) * np.log(2)
        )
        if entropy > _ENTROPY_LIMIT:
            raise CorpusError(
                f"{name} looks like compressed or encrypted data ({entropy:.2f} bits per "
                f"byte; text has under {_ENTROPY_LIMIT}), not text; decompress it or "
                "give a plain-text file"
            )


def _decode_counted(data: bytes, codec: str) -> tuple[str, int]:
    """The text, with undecodable sequences replaced by U+FFFD, and how many were replaced."""
    try:
        return data.decode(codec), 0
    except UnicodeDecodeError:
        pass
    text = data.decode(codec, errors="replace")
    # A file can hold genuine U+FFFD characters; only the ones decoding added are counted.
    genuine = data.decode(codec, errors="ignore").count("\ufffd")
    return text, text.count("\ufffd") - genuine


def _notes(label: str, text: str, replaced: int, name: str, controls: int = 0) -> list[str]:
    """The notes on a decoding; refuses it when too much of the text was replaced (or, where
    ``controls`` is given, is control characters)."""
    bad = replaced + controls
    if bad > MAX_REPLACED_FRACTION * len(text):
        what = "could not be decoded" + (" or are control characters" if controls else "")
        raise CorpusError(
            f"{name}: {bad:,} of {len(text):,} characters ({bad / max(len(text), 1):.1%}) "
            f"{what} (read as {label.split(' ')[0]}), more than the "
            f"{MAX_REPLACED_FRACTION:.0%} allowed; save the file as UTF-8 and try again"
        )
    if not replaced:
        return [f"encoding: {label}"]
    return [
        f"encoding: {label} with errors replaced",
        f"{replaced:,} undecodable byte sequence{'s' if replaced != 1 else ''} in {name} "
        "replaced by \ufffd",
    ]


def _not_text_chars(text: str) -> int:
    """Characters that no text has: control characters other than the usual whitespace,
    unassigned and private-use code points, and replacement characters."""
    import unicodedata

    return sum(
        1
        for c in text
        if (c < " " and c not in _WIDE_TEXT_CONTROLS)
        or (c > "~" and (c == "\ufffd" or unicodedata.category(c) in ("Cc", "Cn", "Co", "Cs")))
    )


def _check_wide_text(text: str, label: str, name: str) -> None:
    """A byte-order mark in front of binary data still decodes as UTF-16 (mostly unassigned
    and control characters): refuse it."""
    sample = text[: _ENTROPY_PROBE_BYTES // 2]
    bad = _not_text_chars(sample)
    if bad > MAX_REPLACED_FRACTION * len(sample):
        raise CorpusError(
            f"{name} starts with a {label.split(' ')[0]} byte-order mark, but {bad:,} of "
            f"its first {len(sample):,} characters are not text; {_NOT_TEXT}"
        )


def _bomless_wide(data: bytes) -> str | None:
    """``utf-32-le/-be`` or ``utf-16-le/-be`` when the NUL bytes say so, else None.

    UTF-16 text has a NUL byte in every code unit of U+0000-U+00FF (ASCII, Latin-1), always
    the high byte: one byte lane has them, the other (nearly) none; UTF-32 has two or three
    in every unit. Binary data with NULs decodes to U+0000, controls and unassigned code
    points instead, which the check of the decoded first 8 KB refuses.
    """
    head = data[:_BINARY_PROBE_BYTES]
    nuls = head.count(0)
    if not nuls:
        return None
    # Text with a stray NUL or two: UTF-8 read as UTF-16 would become CJK nonsense.
    if nuls < 0.01 * len(head):
        with contextlib.suppress(UnicodeDecodeError):
            codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
            return None
    even, odd = head[0::2].count(0), head[1::2].count(0)
    codecs_to_try = ["utf-32-le", "utf-32-be", "utf-16-le" if odd > even else "utf-16-be"]
    if odd == even:
        codecs_to_try.pop()
    for codec in codecs_to_try:
        unit = 4 if "32" in codec else 2
        # A whole file of code units: an odd length is not UTF-16.
        if len(data) % unit:
            continue
        try:
            text = head[: len(head) // unit * unit].decode(codec)
        except UnicodeDecodeError:
            continue
        if text and "\x00" not in text and _not_text_chars(text) <= 0.01 * len(text):
            return codec
    return None


def _decode_western(data: bytes) -> str:
    """cp1252, with Latin-1's C1 control characters for the five bytes cp1252 leaves
    undefined: never an error."""
    return codecs.charmap_decode(data, "strict", _CP1252_OVER_LATIN1)[0]


def _detect_legacy(data: bytes) -> str | None:
    """The first legacy encoding charset-normalizer proposes that reads ``data`` clearly
    better than cp1252, else None. Clearly better: it is not a Latin-script encoding, it
    reads ASCII as ASCII, its mess is at most ``_DETECT_MAX_MESS`` and lower than cp1252's
    by ``_DETECT_MARGIN``, its non-ASCII letters sit in words of one script
    (``_CONSISTENT_MIN``), and it stays within the common characters of its family."""
    from charset_normalizer import from_bytes  # slow to import; only non-UTF-8 files need it
    from charset_normalizer.md import mess_ratio

    sample = _detection_sample(data)
    western_mess: float | None = None
    # A looser threshold than the default 0.2: with it, 30 KB of Polish in cp1250 had no
    # candidate at all. The mess of the whole sample is held to _DETECT_MAX_MESS below.
    for match in from_bytes(sample, threshold=0.3):
        codec = match.encoding
        # Latin-script legacy encodings (cp1250, cp1257, cp1258, ISO-8859-2, mac_latin2...)
        # never win: they differ from cp1252 only in accented letters, the detector cannot
        # tell them apart (it read French and Spanish as cp1250), and Western text with odd
        # casing or many symbols can look less "messy" in one of them than in cp1252.
        # EBCDIC and the like read ASCII as other characters: a long line of "aaaa" read
        # as cp037 is "////", less messy than one endless word.
        if codec in ("ascii", "utf_8") or _latin_script(codec) or not _ascii_compatible(codec):
            continue
        try:
            text = sample.decode(codec, errors="replace")
        except LookupError:
            continue
        mess = mess_ratio(text, maximum_threshold=1.0)
        if mess > _DETECT_MAX_MESS:
            continue
        if western_mess is None:
            western_mess = mess_ratio(_decode_western(sample), maximum_threshold=1.0)
        if western_mess - mess < _DETECT_MARGIN:
            continue
        if _script_consistent(text) < _CONSISTENT_MIN or not _common_characters(codec, text):
            continue
        return codec
    return None


def _common_characters(codec: str, text: str) -> bool:
    """For the supersets cp949 (of EUC-KR) and GB18030 (of GB2312): whether the text stays
    (``_COMMON_MIN``) within the subset, where real Korean and Chinese text lives. Japanese
    in Shift-JIS reads without error as either, as rare syllables and ideographs of the
    extensions, and charset-normalizer ranked that reading first for short texts."""
    subset = _COMMON_SUBSET.get(codec)
    if subset is None:
        return True
    counts = collections.Counter(c for c in text if not c.isascii())
    total = sum(counts.values())
    common = 0
    for c, n in counts.items():
        # Python's EUC-KR spells the syllables it lacks as 8-byte jamo sequences.
        with contextlib.suppress(UnicodeEncodeError):
            if len(c.encode(subset)) <= 2:
                common += n
    return total > 0 and common >= _COMMON_MIN * total


def _ascii_compatible(codec: str) -> bool:
    printable = bytes(range(0x20, 0x7F))
    try:
        return printable.decode(codec) == printable.decode("ascii")
    except (UnicodeDecodeError, LookupError):
        return False


@functools.lru_cache(maxsize=64)
def _latin_script(codec: str) -> bool:
    """A single-byte encoding whose upper half is mostly Latin letters."""
    upper = bytes(range(0x80, 0x100)).decode(codec, errors="replace")
    return len(upper) == 128 and sum(_script(c) == "LATIN" for c in upper if c.isalpha()) >= 32


_CJK_SCRIPTS = frozenset({"CJK", "HIRAGANA", "KATAKANA", "HANGUL", "IDEOGRAPHIC", "BOPOMOFO"})


@functools.lru_cache(maxsize=4096)
def _script(c: str) -> str:
    """The script of a letter, from its Unicode name ("CYRILLIC SMALL LETTER A")."""
    if c.isascii():
        return "LATIN"
    import unicodedata

    first = unicodedata.name(c, "").split(" ")[0].split("-")[0]
    return "CJK" if first in _CJK_SCRIPTS else first


def _script_consistent(text: str) -> float:
    """The share of non-ASCII letters that sit in words of two or more characters whose
    letters are all of one script (words split at whitespace, digits and ASCII punctuation;
    Chinese and Japanese scripts count as one)."""
    inside = total = 0
    for word in _WORD_SPLIT.split(text):
        if word.isascii():
            continue
        letters = [c for c in word if c.isalpha()]
        non_ascii = sum(1 for c in letters if not c.isascii())
        total += non_ascii
        if len(word) >= 2 and len({_script(c) for c in letters}) == 1:
            inside += non_ascii
    return inside / total if total else 0.0


def _detection_sample(data: bytes) -> bytes:
    """All of a small file; windows around evenly spaced non-ASCII bytes of a large one, cut
    at a newline or space (never inside a character in the legacy multi-byte encodings), so
    that pure-ASCII stretches neither dilute the evidence nor cost time."""
    if len(data) <= _SAMPLE_WHOLE:
        return data
    high = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) >= 0x80)
    if not high.size:
        return data[:_SAMPLE_WHOLE]
    picks = high[np.linspace(0, high.size - 1, min(_SAMPLE_WINDOWS, high.size)).astype(np.int64)]
    pieces: list[bytes] = []
    done = 0
    for anchor in (int(a) for a in picks):
        if anchor < done:
            continue
        lo = max(anchor - _SAMPLE_WINDOW // 2, done)
        hi = min(anchor + _SAMPLE_WINDOW // 2, len(data))
        cuts = [i for i in (data.find(b"\n", lo, anchor), data.find(b" ", lo, anchor)) if i >= 0]
        start = min(cuts) + 1 if cuts else lo
        end = max(data.rfind(b"\n", anchor, hi), data.rfind(b" ", anchor, hi)) + 1 or hi
        pieces.append(data[start:end])
        done = end
    return b"\n".join(pieces)


# ------------------------------------------------------------------------------ download


def fetch_time_machine(
    cache_dir: Path | None = None,
    url: str = TIME_MACHINE_URL,
    sha1: str = TIME_MACHINE_SHA1,
    *,
    timeout: float = 30.0,
    max_bytes: int = 20_000_000,
) -> Path:
    """The cached, verified file; downloaded first if it is not cached yet.

    Only a complete download whose SHA-1 matches is ever written (atomically), so a cached
    file is always the right one; a mismatching one found there is deleted.
    """
    folder = cache_dir or default_cache_dir()
    target = folder / "timemachine.txt"
    if target.is_file():
        if hashlib.sha1(target.read_bytes()).hexdigest() == sha1:
            return target
        with contextlib.suppress(OSError):
            target.unlink()
    data = _download(url, timeout, max_bytes)
    digest = hashlib.sha1(data).hexdigest()
    if digest != sha1:
        raise CorpusError(
            f"downloaded {url} but its SHA-1 is {digest}, not {sha1}; the "
            "file was discarded and nothing was cached"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
    except OSError as exc:
        raise CorpusError(f"cannot write to the cache folder {folder}: {exc}") from None
    return target


def _download(url: str, timeout: float, max_bytes: int) -> bytes:
    """The whole body of ``url``, or CorpusError if it cannot be had complete."""
    # urllib.request pulls in ssl and email: only worth importing when downloading
    import http.client
    import urllib.request

    chunks: list[bytes] = []
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            while chunk := response.read(1 << 16):
                received += len(chunk)
                if received > max_bytes:
                    raise CorpusError(
                        f"downloading {url} stopped: it is larger than "
                        f"{_size(max_bytes)}; nothing was cached"
                    )
                chunks.append(chunk)
    except CorpusError:
        raise
    # URLError and socket timeouts are OSErrors; ValueError is a malformed URL.
    except (OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", exc)  # URLError wraps the socket's error
        raise CorpusError(
            f"The Time Machine is downloaded on first use, and {url} could not be reached "
            f"({reason}): this needs a network. The built-in corpus, the synthetic tasks and "
            "your own text files work offline."
        ) from None
    # http.client returns a short body without complaint when the server hangs up early.
    if expected is not None and received != expected:
        raise CorpusError(
            f"downloading {url} failed: the connection dropped after "
            f"{received:,} of {expected:,} bytes; nothing was cached"
        )
    return b"".join(chunks)
