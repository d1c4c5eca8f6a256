"""The torch-free embedder: the same vectors as sentence-transformers, chosen by MEMORY_EMBEDDER, without torch.

Runs on the export ``make onnx`` writes to build/onnx (``make test`` makes it first); without it these tests
fail with the command to run, they never skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memory import ConfigurationError, EmbeddingError, Memory, get_settings
from memory.embeddings import SentenceTransformerEmbedder, embedder_for, get_embedder
from memory.embeddings_onnx import MAX_WORD_PIECES, TOKENIZER_FILE, OnnxEmbedder, get_onnx_embedder
from memory.stores.sqlite import SQLiteStore
from tests.parity_texts import parity_texts

ROOT = Path(__file__).resolve().parent.parent
MIN_COSINE = 0.9999


def test_parity_with_sentence_transformers_on_every_text(
    embedder: SentenceTransformerEmbedder, onnx_embedder: OnnxEmbedder
) -> None:
    texts = parity_texts()
    assert len(texts) >= 500
    tokenizer, _ = onnx_embedder._load()
    lengths = [len(encoding.ids) for encoding in tokenizer.encode_batch(texts)]
    assert sum(length == MAX_WORD_PIECES for length in lengths) >= 30, "too few texts reach the 256-piece cut"

    cosines = (embedder.embed(texts) * onnx_embedder.embed(texts)).sum(axis=1)

    worst = int(cosines.argmin())
    assert cosines.min() >= MIN_COSINE, f"cosine {cosines.min():.7f} on text {worst}: {texts[worst][:80]!r}"


def test_same_model_name_so_stored_vectors_stay_searchable(
    embedder: SentenceTransformerEmbedder, onnx_embedder: OnnxEmbedder
) -> None:
    """A memory written through sentence-transformers is found, and merged with, through ONNX (and back)."""
    assert onnx_embedder.model_name == embedder.model_name
    store = SQLiteStore(":memory:")
    written = Memory(store, embedder, get_settings()).remember(user_id="u1", content="I prefer metric units")
    onnx = Memory(store, onnx_embedder, get_settings())

    [hit] = onnx.search(user_id="u1", query="which units should I use?", top_k=1)
    again = onnx.remember(user_id="u1", content="I prefer metric units.")

    assert hit.entry.id == written.entry.id
    assert again.action.value == "merged" and again.entry.id == written.entry.id
    onnx.close()


def test_vectors_batches_and_order(onnx_embedder: OnnxEmbedder) -> None:
    texts = [f"memory {n} " * (n % 40 + 1) for n in range(50)]
    vectors = onnx_embedder.embed(texts)
    assert vectors.shape == (50, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    small = OnnxEmbedder(onnx_embedder.model_dir, batch_size=3).embed(texts)  # other batches, other padding
    assert np.allclose(small, vectors, atol=1e-5)
    single = np.stack([onnx_embedder.embed([text])[0] for text in texts[:5]])
    assert np.allclose(single, vectors[:5], atol=1e-5)
    assert onnx_embedder.embed([]).shape == (0, 384)


def test_a_missing_model_names_the_setting_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"MEMORY_ONNX_MODEL_DIR=.*model\.onnx.*make onnx"):
        OnnxEmbedder(tmp_path).embed(["x"])


def test_a_corrupt_model_names_the_setting_and_the_fix(tmp_path: Path, onnx_embedder: OnnxEmbedder) -> None:
    shutil.copyfile(onnx_embedder.model_dir / TOKENIZER_FILE, tmp_path / TOKENIZER_FILE)
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(EmbeddingError, match=r"MEMORY_ONNX_MODEL_DIR=.*make onnx"):
        OnnxEmbedder(tmp_path).embed(["x"])


def test_the_setting_chooses_the_embedder(tmp_path: Path, onnx_embedder: OnnxEmbedder) -> None:
    folder = str(onnx_embedder.model_dir)
    assert embedder_for(get_settings(embedder="onnx", onnx_model_dir=folder)) is get_onnx_embedder(folder, 64)
    assert isinstance(embedder_for(get_settings(onnx_model_dir=folder)), OnnxEmbedder)  # auto, files there
    assert embedder_for(get_settings(onnx_model_dir=str(tmp_path))) is get_embedder()  # auto, no files
    assert embedder_for(get_settings(embedder="sentence-transformers", onnx_model_dir=folder)) is get_embedder()
    assert embedder_for(get_settings()).model_dir == onnx_embedder.model_dir  # default folder: build/onnx
    memory = Memory.from_settings(get_settings(store_url="sqlite://", embedder="onnx", onnx_model_dir=folder))
    assert memory.embedder is get_onnx_embedder(folder, 64)
    memory.close()


def test_a_custom_sentence_transformers_model_is_never_swapped_for_the_export(
    tmp_path: Path, onnx_embedder: OnnxEmbedder
) -> None:
    """The export is of the bundled model: with MEMORY_EMBEDDING_MODEL set, auto means sentence-transformers
    and onnx is refused, never a silent change of model."""
    folder = str(onnx_embedder.model_dir)
    custom = get_settings(embedding_model=str(tmp_path), onnx_model_dir=folder)
    assert isinstance(embedder_for(custom), SentenceTransformerEmbedder)
    with pytest.raises(ConfigurationError, match=r"MEMORY_EMBEDDING_MODEL.*MEMORY_EMBEDDER=sentence-transformers"):
        embedder_for(get_settings(embedder="onnx", embedding_model=str(tmp_path), onnx_model_dir=folder))


def test_a_bad_setting_lists_the_choices() -> None:
    with pytest.raises(ConfigurationError, match="MEMORY_EMBEDDER"):
        get_settings(embedder="torch")


def python(code: str, *options: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MEMORY_")}
    done = subprocess.run(
        [sys.executable, *options, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_importing_the_api_handler_loads_no_torch() -> None:
    imported = python("import handlers.api", "-X", "importtime").stderr
    modules = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in imported.splitlines() if "|" in line}
    assert "handlers" in modules and "fastapi" in modules
    assert not modules & {"torch", "sentence_transformers", "transformers", "onnxruntime", "tokenizers"}


def test_remember_and_search_with_torch_unimportable() -> None:
    """The whole ONNX path (settings, factory, embedder, store) with torch and sentence-transformers made
    unimportable, as in the Lambda package."""
    code = """
import json, sys
for name in ("torch", "sentence_transformers", "transformers"):
    sys.modules[name] = None  # any import of them now raises ImportError
from memory import Memory
memory = Memory.from_url("sqlite://", embedder="onnx")
memory.remember(user_id="u1", content="My sister Ana lives in Lisbon")
[hit] = memory.search(user_id="u1", query="Who could I visit in Portugal?", top_k=1)
print(json.dumps([type(memory.embedder).__name__, hit.entry.content]))
"""
    answer = json.loads(python(code).stdout.strip().splitlines()[-1])
    assert answer == ["OnnxEmbedder", "My sister Ana lives in Lisbon"]
