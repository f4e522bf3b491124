from __future__ import annotations

import hashlib
import http.server
import os
import socket
import sys
import threading
import time
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


def test_utf8_file(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_bytes(FRENCH.encode("utf-8"))
    text, notes = read_text_file(p, 10_000)
    assert text == FRENCH
    assert notes == ["encoding: UTF-8"]
    c = load_corpus(cfg(source=str(p), preprocess="keep"))
    assert c.name == "notes.txt" and "\u00e7" in c.text


def test_latin1_file_is_detected(tmp_path: Path) -> None:
    p = tmp_path / "latin.txt"
    p.write_bytes(FRENCH.encode("latin-1"))
    text, notes = read_text_file(p, 10_000)
    assert text == FRENCH
    assert len(notes) == 1 and "not valid UTF-8" in notes[0] and "detected" in notes[0]


def test_utf16_with_bom_is_not_mistaken_for_binary(tmp_path: Path) -> None:
    p = tmp_path / "wide.txt"
    p.write_bytes(FRENCH.encode("utf-16"))
    assert read_text_file(p, 10_000) == (FRENCH, ["encoding: utf-16"])


def test_replacements_are_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import charset_normalizer

    class NoGuess:
        def best(self) -> None:
            return None

    monkeypatch.setattr(charset_normalizer, "from_bytes", lambda data: NoGuess())
    p = tmp_path / "mixed.txt"
    # three bad bytes, and one genuine U+FFFD that was in the file all along
    p.write_bytes(b"good text \xff and \xfe\xfd more \xef\xbf\xbd end")
    text, notes = read_text_file(p, 10_000)
    assert text == "good text \ufffd and \ufffd\ufffd more \ufffd end"
    assert "3 undecodable byte sequences in mixed.txt replaced" in notes[1]
    c = load_corpus(cfg(source=str(p)))
    assert any("3 undecodable" in n for n in c.notes)


def test_binary_files_are_rejected(tmp_path: Path) -> None:
    p = tmp_path / "image.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10)
    with pytest.raises(CorpusError, match="binary"):
        read_text_file(p, 10_000)
    q = tmp_path / "controls.dat"
    q.write_bytes(bytes([1, 2, 3, 4, 5, 65, 66]) * 100)
    with pytest.raises(CorpusError, match="binary"):
        read_text_file(q, 10_000)


def test_empty_missing_and_directory_are_rejected(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(CorpusError, match="empty.txt is empty"):
        read_text_file(empty, 10_000)
    blank = tmp_path / "blank.txt"
    blank.write_bytes(b" \n\n\t ")
    with pytest.raises(CorpusError, match="only whitespace"):
        read_text_file(blank, 10_000)
    with pytest.raises(CorpusError, match="file not found"):
        load_corpus(cfg(source=str(tmp_path / "nope.txt")))
    with pytest.raises(CorpusError, match="not a regular file"):
        read_text_file(tmp_path, 10_000)


def test_oversized_file_is_rejected_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "huge.txt"
    with p.open("wb") as fh:
        fh.truncate(60_000_000)  # sparse: takes no disk space

    def no_reading(self: Path) -> bytes:
        raise AssertionError("read before the size check")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    with pytest.raises(CorpusError) as err:
        load_corpus(cfg(source=str(p)))
    assert str(err.value) == (
        "huge.txt is 60.0 MB (60,000,000 bytes); the limit is 50.0 MB (50,000,000 bytes)"
    )
    small = tmp_path / "small.txt"
    small.write_bytes(b"x" * 101)
    with pytest.raises(CorpusError, match="101 bytes; the limit is 100 bytes"):
        read_text_file(small, 100)


def test_file_with_no_letters_is_rejected_after_preprocessing(tmp_path: Path) -> None:
    p = tmp_path / "digits.txt"
    p.write_text("12345 67890\n", encoding="utf-8")
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
    with pytest.raises(CorpusError, match="failed.*nothing was cached"):
        fetch_time_machine(tmp_path, f"http://127.0.0.1:{port}/t.txt", PAYLOAD_SHA1, timeout=5)
    assert os.listdir(tmp_path) == []
