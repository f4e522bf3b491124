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
import contextlib
import gc
import hashlib
import os
import random
import re
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
_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32-LE's BOM begins with UTF-16-LE's, so UTF-32 is tried first.
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
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

    Order of checks: exists, size (from ``os.stat``, before reading a byte), empty, binary,
    then decoding: strict UTF-8, else the encoding charset-normalizer detects, else UTF-8
    with replacement characters (counted in the notes).
    """
    p = Path(path)
    name = p.name or str(p)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise CorpusError(f"file not found: {p}") from None
    except OSError as exc:
        raise CorpusError(f"cannot open {p}: {exc.strerror or exc}") from None
    if not p.is_file():
        raise CorpusError(f"{p} is not a regular file")
    if st.st_size > max_bytes:
        raise CorpusError(f"{name} is {_size(st.st_size)}; the limit is {_size(max_bytes)}")
    if st.st_size == 0:
        raise CorpusError(f"{name} is empty")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise CorpusError(f"cannot read {p}: {exc.strerror or exc}") from None
    text, notes = _decode(data, name)
    if not text.strip():
        raise CorpusError(f"{name} contains only whitespace")
    return text, notes


def _decode(data: bytes, name: str) -> tuple[str, list[str]]:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            # NUL bytes are normal in UTF-16/32, so the binary check does not apply.
            return _decode_with(data, encoding, name)
    head = data[:_BINARY_PROBE_BYTES]
    if b"\x00" in head:
        raise CorpusError(f"{name} looks like a binary file (it contains NUL bytes), not text")
    controls = sum(1 for b in head if (b < 32 and b not in _TEXT_CONTROLS) or b == 127)
    if controls > _BINARY_CONTROL_RATIO * len(head):
        raise CorpusError(
            f"{name} looks like a binary file ({controls} control bytes in its "
            f"first {len(head):,}), not text"
        )
    try:
        return data.decode("utf-8-sig"), ["encoding: UTF-8"]
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes  # slow to import; only non-UTF-8 files need it

    best = from_bytes(data).best()
    if best is not None:
        with contextlib.suppress(UnicodeDecodeError, LookupError):
            return data.decode(best.encoding), [
                f"encoding: {best.encoding} (detected; the file is not valid UTF-8)"
            ]
    return _decode_with(data, "utf-8", name)


def _decode_with(data: bytes, encoding: str, name: str) -> tuple[str, list[str]]:
    try:
        return data.decode(encoding), [f"encoding: {encoding}"]
    except UnicodeDecodeError:
        pass
    text = data.decode(encoding, errors="replace")
    # A file can hold genuine U+FFFD characters; only the ones decoding added are counted.
    genuine = data.decode(encoding, errors="ignore").count("\ufffd")
    replaced = text.count("\ufffd") - genuine
    return text, [
        f"encoding: {encoding} with errors replaced",
        f"{replaced:,} undecodable byte sequence{'s' if replaced != 1 else ''} in {name} "
        "replaced by \ufffd",
    ]


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
        raise CorpusError(f"downloading {url} failed ({exc}); nothing was cached") from None
    # http.client returns a short body without complaint when the server hangs up early.
    if expected is not None and received != expected:
        raise CorpusError(
            f"downloading {url} failed: the connection dropped after "
            f"{received:,} of {expected:,} bytes; nothing was cached"
        )
    return b"".join(chunks)
