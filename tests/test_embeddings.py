"""The offline embedder: its vectors are its model (`offline-hash-v2-768`), so they must not
change when its implementation gets faster; stored vectors and new queries must agree."""

from __future__ import annotations

import itertools
import math
import zlib
from collections import Counter

import numpy as np
import pytest

from shared.clients.embeddings import HashingEmbedder, terms

TEXTS = [
    "Photosynthesis turns light energy into chemical energy stored in glucose.",
    "The mitochondria produce energy; the energy of cells comes from respiration. " * 5,
    "Kinetics of enzymes: enzyme kinetics, reaction rates and the reaction constants.",
    "",
    "the of and to it",  # only stopwords
    "Zellatmung und Photosynthese: Énergie chimique, 光合作用",
]


def definition(text: str, dimension: int = 768) -> np.ndarray:
    """The model as first written: one float32 bucket update per feature and probe."""
    words = terms(text)
    features = Counter(words)
    features.update(f"{a} {b}" for a, b in itertools.pairwise(words))
    vector = np.zeros(dimension, dtype=np.float32)
    for feature, count in features.items():
        weight = (1.0 + math.log(count)) * (0.5 if " " in feature else 1.0)
        for probe in range(HashingEmbedder.PROBES):
            digest = zlib.crc32(feature.encode(), probe)
            sign = 1.0 if digest & 0x8000_0000 else -1.0
            vector[digest % dimension] += sign * weight
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


async def test_vectors_follow_the_model_definition() -> None:
    vectors = await HashingEmbedder(768).embed(TEXTS)
    for text, vector in zip(TEXTS, vectors, strict=True):
        assert np.allclose(vector, definition(text), rtol=0, atol=1e-6), text


async def test_a_vector_does_not_depend_on_its_batch() -> None:
    embedder = HashingEmbedder(768)
    alone = [(await embedder.embed([text]))[0] for text in TEXTS]
    assert await embedder.embed(TEXTS) == alone


@pytest.mark.parametrize("text", TEXTS)
async def test_unit_length_or_zero(text: str) -> None:
    vector = np.array((await HashingEmbedder(768).embed([text]))[0])
    assert vector.shape == (768,)
    norm = float(np.linalg.norm(vector))
    assert norm == pytest.approx(1.0, abs=1e-5) if terms(text) else norm == 0.0
