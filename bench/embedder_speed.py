"""The embedders side by side: sentence-transformers (torch) and the ONNX exports, fp32 and fp16, two ways.

For each one, in a fresh process (as a cold start would): the import and the model load (sentence-transformers
imports torch inside its load, so only their sum compares), then the p50 of one
short query (200 of them), of a batch of 32 short texts and of one text of 256 word pieces; and, in this
process, the smallest cosine against sentence-transformers over the 530 texts of the parity test. The fp32
export is made into a temporary folder (about 15 s), and from it a graph converted whole to float16
(``onnxruntime.transformers.float16``); the fp16 weights one is build/onnx (`make onnx`).

``--zip build/agent-memory.zip`` times the ONNX rows in the unzipped Lambda package instead (a bare
interpreter, its onnxruntime 1.16 and numpy 1.26), where the whole-graph float16 is several times slower.

    .venv/bin/python bench/embedder_speed.py [--zip build/agent-memory.zip] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "embedder_speed.json"

# In the fresh process: argv[1] is "st" or an ONNX folder, argv[2] (if any) the unzipped package. One JSON line.
PROBE = """
import json, statistics, sys, time
sys.path[:0] = sys.argv[2:]
started = time.perf_counter()
if sys.argv[1] == "st":
    from memory.embeddings import SentenceTransformerEmbedder as Embedder
    embedder = Embedder()
else:
    from memory.embeddings_onnx import OnnxEmbedder
    embedder = OnnxEmbedder(sys.argv[1])
    import onnxruntime, tokenizers
imported = time.perf_counter()
embedder.warm_up()
loaded = time.perf_counter()
def p50(texts, times):
    samples = []
    for n in range(times):
        begin = time.perf_counter()
        embedder.embed(texts(n))
        samples.append((time.perf_counter() - begin) * 1000)
    return round(statistics.median(samples), 2)
embedder.embed(["warm"])
print(json.dumps({
    "import_ms": round((imported - started) * 1000), "load_ms": round((loaded - imported) * 1000),
    "query_ms": p50(lambda n: [f"which units should I use for trip {n}?"], 200),
    "batch32_ms": p50(lambda n: [f"memory {k} of batch {n} about topic {k % 7} and more" for k in range(32)], 10),
    "long_ms": p50(lambda n: [" ".join(f"word{k + n}" for k in range(300))], 10),
}))
"""


def fresh(target: str, task: Path | None) -> dict[str, float]:
    command = (
        [sys.executable, "-I", "-S", "-c", PROBE, target, str(task)] if task else [sys.executable, "-c", PROBE, target]
    )
    done = subprocess.run(command, cwd=task or ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--zip", type=Path, help="time the ONNX rows in this Lambda package, unzipped")
    args = parser.parse_args()
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from infra.onnx_export import build
    from memory.embeddings import SentenceTransformerEmbedder
    from memory.embeddings_onnx import OnnxEmbedder
    from tests.parity_texts import parity_texts

    texts = parity_texts()
    reference = SentenceTransformerEmbedder().embed(texts)
    with tempfile.TemporaryDirectory(prefix="embedder-speed-") as scratch:
        fp32, whole = Path(scratch) / "fp32", Path(scratch) / "fp16-whole"
        build(fp32, "fp32")
        shutil.copytree(fp32, whole)
        onnx.save(
            convert_float_to_float16(onnx.load(str(fp32 / "model.onnx")), keep_io_types=True), str(whole / "model.onnx")
        )
        task = None
        if args.zip:
            task = Path(scratch) / "task"
            with zipfile.ZipFile(args.zip) as archive:
                archive.extractall(task)
        folders = {"onnx fp32": fp32, "onnx fp16 whole graph": whole, "onnx fp16 weights": ROOT / "build" / "onnx"}
        result = {} if task else {"sentence-transformers": fresh("st", None)}
        for name, folder in folders.items():
            result[name] = fresh(str(folder), task)
            cosines = (OnnxEmbedder(folder).embed(texts) * reference).sum(axis=1)
            result[name] |= {
                "min_cosine": round(float(cosines.min()), 7),
                "model_mb": round((folder / "model.onnx").stat().st_size / 1e6, 1),
            }
    result["machine"] = {"python": platform.python_version(), "texts": len(texts), "package": str(args.zip or "")}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{'':22} import + load ms  query p50 ms  batch 32 ms  256 pieces ms  min cosine ({len(texts)} texts)")
    for name, row in result.items():
        if name != "machine":
            print(
                f"{name:22} {row['import_ms'] + row['load_ms']:15} {row['query_ms']:13} {row['batch32_ms']:12}"
                f" {row['long_ms']:14}  {row.get('min_cosine', 'reference')}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
