from __future__ import annotations

import bz2
import gzip
import hashlib
import http.server
import lzma
import os
import random
import re
import socket
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from rnnviz.core import corpus as corpus_mod
from rnnviz.core.config import CorpusConfig
from rnnviz.core.corpus import (
    BUILTIN_MIN_CHARS,
    CorpusError,
    build_builtin_text,
    builtin_text,
    check_length,
    default_cache_dir,
    fetch_time_machine,
    load_corpus,
    preprocess,
    read_text_file,
    synthetic_text,
)
from rnnviz.core.vocab import Vocab

# ------------------------------------------------------------------------------ built-in


@pytest.fixture(scope="module")
def builtin_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the built-in corpus, built once for the module."""
    folder = tmp_path_factory.mktemp("cache")
    builtin_text(cache_dir=folder)
    return folder


def test_builtin_corpus_is_long_english_prose(builtin_cache: Path) -> None:
    text = builtin_text(cache_dir=builtin_cache)
    assert len(text) >= BUILTIN_MIN_CHARS
    assert ">>>" not in text
    words = text.split()
    assert sum(
        w.strip(".,;:!?\"'()").lower() in {"the", "a", "of", "is", "to"} for w in words
    ) > 0.08 * len(words)
    vocab = Vocab.from_text(preprocess(text, "d2l"))
    assert len(vocab) == 28  # d2l: 26 letters, space and <unk>
    assert set(vocab.tokens[1:]) == set("abcdefghijklmnopqrstuvwxyz ")


def test_builtin_corpus_is_cached_per_python_version(builtin_cache: Path) -> None:
    (cache_file,) = builtin_cache.iterdir()
    v = sys.version_info
    assert f"{v.major}.{v.minor}.{v.micro}" in cache_file.name
    t0 = time.perf_counter()
    cached = builtin_text(cache_dir=builtin_cache)
    assert time.perf_counter() - t0 < 0.5
    assert cached == cache_file.read_text(encoding="utf-8")


def test_builtin_extraction_is_deterministic() -> None:
    # the first files in sorted order are enough to compare two independent builds
    a = build_builtin_text(max_chars=40_000, min_chars=0)
    b = build_builtin_text(max_chars=40_000, min_chars=0)
    assert a == b and len(a) >= 40_000


def test_load_builtin_uses_the_env_cache_dir(
    builtin_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RNNVIZ_CACHE_DIR", str(builtin_cache))
    assert default_cache_dir() == builtin_cache
    c = load_corpus(CorpusConfig(source="builtin"))
    assert (
        c.name == f"built-in (Python {sys.version_info.major}.{sys.version_info.minor} docstrings)"
    )
    assert set(c.text) == set("abcdefghijklmnopqrstuvwxyz ")
    kept = load_corpus(CorpusConfig(source="builtin", preprocess="keep"))
    assert "\n" not in kept.text and "." in kept.text and "T" in kept.text


def test_builtin_cache_is_written_atomically_and_rebuilt_when_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = "Some prose. " * 20_000
    monkeypatch.setattr(corpus_mod, "build_builtin_text", lambda: fake)
    assert builtin_text(cache_dir=tmp_path) == fake
    (cache_file,) = tmp_path.iterdir()  # no temporary file left behind
    cache_file.write_text("truncated", encoding="utf-8")
    assert builtin_text(cache_dir=tmp_path) == fake
    assert cache_file.read_text(encoding="utf-8") == fake


def test_builtin_extraction_keeps_prose_and_skips_tests_and_code(tmp_path: Path) -> None:
    prose = "This paragraph explains in plain words what the function does for you."
    (tmp_path / "b.py").write_text(
        f'"""Module b.\n\n{prose}\n"""\n'
        "def f():\n"
        '    """Call it like this.\n\n'
        "    >>> f(1, 2)\n    3\n\n"
        "    x = foo_bar(a[1], b=2) if self._flag else None  # code, not prose at all\n\n"
        "    Indented block that looks like prose but is an example of something.\n"
        "        more = example(code)\n"
        '    """\n',
        encoding="utf-8",
    )
    (tmp_path / "a.py").write_text(
        '"""The first module comes first because files are read in sorted order."""\n'
        'class C:\n    """Classes have docstrings that are read like all the others."""\n',
        encoding="utf-8",
    )
    for skipped in ("test", "site-packages", "idlelib"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "m.py").write_text(
            '"""This docstring lives in a folder that must never be read at all."""\n',
            encoding="utf-8",
        )
    (tmp_path / "broken.py").write_text('"""Never parsed because of the syntax.\n', "utf-8")
    text = build_builtin_text(tmp_path, min_chars=0)
    assert text.split("\n") == [
        "The first module comes first because files are read in sorted order.",
        "Classes have docstrings that are read like all the others.",
        prose,
    ]
    with pytest.raises(CorpusError, match="standard-library sources"):
        build_builtin_text(tmp_path)


# ------------------------------------------------------------------------------ preprocess


def test_preprocess_d2l_is_letters_and_spaces_lower_case() -> None:
    assert (
        preprocess("The Time-Machine, by H. G. Wells!\n1895", "d2l")
        == "the time machine by h g wells "
    )


def test_preprocess_keep_keeps_case_and_punctuation_but_not_control_characters() -> None:
    assert (
        preprocess("Hello,\tWorld!\r\n\n  Caf\u00e9\x07 \u00a0x", "keep")
        == "Hello, World! Caf\u00e9 x"
    )


def test_preprocess_refuses_unknown_modes() -> None:
    with pytest.raises(CorpusError, match="preprocess"):
        preprocess("x", "lower")


def test_check_length_message() -> None:
    check_length("x" * 33, 32)
    with pytest.raises(CorpusError) as err:
        check_length("x" * 20, 32)
    assert str(err.value) == (
        "corpus has 20 characters after preprocessing; one training "
        "window needs at least num_steps+1 = 33"
    )


# ------------------------------------------------------------------------------ synthetic


def cfg(**kw: object) -> CorpusConfig:
    return CorpusConfig(**kw)  # type: ignore[arg-type]


def test_repeat_corpus() -> None:
    text = synthetic_text("repeat", cfg(synthetic_length=1000, repeat_word="machine"), seed=5)
    assert len(text) == 1000
    assert text == ("machine " * 200)[:1000]
    with pytest.raises(CorpusError, match="word"):
        synthetic_text("repeat", cfg(repeat_word="  "), 0)


@pytest.mark.parametrize("k", [1, 2, 10, 37])
def test_delay_corpus_copies_a_key_from_k_steps_back(k: int) -> None:
    c = cfg(synthetic_length=5000, delay_k=k)
    text = synthetic_text("delay", c, seed=11)
    assert len(text) == 5000
    assert set(text) <= set("abcdwxyz ")
    segment_starts = [i for i in range(len(text)) if i == 0 or text[i - 1] == " "]
    checked = 0
    for s in segment_starts:
        if s + k + 1 >= len(text):
            break
        assert text[s] in "abcd"
        assert set(text[s + 1 : s + k]) <= set("wxyz")
        assert text[s + k] == text[s]  # the character k steps back, nothing in between
        assert text[s + k + 1] == " "
        checked += 1
    assert checked >= 5000 // (k + 2) - 1
    keys = [text[s] for s in segment_starts[:-1]]
    assert set(keys) == set("abcd")  # the key really varies


def test_brackets_corpus_is_balanced_with_varied_depth() -> None:
    text = synthetic_text("brackets", cfg(synthetic_length=20_000), seed=2)
    assert len(text) == 20_000
    assert set(text) == set("()[]{} ")
    pairs = {")": "(", "]": "[", "}": "{"}
    depths = []
    for expr in text.split(" ")[:-1]:  # the last one may be cut off
        stack: list[str] = []
        depth = 0
        for ch in expr:
            if ch in "([{":
                stack.append(ch)
                depth = max(depth, len(stack))
            else:
                assert stack and stack.pop() == pairs[ch]
        assert not stack and expr
        depths.append(depth)
    assert min(depths) == 1 and max(depths) >= 4


@pytest.mark.parametrize("name", ["repeat", "delay", "brackets"])
def test_synthetic_corpora_are_deterministic_per_seed(name: str) -> None:
    c = cfg(synthetic_length=3000)
    assert synthetic_text(name, c, 1) == synthetic_text(name, c, 1)
    if name != "repeat":
        assert synthetic_text(name, c, 1) != synthetic_text(name, c, 2)


def test_load_synthetic_names_and_no_preprocessing() -> None:
    c = load_corpus(cfg(source="synthetic:delay", delay_k=10, synthetic_length=500), seed=4)
    assert c.name == "synthetic: delay k=10"
    assert c.text == synthetic_text("delay", cfg(delay_k=10, synthetic_length=500), 4)
    b = load_corpus(cfg(source="synthetic:brackets", preprocess="d2l"))
    assert "(" in b.text  # d2l preprocessing would have erased every bracket
    assert load_corpus(cfg(source="synthetic:repeat")).name == "synthetic: repeat 'machine'"
    with pytest.raises(CorpusError, match="repeat, delay, brackets"):
        load_corpus(cfg(source="synthetic:copy"))


# ------------------------------------------------------------------------------ user files

FRENCH = (
    "Le gar\u00e7on \u00e9tait tr\u00e8s content de voir la for\u00eat apr\u00e8s une "
    "longue journ\u00e9e. O\u00f9 est le caf\u00e9? \u00c7a co\u00fbte cher, \u00e0 peu "
    "pr\u00e8s dix euros. "
) * 5
JAPANESE = (
    "\u543e\u8f29\u306f\u732b\u3067\u3042\u308b\u3002\u540d\u524d\u306f\u307e\u3060\u7121"
    "\u3044\u3002\n\u3069\u3053\u3067\u751f\u308c\u305f\u304b\u3068\u3093\u3068\u898b\u5f53"
    "\u304c\u3064\u304b\u306c\u3002\n"
) * 4  # Soseki: "I am a cat. As yet I have no name. ..."
RUSSIAN = (
    "\u0421\u044a\u0435\u0448\u044c \u0436\u0435 \u0435\u0449\u0451 \u044d\u0442\u0438\u0445 "
    "\u043c\u044f\u0433\u043a\u0438\u0445 \u0444\u0440\u0430\u043d\u0446\u0443\u0437\u0441"
    "\u043a\u0438\u0445 \u0431\u0443\u043b\u043e\u043a, \u0434\u0430 \u0432\u044b\u043f"
    "\u0435\u0439 \u0447\u0430\u044e. "
) * 4
GREEK = (
    "\u039e\u03b5\u03c3\u03ba\u03b5\u03c0\u03ac\u03b6\u03c9 \u03c4\u03b7\u03bd \u03c8\u03c5"
    "\u03c7\u03bf\u03c6\u03b8\u03cc\u03c1\u03b1 \u03b2\u03b4\u03b5\u03bb\u03c5\u03b3\u03bc"
    "\u03af\u03b1. "
) * 4
# cp1252's own characters (curly quotes, dashes, euro, ellipsis): detectors read them as cp1250
CP1252_TEXT = (
    "The na\u00efve caf\u00e9 owner said \u201chello\u201d \u2014 it\u2019s 5\u20ac for a "
    "cr\u00e8me br\u00fbl\u00e9e\u2026 "
)
# Western symbols that a detector prefers to read as Cyrillic or Central European letters
SYMBOLS = (
    "Price: 25\u00b0C \u00b1 2, area 3 m\u00b2 or 4 m\u00b3; \u00b5s timing \u00b6 section "
    "\u00a7 3 \u00a9 2024 \u00ae \u00bc \u00bd \u00be \u00d7 \u00f7 \u00abquote\u00bb "
    "\u00bfqu\u00e9? \u2014 \u201cx\u201d \u2018y\u2019 \u2026 \u20ac \u2122 \u2022 "
) * 12


def write(tmp_path: Path, data: bytes, name: str = "in.txt") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_utf8_file(tmp_path: Path) -> None:
    p = write(tmp_path, FRENCH.encode("utf-8"), "notes.txt")
    text, notes = read_text_file(p, 10_000)
    assert text == FRENCH
    assert notes == ["encoding: UTF-8"]
    c = load_corpus(cfg(source=str(p), preprocess="keep"))
    assert c.name == "notes.txt" and "\u00e7" in c.text


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("na\u00efve", "latin-1"),  # charset-normalizer alone: cp1006, "na\ufb8ave"
        ("caf\u00e9 au lait, tr\u00e8s bien", "latin-1"),  # cp1250: "tr\u010ds"
        (FRENCH, "latin-1"),
        (CP1252_TEXT, "cp1252"),  # cp1250: "cr\u010dme br\u0171l\u00e9e"
        (CP1252_TEXT * 20, "cp1252"),
        (SYMBOLS, "cp1252"),  # ptcp154 (Kazakh Cyrillic) or mac_latin2
    ],
)
def test_western_legacy_text_is_read_as_cp1252(tmp_path: Path, text: str, encoding: str) -> None:
    text_read, notes = read_text_file(write(tmp_path, text.encode(encoding)), 100_000)
    assert text_read == text
    assert len(notes) == 1 and notes[0].startswith("encoding: cp1252 (assumed")


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        (JAPANESE, "shift_jis"),
        (JAPANESE, "euc_jp"),
        (RUSSIAN, "cp1251"),
        (RUSSIAN, "koi8_r"),
        (GREEK, "cp1253"),
    ],
)
def test_non_western_encodings_are_used_when_detected_with_a_margin(
    tmp_path: Path, text: str, encoding: str
) -> None:
    text_read, notes = read_text_file(write(tmp_path, text.encode(encoding)), 100_000)
    assert text_read == text
    assert len(notes) == 1 and "(detected with confidence; the file is not UTF-8)" in notes[0]


def test_iso2022_jp_is_found_from_its_escapes(tmp_path: Path) -> None:
    # 7-bit, so valid UTF-8 as well: read as UTF-8 it was escape codes and ASCII letters
    text_read, notes = read_text_file(write(tmp_path, JAPANESE.encode("iso2022_jp")), 10_000)
    assert text_read == JAPANESE
    assert notes == ["encoding: ISO-2022-JP (found from its escapes)"]


def test_bytes_cp1252_leaves_undefined_are_read_as_latin1_and_reported(tmp_path: Path) -> None:
    data = FRENCH.encode("latin-1") + b" \x81 end"
    text, notes = read_text_file(write(tmp_path, data, "w.txt"), 10_000)
    assert text == FRENCH + " \x81 end"
    assert (
        notes[1]
        == "1 byte of w.txt that cp1252 leaves undefined read as Latin-1 control characters"
    )


@pytest.mark.parametrize(
    ("bom", "codec", "label"),
    [
        (b"\xef\xbb\xbf", "utf-8", "UTF-8 (with a byte-order mark)"),
        (b"\xff\xfe", "utf-16-le", "UTF-16LE (byte-order mark)"),
        (b"\xfe\xff", "utf-16-be", "UTF-16BE (byte-order mark)"),
        (b"\xff\xfe\x00\x00", "utf-32-le", "UTF-32LE (byte-order mark)"),
        (b"\x00\x00\xfe\xff", "utf-32-be", "UTF-32BE (byte-order mark)"),
    ],
)
def test_byte_order_marks(tmp_path: Path, bom: bytes, codec: str, label: str) -> None:
    for text in (FRENCH, JAPANESE):
        p = write(tmp_path, bom + text.encode(codec))
        assert read_text_file(p, 10_000) == (text, [f"encoding: {label}"])


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_without_bom_are_found_from_their_nul_bytes(
    tmp_path: Path, codec: str
) -> None:
    label = codec.upper().replace("-LE", "LE").replace("-BE", "BE")
    for text in (FRENCH, JAPANESE, "a"):
        p = write(tmp_path, text.encode(codec))
        assert read_text_file(p, 10_000) == (
            text,
            [f"encoding: {label} (no byte-order mark; found from its NUL bytes)"],
        )


def test_binary_after_a_byte_order_mark_is_refused(tmp_path: Path) -> None:
    noise = random.Random(0).randbytes(4000)
    with pytest.raises(CorpusError, match="UTF-16LE byte-order mark, but .* are not text"):
        read_text_file(write(tmp_path, b"\xff\xfe" + noise), 10_000)


def test_a_few_invalid_utf8_bytes_are_replaced_and_counted(tmp_path: Path) -> None:
    # valid UTF-8 around three bad bytes and one genuine U+FFFD (not counted as replaced)
    data = FRENCH.encode() + b" \xff and \xfe\xfd more \xef\xbf\xbd end"
    text, notes = read_text_file(write(tmp_path, data, "mixed.txt"), 10_000)
    assert text == FRENCH + " \ufffd and \ufffd\ufffd more \ufffd end"
    assert notes == [
        "encoding: UTF-8 with errors replaced",
        "3 undecodable byte sequences in mixed.txt replaced by \ufffd",
    ]
    c = load_corpus(cfg(source=str(tmp_path / "mixed.txt")))
    assert any("3 undecodable" in n for n in c.notes)


def test_text_with_more_than_one_percent_replaced_is_refused(tmp_path: Path) -> None:
    data = ("\u00e9" * 10).encode() * 100 + b"\xff" * 20
    with pytest.raises(CorpusError) as err:
        read_text_file(write(tmp_path, data, "bad.txt"), 10_000)
    assert str(err.value) == (
        "bad.txt: 20 of 1,020 characters (2.0%) could not be decoded (read as UTF-8), "
        "more than the 1% allowed; save the file as UTF-8 and try again"
    )
    # random high bytes read as cp1252: 5 of its 128 upper byte values are undefined
    noise = bytes(b | 0x80 for b in random.Random(1).randbytes(3000))
    with pytest.raises(CorpusError, match=r"could not be decoded \(read as cp1252\)"):
        read_text_file(write(tmp_path, noise), 10_000)


def _compressed() -> dict[str, bytes]:
    text = (FRENCH * 20).encode()
    return {
        "gzip": gzip.compress(text),
        "bzip2": bz2.compress(text),
        "xz": lzma.compress(text),
        "zlib": zlib.compress(text),
        "zstd": b"\x28\xb5\x2f\xfd" + random.Random(2).randbytes(500),
    }


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz", "zlib", "zstd"])
def test_compressed_streams_are_refused_by_their_signature(tmp_path: Path, kind: str) -> None:
    with pytest.raises(CorpusError) as err:
        read_text_file(write(tmp_path, _compressed()[kind], "c.bin"), 100_000)
    assert str(err.value).startswith(f"c.bin is {kind}-compressed data, not text; decompress it")


def test_compressed_streams_without_a_signature_are_refused(tmp_path: Path) -> None:
    # raw deflate of short texts: no signature, and often no NUL byte; charset-normalizer
    # read some of them as text with a hundred replacement characters
    rng = random.Random(3)
    words = FRENCH.split()
    for _ in range(40):
        text = " ".join(rng.choice(words) for _ in range(rng.randrange(20, 400)))
        with pytest.raises(CorpusError, match="not text|could not be decoded"):
            read_text_file(write(tmp_path, zlib.compress(text.encode())[2:-4]), 100_000)
    # random bytes with neither NUL nor control bytes: only their entropy gives them away
    printable = [b for b in range(32, 256) if b != 127]
    noise = bytes(rng.choice(printable) for _ in range(65536))
    with pytest.raises(CorpusError, match="looks like compressed or encrypted data"):
        read_text_file(write(tmp_path, noise), 100_000)


@pytest.mark.parametrize(
    ("head", "what"),
    [
        (b"\x89PNG\r\n\x1a\n", "a PNG image"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF document"),
        (b"PK\x03\x04\x14\x00\x06\x00", "a ZIP archive"),
        (b"\x7fELF\x02\x01\x01\x00", "an ELF executable"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "a JPEG image"),
    ],
)
def test_known_formats_are_named(tmp_path: Path, head: bytes, what: str) -> None:
    with pytest.raises(CorpusError, match=f"^f.bin is {re.escape(what)}"):
        read_text_file(write(tmp_path, head + bytes(range(256)) * 4, "f.bin"), 100_000)


def test_text_that_starts_like_a_signature_is_text(tmp_path: Path) -> None:
    for text in ("%PDF-1.7 is a version of the format.", "x\u0680 is zlib's header in UTF-8"):
        assert read_text_file(write(tmp_path, text.encode()), 1000)[0] == text


def test_binary_files_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="binary"):
        read_text_file(write(tmp_path, bytes(range(256)) * 10, "image.dat"), 10_000)
    with pytest.raises(CorpusError, match="binary"):
        read_text_file(write(tmp_path, bytes([1, 2, 3, 4, 5, 65, 66]) * 100), 10_000)
    with pytest.raises(CorpusError, match="binary"):
        read_text_file(write(tmp_path, b"hello\x00world"), 10_000)  # odd length: not UTF-16


def test_empty_corpus_path_lists_the_choices(tmp_path: Path) -> None:
    message = (
        "the corpus path is empty; choose builtin, time-machine, synthetic:repeat, "
        "synthetic:delay, synthetic:brackets, or the path of a text file"
    )
    for source in ("", "  "):
        with pytest.raises(CorpusError) as err:
            load_corpus(cfg(source=source))
        assert str(err.value) == message
    with pytest.raises(CorpusError) as err:
        read_text_file("", 10_000)
    assert str(err.value) == message


def test_empty_missing_and_special_files_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="empty.txt is empty"):
        read_text_file(write(tmp_path, b"", "empty.txt"), 10_000)
    with pytest.raises(CorpusError, match="only whitespace"):
        read_text_file(write(tmp_path, b" \n\n\t "), 10_000)
    with pytest.raises(CorpusError, match="only whitespace"):
        read_text_file(write(tmp_path, b"\xef\xbb\xbf"), 10_000)  # a byte-order mark alone
    with pytest.raises(CorpusError, match="file not found"):
        load_corpus(cfg(source=str(tmp_path / "nope.txt")))
    with pytest.raises(CorpusError, match=r"not a regular file \(a directory\)"):
        read_text_file(tmp_path, 10_000)
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        with pytest.raises(CorpusError, match=r"not a regular file \(a FIFO\)"):
            read_text_file(fifo, 10_000)  # at once: nothing opens it
    if os.path.exists("/dev/zero"):
        with pytest.raises(CorpusError, match=r"not a regular file \(a device\)"):
            read_text_file("/dev/zero", 10_000)


def test_oversized_file_is_rejected_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "huge.txt"
    with p.open("wb") as fh:
        fh.truncate(60_000_000)  # sparse: takes no disk space

    def no_reading(fd: int, max_bytes: int, name: str) -> bytes:
        raise AssertionError("read before the size check")

    monkeypatch.setattr(corpus_mod, "_read_capped", no_reading)
    with pytest.raises(CorpusError) as err:
        load_corpus(cfg(source=str(p)))
    assert str(err.value) == (
        "huge.txt is 60.0 MB (60,000,000 bytes); the limit is 50.0 MB (50,000,000 bytes)"
    )
    monkeypatch.undo()
    small = write(tmp_path, b"x" * 101, "small.txt")
    with pytest.raises(CorpusError, match="101 bytes; the limit is 100 bytes"):
        read_text_file(small, 100)
    # a file that grows after the size check is cut off at the limit, not read whole
    fd = os.open(small, os.O_RDONLY)
    try:
        with pytest.raises(CorpusError, match="grew past the limit of 100 bytes"):
            corpus_mod._read_capped(fd, 100, "small.txt")
    finally:
        os.close(fd)


def test_file_with_no_letters_is_rejected_after_preprocessing(tmp_path: Path) -> None:
    p = write(tmp_path, b"12345 67890\n", "digits.txt")
    with pytest.raises(CorpusError, match="digits.txt contains no usable text"):
        load_corpus(cfg(source=str(p)))


# ------------------------------------------------------------------------------ download

PAYLOAD = b"The Time Traveller (for so it will be convenient to speak of him)\n" * 200
PAYLOAD_SHA1 = hashlib.sha1(PAYLOAD).hexdigest()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy from the environment would send 127.0.0.1 requests elsewhere.
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


class Server:
    """A local HTTP server; ``mode`` "ok" serves PAYLOAD, "drop" promises more and hangs up."""

    def __init__(self, mode: str) -> None:
        outer = self
        self.mode = mode
        self.hits = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                outer.hits += 1
                self.send_response(200)
                extra = 1000 if outer.mode == "drop" else 0
                self.send_header("Content-Length", str(len(PAYLOAD) + extra))
                self.end_headers()
                self.wfile.write(PAYLOAD)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/timemachine.txt"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server("ok")
    yield s
    s.close()


def test_download_is_verified_cached_and_reused_without_the_server(
    tmp_path: Path, server: Server
) -> None:
    path = fetch_time_machine(tmp_path, server.url, PAYLOAD_SHA1, timeout=5)
    assert path.read_bytes() == PAYLOAD
    assert os.listdir(tmp_path) == ["timemachine.txt"]
    server.close()
    assert fetch_time_machine(tmp_path, server.url, PAYLOAD_SHA1, timeout=5) == path
    c = load_corpus(
        cfg(source="time-machine"), cache_dir=tmp_path, url=server.url, sha1=PAYLOAD_SHA1
    )
    assert c.name == "The Time Machine (H. G. Wells)"
    assert c.text.startswith("the time traveller for so it will be")
    assert server.hits == 1


def test_wrong_checksum_caches_nothing(tmp_path: Path, server: Server) -> None:
    with pytest.raises(CorpusError, match="SHA-1 .*nothing was cached"):
        fetch_time_machine(tmp_path, server.url, "0" * 40, timeout=5)
    assert os.listdir(tmp_path) == []


def test_cached_file_with_wrong_checksum_is_replaced(tmp_path: Path, server: Server) -> None:
    (tmp_path / "timemachine.txt").write_bytes(b"tampered")
    path = fetch_time_machine(tmp_path, server.url, PAYLOAD_SHA1, timeout=5)
    assert path.read_bytes() == PAYLOAD and server.hits == 1


def test_dropped_connection_caches_nothing(tmp_path: Path) -> None:
    s = Server("drop")
    try:
        with pytest.raises(CorpusError, match="failed.*nothing was cached"):
            fetch_time_machine(tmp_path, s.url, PAYLOAD_SHA1, timeout=5)
    finally:
        s.close()
    assert os.listdir(tmp_path) == []


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(CorpusError) as caught:
        fetch_time_machine(tmp_path, f"http://127.0.0.1:{port}/t.txt", PAYLOAD_SHA1, timeout=5)
    message = str(caught.value)
    # offline: say that it needs a network and what works without one, not "urlopen error"
    assert "needs a network" in message and "work offline" in message
    assert "urlopen error" not in message and "\n" not in message
    assert os.listdir(tmp_path) == []
