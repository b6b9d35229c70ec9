"""Embedders. Every embedder names its model, and vectors of different models never mix."""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import re
import zlib
from collections import Counter
from typing import Protocol

import numpy as np

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SUFFIXES = ("ations", "ation", "ings", "ing", "ness", "ment", "ies", "ied", "es", "ed", "ly", "s")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "he",
        "her",
        "his",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "our",
        "she",
        "that",
        "the",
        "their",
        "them",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "will",
        "with",
        "you",
        "your",
        "do",
        "does",
        "did",
        "not",
        "no",
        "but",
        "if",
        "then",
        "than",
        "so",
        "such",
        "can",
        "could",
        "would",
        "should",
        "may",
        "might",
        "been",
        "being",
    ]
)


class Embedder(Protocol):
    model_id: str
    dimension: int

    async def embed(self, texts: list[str]) -> list[list[float]]: ...


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


@functools.lru_cache(maxsize=1 << 15)
def _term(word: str) -> str | None:
    """The stem of a lower-cased word, None for a stopword or a one-letter stem.

    Memoised: prose repeats its words, and stemming each occurrence was half of the
    offline embedder's CPU time.
    """
    stem = _stem(word)
    return None if stem in _STOPWORDS or len(stem) <= 1 else stem


def terms(text: str) -> list[str]:
    """Lower-cased, lightly stemmed content words: the vocabulary of the offline embedder."""
    found = (_term(w) for w in _WORD.findall(text.lower()))
    return [t for t in found if t is not None]


class HashingEmbedder:
    """Offline embedder: feature hashing of word unigrams and bigrams.

    Deterministic, no network, no model download. Each term is hashed (CRC-32) into
    `PROBES` of `dimension` buckets, each with its own sign, so one collision never wipes a
    term out; weights are 1 + log(tf); vectors are L2-normalised, so cosine similarity
    measures shared vocabulary. It finds passages that use the words of
    the query — lexical search, not semantic understanding — and says so in its model id.
    """

    PROBES = 2

    def __init__(self, dimension: int = 768) -> None:
        self.dimension = dimension
        self.model_id = f"offline-hash-v2-{dimension}"

    def embed_sync(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self._matrix(texts).tolist()
        return vectors

    def _matrix(self, texts: list[str]) -> np.ndarray:
        """The L2-normalised vectors of `texts`, one float32 row each.

        The hashing stays Python, one feature at a time; the buckets of the whole batch are
        summed by one `bincount` and normalised row by row, instead of one numpy item update
        per feature and probe (~3x less CPU per chunk). The sums are float64 before the
        float32 cast, so a vector may differ from item-by-item float32 sums in the last bit.
        """
        slots: list[int] = []
        weights: list[float] = []
        for row, text in enumerate(texts):
            self._hash_features(text, row * self.dimension, slots, weights)
        sums = np.bincount(slots, weights=weights, minlength=len(texts) * self.dimension)
        matrix = sums.reshape(len(texts), self.dimension).astype(np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        normalised: np.ndarray = np.divide(matrix, norms, out=matrix, where=norms > 0)
        return normalised

    def _hash_features(
        self, text: str, offset: int, slots: list[int], weights: list[float]
    ) -> None:
        """Append each feature's bucket (`offset` + hash) and signed weight, per probe."""
        words = terms(text)
        features = Counter(words)
        features.update(f"{a} {b}" for a, b in itertools.pairwise(words))
        for feature, count in features.items():
            weight = 1.0 + math.log(count)
            if " " in feature:
                weight *= 0.5  # bigrams refine, unigrams carry
            encoded = feature.encode()
            for probe in range(self.PROBES):
                digest = zlib.crc32(encoded, probe)
                slots.append(offset + digest % self.dimension)
                weights.append(weight if digest & 0x8000_0000 else -weight)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_sync, texts)


def build_embedder(dimension: int) -> Embedder:
    return HashingEmbedder(dimension)
