"""The weights stage: every checkpoint fetched and checked before any GPU job.

Compute nodes are often offline, so GPU jobs only ever read files this stage
put under ``resources/weights/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.io import InputError, atomic_path
from pipeline.sources import download, sha256_file
from pipeline.torch_io import load_weights_file


def check_checkpoint(path: Path, origin: str | Path | None = None) -> None:
    """Fail unless ``path`` is a loadable PyTorch checkpoint (plain tensors, no pickled code).

    The error names ``origin`` (where the file came from) when given.
    """
    try:
        load_weights_file(path)
    except InputError as exc:
        raise InputError(
            origin or path, f"not a loadable PyTorch checkpoint ({exc.problem})"
        ) from exc


def fetch_weights(name: str, source: Mapping[str, Any], out: Path) -> Path:
    """Place checkpoint ``name`` at ``out``: downloaded (url, sha256) or copied (path).

    The file is verified (sha256 when given, loadable with ``weights_only``)
    before it appears under its final name. A download goes first to a fixed
    staging name beside ``out``, so an interrupted one resumes on the next run.
    """
    out = Path(out)
    origin = source.get("path", source.get("url"))
    hint = (
        f"put the file at {out} by hand, or set weights.{name}.path to a local copy "
        f"(weights.{name}.sha256 pins its hash)"
    )
    if "path" in source:
        local = Path(source["path"]).expanduser()
        if not local.is_file():
            raise InputError(local, f"checkpoint {name!r} not found; {hint}")
        with atomic_path(out) as tmp:
            shutil.copyfile(local, tmp)
            expected = source.get("sha256")
            observed = sha256_file(tmp) if expected else None
            if expected and observed != expected.lower():
                raise InputError(
                    origin, f"sha256 is {observed}, weights.{name}.sha256 pins {expected.lower()}"
                )
            check_checkpoint(tmp, origin=origin)
        return out
    staged = out.with_name(f".{out.name}.download")
    try:
        download(source["url"], staged, source.get("sha256"), config_key=f"weights.{name}")
    except Exception as exc:
        raise RuntimeError(f"checkpoint {name!r}: {exc}\nTo fix: {hint}") from exc
    try:  # download() has already checked the sha256
        check_checkpoint(staged, origin=origin)
    except InputError:
        staged.unlink(missing_ok=True)
        raise
    os.replace(staged, out)
    return out
