"""Character vocabulary with d2l's ``<unk>`` policy.

Index 0 is ``<unk>``; every other token is one character, ordered by descending frequency in
the text the vocabulary was built from (ties broken by the character itself, so the order is
a pure function of the text). Characters the vocabulary does not know encode as 0, and
``decode`` writes id 0 as the literal string ``"<unk>"``: a probe shows the student that the
model saw "unknown" there rather than silently dropping or replacing the character.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def _code_points(text: str) -> np.ndarray:
    """The code points of ``text`` as uint32, without a Python loop over characters."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


class Vocab:
    UNK = "<unk>"
    unk_index = 0

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = tuple(tokens)
        if not tokens or tokens[0] != self.UNK:
            raise ValueError(f"a vocabulary starts with {self.UNK!r}")
        rest = tokens[1:]
        for tok in rest:
            if not isinstance(tok, str) or len(tok) != 1:
                raise ValueError(
                    f"vocabulary tokens after {self.UNK!r} are single characters, not {tok!r}"
                )
        if len(set(rest)) != len(rest):
            raise ValueError("vocabulary tokens must be distinct")
        self.tokens: tuple[str, ...] = tokens
        self._index: dict[str, int] = {tok: i for i, tok in enumerate(rest, start=1)}
        # Encoding runs over whole corpora (up to tens of MB), so it is a table gather rather
        # than a dict lookup per character. The table ends one past the largest known code
        # point with a 0, and larger code points are clipped onto that slot: unknown.
        top = max((ord(c) for c in rest), default=0)
        table = np.zeros(top + 2, dtype=np.int64)
        for c, i in self._index.items():
            table[ord(c)] = i
        self._table = table

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        counts = np.bincount(_code_points(text), minlength=1)
        present = np.flatnonzero(counts)
        # lexsort sorts by its last key first: descending count, then ascending code point.
        order = np.lexsort((present, -counts[present]))
        return cls((cls.UNK, *(chr(int(cp)) for cp in present[order])))

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and other.tokens == self.tokens

    def __hash__(self) -> int:
        return hash(self.tokens)

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens: {''.join(self.tokens[1:])!r})"

    def index(self, char: str) -> int:
        """The id of one character (0 when unknown)."""
        return self._index.get(char, self.unk_index)

    def encode(self, text: str) -> np.ndarray:
        """int64 ids, shape (len(text),); characters not in the vocabulary become 0."""
        cps = np.minimum(_code_points(text), len(self._table) - 1)
        ids: np.ndarray = self._table[cps]
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The tokens joined; id 0 appears as the literal text ``"<unk>"``."""
        tokens = self.tokens
        out = []
        for i in ids:
            k = int(i)
            if not 0 <= k < len(tokens):
                raise ValueError(f"token id {k} is outside this vocabulary of {len(tokens)}")
            out.append(tokens[k])
        return "".join(out)

    def unknown_positions(self, text: str) -> list[int]:
        """Positions in ``text`` whose character maps to ``<unk>``."""
        positions: list[int] = np.flatnonzero(self.encode(text) == self.unk_index).tolist()
        return positions

    def to_json(self) -> list[str]:
        return list(self.tokens)

    @classmethod
    def from_json(cls, data: Any) -> Vocab:
        if not isinstance(data, list) or not all(isinstance(t, str) for t in data):
            raise ValueError("a saved vocabulary is a list of strings")
        return cls(data)
