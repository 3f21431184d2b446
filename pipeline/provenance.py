"""Fingerprints that make reruns and reports honest: code, config, software."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent
# Job glue that only logs: it changes no result, so no digest covers it.
NOT_CODE = frozenset({"pipeline.smk"})


def module_file(name: str) -> Path | None:
    """The source file of ``pipeline`` module ``name`` (``pipeline.x.y``), or None if none."""
    parts = name.split(".")
    if parts[0] != PACKAGE.name:
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_name(base.name + ".py")):
        if candidate.is_file():
            return candidate
    return None


def file_imports(path: str | Path, module: str | None = None) -> tuple[str, ...]:
    """The ``pipeline`` modules a Python file imports, anywhere in it (functions included).

    Read from the source, nothing is imported. ``from pipeline.x import y``
    counts as ``pipeline.x.y`` when ``y`` is a module, else as ``pipeline.x``.
    ``module`` is the file's own module name, for relative imports.
    """
    path = Path(path)
    package = (module or "").split(".")
    if module and path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if module_file(sub) else base)
    return tuple(sorted(n for n in found if module_file(n) is not None))


@cache
def module_imports(name: str) -> tuple[str, ...]:
    """The ``pipeline`` modules module ``name`` imports (see :func:`file_imports`)."""
    path = module_file(name)
    if path is None:
        raise ModuleNotFoundError(f"no module named {name!r} in {PACKAGE}")
    return file_imports(path, name)


def import_closure(*modules: str) -> list[str]:
    """``modules``, what they import, what that imports..., and the packages above each
    (importing ``pipeline.a.b`` runs ``pipeline/a/__init__.py``), sorted; ``NOT_CODE`` left out.

    Modules an import names only at run time (the upscale registry loads its
    architectures by name) are not found here: callers add them.
    """
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen or name in NOT_CODE:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += module_imports(name)
    return sorted(seen)


@cache
def code_digest(*modules: str) -> str:
    """Short SHA-256 over the source of ``modules`` and of everything they import.

    Rules pass this as a param so that editing the code a stage runs reruns
    that stage, and editing any other module does not. It covers each module's
    name and bytes (not where the checkout lies), in the order of the names.
    """
    digest = hashlib.sha256()
    for name in import_closure(*modules):
        path = module_file(name)
        assert path is not None  # import_closure found it
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def data_digest(relative: str) -> str:
    """Short SHA-256 over the files of a data folder of the package (templates), or one file.

    ``relative`` is the folder's or file's path inside ``pipeline/``. The
    companion of ``code_digest`` for what a stage reads besides Python code.
    """
    root = PACKAGE / relative
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
