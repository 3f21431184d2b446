"""Atomic writes: nothing under the final name until complete, and normal permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pipeline.io import atomic_dir, atomic_path, write_text


def test_atomic_file_gets_umask_permissions(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_failed_folder_keeps_the_old_one(tmp_path: Path) -> None:
    final = tmp_path / "report"
    with atomic_dir(final) as staging:
        (staging / "index.html").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(final) as staging:
        (staging / "index.html").write_text("new, half")
        raise RuntimeError("interrupted")
    assert (final / "index.html").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report"]
