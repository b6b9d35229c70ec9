"""Embedders. Every embedder names its model, and vectors of different models never mix."""

from __future__ import annotations

import asyncio
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


def terms(text: str) -> list[str]:
    """Lower-cased, lightly stemmed content words: the vocabulary of the offline embedder."""
    words = (_stem(w) for w in _WORD.findall(text.lower()))
    return [w for w in words if w not in _STOPWORDS and len(w) > 1]


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

    def embed_one(self, text: str) -> np.ndarray:
        words = terms(text)
        features = Counter(words)
        features.update(f"{a} {b}" for a, b in itertools.pairwise(words))
        vector = np.zeros(self.dimension, dtype=np.float32)
        for feature, count in features.items():
            weight = 1.0 + math.log(count)
            if " " in feature:
                weight *= 0.5  # bigrams refine, unigrams carry
            encoded = feature.encode()
            for probe in range(self.PROBES):
                digest = zlib.crc32(encoded, probe)
                sign = 1.0 if digest & 0x8000_0000 else -1.0
                vector[digest % self.dimension] += sign * weight
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector

    def embed_sync(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_one(t).tolist() for t in texts]

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_sync, texts)


def build_embedder(dimension: int) -> Embedder:
    return HashingEmbedder(dimension)
