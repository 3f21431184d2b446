"""Fetching sources: local paths, archives, and URLs served from 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.io import InputError
from pipeline.sources import DownloadError, download, fetch_source, unpack


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1 for the duration of a test."""
    root = tmp_path / "served"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):  # keep pytest output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_download_checks_sha256_and_writes_atomically(http_root, tmp_path):
    root, base = http_root
    payload = bytes(range(256)) * 5000
    (root / "blob.bin").write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()
    target = tmp_path / "out" / "blob.bin"
    download(f"{base}/blob.bin", target, sha256=good)
    assert target.read_bytes() == payload

    target.unlink()
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download(f"{base}/blob.bin", target, sha256="0" * 64)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no partial file left


def test_download_404_says_how_to_place_the_file(http_root, tmp_path):
    _, base = http_root
    target = tmp_path / "missing.zip"
    with pytest.raises(DownloadError, match=r"HTTP 404.*source\.path"):
        download(f"{base}/missing.zip", target, attempts=1)
    assert not target.exists()


def test_fetch_url_archive_unpacks_and_records(http_root, tmp_path):
    root, base = http_root
    with zipfile.ZipFile(root / "set.zip", "w") as bundle:
        bundle.writestr("set/a.png", b"not really a png")
    record = tmp_path / "ds" / "source.json"
    info = fetch_source({"url": f"{base}/set.zip"}, record.parent, record)
    assert (Path(info["root"]) / "set" / "a.png").is_file()
    assert (
        json.loads(record.read_text())["sha256"]
        == hashlib.sha256((root / "set.zip").read_bytes()).hexdigest()
    )


def test_local_path_overrides_and_pinned_hash_is_checked(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    record = tmp_path / "ds" / "source.json"
    assert fetch_source({"path": str(folder)}, record.parent, record)["root"] == str(
        folder.resolve()
    )
    single = tmp_path / "one.bin"
    single.write_bytes(b"abc")
    with pytest.raises(InputError, match=r"one\.bin: sha256 is"):
        fetch_source({"path": str(single), "sha256": "f" * 64}, record.parent, record)
    with pytest.raises(InputError, match="does not exist"):
        fetch_source({"path": str(tmp_path / "nope")}, record.parent, record)


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_unpack_refuses_members_outside_the_target(tmp_path, member):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("ok.txt", b"fine")
        bundle.writestr(member, b"evil")
    with pytest.raises(InputError, match=r"bad\.zip: archive member"):
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_unpack_tar_gz_and_refuse_links_outside(tmp_path):
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as bundle:
        data = b"hello"
        info = tarfile.TarInfo("set/x.txt")
        info.size = len(data)
        bundle.addfile(info, io.BytesIO(data))
    assert (unpack(good, tmp_path / "good") / "set" / "x.txt").read_bytes() == b"hello"

    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as bundle:
        link = tarfile.TarInfo("set/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        bundle.addfile(link)
    with pytest.raises(InputError, match=r"bad\.tar"):
        unpack(bad, tmp_path / "bad")
