"""Stage functions: files in, files out. Each Snakemake rule calls one of these.

They take plain paths and config dicts so that they can be run and tested
without Snakemake. Every output is written atomically.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline import align as face_align
from pipeline import metrics as quality
from pipeline.aggregate import summarize as summarize_frame
from pipeline.aggregate import to_markdown
from pipeline.datasets import catalog_dataset
from pipeline.io import (
    atomic_dir,
    load_array,
    load_rgb,
    save_png,
    write_csv,
    write_parquet,
    write_text,
)
from pipeline.resize import downscale as downscale_image
from pipeline.shards import select_shard
from pipeline.upscale import build_method

log = logging.getLogger(__name__)

METRIC_COLUMNS = ("psnr_rgb", "psnr_y", "ssim_y", "lr_psnr")


def catalog(source_record: Path, dataset: Mapping[str, Any], out: Path) -> pd.DataFrame:
    """Catalog the fetched source of one data set into ``manifest.parquet``."""
    info = json.loads(Path(source_record).read_text())
    manifest = catalog_dataset(dataset["kind"], Path(info["root"]), dataset)
    write_parquet(out, manifest)
    return manifest


def _detect_one(task: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    image_id, path, options = task
    try:
        image = load_rgb(path)
    except ValueError as exc:
        return {"image_id": image_id, "status": "error", "reason": str(exc)}
    result = face_align.detect_face(image, **options)
    return {"image_id": image_id, **result.to_record()}


def detect_faces(
    manifest_path: Path,
    shard: str,
    shard_size: int,
    detector: Mapping[str, Any],
    multi_face: str,
    no_face: str,
    out: Path,
    threads: int = 1,
) -> pd.DataFrame:
    """Detect the face and its landmarks in each image of a shard; write ``faces`` rows.

    Images the catalog marked unusable keep their status and reason; images
    without a face are centre-cropped (``no_face: center_crop``, flagged with
    status ``fallback``) or left out (``skip``, status ``no_face``).
    """
    rows = select_shard(pd.read_parquet(manifest_path), shard, shard_size)
    options = {
        "detector": detector["kind"],
        "upsample": detector["upsample"],
        "pad": detector["pad"],
        "multi_face": multi_face,
        "fallback": "center_crop" if no_face == "center_crop" else "none",
    }
    usable = rows[rows["status"] == "ok"]
    tasks = [(row.image_id, row.path, options) for row in usable.itertuples()]
    records = [
        {"image_id": row.image_id, "status": "error", "reason": row.reason}
        for row in rows[rows["status"] != "ok"].itertuples()
    ]
    progress = {
        "desc": f"detect shard {shard}",
        "unit": "img",
        "total": len(tasks),
        "mininterval": 10,
    }
    if threads > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=threads) as pool:
            records += list(tqdm(pool.map(_detect_one, tasks, chunksize=4), **progress))
    else:
        records += [_detect_one(task) for task in tqdm(tasks, **progress)]
    faces = pd.DataFrame.from_records(records)
    faces = rows[["image_id", "path"]].merge(faces, on="image_id", how="left")
    counts = faces["status"].value_counts().to_dict()
    log.info("shard %s: %d images, face status counts %s", shard, len(faces), counts)
    write_parquet(out, faces)
    return faces


def align(faces_path: Path, size: int, out_dir: Path) -> int:
    """Warp each image of a shard with its alignment quad to ``size`` x ``size`` PNGs."""
    faces = pd.read_parquet(faces_path)
    todo = faces[faces["status"].isin(["ok", "fallback"])]
    with atomic_dir(out_dir) as staging:
        for row in tqdm(todo.itertuples(), total=len(todo), desc=f"align {size}", mininterval=10):
            quad = np.asarray(row.quad, dtype=np.float64).reshape(4, 2)
            aligned = face_align.align_face(load_rgb(row.path), quad, size)
            save_png(staging / f"{row.image_id}.png", aligned)
    return len(todo)


def downscale(hr_dir: Path, lr_size: int, kernel: str, out_dir: Path) -> int:
    """Make the low-resolution inputs of a shard with a declared kernel."""
    sources = sorted(Path(hr_dir).glob("*.png"))
    with atomic_dir(out_dir) as staging:
        for path in tqdm(sources, desc=f"downscale {lr_size} {kernel}", mininterval=10):
            save_png(staging / path.name, downscale_image(load_array(path), lr_size, kernel))
    return len(sources)


def upscale(
    lr_dir: Path,
    hr_size: int,
    method: Mapping[str, Any],
    out_dir: Path,
    device: str = "cpu",
    weight_files: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Upscale every LR input of a shard with one method, for each of its seeds.

    Writes ``<image_id>_s<seed>.png`` and ``facts.parquet`` (per image and seed:
    seconds, device, batch size) into ``out_dir``.
    """
    sources = sorted(Path(lr_dir).glob("*.png"))
    batch_size = int(method.get("batch_size", 16))
    model = build_method(method, device, weight_files)
    # Batches run over (image, seed) pairs, so a stochastic method searches
    # several seeds of one image at once.
    pairs = [(path, int(seed)) for seed in method.get("seeds", [0]) for path in sources]
    facts = []
    with atomic_dir(out_dir) as staging:
        for start in tqdm(range(0, len(pairs), batch_size), desc="upscale", mininterval=10):
            chunk = pairs[start : start + batch_size]
            batch = np.stack([load_array(path) for path, _ in chunk])
            began = time.perf_counter()
            result = model(batch, hr_size, [seed for _, seed in chunk])
            seconds = (time.perf_counter() - began) / len(chunk)
            for (path, seed), output, known in zip(chunk, result.images, result.facts, strict=True):
                save_png(staging / f"{path.stem}_s{seed}.png", output)
                facts.append(
                    {
                        "image_id": path.stem,
                        "seed": seed,
                        "seconds": seconds,
                        "device": device,
                        "batch": len(chunk),
                        **known,
                    }
                )
        base = ["image_id", "seed", "seconds", "device", "batch"]
        frame = pd.DataFrame(facts)
        frame = frame if len(frame) else pd.DataFrame(columns=base)
        write_parquet(staging / "facts.parquet", frame)
    return frame


def _status_of(face_status: str, reason: str) -> tuple[str, str]:
    if face_status == "ok":
        return "ok", ""
    if face_status == "fallback":
        return "no_face", "no face detected (centre crop kept for galleries)"
    if face_status == "no_face":
        return "no_face", "no face detected"
    return "error", reason or "unusable source image"


def measure(
    faces_path: Path,
    hr_dir: Path,
    lr_dir: Path,
    sr_dir: Path,
    keys: Mapping[str, Any],
    seeds: Sequence[int],
    kernel: str,
    crop_border: int,
    out: Path,
) -> pd.DataFrame:
    """Score each upscaled image of a shard against its ground truth.

    One row per (image, seed), for every image of the shard: images that could
    not be scored keep a status and a reason and NaN metrics. Conventions:
    8-bit outputs, PSNR/SSIM in float64 after cropping ``crop_border`` pixels
    (BasicSR's), Y is BT.601 limited range; ``lr_psnr`` compares the output,
    downscaled with the kernel that made the input, with the input (no crop).
    """
    faces = pd.read_parquet(faces_path)
    facts_path = Path(sr_dir) / "facts.parquet"
    facts = pd.read_parquet(facts_path) if facts_path.exists() else pd.DataFrame()
    seconds = {(r.image_id, r.seed): (r.seconds, r.device) for r in facts.itertuples()}
    lr_size = int(keys["lr_size"])
    rows = []
    for face in tqdm(faces.itertuples(), total=len(faces), desc="measure", mininterval=10):
        status, reason = _status_of(
            face.status, face.reason if isinstance(face.reason, str) else ""
        )
        hr_path = Path(hr_dir) / f"{face.image_id}.png"
        lr_path = Path(lr_dir) / f"{face.image_id}.png"
        for seed in seeds:
            sr_path = Path(sr_dir) / f"{face.image_id}_s{seed}.png"
            row: dict[str, Any] = {
                **keys, "image_id": face.image_id, "seed": int(seed), "kernel": kernel,
                "status": status, "reason": reason, "crop_border": crop_border,
                "lr_path": str(lr_path), "sr_path": str(sr_path), "hr_path": str(hr_path),
                **dict.fromkeys(METRIC_COLUMNS, np.nan),
            }  # fmt: skip
            row["seconds"], row["device"] = seconds.get((face.image_id, int(seed)), (np.nan, None))
            if face.status in ("ok", "fallback"):
                if not sr_path.exists():
                    row.update(status="missing_output", reason=f"{sr_path} was not produced")
                else:
                    row.update(_score(load_array(sr_path), load_array(hr_path), load_array(lr_path),
                                      lr_size, kernel, crop_border))  # fmt: skip
            rows.append(row)
    frame = pd.DataFrame(rows)
    write_parquet(out, frame)
    return frame


def _score(
    sr: np.ndarray, hr: np.ndarray, lr: np.ndarray, lr_size: int, kernel: str, crop_border: int
) -> dict[str, float]:
    return {
        "psnr_rgb": quality.psnr(sr, hr, crop_border=crop_border, y_channel=False),
        "psnr_y": quality.psnr(sr, hr, crop_border=crop_border, y_channel=True),
        "ssim_y": quality.ssim(sr, hr, crop_border=crop_border, y_channel=True),
        "lr_psnr": quality.psnr(downscale_image(sr, lr_size, kernel), lr, crop_border=0),
    }


def merge_tables(parts: Sequence[Path], out: Path) -> pd.DataFrame:
    """Concatenate per-shard parquet tables (in the given order) into one."""
    frames = [pd.read_parquet(path) for path in parts]
    merged = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    write_parquet(out, merged)
    return merged


def summarize(
    per_image_path: Path, n_boot: int, seed: int, out_csv: Path, out_md: Path
) -> pd.DataFrame:
    """Aggregate per-image metrics: mean, median, bootstrap 95% CI, counts left out."""
    per_image = pd.read_parquet(per_image_path)
    metrics = [name for name in METRIC_COLUMNS if name in per_image.columns]
    summary = summarize_frame(per_image, metrics, n_boot=n_boot, seed=seed)
    write_csv(out_csv, summary)
    write_text(out_md, to_markdown(summary))
    return summary
