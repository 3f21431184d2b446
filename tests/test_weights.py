"""The weights stage: checkpoints are verified before they appear under resources/weights/.

Files are served under their published names by a local server on 127.0.0.1
(tests/http_faults.py), with contents made here in the published key layouts;
Google Drive is the same server behind a patched ``DRIVE_URL``.
"""

from __future__ import annotations

import collections
import hashlib
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from http_faults import FaultServer  # noqa: E402
from tiny_models import (  # noqa: E402
    mmedit_generator,
    openmmlab_checkpoint,
    save_legacy_numpy1,
    srgan_training_keys,
)

from pipeline.data.sources import (  # noqa: E402
    DownloadError,
    HashMismatch,
    LockMismatch,
    SourceRefused,
    hash_prefix,
    read_lock,
)
from pipeline.data.sources import drive as drive_source  # noqa: E402
from pipeline.data.weights import fetch_weights  # noqa: E402
from pipeline.io import InputError  # noqa: E402

MMEDIT = "/mmediting/restorers/srresnet_srgan/"
MSRRESNET = MMEDIT + "msrresnet_x4c64b16_1x16_300k_div2k_20200521-61556be5.pth"
SRGAN = MMEDIT + "srgan_x4c64b16_1x16_1000k_div2k_20200606-a1f0810e.pth"
ESRGAN = "/xinntao/Real-ESRGAN/releases/download/v0.1.1/ESRGAN_SRx4_DF2KOST_official-ff704c30.pth"
REALESRGAN = "/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth"
SYNTHESIS_ID = "1TCViX1YpQyRsklTVYEJwdbmK91vklCo8"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checkpoint_bytes(content: object, tmp_path: Path, name: str = "made.pth") -> bytes:
    path = tmp_path / name
    torch.save(content, path)
    return path.read_bytes()


def checkpoint(path: Path) -> str:
    torch.save({"params_ema": {"conv.weight": torch.arange(6.0).reshape(2, 3)}}, path)
    return sha(path.read_bytes())


@pytest.fixture
def server():
    with FaultServer() as running:
        yield running


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, bytes]:
    """Tiny files in the layouts of the default methods' published checkpoints."""
    return {
        "msrresnet": checkpoint_bytes(openmmlab_checkpoint(mmedit_generator(4, 1, 0)), tmp_path),
        "srgan": checkpoint_bytes(
            openmmlab_checkpoint(mmedit_generator(4, 1, 1), srgan_training_keys(2)), tmp_path
        ),
        "esrgan": checkpoint_bytes({"params": {"conv_first.weight": torch.ones(2, 3)}}, tmp_path),
    }


def lock_of(tmp_path: Path) -> Path:
    return tmp_path / "sources.lock.json"


# --------------------------------------------------------------------------- local paths


def test_local_path_is_copied_verified_and_locked(tmp_path):
    source = tmp_path / "model.pth"
    digest = checkpoint(source)
    out = fetch_weights(
        "m", {"path": str(source), "sha256": digest}, tmp_path / "w" / "m.pth", lock_of(tmp_path)
    )
    assert out.read_bytes() == source.read_bytes()
    entry = read_lock(lock_of(tmp_path))[str(source.resolve())]
    assert entry["sha256"] == digest and entry["kind"] == "path" and entry["weights"] == "m"
    # Another file at the same path later is refused, and the fetched copy stays.
    torch.save({"params": {"x": torch.zeros(1)}}, source)
    with pytest.raises(LockMismatch, match=r"this local file \(weights\.m\.path\) is not"):
        fetch_weights("m", {"path": str(source)}, tmp_path / "w" / "again.pth", lock_of(tmp_path))
    assert not (tmp_path / "w" / "again.pth").exists()


def test_wrong_hash_leaves_nothing_behind(tmp_path):
    source = tmp_path / "model.pth"
    checkpoint(source)
    out = tmp_path / "w" / "m.pth"
    with pytest.raises(InputError, match=r"weights\.m\.sha256 pins"):
        fetch_weights("m", {"path": str(source), "sha256": "0" * 64}, out, lock_of(tmp_path))
    assert list(out.parent.iterdir()) == []
    assert read_lock(lock_of(tmp_path)) == {}


def test_local_file_with_a_published_name_is_checked_against_its_prefix(tmp_path, layout):
    local = tmp_path / Path(MSRRESNET).name
    local.write_bytes(layout["msrresnet"])
    out = tmp_path / "w" / "m.pth"
    observed = sha(layout["msrresnet"])
    pattern = rf"sha256 is {observed}, but the file name ends in -61556be5"
    with pytest.raises(InputError, match=pattern):
        fetch_weights("m", {"path": str(local)}, out, lock_of(tmp_path))
    assert not out.exists()
    # A full pin overrides the name's prefix.
    fetch_weights("m", {"path": str(local), "sha256": observed}, out, lock_of(tmp_path))
    assert out.read_bytes() == layout["msrresnet"]


def test_corrupt_checkpoint_is_refused(tmp_path):
    source = tmp_path / "model.pth"
    source.write_bytes(b"this is not a checkpoint")
    with pytest.raises(InputError, match=r"model\.pth: not a loadable PyTorch checkpoint"):
        fetch_weights("m", {"path": str(source)}, tmp_path / "w" / "m.pth", lock_of(tmp_path))
    assert not (tmp_path / "w" / "m.pth").exists()
    assert read_lock(lock_of(tmp_path)) == {}


def test_missing_file_says_where_to_put_it(tmp_path):
    out = tmp_path / "w" / "m.pth"
    with pytest.raises(
        InputError, match=r"not found; set weights\.m\.path .* or put the file at .*m\.pth"
    ):
        fetch_weights("m", {"path": str(tmp_path / "absent.pth")}, out, lock_of(tmp_path))


def test_training_checkpoint_meta_loads_without_unpickling_code(tmp_path):
    """numpy scalars in ``meta`` (as numpy 1 named them, legacy format) load; a class does not."""
    legacy = tmp_path / "legacy.pth"
    save_legacy_numpy1(openmmlab_checkpoint(mmedit_generator(4, 1, 3)), legacy)
    assert b"numpy.core.multiarray\nscalar" in legacy.read_bytes()
    with pytest.raises(Exception, match=r"numpy\.core\.multiarray\.scalar"):
        torch.load(legacy, weights_only=True)  # what the allowlist is for
    fetch_weights("m", {"path": str(legacy)}, tmp_path / "w" / "m.pth", lock_of(tmp_path))

    pickled = tmp_path / "pickled.pth"
    torch.save({"meta": {"hook": collections.ChainMap()}, "state_dict": {}}, pickled)
    with pytest.raises(
        InputError, match=r"pickled\.pth: not a loadable .*collections\.ChainMap.*could run code"
    ):
        fetch_weights("p", {"path": str(pickled)}, tmp_path / "w" / "p.pth", lock_of(tmp_path))


# --------------------------------------------------------------------------- URLs


def test_hash_prefix_follows_the_torch_hub_convention():
    assert hash_prefix(Path(MSRRESNET).name) == "61556be5"
    assert hash_prefix(Path(ESRGAN).name) == "ff704c30"
    assert hash_prefix("alexnet-owt-7be5be79.pth") == "7be5be79"
    assert hash_prefix("RealESRGAN_x4plus.pth") is None
    assert hash_prefix("model-abc.pth") is None  # fewer than 8 hex digits


def test_published_name_with_other_content_fails_naming_prefix_and_hash(server, tmp_path, layout):
    server.route(MSRRESNET, data=layout["msrresnet"])
    out = tmp_path / "w" / "mmedit_msrresnet_x4.pth"
    observed = sha(layout["msrresnet"])
    with pytest.raises(HashMismatch) as raised:
        fetch_weights("mmedit_msrresnet_x4", {"url": server.url(MSRRESNET)}, out, lock_of(tmp_path))
    message = str(raised.value)
    assert f"sha256 is {observed}, but the file name ends in -61556be5" in message
    assert "weights.mmedit_msrresnet_x4.sha256" in message
    assert list(out.parent.iterdir()) == []  # no final file, no partial file
    assert read_lock(lock_of(tmp_path)) == {}


def test_published_files_load_when_pinned_or_named_by_their_hash(server, tmp_path, layout):
    lock = lock_of(tmp_path)
    # Pinned: the full hash wins over the name's prefix.
    server.route(SRGAN, data=layout["srgan"])
    digest = sha(layout["srgan"])
    out = fetch_weights(
        "srgan", {"url": server.url(SRGAN), "sha256": digest}, tmp_path / "w" / "srgan.pth", lock
    )
    assert out.read_bytes() == layout["srgan"]
    # Unpinned, under a name that carries the file's real prefix.
    digest = sha(layout["esrgan"])
    named = ESRGAN.replace("ff704c30", digest[:8])
    server.route(named, data=layout["esrgan"])
    out = fetch_weights("esrgan", {"url": server.url(named)}, tmp_path / "w" / "esrgan.pth", lock)
    assert out.read_bytes() == layout["esrgan"]
    entries = json.loads(lock.read_text())["files"]
    entry = entries[server.url(named)]
    assert entry["sha256"] == digest and entry["bytes"] == len(layout["esrgan"])
    assert entry["kind"] == "url" and entry["weights"] == "esrgan"
    assert entries[server.url(SRGAN)]["sha256"] == sha(layout["srgan"])
    assert sorted(p.name for p in out.parent.iterdir()) == ["esrgan.pth", "srgan.pth"]


def test_a_later_fetch_finding_another_file_fails(server, tmp_path, layout):
    lock = lock_of(tmp_path)
    server.route(REALESRGAN, data=layout["esrgan"])
    source = {"url": server.url(REALESRGAN)}
    fetch_weights("realesrgan", source, tmp_path / "w" / "first.pth", lock)
    server.route(REALESRGAN, data=layout["msrresnet"])
    out = tmp_path / "w" / "second.pth"
    with pytest.raises(LockMismatch) as raised:
        fetch_weights("realesrgan", source, out, lock)
    message = str(raised.value)
    assert f"sha256 {sha(layout['msrresnet'])}" in message and str(lock) in message
    assert "Nothing was overwritten" in message
    assert not out.exists()
    assert read_lock(lock)[server.url(REALESRGAN)]["sha256"] == sha(layout["esrgan"])


def test_url_failures_say_where_to_put_the_file(server, tmp_path):
    lock = lock_of(tmp_path)
    out = tmp_path / "w" / "m.pth"
    with pytest.raises(
        DownloadError, match=r"(?s)HTTP 404.*set weights\.m\.path.*save it as .*w/m\.pth"
    ):
        fetch_weights("m", {"url": server.url("/missing.pth")}, out, lock)
    server.route("/quota.pth", data=b"<!DOCTYPE html><html>quota</html>", content_type="text/html")
    with pytest.raises(
        SourceRefused, match=r"(?s)HTML page.*weights\.m\.path.*save it as .*w/m\.pth"
    ):
        fetch_weights("m", {"url": server.url("/quota.pth")}, out, lock)
    server.route("/junk.pth", data=b"\x00 not a checkpoint")
    with pytest.raises(InputError, match=r"junk\.pth: not a loadable PyTorch checkpoint"):
        fetch_weights("m", {"url": server.url("/junk.pth")}, out, lock)
    assert list(out.parent.iterdir()) == []
    assert read_lock(lock) == {}


# --------------------------------------------------------------------------- Google Drive


@pytest.fixture
def drive(server, monkeypatch):
    """The local server standing in for Google Drive."""
    monkeypatch.setattr(drive_source, "DRIVE_URL", server.base + "/drive/{id}")
    monkeypatch.setattr(drive_source, "DRIVE_RETRIES", 0)
    return server


def fetch_drive(tmp_path: Path, **extra) -> Path:
    source = {"gdrive": SYNTHESIS_ID, **extra}
    out = tmp_path / "w" / "pulse_synthesis.pth"
    return fetch_weights("pulse_synthesis", source, out, lock_of(tmp_path))


def assert_nothing_kept(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_drive_file_is_fetched_verified_and_locked(drive, tmp_path, layout):
    drive.route(f"/drive/{SYNTHESIS_ID}", data=layout["msrresnet"])
    out = fetch_drive(tmp_path)
    assert out.read_bytes() == layout["msrresnet"]
    assert [p.name for p in out.parent.iterdir()] == ["pulse_synthesis.pth"]
    entry = read_lock(lock_of(tmp_path))[f"gdrive:{SYNTHESIS_ID}"]
    assert entry["sha256"] == sha(layout["msrresnet"]) and entry["kind"] == "gdrive"
    # Drive later serving another file under the same id fails.
    drive.route(f"/drive/{SYNTHESIS_ID}", data=layout["srgan"])
    out.unlink()
    with pytest.raises(LockMismatch, match=rf"gdrive:{SYNTHESIS_ID}"):
        fetch_drive(tmp_path)
    assert_nothing_kept(tmp_path)


def test_drive_sha256_mismatch_keeps_nothing(drive, tmp_path, layout):
    drive.route(f"/drive/{SYNTHESIS_ID}", data=layout["msrresnet"])
    with pytest.raises(HashMismatch, match=r"expected 0{64}, got [0-9a-f]{64}"):
        fetch_drive(tmp_path, sha256="0" * 64)
    assert_nothing_kept(tmp_path)
    assert read_lock(lock_of(tmp_path)) == {}


def hand_placement(message: str, tmp_path: Path) -> None:
    """The refusal says exactly where the file goes, and which config key to set instead."""
    assert str(tmp_path / "w" / "pulse_synthesis.pth") in message
    assert "weights.pulse_synthesis.path" in message


def test_drive_quota_page_served_with_200_is_refused(drive, tmp_path):
    page = b"<!DOCTYPE html><html><title>Google Drive - Quota exceeded</title></html>"
    drive.route(f"/drive/{SYNTHESIS_ID}", data=page, content_type="text/html")
    with pytest.raises(SourceRefused, match="HTML page instead of the file") as raised:
        fetch_drive(tmp_path)
    hand_placement(str(raised.value), tmp_path)
    assert_nothing_kept(tmp_path)


@pytest.mark.parametrize("status", [403, 429])
def test_drive_refusals_say_where_to_put_the_file(drive, tmp_path, status):
    drive.route(f"/drive/{SYNTHESIS_ID}", data=b"no", status=status, content_type="text/html")
    with pytest.raises(SourceRefused, match=rf"Drive answered HTTP {status}") as raised:
        fetch_drive(tmp_path)
    hand_placement(str(raised.value), tmp_path)
    assert_nothing_kept(tmp_path)


def test_gdown_retrieval_error_is_a_refusal(drive, tmp_path, monkeypatch):
    gdown = pytest.importorskip("gdown")
    from gdown.exceptions import FileURLRetrievalError

    def refuse(**_: object) -> None:
        raise FileURLRetrievalError("Too many users have viewed or downloaded this file recently.")

    monkeypatch.setattr(gdown, "download", refuse)
    with pytest.raises(SourceRefused, match=r"gdown: Too many users") as raised:
        fetch_drive(tmp_path)
    hand_placement(str(raised.value), tmp_path)
    assert_nothing_kept(tmp_path)


def test_a_local_path_wins_over_drive_and_url(tmp_path):
    from pipeline.data.sources import WEIGHTS_KINDS, effective_source, source_kind

    merged = {"gdrive": SYNTHESIS_ID, "url": "https://mirror/x.pth", "path": "/data/x.pth"}
    assert effective_source(merged) == {"path": "/data/x.pth"}
    merged.pop("path")
    assert effective_source(merged) == {"url": "https://mirror/x.pth"}
    merged.pop("url")
    assert effective_source({**merged, "sha256": "a" * 64}) == {
        "gdrive": SYNTHESIS_ID,
        "sha256": "a" * 64,
    }
    assert source_kind({"url": "u", "gdrive": "g"}, "weights.x", WEIGHTS_KINDS) == "url"
    with pytest.raises(InputError, match=r"weights\.x: needs one of path, url, gdrive"):
        source_kind({"npm": "p"}, "weights.x", WEIGHTS_KINDS)
