"""Never a stale result: what happens to changed sources, hostile files and killed jobs (issue 16).

Each numbered failure of the issue has its test here:

1. local sources and checkpoints that change are fetched again and checked
   against the lock file (fingerprints);
2. EXIF orientation is applied at decoding and recorded;
3. a file that cannot be read (a decompression bomb too) is a manifest row,
   and a huge photo is searched for faces on a bounded copy;
4. archives are refused past their size, member and ratio limits;
5. the staging folders of killed writers are removed by the next writer;
6. shards lost to a killed job are refused by the merges;
7. a checkpoint of another channel count fails at load, naming file, key and shapes;

and the ``kill -9`` mid-upscale case that held already. The workflow cases
share one tiny project (``project``), run once: up to the LR inputs, then
killed in its first upscale job, then completed; the later tests use it in
the order they are written (the last ones leave sources changed).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, SHARED, SNAKEMAKE, run_snakemake, smooth_image
from PIL import Image

from pipeline.data.kinds.images import build_manifest
from pipeline.data.sources import archives, fetch_source, read_lock
from pipeline.data.sources.fingerprint import local_fingerprint
from pipeline.data.sources.lock import LockMismatch, forget
from pipeline.io import InputError, atomic_dir, load_rgb
from pipeline.shards import LostShards, check_merge_inputs, merge_tables, merged_parts

FFHQ = SHARED / "data" / "ffhq" / "ffhq_00001.png"
needs_photo = pytest.mark.skipif(not FFHQ.is_file(), reason=f"{FFHQ} (shared data) is absent")


def needs_dlib_models() -> None:
    from pipeline.prepare import dlib_models

    try:
        dlib_models.load_model(dlib_models.SHAPE_68)
    except Exception as exc:  # no model files on this machine
        pytest.skip(f"dlib models unavailable: {exc}")


# --------------------------------------------------------------------------- 1. fingerprints


def test_a_folder_fingerprint_follows_names_sizes_and_times(tmp_path):
    folder = tmp_path / "set"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(b"one")
    (folder / "sub" / "b.png").write_bytes(b"two")
    first = local_fingerprint(folder, tmp_path / "cache.json")
    assert local_fingerprint(folder, tmp_path / "cache.json") == first
    stat = (folder / "a.png").stat()
    (folder / "a.png").write_bytes(b"ONE")  # same size, new bytes and time
    changed = local_fingerprint(folder, tmp_path / "cache.json")
    os.utime(folder / "a.png", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert changed != first
    assert local_fingerprint(folder, tmp_path / "cache.json") == first  # names, sizes, times
    (folder / ".DS_Store").write_bytes(b"Finder was here")  # read by no catalog
    assert local_fingerprint(folder, tmp_path / "cache.json") == first
    (folder / "sub" / "c.png").write_bytes(b"new")
    assert local_fingerprint(folder, tmp_path / "cache.json") not in (first, changed)


def test_a_file_fingerprint_is_its_hash_computed_once_per_change(tmp_path, monkeypatch):
    from pipeline.data.sources import fingerprint

    hashed = []
    original = fingerprint.sha256_file
    monkeypatch.setattr(fingerprint, "sha256_file", lambda p: hashed.append(p) or original(p))
    archive, cache = tmp_path / "set.zip", tmp_path / "cache.json"
    archive.write_bytes(b"zip one")
    first = local_fingerprint(archive, cache)
    assert local_fingerprint(archive, cache) == first and len(hashed) == 1  # cached
    os.utime(archive)  # touched, same bytes: hashed again, the same fingerprint
    assert local_fingerprint(archive, cache) == first and len(hashed) == 2
    archive.write_bytes(b"zip two")
    assert local_fingerprint(archive, cache) != first
    assert local_fingerprint(tmp_path / "gone.zip", cache) == "missing"


def test_a_changed_folder_is_refused_naming_its_files_until_accepted(tmp_path):
    folder = (tmp_path / "set").resolve()
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (folder / name).write_bytes(name.encode())
    record, lock = tmp_path / "ds" / "record.json", tmp_path / "sources.lock.json"
    where = "datasets.faces.source"
    info = fetch_source({"path": str(folder)}, record.parent, record, lock, config_key=where)
    entry = read_lock(lock)[str(folder)]
    assert (entry["kind"], entry["sha256"], len(entry["files"])) == ("folder", info["sha256"], 3)

    (folder / "a.png").write_bytes(b"edited")
    (folder / "c.png").unlink()
    (folder / "d.png").write_bytes(b"new")
    with pytest.raises(LockMismatch) as caught:
        fetch_source({"path": str(folder)}, record.parent, record, lock, config_key=where)
    message = str(caught.value)
    for expected in (
        f"{folder}: this local folder (datasets.faces.source.path)",
        "1 added (d.png); 1 removed (c.png); 1 changed (a.png)",
        f"python -m pipeline.data.sources.lock forget --lock-file {lock} {folder}",
    ):
        assert expected in message
    assert read_lock(lock)[str(folder)] == entry  # nothing overwritten

    # Accepting: the command the message gives, then the fetch records the new content.
    command = [sys.executable, "-m", "pipeline.data.sources.lock", "forget"]
    command += ["--lock-file", str(lock), str(folder)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    info = fetch_source({"path": str(folder)}, record.parent, record, lock, config_key=where)
    assert sorted(read_lock(lock)[str(folder)]["files"]) == ["a.png", "b.png", "d.png"]
    with pytest.raises(KeyError, match="no entry"):
        forget(lock, "/not/recorded")


def test_the_jobs_that_read_a_local_source_carry_its_fingerprint(tmp_path, monkeypatch):
    """A refused fetch removes its output and Snakemake's record of it, and Snakemake does
    not fetch a missing file again for outputs that are up to date: the readers' own params
    change, so the fetch runs again (and refuses again, until the change is accepted)."""
    from pipeline import workflow as facebench

    monkeypatch.chdir(tmp_path)  # the fingerprint cache lives in the working folder
    checkpoint, folder = tmp_path / "m.pth", tmp_path / "faces"
    checkpoint.write_bytes(b"one")
    folder.mkdir()
    (folder / "a.png").write_bytes(b"a")
    config = facebench.load_config(
        {
            "run_name": "r",
            "datasets": {"f": {"source": {"path": str(folder)}}},
            "tasks": [{"lr": 16, "hr": 64}],
            "kernels": ["pil-bicubic"],
            "methods": {"esr": {"arch": "esrgan", "weights": "m"}},
            "weights": {"m": {"path": str(checkpoint)}, "u": {"url": "https://x.org/u.pth"}},
            "measure": {"lpips": {"enabled": False}},
        }
    )
    before = facebench.method_sources(config, "esr"), facebench.catalog_sources(config, "f")
    checkpoint.write_bytes(b"two")
    (folder / "b.png").write_bytes(b"b")
    after = facebench.method_sources(config, "esr"), facebench.catalog_sources(config, "f")
    assert before[0] != after[0] and before[1] != after[1]
    assert list(after[0]) == ["m"] and list(after[1]) == ["source"]
    assert facebench.checkpoint_sources(config, ["u"]) == {}  # a URL's file is fetched once


# --------------------------------------------------------------------------- 2. EXIF


def write_with_orientation(upright: Image.Image, path: Path, orientation: int = 6) -> None:
    """``upright`` stored turned on its side, with the EXIF tag that turns it back."""
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = orientation  # 6: turn 90 degrees clockwise to display
    stored.save(path, exif=exif, **({"quality": 95} if path.suffix == ".jpg" else {}))


def test_exif_orientation_is_applied_at_decoding_and_recorded(tmp_path):
    rng = np.random.default_rng(0)
    upright = Image.fromarray(smooth_image(rng, 60, 40))
    write_with_orientation(upright, tmp_path / "turned.png")
    upright.save(tmp_path / "plain.png")
    loaded = load_rgb(tmp_path / "turned.png")
    assert loaded.size == (40, 60)
    np.testing.assert_array_equal(np.asarray(loaded), np.asarray(upright))
    manifest = build_manifest(tmp_path).set_index("image_id")
    assert manifest.loc["turned", ["width", "height", "exif_orientation"]].tolist() == [40, 60, 6]
    assert manifest.loc["plain", "exif_orientation"] == 1


@needs_photo
def test_a_photo_stored_sideways_with_its_orientation_tag_shows_a_face(tmp_path):
    needs_dlib_models()
    from pipeline.prepare.detect import detect_face

    upright = Image.open(FFHQ).convert("RGB").resize((256, 256), Image.Resampling.LANCZOS)
    write_with_orientation(upright, tmp_path / "camera.jpg")
    result = detect_face(load_rgb(tmp_path / "camera.jpg"), upsample=1)
    assert result.status == "ok", result.reason
    eyes = result.landmarks[36:48].mean(axis=0)
    mouth = result.landmarks[48:68].mean(axis=0)
    assert mouth[1] > eyes[1] + 30  # upright: the mouth below the eyes


# --------------------------------------------------------------------------- 3. hostile files


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (what a decompression bomb says)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_a_manifest_row_not_a_crash(tmp_path):
    rng = np.random.default_rng(1)
    Image.fromarray(smooth_image(rng, 40, 40)).save(tmp_path / "fine.png")
    (tmp_path / "huge.png").write_bytes(png_header_only(20_000, 20_000))
    # Without a limit of its own, Pillow's: the file is refused, the catalog goes on.
    manifest = build_manifest(tmp_path).set_index("image_id")
    assert manifest.loc["huge", "status"] == "error"
    assert manifest.loc["huge", "reason"].startswith("too many pixels (huge.png: 400,000,000")
    manifest = build_manifest(tmp_path, max_pixels=100_000_000).set_index("image_id")
    huge = manifest.loc["huge"]
    assert huge["status"] == "error"
    assert huge["reason"].startswith("too many pixels (huge.png: 400,000,000 pixels")
    assert "max_image_pixels = 100,000,000" in huge["reason"]
    assert manifest.loc["fine", "status"] == "ok"
    # The limit is the config's: a 1,600-pixel image is too many under a limit of 1,000.
    strict = build_manifest(tmp_path, max_pixels=1_000).set_index("image_id")
    assert (
        strict.loc["fine", "status"] == "error" and "1,600 pixels" in strict.loc["fine", "reason"]
    )
    with pytest.raises(InputError, match=r"huge\.png: too many pixels"):
        load_rgb(tmp_path / "huge.png", max_pixels=100_000_000)


@needs_photo
def test_a_huge_photo_is_searched_on_a_bounded_copy_with_full_size_landmarks(monkeypatch):
    needs_dlib_models()
    from pipeline.prepare import detect
    from pipeline.prepare.align import ffhq_quad

    photo = Image.open(FFHQ).convert("RGB").resize((3072, 3072), Image.Resampling.BICUBIC)
    full = detect.detect_face(photo, upsample=0)
    scanned = []
    run_detector = detect._run_detector

    def recording(array: np.ndarray, *args: object) -> object:
        scanned.append(array.shape)
        return run_detector(array, *args)

    monkeypatch.setattr(detect, "_run_detector", recording)
    bounded = detect.detect_face(photo, upsample=0, max_size=2048)
    assert full.status == bounded.status == "ok"
    assert max(scanned[0][:2]) <= 2048  # the detector saw the reduced copy only
    width = full.box[2] - full.box[0]
    # Measured (3072 px, a 1,598 px face): boxes within 2 px, landmarks 8 px apart
    # on average (0.5 % of the face), the FFHQ square's corners within 0.7 % of its
    # side. A box moved by 1 px on the full image alone moves dlib's landmarks by as
    # much (the shape predictor's own sensitivity), so this is the floor.
    assert np.abs(np.subtract(bounded.box, full.box)).max() <= 0.01 * width
    distances = np.hypot(*(bounded.landmarks - full.landmarks).T)
    assert distances.mean() < 0.01 * width
    corners = np.hypot(*(bounded.quad - full.quad).T)
    side = np.hypot(*(full.quad[0] - full.quad[3]))
    assert corners.max() < 0.015 * side
    np.testing.assert_allclose(bounded.quad, ffhq_quad(bounded.landmarks))


# --------------------------------------------------------------------------- 4. archives


def zip_of(path: Path, members: dict[str, bytes | int]) -> Path:
    """A deflated zip; an int member is that many zero bytes, streamed."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, content in members.items():
            if isinstance(content, int):
                with bundle.open(name, "w", force_zip64=True) as sink:
                    for _ in range(content // (1 << 20)):
                        sink.write(bytes(1 << 20))
            else:
                bundle.writestr(name, content)
    return path


def test_an_archive_bomb_is_refused_with_the_default_limits(tmp_path):
    bomb = zip_of(tmp_path / "bomb.zip", {"set/a.png": b"fine", "set/zeros.bin": 120 << 20})
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(InputError) as caught:
        archives.unpack(bomb, tmp_path / "out")
    assert "bomb.zip" in str(caught.value) and "archives.max_ratio = 100" in str(caught.value)
    assert sorted(os.listdir(tmp_path)) == ["bomb.zip"]  # nothing unpacked, no staging left


def test_archive_limits_on_bytes_and_members_are_named(tmp_path):
    many = zip_of(tmp_path / "many.zip", {f"set/{i}.png": b"x" for i in range(11)})
    with pytest.raises(InputError, match=r"many\.zip: has more than archives\.max_members = 10"):
        archives.unpack(many, tmp_path / "a", {"max_members": 10})
    big = zip_of(tmp_path / "big.zip", {"set/zeros.bin": 2 << 20})
    with pytest.raises(InputError, match=r"declare more than archives\.max_bytes = 1,000,000"):
        archives.unpack(big, tmp_path / "b", {"max_bytes": 1_000_000})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.zip", "many.zip"]
    archives.unpack(big, tmp_path / "c", {"max_bytes": 3 << 20})  # within the limit
    assert (tmp_path / "c" / "set" / "zeros.bin").stat().st_size == 2 << 20


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_unpacking_stops_at_the_limit_even_when_declared_sizes_pass(tmp_path, monkeypatch, kind):
    """The second line: if the declared sizes lied (here the check of them is switched off),
    the bytes written are counted, and unpacking stops at the limit."""
    monkeypatch.setattr(archives._Budget, "declare", lambda self, name, size: None)
    if kind == "zip":
        archive = zip_of(tmp_path / "liar.zip", {"set/zeros.bin": 3 << 20})
    else:
        import tarfile

        archive = tmp_path / "liar.tar"
        (tmp_path / "zeros.bin").write_bytes(bytes(3 << 20))
        with tarfile.open(archive, "w") as bundle:
            bundle.add(tmp_path / "zeros.bin", "set/zeros.bin")
        (tmp_path / "zeros.bin").unlink()
    with pytest.raises(InputError, match=r"unpacked more than archives\.max_bytes = 2,097,152"):
        archives.unpack(archive, tmp_path / "out", {"max_bytes": 2 << 20})
    assert sorted(os.listdir(tmp_path)) == [archive.name]


MIRROR = SHARED / "mirror"


@pytest.mark.skipif(not (MIRROR / "CroppedYale.zip").is_file(), reason="shared mirror absent")
def test_the_real_archives_are_far_inside_the_default_limits():
    from pipeline.config import schema_defaults

    limits = schema_defaults("archives")
    for name, members, unpacked in (
        ("CroppedYale.zip", 2586, 88_242_632),
        ("yalefaces.zip", 168, 6_547_151),
    ):
        with zipfile.ZipFile(MIRROR / name) as bundle:
            infos = bundle.infolist()
        assert (len(infos), sum(info.file_size for info in infos)) == (members, unpacked)
        assert unpacked * 100 < limits["max_bytes"] and members * 100 < limits["max_members"]
        assert unpacked / (MIRROR / name).stat().st_size < limits["max_ratio"] / 50


# --------------------------------------------------------------------------- 5. staging folders


def test_the_staging_folder_of_a_killed_writer_is_removed_by_the_next(tmp_path):
    final = tmp_path / "shard-0000"
    code = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from pipeline.io import atomic_dir\n"
        f"with atomic_dir({str(final)!r}) as staging:\n"
        "    (staging / 'a.png').write_bytes(b'half')\n"
        "    print(staging, flush=True)\n"
        "    time.sleep(120)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([writer.stdout], [], [], 60)
        assert ready, "the writer did not start"
        staging = Path(writer.stdout.readline().strip())
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    assert staging.is_dir() and not final.exists()  # kill -9: nothing published, a leftover
    with atomic_dir(final) as fresh:
        (fresh / "a.png").write_bytes(b"whole")
    assert sorted(os.listdir(tmp_path)) == ["shard-0000"]
    assert os.listdir(final) == ["a.png"]


def test_a_writer_whose_staging_folder_vanished_publishes_nothing(tmp_path):
    final = tmp_path / "shard-0000"
    vanished = pytest.raises(RuntimeError, match="removed while it was being written")
    with vanished, atomic_dir(final) as staging:
        shutil.rmtree(staging)  # what a second writer of the same folder would do
        staging.mkdir()  # and a later write that creates its folder again
        (staging / "late.png").write_bytes(b"part")
    assert not final.exists() and os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- 6. merges


def test_a_merged_table_records_its_shards_and_refuses_lost_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parts = []
    for index in range(3):
        part = Path(f"shards/shard-{index:04d}.parquet")
        part.parent.mkdir(exist_ok=True)
        pd.DataFrame({"image_id": [f"img{index}"]}).to_parquet(part)
        parts.append(str(part))
    merged = "merged.parquet"
    merge_tables(parts, merged)
    assert merged_parts(merged) == parts
    shards = dict.fromkeys(parts, ())
    assert check_merge_inputs(merged, shards, "merge_x") == parts
    os.remove(parts[1])
    with pytest.raises(LostShards) as caught:
        check_merge_inputs(merged, shards, "merge_x")
    assert f"snakemake --cores all {parts[1]}" in str(caught.value)
    assert "--forcerun merge_x" in str(caught.value)
    # Another set of shards, or a newer shard: the merge runs again anyway.
    assert check_merge_inputs(merged, dict.fromkeys(parts[:2], ()), "merge_x") == parts[:2]
    later = time.time() + 5
    os.utime(parts[0], (later, later))
    assert check_merge_inputs(merged, shards, "merge_x") == parts
    # An input a shard was made from, lost under it, is refused too; not a new input
    # (another alignment size, say), nor one older than the shard's newest input.
    os.utime(parts[0], (later - 10, later - 10))
    Path("sr").mkdir()
    os.utime("sr", (later - 20, later - 20))
    with_inputs = {parts[0]: ["sr", "lost-lr", "new-lr"], parts[2]: []}
    merge_tables([parts[0], parts[2]], merged)
    os.utime(merged, (later, later))
    made_from = {parts[0]: ["sr", "lost-lr"]}.get
    with pytest.raises(LostShards) as caught:
        check_merge_inputs(merged, with_inputs, "merge_x", made_from)
    assert "gone: lost-lr." in str(caught.value)
    assert check_merge_inputs(merged, with_inputs, "merge_x") == [parts[0], parts[2]]  # unknown
    os.utime("sr", (later - 5, later - 5))  # newer than its shard: Snakemake remakes both
    assert check_merge_inputs(merged, with_inputs, "merge_x", made_from) == [parts[0], parts[2]]


# --------------------------------------------------------------------------- 7. checkpoints


def test_a_checkpoint_of_another_channel_count_fails_at_load_naming_key_and_shapes(tmp_path):
    torch = pytest.importorskip("torch")
    from pipeline.upscale import build_method
    from pipeline.upscale.rrdbnet import RRDBNet

    rgba = RRDBNet(num_in_ch=4, num_feat=8, num_block=1, num_grow_ch=4)
    path = tmp_path / "rgba_esrgan.pth"
    torch.save({"params_ema": rgba.state_dict()}, path)
    batch = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(InputError) as caught:
        build_method({"arch": "esrgan", "weights_path": str(path)}, "cpu")(batch, 32, [0])
    message = str(caught.value)
    assert message.startswith(f"{path}: does not fit the RRDBNet network")
    assert "conv_first.weight has shape (8, 4, 3, 3) in the file, (8, 3, 3, 3) expected" in message


# --------------------------------------------------------------------------- the workflow

SHARD_SIZE = 2
FOLDER_IMAGES = {"a.png": (48, 40), "b.png": (40, 52), "c.png": (44, 44)}


def reliability_config(data: Path) -> dict:
    return {
        "run_name": "reliability",
        "shard_size": SHARD_SIZE,
        "datasets": {
            # Three images and a decompression bomb: two shards.
            "folder": {"source": {"path": str(data / "faces")}},
            "zipped": {"source": {"path": str(data / "set.zip")}},
        },
        "weights": {"probe": {"path": str(data / "probe.pth")}},
        "tasks": [{"lr": 8, "hr": 32}],
        "kernels": ["pil-bicubic"],
        "methods": {"bicubic": {"arch": "interpolate", "filter": "bicubic"}},
        "measure": {"lpips": {"enabled": False}, "identity": {"enabled": False}},
        "summary": {"bootstrap_samples": 100, "seed": 0},
    }


def snakemake_in(workdir: Path, *args: str) -> subprocess.Popen:
    """Start the workflow in its own process group (so that a kill takes its jobs too)."""
    command = [
        *SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(workdir / "config.yaml"), *args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def kill_when(process: subprocess.Popen, condition, timeout: float = 120) -> bool:
    """SIGKILL ``process``'s group as soon as ``condition()`` holds; whether it did."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if condition():
                os.killpg(process.pid, signal.SIGKILL)
                return True
            time.sleep(0.002)
        return False
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)


def staging_folders(workdir: Path) -> list[Path]:
    return [p for p in (workdir / "results").rglob(".shard-*") if p.name.endswith((".tmp", ".old"))]


def dry_run(workdir: Path, *args: str) -> dict[str, int]:
    """Job counts per rule that a dry run would execute ({} when nothing is to be done)."""
    result = run_snakemake(workdir, "--dry-run", "--cores", "1", *args)
    counts: dict[str, int] = {}
    if "Job stats:" not in result.stdout:
        return counts
    for line in result.stdout.split("Job stats:")[-1].splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny project, killed in its first upscale job, then completed; what was seen."""
    torch = pytest.importorskip("torch")
    began = time.perf_counter()
    workdir = tmp_path_factory.mktemp("reliability")
    data = workdir / "data"
    rng = np.random.default_rng(16)
    (data / "faces").mkdir(parents=True)
    for name, (height, width) in FOLDER_IMAGES.items():
        Image.fromarray(smooth_image(rng, height, width)).save(data / "faces" / name)
    (data / "faces" / "huge.png").write_bytes(png_header_only(20_000, 20_000))
    with zipfile.ZipFile(data / "set.zip", "w") as bundle:
        for name in ("x.png", "y.png"):
            buffer = data / name
            Image.fromarray(smooth_image(rng, 36, 36)).save(buffer)
            bundle.write(buffer, f"set/{name}")
            buffer.unlink()
    torch.save({"w": torch.zeros(4)}, data / "probe.pth")
    (workdir / "config.yaml").write_text(yaml.safe_dump(reliability_config(data)))

    run_snakemake(workdir, "--cores", "2", "--until", "downscale")
    # kill -9 in the middle of the first upscale job: its staging folder exists.
    seen: list[list[Path]] = []

    def upscaling() -> bool:
        found = [p for p in (workdir / "results").glob("*/sr/*/*/*/.shard-*.tmp")]
        if found:
            seen.append(found)
        return bool(found)

    killed = kill_when(snakemake_in(workdir, "--cores", "1"), upscaling)
    after_kill = {
        "killed": killed,
        "staging": seen[-1] if seen else [],
        "leftovers": staging_folders(workdir),
        "published": sorted((workdir / "results").glob("*/sr/*/*/*/shard-*")),
    }
    run_snakemake(workdir, "--unlock", "--cores", "1")
    run_snakemake(workdir, "--cores", "2")
    return {"workdir": workdir, "after_kill": after_kill, "seconds": time.perf_counter() - began}


@pytest.mark.slow
def test_kill_9_mid_upscale_publishes_nothing_partial_and_the_rerun_leaves_nothing(project):
    workdir, seen = project["workdir"], project["after_kill"]
    assert seen["killed"] and seen["staging"], "the upscale job was not caught while writing"
    assert seen["leftovers"]  # what kill -9 leaves: the staging folder
    for folder in seen["published"]:  # a folder under its final name is whole
        assert (folder / "facts.parquet").is_file(), folder
    # The outputs are those of an uninterrupted run: the stage, run here, writes the same bytes.
    from pipeline.upscale.stage import upscale

    config = yaml.safe_load((workdir / "config.yaml").read_text())
    method = {**config["methods"]["bicubic"], "seeds": [0], "batch_size": 16}
    for sr in sorted((workdir / "results").glob("*/sr/bicubic/pil-bicubic/8to32/shard-*")):
        lr = workdir / "results" / sr.parts[-6] / "lr8/pil-bicubic/from32" / sr.name
        reference = workdir / "reference" / sr.parts[-6] / sr.name
        upscale(lr, 32, method, reference, device="cpu")
        pngs = sorted(p.name for p in sr.glob("*.png"))
        assert pngs == sorted(p.name for p in reference.glob("*.png")) and pngs
        for name in pngs:
            assert (sr / name).read_bytes() == (reference / name).read_bytes(), name
    per_image = pd.read_parquet(workdir / "results/metrics/per_image.parquet")
    assert len(per_image) == 4 + 2 and per_image["psnr_rgb"].notna().sum() == 3 + 2
    # What held before issue 16 ends here; what did not: the killed writer's staging
    # folder stayed beside the output. The rerun's writer of the same folder removed it.
    assert staging_folders(workdir) == []


@pytest.mark.slow
def test_a_bomb_in_a_workflow_source_is_an_error_row(project):
    workdir = project["workdir"]
    manifest = pd.read_parquet(workdir / "results/folder/manifest.parquet").set_index("image_id")
    assert manifest.loc["huge", "status"] == "error"
    assert "too many pixels (huge.png" in manifest.loc["huge", "reason"]
    assert (manifest.drop(index="huge")["status"] == "ok").all()
    assert (manifest["exif_orientation"].dropna() == 1).all()
    assert dry_run(workdir) == {}


@pytest.mark.slow
def test_a_local_folder_that_changes_is_fetched_again(project):
    workdir = project["workdir"]
    faces = workdir / "data" / "faces"
    originals = {p.name: (p.read_bytes(), p.stat()) for p in faces.iterdir()}

    def restore() -> None:
        for path in faces.iterdir():
            if path.name not in originals:
                path.unlink()
        for name, (content, stat) in originals.items():
            (faces / name).write_bytes(content)
            os.utime(faces / name, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    rng = np.random.default_rng(99)
    changes = {
        "new pixels": lambda: Image.fromarray(smooth_image(rng, 48, 40)).save(faces / "a.png"),
        "touched": lambda: os.utime(faces / "b.png"),
        "an image added": lambda: shutil.copyfile(faces / "a.png", faces / "d.png"),
        "an image removed": lambda: (faces / "c.png").unlink(),
    }
    for what, change in changes.items():
        change()
        jobs = dry_run(workdir)
        restore()
        assert jobs.get("download") == 1 and jobs.get("catalog") == 1, (what, jobs)
        assert jobs.get("merge_faces") == 1, (what, jobs)  # the folder's, not the zip's
    assert dry_run(workdir) == {}  # the same names, sizes and times: nothing to do


@pytest.mark.slow
def test_shards_lost_to_a_killed_job_are_refused_then_rebuilt(project):
    workdir = project["workdir"]
    tables = sorted((workdir / "results/metrics/shards").rglob("shard-*.parquet"))
    before = pd.read_parquet(workdir / "results/metrics/per_image.parquet")
    # --forcerun measure, killed once Snakemake has deleted a shard table to remake it.
    killed = kill_when(
        snakemake_in(workdir, "--cores", "1", "--forcerun", "measure"),
        lambda: any(not table.exists() for table in tables),
    )
    assert killed
    lost = [table for table in tables if not table.exists()]
    run_snakemake(workdir, "--unlock", "--cores", "1")
    refused = run_snakemake(workdir, "--dry-run", "--cores", "1", check=False)
    assert refused.returncode != 0, "a plain run found nothing to do"
    said = refused.stdout + refused.stderr
    assert "LostShards" in said and "--forcerun merge_metrics" in said
    for table in lost:
        assert str(table.relative_to(workdir)) in said
    run_snakemake(workdir, "--cores", "2", "--forcerun", "merge_metrics")
    after = pd.read_parquet(workdir / "results/metrics/per_image.parquet")
    keys = ["dataset", "image_id", "method", "seed"]
    metrics = [*keys, "status", "psnr_rgb", "ssim_y"]
    pd.testing.assert_frame_equal(
        after[metrics].sort_values(keys).reset_index(drop=True),
        before[metrics].sort_values(keys).reset_index(drop=True),
    )
    assert dry_run(workdir) == {}


@pytest.mark.slow
def test_an_upscaled_folder_lost_under_its_metrics_is_refused_then_rebuilt(project):
    workdir = project["workdir"]
    folders = sorted((workdir / "results").glob("*/sr/*/*/*/shard-*"))
    killed = kill_when(
        snakemake_in(workdir, "--cores", "1", "--forcerun", "upscale"),
        lambda: any(not folder.exists() for folder in folders),
    )
    assert killed
    lost = [folder.relative_to(workdir) for folder in folders if not folder.exists()]
    run_snakemake(workdir, "--unlock", "--cores", "1")
    refused = run_snakemake(workdir, "--dry-run", "--cores", "1", check=False)
    assert refused.returncode != 0, "a plain run found nothing to do"
    said = refused.stdout + refused.stderr
    command = f"snakemake --cores all {' '.join(str(path) for path in lost)}"
    assert "LostShards" in said and command in said
    run_snakemake(workdir, "--cores", "1", *map(str, lost))  # what the message says
    assert dry_run(workdir).get("measure") == len(lost)
    run_snakemake(workdir, "--cores", "2")
    assert dry_run(workdir) == {} and staging_folders(workdir) == []


def forget_in(workdir: Path, key: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.data.sources.lock", "forget", key],
        cwd=workdir, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_a_checkpoint_replaced_at_its_path_is_refused_until_accepted(project):
    torch = pytest.importorskip("torch")
    workdir = project["workdir"]
    fetched = workdir / "resources/weights/probe.pth"
    local = (workdir / "data" / "probe.pth").resolve()
    run_snakemake(workdir, "--cores", "1", str(fetched.relative_to(workdir)))
    assert fetched.read_bytes() == local.read_bytes()
    torch.save({"w": torch.ones(4)}, local)  # another checkpoint at the same path
    assert dry_run(workdir, str(fetched.relative_to(workdir))) == {"fetch_weights": 1}
    refused = run_snakemake(workdir, "--cores", "1", str(fetched.relative_to(workdir)), check=False)
    assert refused.returncode != 0 and not fetched.exists()  # the old copy is not used either
    log = (workdir / "logs/fetch_weights/probe.log").read_text()
    assert "this local file (weights.probe.path) is not the one" in log
    lock = (workdir / "resources/sources.lock.json").absolute()
    assert f"python -m pipeline.data.sources.lock forget --lock-file {lock} {local}" in log
    forget_in(workdir, str(local))
    run_snakemake(workdir, "--cores", "1", str(fetched.relative_to(workdir)))
    assert fetched.read_bytes() == local.read_bytes()


@pytest.mark.slow
def test_a_zip_replaced_at_its_path_is_refused_until_accepted(project):
    workdir = project["workdir"]
    archive = (workdir / "data" / "set.zip").resolve()
    with zipfile.ZipFile(archive, "w") as bundle:  # a new release: one more image
        for name in ("x.png", "y.png", "z.png"):
            buffer = io_png(36)
            bundle.writestr(f"set/{name}", buffer)
    jobs = dry_run(workdir)
    assert jobs.get("download") == 1 and jobs.get("catalog") == 1, jobs
    manifest = "results/zipped/manifest.parquet"
    log = workdir / "logs/download/zipped-source.log"
    for attempt in range(2):  # the refusal is repeated until the change is accepted
        log.unlink(missing_ok=True)
        refused = run_snakemake(workdir, "--cores", "1", manifest, check=False)
        assert refused.returncode != 0, attempt
        said = log.read_text()
        assert f"{archive}: this local file (datasets.zipped.source.path) is not the one" in said
    forget_in(workdir, str(archive))
    run_snakemake(workdir, "--cores", "1", manifest)
    assert sorted(pd.read_parquet(workdir / manifest)["image_id"]) == ["x", "y", "z"]
    lock = json.loads((workdir / "resources/sources.lock.json").read_text())["files"]
    assert lock[str(archive)]["bytes"] == archive.stat().st_size


def io_png(size: int) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(smooth_image(np.random.default_rng(size), size, size)).save(buffer, "PNG")
    return buffer.getvalue()
