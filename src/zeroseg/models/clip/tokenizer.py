"""CLIP's byte-level BPE tokenizer, id-for-id equal to ``clip.simple_tokenizer`` + ``clip.tokenize``.

Text is repaired (ftfy, HTML entities unescaped twice), whitespace-collapsed and lowercased, split
into words by CLIP's regex, each word's UTF-8 bytes are mapped to printable characters (GPT-2's
byte-to-unicode table) and merged by rank with the merges of ``bpe_simple_vocab_16e6.txt.gz``.
"""
from __future__ import annotations

import gzip
import html
import itertools
import os
from collections.abc import Sequence
from functools import lru_cache

import ftfy
import regex
import torch

from zeroseg.errors import PromptValueError

START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
END_OF_WORD = "</w>"
CONTEXT_LENGTH = 77
VOCAB_SIZE = 49408
"""Vocabulary of every OpenAI CLIP: 256 bytes, 256 end-of-word bytes, 48894 merges, 2 special tokens."""

_WORDS = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)
_WHITESPACE = regex.compile(r"\s+")


@lru_cache(maxsize=1)
def byte_symbols() -> tuple[str, ...]:
    """The printable character standing for each byte value 0..255 (GPT-2's ``bytes_to_unicode``).

    Printable Latin-1 bytes stand for themselves; the others (controls, space, ...) are shifted to
    code points 256 and up, in byte order, so that no symbol is whitespace or a control character.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols = {b: chr(b) for b in printable}
    shifted = (b for b in range(256) if b not in symbols)
    symbols.update({b: chr(256 + i) for i, b in enumerate(shifted)})
    return tuple(symbols[b] for b in range(256))


def clean(text: str) -> str:
    """ftfy repair, HTML unescaped twice, whitespace runs collapsed to one space, stripped, lowercased."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return _WHITESPACE.sub(" ", text).strip().lower()


class ClipTokenizer:
    """Text -> CLIP token ids, read from a BPE merges file (``bpe_simple_vocab_16e6.txt.gz``)."""

    def __init__(
        self,
        vocab_path: str | os.PathLike,
        context_length: int = CONTEXT_LENGTH,
        vocab_size: int = VOCAB_SIZE,
    ) -> None:
        with gzip.open(vocab_path, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")
        base = sorted(byte_symbols(), key=ord)  # id order: the printable bytes, then the shifted ones
        n_merges = vocab_size - 2 * len(base) - 2
        merges = [tuple(line.split()) for line in lines[1 : 1 + n_merges]]  # line 0 is a version header
        if n_merges < 0 or len(merges) != n_merges or any(len(m) != 2 for m in merges):
            raise ValueError(f"{vocab_path} does not hold {n_merges} BPE merges for a {vocab_size}-token vocabulary")
        symbols = [*base, *(s + END_OF_WORD for s in base), *("".join(m) for m in merges), START_OF_TEXT, END_OF_TEXT]
        self.ids = {symbol: i for i, symbol in enumerate(symbols)}
        self.ranks = {merge: i for i, merge in enumerate(merges)}
        self.context_length = context_length
        self.start_id = self.ids[START_OF_TEXT]
        self.end_id = self.ids[END_OF_TEXT]
        self._bytes = byte_symbols()
        self._cache: dict[str, list[int]] = {}

    def encode(self, text: str) -> list[int]:
        """BPE ids of ``text``, without the start/end tokens and without any length limit."""
        ids: list[int] = []
        for word in _WORDS.findall(clean(text)):
            if word in (START_OF_TEXT, END_OF_TEXT):
                ids.append(self.ids[word])
            else:
                ids.extend(self._word_ids(word))
        return ids

    def tokens(self, text: str) -> list[str]:
        """The BPE symbols of ``text`` (byte-level strings such as ``"photo</w>"``), for inspection."""
        names = {i: s for s, i in self.ids.items()}
        return [names[i] for i in self.encode(text)]

    def tokenize(
        self, texts: str | Sequence[str], context_length: int | None = None, truncate: bool = True
    ) -> torch.Tensor:
        """[len(texts), context_length] int32 ids: start, BPE ids, end, zero padding.

        A sequence longer than ``context_length`` is cut and ends with the end token when
        ``truncate``; otherwise it raises PromptValueError.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        length = self.context_length if context_length is None else context_length
        out = torch.zeros(len(texts), length, dtype=torch.int32)
        for row, text in enumerate(texts):
            ids = [self.start_id, *self.encode(text), self.end_id]
            if len(ids) > length:
                if not truncate:
                    raise PromptValueError(f"text has {len(ids)} tokens, more than the context length {length}: {text!r}")
                ids = [*ids[: length - 1], self.end_id]
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.int32)
        return out

    __call__ = tokenize

    def _word_ids(self, word: str) -> list[int]:
        ids = self._cache.get(word)
        if ids is None:
            symbols = "".join(self._bytes[b] for b in word.encode("utf-8"))
            ids = self._cache[word] = [self.ids[s] for s in self._merge(symbols)]
        return ids

    def _merge(self, word: str) -> list[str]:
        """Apply the merges to one word, lowest rank first, each time to every non-overlapping pair
        from left to right, until no adjacent pair has a rank."""
        parts = [*word[:-1], word[-1] + END_OF_WORD]
        while len(parts) > 1:
            best = min(itertools.pairwise(parts), key=lambda pair: self.ranks.get(pair, len(self.ranks)))
            if best not in self.ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts
