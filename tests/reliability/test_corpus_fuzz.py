"""Corpus fuzz (issue 12): every input to the corpus loader ends as loaded or as refused with
a one-line reason, and text written in a known encoding reads back as the same text.

Inputs: a fixed set (empty, NUL, byte-order marks, UTF-16 with and without one, Latin-1,
cp1252, Shift-JIS, invalid UTF-8, CR-only line endings, one character, a 10 MB single line,
PNG/ZIP/ELF/PDF headers, compressed streams, special files) and hypothesis inputs: random
bytes, mutations of the fixed set, random text in random codecs, and round trips (Western
text in Latin-1 and cp1252, any text in UTF-8 and UTF-16/32 with a byte-order mark, mostly
Latin text in UTF-16/32 without one, Japanese in Shift-JIS).

    pytest tests/reliability/test_corpus_fuzz.py -s            # 2,000 inputs, ~12 s
    pytest tests/reliability/test_corpus_fuzz.py -s -m slow    # 20,000 inputs, ~2 min
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import random
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnviz.core.corpus import CorpusError, preprocess, read_text_file

MAX_BYTES = 50_000_000  # load_corpus's default
# No input may take longer than this (the 10 MB line takes ~0.3 s here).
MAX_SECONDS = 10.0

# A message maps to the first outcome whose pattern it matches; a message matching none is a
# failure (every refusal must be one of the loader's known, one-line reasons).
REFUSALS: tuple[tuple[str, str], ...] = (
    ("empty", r" is empty$| contains only whitespace$"),
    ("special", r" is not a regular file \("),
    ("too_large", r"; the limit is "),
    ("format", r" is (a|an|gzip|bzip2|xz|zstd|zlib|LZ4)[ -].*, not text; "),
    ("entropy", r" looks like compressed or encrypted data "),
    ("binary", r" looks like a binary file | byte-order mark, but .* are not text; "),
    ("replaced", r" could not be decoded .*more than the 1% allowed; "),
)
LOADED: tuple[tuple[str, str], ...] = (
    ("utf8", r"^encoding: UTF-8"),
    ("wide", r"^encoding: UTF-(16|32)"),
    ("cp1252", r"^encoding: cp1252 \(assumed"),
    ("detected", r"^encoding: .* \(detected with confidence|^encoding: ISO-2022-JP"),
)
OUTCOMES = tuple(k for k, _ in LOADED) + tuple(k for k, _ in REFUSALS)


def classify(table: tuple[tuple[str, str], ...], line: str) -> str:
    for kind, pattern in table:
        if re.search(pattern, line):
            return kind
    return "unknown"


@dataclass
class Tally:
    folder: Path
    outcomes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # uncaught, unknown messages, hangs
    roundtrips: int = 0
    roundtrips_ok: int = 0
    slowest: float = 0.0
    count: int = 0

    def feed_bytes(
        self, label: str, data: bytes, expected: str | None = None, expect: str = ""
    ) -> str:
        path = self.folder / "input.txt"
        path.write_bytes(data)
        return self.feed(path, f"{label} {data[:60]!r}", expected, expect)

    def feed(
        self, path: str | Path, label: str, expected: str | None = None, expect: str = ""
    ) -> str:
        """Load one input; ``expected``: the text it must read back as; ``expect``: the
        outcome it must have."""
        self.count += 1
        text = None
        t0 = time.perf_counter()
        try:
            text, notes = read_text_file(path, MAX_BYTES)
            # what training does next (the head is enough: it is the same on every part)
            preprocess(text[:100_000], "keep")
            preprocess(text[:100_000], "d2l")
            outcome = classify(LOADED, notes[0])
            if outcome == "unknown":
                self.problems.append(f"unknown note {notes[0]!r} for {label}")
        except CorpusError as exc:
            message = str(exc)
            outcome = classify(REFUSALS, message)
            if outcome == "unknown" or "\n" in message:
                self.problems.append(f"unexpected message {message!r} for {label}")
        except Exception as exc:  # noqa: BLE001 - counting them is the point
            outcome = "uncaught"
            self.problems.append(f"uncaught {type(exc).__name__}: {exc} for {label}")
        elapsed = time.perf_counter() - t0
        self.slowest = max(self.slowest, elapsed)
        if elapsed > MAX_SECONDS:
            self.problems.append(f"hang: {elapsed:.1f} s for {label}")
        self.outcomes[outcome] += 1
        if expect and outcome != expect:
            self.problems.append(f"{label}: {outcome}, expected {expect}")
        if expected is not None:
            self.roundtrips += 1
            if text == expected:
                self.roundtrips_ok += 1
            else:
                self.problems.append(
                    f"round trip {label}: {outcome}, read {None if text is None else text[:40]!r}"
                    f" for {expected[:40]!r}"
                )
        return outcome

    def line(self) -> str:
        counts = " ".join(f"{k}={self.outcomes[k]}" for k in OUTCOMES)
        uncaught = self.outcomes["uncaught"]
        return (
            f"inputs={self.count} uncaught={uncaught} {counts} "
            f"roundtrips={self.roundtrips_ok}/{self.roundtrips}"
        )


# ------------------------------------------------------------------------------ texts

SYMBOLS = "°±²³µ¶§©®¼½¾×÷«»¿¡£"
CP1252_ONLY = "“”‘’–—…€™•"
# Words of Western European languages, with and without accents, as real text has them.
WORD_LIST = (
    "le garçon était très content de voir la forêt après une longue journée où est café ça "
    "coûte cher à peu près dix euros noël hôtel naïf größe übung schöne straßen für mädchen "
    "der bär läuft über die brücke während bäume im frühling blühen el pingüino comió jamón "
    "queso montaña dónde está niño qué difícil canción mañana españa compañía ação coração "
    "não fácil são informações você pão crianças mãe perché città così però più università "
    "flygande bäckasiner söka på mjuka tuvor även kæmi ný öxi hér þetta íslenska the time "
    "machine traveller naïve résumé rôle coöperative façade déjà vu voilà piñata fiancée"
)
WORDS = tuple(WORD_LIST.split())
CP1252_WORDS = ("œuvre", "cœur", "Œdipe", "šibenik", "Žižek")
FRENCH = (
    "Le garçon était très content de voir la forêt après une longue journée. Où est le café? "
    "Ça coûte cher, à peu près dix euros. Noël à l'hôtel, c'est naïf.\n"
) * 4
CP1252_TEXT = "The naïve café owner said “hello” — it’s 5€ for a crème brûlée… "
# Japanese sentences (Soseki, Akutagawa, Dazai, Miyazawa, and plain ones), for Shift-JIS.
JAPANESE_SENTENCES = (
    "吾輩は猫である。",
    "名前はまだ無い。",
    "どこで生れたかとんと見当がつかぬ。",
    "何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。",
    "吾輩はここで始めて人間というものを見た。",
    "親譲りの無鉄砲で小供の時から損ばかりしている。",
    "山路を登りながら、こう考えた。",
    "智に働けば角が立つ。情に棹させば流される。意地を通せば窮屈だ。",
    "とかくに人の世は住みにくい。",
    "ある日の暮方の事である。",
    "一人の下人が、羅生門の下で雨やみを待っていた。",
    "広い門の下には、この男のほかに誰もいない。",
    "メロスは激怒した。",
    "必ず、かの邪智暴虐の王を除かなければならぬと決意した。",
    "メロスには政治がわからぬ。メロスは、村の牧人である。",
    "雨ニモマケズ　風ニモマケズ　雪ニモ夏ノ暑サニモマケヌ　丈夫ナカラダヲモチ",
    "今日は良い天気ですね。明日は雨が降るでしょう。",
    "私は東京の大学で日本語を勉強しています。",
    "「それは本当ですか」と彼は聞いた。",
    "駅から学校まで歩いて十五分かかります。",
)
JAPANESE = "".join(JAPANESE_SENTENCES[:5]) + "\n"


def western_text(cp1252: bool) -> st.SearchStrategy[str]:
    """Real words (lower case, capitalised or upper case), numbers with symbols ("25°C",
    "± 2"), and, for cp1252, its own punctuation and letters: the shape of Western text.
    Each token comes with its separator, one draw each: hypothesis's own cost per draw is
    most of this test's time."""
    words = WORDS + CP1252_WORDS if cp1252 else WORDS
    symbols = SYMBOLS + (CP1252_ONLY if cp1252 else "")
    tokens = [
        *words,
        *words,
        *(w.capitalize() for w in words),
        *(w.upper() for w in words[::4]),
        *(f"{n}{s}" for n in (2, 25, 180) for s in SYMBOLS),
        *symbols,
    ]
    seps = (" ", " ", " ", ", ", ". ", "\n", "; ", " - ")
    pieces = [t + sep for t in tokens for sep in seps]
    return st.lists(st.sampled_from(pieces), min_size=3, max_size=40).map("".join)


# Text as the loader defines it: no control characters but tab and newline, no unassigned,
# private-use or surrogate code points, no replacement character, and not blank.
ANY_TEXT = st.text(
    st.one_of(
        st.characters(
            blacklist_categories=("Cc", "Cs", "Cn", "Co"), blacklist_characters="\ufeff\ufffd"
        ),
        st.sampled_from("\n\t"),
    ),
    min_size=1,
    max_size=200,
).filter(lambda t: bool(t.strip()))
JAPANESE_TEXT = st.lists(
    st.sampled_from([t + sep for t in JAPANESE_SENTENCES for sep in ("", "", "\n", "\n\n")]),
    min_size=2,
    max_size=8,
).map("".join)
LATIN_TEXT = st.one_of(western_text(cp1252=True), st.just(FRENCH))
# Letter soup (random case, random accents): not text anyone writes, fed without a round trip.
SOUP = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ àéîõüçñß°±«»“”"),
    min_size=1,
    max_size=300,
)


BOMS = {
    "utf-8": b"\xef\xbb\xbf",
    "utf-16-le": b"\xff\xfe",
    "utf-16-be": b"\xfe\xff",
    "utf-32-le": b"\xff\xfe\x00\x00",
    "utf-32-be": b"\x00\x00\xfe\xff",
}


def roundtrip_cases() -> list[st.SearchStrategy[tuple[str, bytes, str]]]:
    """(how it was written, bytes, the text), one strategy per way of writing."""

    def case(
        name: str, texts: st.SearchStrategy[str], encode: Callable[[str], bytes]
    ) -> st.SearchStrategy[tuple[str, bytes, str]]:
        return texts.map(lambda t: (name, encode(t), t))

    def with_bom(codec: str) -> Callable[[str], bytes]:
        return lambda t: BOMS[codec] + t.encode(codec)

    return [
        case("latin-1", western_text(cp1252=False), lambda t: t.encode("latin-1")),
        case("cp1252", western_text(cp1252=True), lambda t: t.encode("cp1252")),
        case("utf-8", ANY_TEXT, lambda t: t.encode("utf-8")),
        case("utf-8 bom", ANY_TEXT, with_bom("utf-8")),
        case("utf-16-le bom", ANY_TEXT, with_bom("utf-16-le")),
        case("utf-16-be bom", ANY_TEXT, with_bom("utf-16-be")),
        case("utf-32-le bom", ANY_TEXT, with_bom("utf-32-le")),
        case("utf-16-le", LATIN_TEXT, lambda t: t.encode("utf-16-le")),
        case("utf-16-be", LATIN_TEXT, lambda t: t.encode("utf-16-be")),
        case("utf-32-le", LATIN_TEXT, lambda t: t.encode("utf-32-le")),
        case("shift_jis", JAPANESE_TEXT, lambda t: t.encode("shift_jis")),
    ]


CODECS = (
    "utf-8",
    "utf-16",
    "utf-16-le",
    "utf-16-be",
    "utf-32",
    "latin-1",
    "cp1252",
    "cp1250",
    "cp1251",
    "koi8_r",
    "shift_jis",
    "euc_jp",
    "gb18030",
    "big5",
    "euc_kr",
    "cp037",
    "utf-7",
)


# ------------------------------------------------------------------------------ fixed set


def compressed(text: bytes) -> dict[str, bytes]:
    return {
        "gzip": gzip.compress(text),
        "bzip2": bz2.compress(text),
        "xz": lzma.compress(text),
        "zlib": zlib.compress(text),
        "raw deflate": zlib.compress(text)[2:-4],
        "raw deflate, short": zlib.compress(text[:400])[2:-4],
    }


def fixed_bytes() -> list[tuple[str, bytes, str | None, str]]:
    """(label, bytes, the text it must read back as or None, the outcome it must have)."""
    rng = random.Random(0)
    cases: list[tuple[str, bytes, str | None, str]] = [
        ("empty", b"", None, "empty"),
        ("NUL", b"\x00", None, "binary"),
        ("NULs", b"\x00" * 1000, None, "binary"),
        ("UTF-8 BOM only", b"\xef\xbb\xbf", None, "empty"),
        ("UTF-16 BOM only", b"\xff\xfe", None, "empty"),
        ("one character", b"a", "a", "utf8"),
        ("one character, UTF-16LE", "a".encode("utf-16-le"), "a", "wide"),
        ("CR-only line endings", b"one\rtwo\rthree\r", "one\rtwo\rthree\r", "utf8"),
        ("CRLF", b"line one\r\nline two\r\n", "line one\r\nline two\r\n", "utf8"),
        ("Latin-1", FRENCH.encode("latin-1"), FRENCH, "cp1252"),
        ("Latin-1 naive", "naïve".encode("latin-1"), "naïve", "cp1252"),
        ("cp1252", CP1252_TEXT.encode("cp1252"), CP1252_TEXT, "cp1252"),
        ("Shift-JIS", JAPANESE.encode("shift_jis"), JAPANESE, "detected"),
        ("EUC-JP", JAPANESE.encode("euc_jp"), JAPANESE, "detected"),
        ("invalid UTF-8, mostly valid", FRENCH.encode() + b"\xff", None, "utf8"),
        ("invalid UTF-8, stray bytes", b"hello \xff\xfe world \xc3\x28 abc", None, "cp1252"),
        ("invalid UTF-8, mostly invalid", b"abc \xff\xfe\x81\x9d " * 200, None, "replaced"),
        ("random high bytes", bytes(b | 0x80 for b in rng.randbytes(3000)), None, "replaced"),
        ("random bytes", rng.randbytes(100_000), None, "binary"),
        ("PNG header", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), None, "format"),
        ("ZIP header", b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(64), None, "format"),
        ("ELF header", b"\x7fELF\x02\x01\x01\x00" + bytes(64), None, "format"),
        ("PDF header", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", None, "format"),
        (
            "random printable bytes",
            bytes(rng.choice([b for b in range(32, 256) if b != 127]) for _ in range(65536)),
            None,
            "entropy",
        ),
    ]
    for bom_codec, bom in BOMS.items():
        cases.append((f"BOM {bom_codec}", bom + FRENCH.encode(bom_codec), FRENCH, ""))
    for codec in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
        for text in (FRENCH, JAPANESE):
            cases.append((f"{codec} without BOM", text.encode(codec), text, "wide"))
    for kind, data in compressed((FRENCH * 20).encode()).items():
        cases.append((kind, data, None, "" if kind.startswith("raw") else "format"))
    return cases


def feed_fixed(tally: Tally) -> None:
    for label, data, expected, expect in fixed_bytes():
        outcome = tally.feed_bytes(label, data, expected, expect)
        if label.startswith("raw deflate"):
            assert not outcome.startswith(("utf8", "wide", "cp1252", "detected")), label
    line = tally.folder / "line.txt"
    line.write_bytes(b"the time machine " * 600_000)  # 10.2 MB, one line
    tally.feed(line, "10 MB single line", expect="utf8")
    line.write_bytes(("très " * 2_000_000).encode("latin-1"))  # 10 MB, Latin-1
    tally.feed(line, "10 MB single line, Latin-1", expected="très " * 2_000_000)
    sparse = tally.folder / "sparse.txt"
    with sparse.open("wb") as fh:
        fh.truncate(4 << 30)  # 4 GiB, no disk space
    tally.feed(sparse, "sparse 4 GiB", expect="too_large")
    tally.feed(tally.folder, "a directory", expect="special")
    if hasattr(os, "mkfifo"):
        fifo = tally.folder / "fifo"
        os.mkfifo(fifo)
        tally.feed(fifo, "FIFO", expect="special")
    for device in ("/dev/zero", "/dev/urandom", "/dev/null"):
        if os.path.exists(device):
            tally.feed(device, device, expect="special")


# ------------------------------------------------------------------------------ hypothesis


def mutate(data: bytes, cut: int, flips: list[tuple[int, int]], prefix: bytes) -> bytes:
    data = prefix + data[: cut % (len(data) + 1)] if data else prefix
    buf = bytearray(data)
    for pos, value in flips:
        if buf:
            buf[pos % len(buf)] = value
    return bytes(buf)


def hypothesis_inputs() -> st.SearchStrategy[tuple[str, bytes, str | None]]:
    """(label, bytes, the text it must read back as or None)."""
    seeds = [data for _, data, _, _ in fixed_bytes() if len(data) < 200_000]
    garbage = [
        st.binary(max_size=2000).map(lambda b: ("random bytes", b, None)),
        st.builds(
            lambda s, cut, flips, prefix: ("mutated", mutate(s, cut, flips, prefix), None),
            st.sampled_from(seeds),
            st.integers(0, 1 << 20),
            st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8),
            st.sampled_from([b"", *BOMS.values(), b"\x00", b"\x1f\x8b", b"%PDF-"]),
        ),
        st.builds(
            lambda t, codec: (f"text in {codec}", t.encode(codec, errors="replace"), None),
            st.one_of(st.text(max_size=300), SOUP),
            st.sampled_from(CODECS),
        ),
    ]
    trips = [c.map(lambda c: (f"round trip {c[0]}", c[1], c[2])) for c in roundtrip_cases()]
    # One draw picks the kind, uniformly (one_of's choice is not): about half the inputs
    # are garbage, half round trips.
    branches: list[st.SearchStrategy[tuple[str, bytes, str | None]]] = [*trips, *garbage * 3]
    return st.sampled_from(branches).flatmap(lambda strategy: strategy)


def run_fuzz(folder: Path, total: int) -> Tally:
    tally = Tally(folder)
    feed_fixed(tally)

    @settings(
        max_examples=total - tally.count,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(hypothesis_inputs())
    def one(case: tuple[str, bytes, str | None]) -> None:
        tally.feed_bytes(*case)

    one()
    return tally


def check(tally: Tally) -> None:
    print(tally.line())
    print(f"slowest input {tally.slowest:.2f} s")
    assert not tally.problems, "\n".join(tally.problems[:20])
    assert tally.outcomes["uncaught"] == 0
    assert tally.roundtrips_ok == tally.roundtrips > 0


def test_corpus_fuzz(tmp_path: Path) -> None:
    check(run_fuzz(tmp_path, 2000))


@pytest.mark.slow
def test_corpus_fuzz_long(tmp_path: Path) -> None:
    check(run_fuzz(tmp_path, 20_000))
