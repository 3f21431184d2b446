"""npm packages fetched with ``npm pack`` (exact versions or tarball URLs)."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.data.sources.http import url_filename
from pipeline.data.sources.lock import DownloadError, SourceRefused
from pipeline.io import InputError

log = logging.getLogger(__name__)

# Semantic version, exact (no ranges or tags: a fetch must name one tarball).
EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
NPM_NAME = re.compile(r"^(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$", re.IGNORECASE)


def npm_tarball_name(package: str, version: str) -> str:
    """The file ``npm pack`` writes for a package: ``@scope/name`` -> ``scope-name-<v>.tgz``."""
    return f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"


def npm_pack(spec: str, destination: str | Path, registry: str | None = None) -> tuple[Path, dict]:
    """Fetch one npm tarball with ``npm pack <spec> --pack-destination <folder>``.

    ``spec`` is ``<package>@<version>`` or a tarball URL. Returns the tarball (in
    a fresh hidden folder under ``destination``; the caller moves it and removes
    the folder) and npm's JSON description of it (``filename``, ``integrity``...).
    Lifecycle scripts are never run. npm's own cache, proxy, retry and timeout
    settings apply (``npm config``); ``registry`` overrides the registry, for
    scoped packages too.
    """
    npm = shutil.which("npm")
    if npm is None:
        raise DownloadError(
            f"npm pack {spec}: npm is not installed (not on PATH); install Node.js with npm "
            "(https://nodejs.org)"
        )
    # Absolute: npm runs with this folder as its working directory, where a
    # relative --pack-destination would point below itself.
    folder = Path(tempfile.mkdtemp(prefix=".npm-pack-", dir=Path(destination).resolve()))
    command = [npm, "pack", spec, "--pack-destination", str(folder), "--json"]
    command += ["--ignore-scripts", "--loglevel", "error"]
    if registry:
        command += ["--registry", registry]
        if spec.startswith("@"):
            # A scope-specific registry in the user's .npmrc would win over --registry.
            command.append(f"--{spec.split('/')[0]}:registry={registry}")
    log.info("running %s", " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True, cwd=folder, check=False)
    try:
        described = json.loads(result.stdout or "null")
    except ValueError:
        described = None
    if result.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        error = described.get("error", {}) if isinstance(described, dict) else {}
        last_lines = result.stderr.strip().splitlines()[-3:]
        summary = error.get("summary") or " / ".join(last_lines) or "no output"
        code = error.get("code") or f"exit status {result.returncode}"
        cls = SourceRefused if code in ("E401", "E403", "E429") else DownloadError
        raise cls(f"npm pack {spec} failed ({code}): {summary}")
    entry = described[0] if isinstance(described, list) and described else {}
    tarballs = sorted(folder.glob("*.tgz"))
    named = folder / entry.get("filename", "")
    tarball = named if entry.get("filename") and named.is_file() else None
    if tarball is None and len(tarballs) == 1:
        tarball = tarballs[0]
    if tarball is None:
        shutil.rmtree(folder, ignore_errors=True)
        raise DownloadError(f"npm pack {spec}: npm reported success but wrote no single .tgz")
    return tarball, entry


def check_npm(source: Mapping[str, Any], where: str) -> tuple[str, str, str]:
    """(npm spec, lock key, tarball file name) of an npm source, validated."""
    package, version = str(source["npm"]), source.get("version")
    registry = source.get("registry")
    if registry and not re.match(r"^https?://", str(registry)):
        raise InputError(f"{where}.registry", f"{registry!r} is not an http(s) URL")
    if re.match(r"^https?://", package):
        if version:
            raise InputError(f"{where}.version", "give no version with a tarball URL in npm")
        return package, f"npm:{package}", url_filename(package)
    if not NPM_NAME.match(package):
        raise InputError(f"{where}.npm", f"{package!r} is not an npm package name or tarball URL")
    if not version or not EXACT_VERSION.match(str(version)):
        raise InputError(
            f"{where}.version",
            f"npm package {package} needs an exact version (like 15.1.2), not {version!r}: "
            "a range or tag would fetch a different tarball when a new release comes out",
        )
    spec = f"{package}@{version}"
    return spec, f"npm:{spec}", npm_tarball_name(package, str(version))
