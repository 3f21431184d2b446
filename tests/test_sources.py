"""Fetching sources: URLs (with injected faults), npm packages, local paths, the lock file.

Every download goes to a fault-injecting server on 127.0.0.1 (tests/http_faults.py);
npm fetches go to a minimal npm registry on the same server.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import stat
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_faults import FaultServer

from pipeline.data.sources import (
    DownloadError,
    HashMismatch,
    LockMismatch,
    SourceRefused,
    download,
    fetch_source,
    http,
    partial_path,
    read_lock,
    record_in_lock,
    unpack,
    unpack_archive,
)
from pipeline.io import InputError

MIRROR = Path(__file__).resolve().parents[2] / "shared" / "mirror"
# Small timeouts and backoff keep the fault tests fast; the defaults are 60 s and 1 s.
FAST = {"timeout": 0.5, "attempts": 3, "backoff": 0.01}
PAYLOAD = bytes(range(256)) * 1200  # 300 kB


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server():
    with FaultServer() as running:
        yield running


@pytest.fixture
def sleeps(monkeypatch):
    """Backoff delays the downloader asked for (recorded, not slept)."""
    delays: list[float] = []
    monkeypatch.setattr(http, "_sleep", delays.append)
    return delays


def fetch(server_url: str, tmp_path: Path, name: str = "ds", **source):
    """fetch_source of a URL into tmp_path/<name>, with the lock file at tmp_path."""
    workdir = tmp_path / name
    source = {"url": server_url, **source}
    lock = tmp_path / "sources.lock.json"
    return fetch_source(
        source, workdir, workdir / "source.json", lock, config_key=f"datasets.{name}.source", **FAST
    )


# --------------------------------------------------------------------------- download


def test_download_checks_sha256_and_writes_atomically(server, tmp_path):
    server.route("/blob.bin", data=PAYLOAD)
    target = tmp_path / "out" / "blob.bin"
    download(server.url("/blob.bin"), target, sha256=sha(PAYLOAD))
    assert target.read_bytes() == PAYLOAD

    target.unlink()
    with pytest.raises(HashMismatch, match="sha256 mismatch"):
        download(server.url("/blob.bin"), target, sha256="0" * 64)
    assert list(target.parent.iterdir()) == []  # neither the file nor a .part


def test_dropped_connection_resumes_with_range(server, tmp_path):
    server.route("/blob.bin", data=PAYLOAD, drop_after=100_000, drop_times=1)
    target = tmp_path / "blob.bin"
    download(server.url("/blob.bin"), target, sha(PAYLOAD), **FAST)
    assert target.read_bytes() == PAYLOAD
    first, second = server.requests("/blob.bin")
    assert (first.status, first.sent, first.complete) == (200, 100_000, False)
    assert (second.range, second.status) == ("bytes=100000-", 206)
    assert second.if_range  # guarded by the ETag of the first answer
    assert server.sent("/blob.bin") == len(PAYLOAD)  # no byte sent twice
    assert not partial_path(target).exists()


def test_partial_file_survives_a_failed_run_and_the_next_run_resumes(server, tmp_path, sleeps):
    # One drop (progress: retried at once), then 503s until the run gives up.
    server.route("/blob.bin", data=PAYLOAD, drop_after=120_000, drop_times=1, fail_times=3)
    target = tmp_path / "blob.bin"
    with pytest.raises(DownloadError, match=r"HTTP 503.*is kept; a rerun resumes it"):
        download(server.url("/blob.bin"), target, **FAST)
    assert partial_path(target).stat().st_size == 120_000
    assert sleeps == [0.0, 0.01, 0.02]  # exponential backoff after the no-progress attempts

    download(server.url("/blob.bin"), target, sha(PAYLOAD), **FAST)
    assert target.read_bytes() == PAYLOAD
    assert server.requests("/blob.bin")[-1].range == "bytes=120000-"
    assert server.sent("/blob.bin") == len(PAYLOAD)


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.route("/blob.bin", data=PAYLOAD, drop_after=100_000, drop_times=1, ignore_range=True)
    target = tmp_path / "blob.bin"
    download(server.url("/blob.bin"), target, sha(PAYLOAD), **FAST)
    assert target.read_bytes() == PAYLOAD
    second = server.requests("/blob.bin")[1]
    assert (second.range, second.status, second.sent) == ("bytes=100000-", 200, len(PAYLOAD))


def test_upstream_change_between_attempts_restarts_via_if_range(server, tmp_path):
    server.route("/blob.bin", data=PAYLOAD, drop_after=100_000, drop_times=1, fail_times=1)
    target = tmp_path / "blob.bin"
    with pytest.raises(DownloadError):  # a drop, then a 503 ends the run
        download(server.url("/blob.bin"), target, timeout=0.5, attempts=1, backoff=0.01)
    changed = PAYLOAD[::-1]
    server.route("/blob.bin", data=changed)
    download(server.url("/blob.bin"), target, **FAST)
    assert target.read_bytes() == changed  # not old prefix + new tail
    last = server.requests("/blob.bin")[-1]
    assert last.range == "bytes=100000-" and last.status == 200


def test_416_accepts_a_complete_partial_file_and_restarts_a_stale_one(server, tmp_path):
    server.route("/blob.bin", data=PAYLOAD)
    url = server.url("/blob.bin")
    target = tmp_path / "blob.bin"
    part = partial_path(target)
    meta = part.with_name(part.name + ".json")

    part.write_bytes(PAYLOAD)  # e.g. killed between the last byte and the rename
    meta.write_text(json.dumps({"url": url}))
    download(url, target, sha(PAYLOAD), **FAST)
    assert target.read_bytes() == PAYLOAD
    assert [(r.status, r.sent) for r in server.requests()] == [(416, 0)]

    target.unlink()
    part.write_bytes(PAYLOAD + b"junk")  # longer than the file: cannot be ours
    meta.write_text(json.dumps({"url": url}))
    download(url, target, sha(PAYLOAD), **FAST)
    assert target.read_bytes() == PAYLOAD
    assert [r.status for r in server.requests()] == [416, 416, 200]


def test_partial_file_of_another_url_is_not_resumed(server, tmp_path):
    server.route("/blob.bin", data=PAYLOAD)
    target = tmp_path / "blob.bin"
    partial_path(target).write_bytes(b"x" * 1000)  # no sidecar: unknown origin
    download(server.url("/blob.bin"), target, sha(PAYLOAD), **FAST)
    assert server.requests()[0].range is None


def test_slow_responses_time_out_and_the_retry_succeeds(server, tmp_path):
    server.route("/late.bin", data=PAYLOAD, delay=1.5, delay_times=1)
    server.route("/stall.bin", data=PAYLOAD, stall_after=50_000, stall=1.5, stall_times=1)
    for name in ("late.bin", "stall.bin"):
        target = tmp_path / name
        download(server.url(f"/{name}"), target, sha(PAYLOAD), 0.3, attempts=2, backoff=0.01)
        assert target.read_bytes() == PAYLOAD
    assert [r.range for r in server.requests("/late.bin")] == [None, None]
    assert [r.range for r in server.requests("/stall.bin")] == [None, "bytes=50000-"]


def test_5xx_is_retried_with_exponential_backoff(server, tmp_path, sleeps):
    server.route("/busy.bin", data=PAYLOAD, fail_status=503, fail_times=2)
    download(server.url("/busy.bin"), tmp_path / "busy.bin", sha(PAYLOAD), **FAST)
    assert sleeps == [0.01, 0.02]

    server.route("/down.bin", data=PAYLOAD, fail_status=500, fail_times=10)
    with pytest.raises(DownloadError, match=r"HTTP 500.*source\.path"):
        download(server.url("/down.bin"), tmp_path / "down.bin", **FAST)
    assert len(server.requests("/down.bin")) == FAST["attempts"]


def test_404_says_where_to_place_the_file(server, tmp_path):
    target = tmp_path / "ds" / "missing.zip"
    with pytest.raises(DownloadError, match="HTTP 404") as caught:
        download(server.url("/missing.zip"), target, config_key="datasets.yale.source", **FAST)
    message = str(caught.value)
    assert str(target) in message and "datasets.yale.source.path" in message
    assert len(server.requests()) == 1  # not retried
    assert not target.exists()


def test_403_html_page_is_a_refusal_with_instructions(server, tmp_path):
    page = b"<!DOCTYPE html><html><body>Access denied</body></html>"
    server.route("/data.zip", data=page, status=403, content_type="text/html; charset=utf-8")
    target = tmp_path / "yale" / "download" / "data.zip"
    with pytest.raises(SourceRefused) as caught:
        download(server.url("/data.zip"), target, config_key="datasets.yale.source", **FAST)
    message = str(caught.value)
    assert "HTTP 403" in message and "HTML page" in message
    assert str(target) in message and "datasets.yale.source.path" in message
    assert len(server.requests()) == 1


def test_429_is_retried_then_refused(server, tmp_path, sleeps):
    server.route("/quota.zip", data=b"", status=429, headers={"Retry-After": "0"})
    with pytest.raises(SourceRefused, match=r"HTTP 429.*quota.*weights\.w\.path"):
        download(server.url("/quota.zip"), tmp_path / "quota.zip", config_key="weights.w", **FAST)
    assert len(server.requests()) == FAST["attempts"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html; charset=utf-8", b"<p>Google Drive can't scan this file for viruses.</p>"),
        ("application/octet-stream", b"\n  <!DOCTYPE html><html><title>Quota exceeded</title>"),
    ],
)
def test_html_page_served_with_200_for_a_zip_is_refused(server, tmp_path, content_type, body):
    server.route("/set.zip", data=body, content_type=content_type)
    target = tmp_path / "download" / "set.zip"
    with pytest.raises(SourceRefused, match=r"HTML page.*Google Drive") as caught:
        download(server.url("/set.zip"), target, config_key="datasets.faces.source", **FAST)
    assert "datasets.faces.source.path" in str(caught.value)
    assert list(target.parent.iterdir()) == []  # the page is not kept as the file
    assert len(server.requests()) == 1


def test_html_is_fine_where_the_url_asks_for_html(server, tmp_path):
    server.route("/index.html", data=b"<html></html>", content_type="text/html")
    download(server.url("/index.html"), tmp_path / "index.html", **FAST)
    assert (tmp_path / "index.html").read_bytes() == b"<html></html>"


def test_a_zip_mislabelled_as_html_is_accepted(server, tmp_path):
    archive = zip_bytes({"a.png": b"one"})
    server.route("/set.zip", data=archive, content_type="text/html")
    download(server.url("/set.zip"), tmp_path / "set.zip", sha(archive), **FAST)
    assert (tmp_path / "set.zip").read_bytes() == archive


# --------------------------------------------------------------------------- lock file


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def test_lock_records_then_verifies_then_refuses_a_changed_upstream(server, tmp_path):
    original = zip_bytes({"set/a.png": b"one"})
    server.route("/set.zip", data=original)
    url = server.url("/set.zip")
    lock = tmp_path / "sources.lock.json"

    info = fetch(url, tmp_path, "first")
    assert (Path(info["root"]) / "set" / "a.png").read_bytes() == b"one"
    entry = read_lock(lock)[url]
    assert (entry["sha256"], entry["bytes"], entry["kind"]) == (sha(original), len(original), "url")
    record = json.loads((tmp_path / "first" / "source.json").read_text())
    assert record["sha256"] == sha(original) and record["lock_key"] == url

    fetch(url, tmp_path, "first")  # the file is already there and matches: no download
    assert len(server.requests()) == 1
    fetch(url, tmp_path, "second")  # a fresh download, verified against the lock
    assert len(server.requests()) == 2

    changed = zip_bytes({"set/a.png": b"two"})
    server.route("/set.zip", data=changed)
    before = lock.read_bytes()
    with pytest.raises(LockMismatch) as caught:
        fetch(url, tmp_path, "third")
    message = str(caught.value)
    for expected in (url, sha(original), sha(changed), str(lock), "delete the entry"):
        assert expected in message
    assert lock.read_bytes() == before  # never overwritten
    assert not (tmp_path / "third" / "download" / "set.zip").exists()

    # Accepting the new upstream file: delete the entry, fetch again.
    data = json.loads(lock.read_text())
    del data["files"][url]
    lock.write_text(json.dumps(data))
    assert fetch(url, tmp_path, "third")["sha256"] == sha(changed)
    assert read_lock(lock)[url]["sha256"] == sha(changed)


def test_local_copy_differing_from_the_lock_is_an_error(server, tmp_path):
    server.route("/set.zip", data=zip_bytes({"a.png": b"one"}))
    url = server.url("/set.zip")
    fetch(url, tmp_path)
    local = tmp_path / "ds" / "download" / "set.zip"
    local.write_bytes(zip_bytes({"a.png": b"edited"}))
    with pytest.raises(LockMismatch, match=r"local copy .*set\.zip.*delete the entry"):
        fetch(url, tmp_path)


def test_pin_contradicting_the_lock_fails_before_downloading(server, tmp_path):
    server.route("/set.zip", data=zip_bytes({"a.png": b"one"}))
    url = server.url("/set.zip")
    fetch(url, tmp_path)
    with pytest.raises(LockMismatch, match=r"datasets\.other\.source\.sha256 pins f{64}"):
        fetch(url, tmp_path, "other", sha256="F" * 64)
    assert len(server.requests()) == 1


def test_file_placed_by_hand_after_a_refusal_is_used(server, tmp_path):
    archive = zip_bytes({"faces/x.png": b"x"})
    server.route("/set.zip", data=b"<html>quota</html>", status=403, content_type="text/html")
    url = server.url("/set.zip")
    with pytest.raises(SourceRefused) as caught:
        fetch(url, tmp_path)
    expected = tmp_path / "ds" / "download" / "set.zip"
    assert str(expected) in str(caught.value)
    expected.write_bytes(archive)  # what the message says to do
    info = fetch(url, tmp_path)
    assert (Path(info["root"]) / "faces" / "x.png").is_file()
    assert read_lock(tmp_path / "sources.lock.json")[url]["sha256"] == sha(archive)
    assert len(server.requests()) == 1


def _record_many(lock: str, worker: int) -> None:
    for item in range(10):
        record_in_lock(lock, f"https://example.org/{worker}/{item}", f"{worker:02d}" * 32, 1, "url")


def test_lock_updates_from_concurrent_processes_are_all_kept(tmp_path):
    lock = tmp_path / "sources.lock.json"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_record_many, args=(str(lock), n)) for n in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert len(read_lock(lock)) == 60
    with pytest.raises(LockMismatch, match="delete the entry"):
        record_in_lock(lock, "https://example.org/0/0", "ff" * 32, 1, "url")


def test_path_sources_are_checked_against_pin_and_lock(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    record = tmp_path / "ds" / "source.json"
    lock = tmp_path / "sources.lock.json"
    info = fetch_source({"path": str(folder)}, record.parent, record, lock)
    assert info["root"] == str(folder.resolve())
    assert read_lock(lock)[str(folder.resolve())]["kind"] == "folder"  # one entry, no files yet

    single = tmp_path / "one.bin"
    single.write_bytes(b"abc")
    with pytest.raises(InputError, match=r"one\.bin: sha256 is"):
        fetch_source({"path": str(single), "sha256": "f" * 64}, record.parent, record, lock)
    with pytest.raises(InputError, match="does not exist"):
        fetch_source({"path": str(tmp_path / "nope")}, record.parent, record, lock)

    info = fetch_source({"path": str(single)}, record.parent, record, lock)
    assert (Path(info["root"]) / "one.bin").read_bytes() == b"abc"
    assert read_lock(lock)[str(single.resolve())]["sha256"] == sha(b"abc")
    single.write_bytes(b"abd")
    with pytest.raises(LockMismatch, match=r"one\.bin: this local file .*delete its entry"):
        fetch_source({"path": str(single)}, record.parent, record, lock)


@pytest.mark.parametrize("layout", ["data/yale", "data/yale/source"])
def test_three_argument_call_finds_the_resources_lock_file(server, tmp_path, layout):
    """The download rule's call: workdir resources/data/<name>[/<role>], no lock file given."""
    server.route("/set.zip", data=b"<html>login</html>", status=403, content_type="text/html")
    workdir = tmp_path / "resources" / layout
    with pytest.raises(SourceRefused, match=r"datasets\.yale\.source\.path"):
        fetch_source({"url": server.url("/set.zip")}, workdir, workdir / "record.json")
    server.route("/set.zip", data=zip_bytes({"a.png": b"one"}))
    info = fetch_source({"url": server.url("/set.zip")}, workdir, workdir / "record.json")
    assert info["lock_file"] == str(tmp_path / "resources" / "sources.lock.json")
    assert Path(info["lock_file"]).is_file()


# --------------------------------------------------------------------------- npm


def npm_tarball(name: str, version: str) -> bytes:
    """A package tarball as the registry serves it: everything under package/."""
    buffer = io.BytesIO()
    files = {
        "package/package.json": json.dumps({"name": name, "version": version}).encode(),
        "package/img/64/1f600.png": b"not really a png",
    }
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size, info.mode = len(data), 0o644
            bundle.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def npm_env(monkeypatch, tmp_path):
    """A private npm cache, so that each test really asks the local registry."""
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    monkeypatch.setenv("npm_config_update_notifier", "false")


needs_npm = pytest.mark.skipif(not __import__("shutil").which("npm"), reason="npm is not installed")


@needs_npm
@pytest.mark.parametrize("name", ["fake-emoji-set", "@fake-scope/emoji-svg"])
def test_npm_package_from_a_registry(server, tmp_path, npm_env, name):
    tarball = npm_tarball(name, "15.1.2")
    registry = server.npm_package(name, "15.1.2", tarball)
    source = {"npm": name, "version": "15.1.2", "registry": registry}
    workdir, lock = tmp_path / "emoji", tmp_path / "sources.lock.json"
    info = fetch_source(source, workdir, workdir / "source.json", lock)

    package = Path(info["root"]) / "package"
    assert json.loads((package / "package.json").read_text())["name"] == name
    assert (package / "img" / "64" / "1f600.png").is_file()
    key = f"npm:{name}@15.1.2"
    entry = read_lock(lock)[key]
    assert (entry["sha256"], entry["bytes"], entry["kind"]) == (sha(tarball), len(tarball), "npm")
    assert entry["integrity"].startswith("sha512-")
    assert info["sha256"] == sha(tarball) and Path(info["file"]).name.endswith("15.1.2.tgz")
    assert any(r.path.endswith(".tgz") for r in server.requests())

    asked = len(server.requests())
    fetch_source(source, workdir, workdir / "source.json", lock)  # reuses the verified tarball
    assert len(server.requests()) == asked

    # A changed tarball for the same version (a different registry mirror) is refused.
    server.npm_package(name, "15.1.2", npm_tarball(name + "x", "15.1.2"))
    other = tmp_path / "emoji2"
    with pytest.raises(LockMismatch, match=rf"{key}"):
        fetch_source(source, other, other / "source.json", lock)


@needs_npm
def test_npm_package_into_a_relative_folder(server, tmp_path, npm_env, monkeypatch):
    """The workflow passes relative folders (resources/data/<name>/source)."""
    tarball = npm_tarball("fake-emoji", "2.0.0")
    registry = server.npm_package("fake-emoji", "2.0.0", tarball)
    monkeypatch.chdir(tmp_path)
    source = {"npm": "fake-emoji", "version": "2.0.0", "registry": registry}
    workdir = Path("resources/data/emoji_x/source")
    info = fetch_source(source, workdir, workdir / "record.json", Path("sources.lock.json"))
    assert Path(info["file"]).resolve().parent == (tmp_path / workdir / "download").resolve()
    assert (Path(info["root"]) / "package" / "package.json").is_file()
    assert not list((tmp_path / workdir / "download").glob(".npm-pack-*"))


@needs_npm
def test_npm_tarball_url(server, tmp_path, npm_env):
    tarball = npm_tarball("fake-emoji", "1.0.0")
    server.route("/tarballs/fake-emoji-1.0.0.tgz", data=tarball)
    url = server.url("/tarballs/fake-emoji-1.0.0.tgz")
    workdir, lock = tmp_path / "emoji", tmp_path / "sources.lock.json"
    info = fetch_source({"npm": url, "sha256": sha(tarball)}, workdir, workdir / "s.json", lock)
    assert (Path(info["root"]) / "package" / "package.json").is_file()
    assert read_lock(lock)[f"npm:{url}"]["sha256"] == sha(tarball)


@needs_npm
def test_npm_failures_are_explained(server, tmp_path, npm_env, monkeypatch):
    workdir, lock = tmp_path / "emoji", tmp_path / "sources.lock.json"
    missing = {"npm": "no-such-package", "version": "1.0.0", "registry": server.base + "/"}
    with pytest.raises(DownloadError, match=r"npm pack no-such-package@1\.0\.0 failed") as caught:
        fetch_source(missing, workdir, workdir / "s.json", lock, config_key="datasets.emoji.source")
    message = str(caught.value)
    assert "no-such-package-1.0.0.tgz" in message and "datasets.emoji.source.path" in message

    for version in (None, "^15.0.0", "latest"):
        with pytest.raises(InputError, match="exact version"):
            source = {"npm": "emoji-datasource", "version": version}
            fetch_source(source, workdir, workdir / "s.json", lock)

    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on PATH
    pinned = {"npm": "emoji-datasource", "version": "15.1.2"}
    with pytest.raises(DownloadError, match="npm is not installed"):
        fetch_source(pinned, workdir, workdir / "s.json", lock)


# --------------------------------------------------------------------------- archives


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


def tar_with(path: Path, *members: tarfile.TarInfo, data: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(path, "w:gz" if path.suffix == ".gz" else "w") as bundle:
        for member in members:
            bundle.addfile(member)
        for name, content in (data or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            bundle.addfile(info, io.BytesIO(content))
    return path


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def test_unpack_tar_gz_and_refuse_links_outside(tmp_path):
    good = tar_with(tmp_path / "good.tar.gz", link("set/same", "x.txt"), data={"set/x.txt": b"hi"})
    out = unpack(good, tmp_path / "good")
    assert (out / "set" / "x.txt").read_bytes() == b"hi"
    assert (out / "set" / "same").read_bytes() == b"hi"  # a link inside is fine

    for number, (name, target, kind) in enumerate(
        [
            ("set/link", "/etc/passwd", tarfile.SYMTYPE),
            ("set/up", "../../outside", tarfile.SYMTYPE),
            ("set/hard", "/etc/passwd", tarfile.LNKTYPE),
        ]
    ):
        bad = tar_with(tmp_path / f"bad{number}.tar", link(name, target, kind))
        with pytest.raises(InputError, match=rf"bad{number}\.tar"):
            unpack(bad, tmp_path / f"bad{number}")
        assert not (tmp_path / f"bad{number}").exists()


def zip_symlink(bundle: zipfile.ZipFile, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    bundle.writestr(info, target)


def test_unpack_zip_links(tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as bundle:
        bundle.writestr("set/x.txt", b"hi")
        zip_symlink(bundle, "set/same", "x.txt")
    out = unpack(good, tmp_path / "good")
    assert os.readlink(out / "set" / "same") == "x.txt"

    for target in ("/etc/passwd", "../../outside"):
        bad = tmp_path / "bad.zip"
        with zipfile.ZipFile(bad, "w") as bundle:
            zip_symlink(bundle, "set/link", target)
        with pytest.raises(InputError, match=r"bad\.zip: .*links outside"):
            unpack(bad, tmp_path / "bad")
        assert not (tmp_path / "bad").exists()


def test_unpack_skips_macos_litter(tmp_path):
    litter = ["__MACOSX/set/._a.png", "set/._a.png", "set/.DS_Store", "__MACOSX/"]
    archive = tmp_path / "mac.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("set/a.png", b"image")
        for name in litter:
            bundle.writestr(name, b"")
    assert unpack_archive(archive, tmp_path / "zip") == len(litter)
    assert sorted(p.name for p in (tmp_path / "zip").rglob("*")) == ["a.png", "set"]

    tarred = tar_with(tmp_path / "mac.tar", data={"set/a.png": b"image", "set/._a.png": b""})
    assert unpack_archive(tarred, tmp_path / "tar") == 1
    assert sorted(p.name for p in (tmp_path / "tar").rglob("*")) == ["a.png", "set"]


def test_unpack_reports_corrupt_archives(tmp_path):
    whole = tmp_path / "whole.tar.gz"
    tar_with(whole, data={"a.bin": os.urandom(200_000)})
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(whole.read_bytes()[:50_000])
    with pytest.raises(InputError, match=r"cut\.tar\.gz: corrupt or truncated"):
        unpack(truncated, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- real archives


def mirror_sums() -> dict[str, str]:
    lines = (MIRROR / "SHA256SUMS").read_text().splitlines()
    pairs = [line.split() for line in lines if line.strip() and not line.startswith("#")]
    return {name: digest for digest, name in pairs}


@pytest.mark.skipif(not MIRROR.is_dir(), reason=f"{MIRROR} (shared data) is not available")
def test_yale_mirror_archives_download_and_unpack(server, tmp_path):
    sums = mirror_sums()
    server.route(
        "/yalefaces.zip", file=MIRROR / "yalefaces.zip", drop_after=3_000_000, drop_times=1
    )
    server.route("/CroppedYale.zip", file=MIRROR / "CroppedYale.zip")

    info = fetch(server.url("/yalefaces.zip"), tmp_path, "yale", sha256=sums["yalefaces.zip"])
    root = Path(info["root"])
    files = sorted(p.name for p in (root / "yalefaces").iterdir())
    assert len(files) == 167 and "Readme.txt" in files  # 166 images (quirks included)
    assert {"subject01.gif", "subject01.glasses.gif", "subject15.wink"} <= set(files)
    assert server.sent("/yalefaces.zip") == (MIRROR / "yalefaces.zip").stat().st_size
    assert server.requests("/yalefaces.zip")[1].range == "bytes=3000000-"

    info = fetch(server.url("/CroppedYale.zip"), tmp_path, "yaleb", sha256=sums["CroppedYale.zip"])
    root = Path(info["root"]) / "CroppedYale"
    subjects = sorted(p.name for p in root.iterdir())
    assert len(subjects) == 38 and "yaleB14" not in subjects
    assert len(list(root.glob("yaleB??/yaleB??_P00A*.pgm"))) == 2414
    assert (root / "yaleB01" / "yaleB01_P00A+000E+00.pgm").read_bytes()[
        :15
    ] == b"P5\n168 192\n255\n"
    lock = read_lock(tmp_path / "sources.lock.json")
    assert {entry["sha256"] for entry in lock.values()} == set(sums.values())
