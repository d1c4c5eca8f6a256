"""all-MiniLM-L6-v2 on ONNX Runtime: the vectors of sentence-transformers without torch.

torch with sentence-transformers is about 700 MB unzipped and takes seconds to import; a Lambda zip may hold
250 MB in all, and every cold start pays the import. ``OnnxEmbedder`` runs the same weights, exported by
``make onnx`` (``infra/onnx_export.py``) to ``model.onnx`` beside the model's own ``tokenizer.json``, through
onnxruntime and the ``tokenizers`` library, and repeats what sentence-transformers does around the network:
the same word pieces (cut at 256, the model's ``max_seq_length``), mean pooling over the attention mask,
then L2 normalisation. ``tests/test_embeddings_onnx.py`` holds the two to a cosine of 0.9999 on every text.

Nothing here imports onnxruntime or tokenizers at import time: they load on the first ``embed``.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memory.embeddings import BUNDLED_MODEL_NAME
from memory.errors import ConfigurationError, EmbeddingError
from memory.models import EMBEDDING_DIMENSIONS

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MAX_WORD_PIECES = 256  # the model's max_seq_length (sentence_bert_config.json): longer texts are cut there
INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # the export's input names, in its order
FIX = "run `make onnx` to export it, or set MEMORY_EMBEDDER=sentence-transformers"


def default_onnx_model_dir() -> Path:
    """``build/onnx`` beside the ``memory`` package: where ``make onnx`` writes in a checkout, and where
    ``make package`` puts the files in the Lambda zip (``/var/task/build/onnx``), so neither needs a setting."""
    return Path(__file__).resolve().parent.parent / "build" / "onnx"


def onnx_model_dir(configured: str | None) -> Path:
    """``MEMORY_ONNX_MODEL_DIR`` when set, else the default folder."""
    return Path(configured) if configured else default_onnx_model_dir()


def onnx_available(folder: Path) -> bool:
    """Whether the ONNX embedder can run here: its two files exist and onnxruntime is installed (not imported)."""
    files = (folder / MODEL_FILE).is_file() and (folder / TOKENIZER_FILE).is_file()
    return files and importlib.util.find_spec("onnxruntime") is not None


class OnnxEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) through onnxruntime on the CPU, from a folder made by ``make onnx``.

    ``model_name`` is the sentence-transformers embedder's for the bundled model. Stores compare a query only
    with memories of the same ``embedding_model``, and the two embedders give the same vectors (cosine above
    0.9999, measured on every text of the parity test), so memories written by either stay searchable by
    the other: a deployment may switch between them without re-embedding anything.

    The model loads on the first ``embed`` (or ``warm_up``), under a lock, so threads share one session.
    """

    dimensions = EMBEDDING_DIMENSIONS
    model_name = BUNDLED_MODEL_NAME

    def __init__(self, model_dir: str | Path, *, batch_size: int = 64) -> None:
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self._loaded: tuple[Any, Any] | None = None  # (tokenizers.Tokenizer, onnxruntime.InferenceSession)
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._loaded is not None:
                return self._loaded
            folder = self.model_dir
            missing = [name for name in (MODEL_FILE, TOKENIZER_FILE) if not (folder / name).is_file()]
            if missing:
                raise ConfigurationError(
                    f"MEMORY_ONNX_MODEL_DIR={folder} has no {' or '.join(missing)}: {FIX} "
                    "(or point MEMORY_ONNX_MODEL_DIR at the folder that holds them)"
                )
            try:
                import onnxruntime
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise ConfigurationError(
                    f"the ONNX embedder needs onnxruntime and tokenizers: run `pip install onnxruntime tokenizers` "
                    f"(or install agent-memory[lambda]), or set MEMORY_EMBEDDER=sentence-transformers ({exc})"
                ) from exc
            try:
                tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
                # The file itself pads every text to 128 pieces and cuts there; sentence-transformers cuts at
                # 256 and pads a batch to its longest text, which the mean over the mask makes invisible.
                tokenizer.enable_truncation(MAX_WORD_PIECES)
                tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")
                options = onnxruntime.SessionOptions()
                options.log_severity_level = 3  # errors only: no warnings about unused initialisers in the log
                session = onnxruntime.InferenceSession(
                    str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # onnxruntime and tokenizers raise their own kinds; all mean "cannot load"
                raise EmbeddingError(
                    f"could not load the ONNX model in MEMORY_ONNX_MODEL_DIR={folder}: {exc}; {FIX}"
                ) from exc
            names = tuple(item.name for item in session.get_inputs())
            width = session.get_outputs()[0].shape[-1]
            if set(names) != set(INPUTS) or width != self.dimensions:
                raise EmbeddingError(
                    f"MEMORY_ONNX_MODEL_DIR={folder}: {MODEL_FILE} takes {names} and gives {width} dimensions, "
                    f"not {INPUTS} and {self.dimensions}: it is not all-MiniLM-L6-v2 as `make onnx` exports it; {FIX}"
                )
            self._loaded = tokenizer, session
            return self._loaded

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        tokenizer, session = self._loaded or self._load()
        # Longest first, as sentence-transformers does, so each batch pads little; answers in input order.
        order = sorted(range(len(texts)), key=lambda n: -len(texts[n]))
        vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        try:
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                vectors[batch] = self._encode(tokenizer, session, [texts[n] for n in batch])
        except Exception as exc:
            raise EmbeddingError(f"the ONNX model failed to encode {len(texts)} text(s): {exc}") from exc
        return vectors

    @staticmethod
    def _encode(tokenizer: Any, session: Any, texts: list[str]) -> np.ndarray:
        """One batch: word pieces -> the network -> mean over the real (unpadded) pieces -> unit length."""
        encodings = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        [hidden] = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden.astype(np.float32) * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def warm_up(self) -> None:
        """Load the model now (at start-up) rather than inside the first request."""
        self._loaded or self._load()


def get_onnx_embedder(model_dir: str, batch_size: int = 64) -> OnnxEmbedder:
    """The process-wide ONNX embedder of a folder: created once, reused by every caller."""
    return _onnx_embedder(model_dir, batch_size)  # positional, so every spelling of a call shares one


@functools.lru_cache(maxsize=4)
def _onnx_embedder(model_dir: str, batch_size: int) -> OnnxEmbedder:
    return OnnxEmbedder(model_dir, batch_size=batch_size)
