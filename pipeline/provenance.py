"""Fingerprints that make reruns and reports honest: code, config, software."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any


@cache
def code_digest(*modules: str) -> str:
    """Short SHA-256 over the source files of the named modules (or packages).

    Rules pass this as a param so that editing the code a stage runs reruns
    that stage, and editing an unrelated module does not.
    """
    digest = hashlib.sha256()
    for name in sorted(modules):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"code_digest: no module named {name!r}")
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for path in files:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def data_digest(package: str, folder: str) -> str:
    """Short SHA-256 over the files of a package's data folder (templates, CSS), or one file.

    The companion of ``code_digest`` for what a stage reads besides Python code.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"data_digest: no package named {package!r}")
    root = Path(next(iter(spec.submodule_search_locations))) / folder
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"data_digest: {root} holds no files")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root.parent if root.is_file() else root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def config_digest(config: Any) -> str:
    """Short SHA-256 of a JSON-serialisable config, independent of key order."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def git_commit(repo: Path) -> str:
    """The checked-out commit (with ``-dirty`` when the tree has changes), or ``unknown``."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def software_versions(packages: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed versions of the benchmark's key packages (``not installed`` when absent)."""
    names = packages or (
        "facebench",
        "snakemake",
        "numpy",
        "pillow",
        "pandas",
        "pyarrow",
        "scikit-image",
        "dlib-bin",
        "torch",
        "lpips",
    )
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
