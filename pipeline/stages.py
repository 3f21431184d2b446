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
from pipeline.status import (
    ALIGNED,
    ALIGNMENT_POLICIES,
    CENTRE_CROP,
    DETECT,
    PREALIGNED,
)
from pipeline.upscale import build_method

log = logging.getLogger(__name__)

# Computed for every scored image; LPIPS and identity only when enabled.
METRIC_COLUMNS = ("psnr_rgb", "psnr_y", "ssim_y", "lr_psnr", "lr_mse")
# Status of the outputs a GPU-only method did not make on a machine without CUDA.
SKIPPED_NO_CUDA = "skipped_no_cuda"
# Status of a search output whose lowest L2 never reached eps (PULSE returns nothing then).
EPS_NOT_REACHED = "eps_not_reached"
EPS_POLICIES = ("exclude", "score")


def catalog(
    source_record: Path,
    dataset: Mapping[str, Any],
    out: Path,
    metadata_record: Path | None = None,
) -> pd.DataFrame:
    """Catalog the fetched source of one data set into ``manifest.parquet``.

    Sets whose images are rendered (vector emoji) cache them in ``rendered/``
    beside the manifest; file names there hash their inputs, so the cache
    never goes stale.
    """
    root = Path(json.loads(Path(source_record).read_text())["root"])
    options = {**dataset, "render_dir": str(Path(out).parent / "rendered")}
    if metadata_record:
        options["metadata_root"] = json.loads(Path(metadata_record).read_text())["root"]
    manifest = catalog_dataset(dataset["kind"], root, options)
    write_parquet(out, manifest)
    return manifest


def _detect_one(
    task: tuple[str, str, dict[str, Any], face_align.Template | None],
) -> dict[str, Any]:
    image_id, path, options, template = task
    try:
        image = load_rgb(path)
    except ValueError as exc:
        return {"image_id": image_id, "status": "error", "reason": str(exc)}
    result = face_align.detect_face(image, **options)
    record = {"image_id": image_id, **result.to_record()}
    if template is None:
        record["alignment"] = {"ok": ALIGNED, "fallback": CENTRE_CROP}.get(result.status)
        return record
    # Prealigned: the detection is kept for the record; the template frames the image.
    try:
        quad = template.quad(*image.size)
    except ValueError as exc:
        return {**record, "status": "error", "reason": str(exc), "quad": None, "alignment": None}
    return {**record, "quad": [float(v) for v in quad.ravel()], "alignment": PREALIGNED}


def detect_faces(
    manifest_path: Path,
    shard: str,
    shard_size: int,
    detector: Mapping[str, Any],
    multi_face: str,
    no_face: str,
    out: Path,
    threads: int = 1,
    alignment: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Detect the face and its landmarks in each image of a shard; write ``faces`` rows.

    ``alignment`` is ``{"policy": "detect" | "prealigned", "template": ...}``
    (``pipeline.config.alignment_options``; None: detect). Each row gets an
    ``alignment`` (see :mod:`pipeline.status`) and the quad that frames it:

    - ``detect``: a detected face is aligned the FFHQ way (``aligned``); an image
      without one is centre-cropped (``no_face: center_crop``: status
      ``fallback``, ``centre_crop``) or left out (``skip``: status ``no_face``,
      no alignment).
    - ``prealigned``: every usable image is framed by the template's square
      (``prealigned``, whether or not a face was found: status ``ok`` or
      ``fallback``); ``no_face`` does not apply. An image of a size the
      template is not declared for gets status ``error``.

    Detection runs either way, and its results (detector, n_faces, box,
    landmarks, score) are kept. Images the catalog marked unusable keep their
    status and reason.
    """
    rows = select_shard(pd.read_parquet(manifest_path), shard, shard_size)
    policy = (alignment or {}).get("policy", DETECT)
    if policy not in ALIGNMENT_POLICIES:
        raise ValueError(f"alignment policy must be one of {ALIGNMENT_POLICIES}, got {policy!r}")
    template = None
    if policy == PREALIGNED:
        values = (alignment or {}).get("template")
        template = face_align.Template.from_dict(values) if values else face_align.CENTRE_SQUARE
    keep_without_face = no_face == "center_crop" or template is not None
    options = {
        "detector": detector["kind"],
        "upsample": detector["upsample"],
        "pad": detector["pad"],
        "min_size": detector["min_size"],
        "multi_face": multi_face,
        "fallback": "center_crop" if keep_without_face else "none",
    }
    usable = rows[rows["status"] == "ok"]
    tasks = [(row.image_id, row.path, options, template) for row in usable.itertuples()]
    # Unusable catalog rows keep their catalog status (error, skipped, duplicate).
    records = [
        {"image_id": row.image_id, "status": row.status, "reason": row.reason}
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
    if "alignment" not in faces.columns:  # a shard without a usable image
        faces["alignment"] = None
    faces = rows[["image_id", "path"]].merge(faces, on="image_id", how="left")
    counts = faces["status"].value_counts().to_dict()
    framed = faces["alignment"].value_counts().to_dict()
    log.info(
        "shard %s: %d images (%s), face status counts %s, alignments %s",
        shard, len(faces), policy, counts, framed,
    )  # fmt: skip
    write_parquet(out, faces)
    return faces


def _align_one(task: tuple[str, list[float], int, Path]) -> None:
    path, quad, size, target = task
    quad_array = np.asarray(quad, dtype=np.float64).reshape(4, 2)
    save_png(target, face_align.align_face(load_rgb(path), quad_array, size))


def align(faces_path: Path, size: int, out_dir: Path, threads: int = 1) -> int:
    """Warp each image of a shard with its alignment quad to ``size`` x ``size`` PNGs.

    With ``threads`` > 1 the images are aligned by that many processes; each
    output depends only on its own image, so the files are the same either way.
    """
    faces = pd.read_parquet(faces_path)
    todo = faces[faces["status"].isin(["ok", "fallback"])]
    progress = {"desc": f"align {size}", "unit": "img", "total": len(todo), "mininterval": 10}
    with atomic_dir(out_dir) as staging:
        tasks = [
            (row.path, row.quad, size, staging / f"{row.image_id}.png") for row in todo.itertuples()
        ]
        if threads > 1 and len(tasks) > 1:
            with ProcessPoolExecutor(max_workers=threads) as pool:
                list(tqdm(pool.map(_align_one, tasks, chunksize=4), **progress))
        else:
            for task in tqdm(tasks, **progress):
                _align_one(task)
    return len(todo)


def contact_sheet(
    faces_path: Path,
    aligned_dirs: Sequence[Path],
    size: int,
    out: Path,
    options: Mapping[str, Any],
    template: Mapping[str, Any] | None = None,
) -> int:
    """A contact sheet PNG of a data set's aligned faces (see pipeline.contact_sheet).

    ``template``: a prealigned data set's template (``Template.as_dict``), else None.
    """
    from pipeline.contact_sheet import contact_sheet as draw_sheet

    faces = pd.read_parquet(faces_path)
    known = face_align.Template.from_dict(template) if template else None
    shown = draw_sheet(faces, aligned_dirs, size, out, **options, template=known)
    log.info("contact sheet %s: %d of %d images", out, shown, len(faces))
    return shown


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
    skip_without_cuda: bool = False,
) -> pd.DataFrame:
    """Upscale every LR input of a shard with one method, for each of its seeds.

    Writes ``<image_id>_s<seed>.png`` and ``facts.parquet`` (per image and seed:
    seconds, device, batch size) into ``out_dir``. With ``skip_without_cuda``
    and a CPU ``device``, nothing is upscaled: ``facts.parquet`` gives every
    (image, seed) the status ``skipped_no_cuda`` and the reason, and the
    measure stage carries them into the tables.
    """
    sources = sorted(Path(lr_dir).glob("*.png"))
    # Batches run over (image, seed) pairs, so a stochastic method searches
    # several seeds of one image at once.
    pairs = [(path, int(seed)) for seed in method.get("seeds", [0]) for path in sources]
    if skip_without_cuda and not str(device).startswith("cuda"):
        return _skip_without_cuda(pairs, method, out_dir, device)
    batch_size = int(method.get("batch_size", 16))
    model = build_method(method, device, weight_files)
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
                known = dict(known)
                frames = known.pop("intermediates", None)
                if frames:  # saved search steps (PULSE's save_every) become an animation
                    known["animation"] = _save_steps(frames, staging / f"{path.stem}_s{seed}.gif")
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


def _skip_without_cuda(
    pairs: Sequence[tuple[Path, int]], method: Mapping[str, Any], out_dir: Path, device: str
) -> pd.DataFrame:
    reason = (
        f"{method['arch']} runs only on CUDA and this job found no CUDA device "
        "(set without_cuda: run to run it on the CPU anyway)"
    )
    log.warning("skipped %d outputs: %s", len(pairs), reason)
    frame = pd.DataFrame(
        {
            "image_id": [path.stem for path, _ in pairs],
            "seed": [seed for _, seed in pairs],
            "device": device,
            "status": SKIPPED_NO_CUDA,
            "reason": reason,
        }
    )
    with atomic_dir(out_dir) as staging:
        write_parquet(staging / "facts.parquet", frame)
    return frame


def _save_steps(frames: Sequence[tuple[int, np.ndarray]], target: Path) -> str:
    """Write (step, image) frames as an animated GIF beside the outputs; return its name."""
    from pipeline.upscale.pulse import save_animation

    save_animation([image for _, image in frames], target)
    return target.name


def _status_of(face_status: str, reason: str) -> tuple[str, str]:
    """A faces row's status as a metrics row's: every image with a ground truth is ``ok``
    (centre crops too; their ``alignment`` keeps them out of the face metrics)."""
    if face_status in ("ok", "fallback"):
        return "ok", ""
    if face_status == "no_face":
        return "no_face", "no face detected"
    return face_status, reason or "unusable source image"


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
    lpips: Mapping[str, Any] | None = None,
    identity: Mapping[str, Any] | None = None,
    device: str = "cpu",
    eps_not_reached: str = "exclude",
) -> pd.DataFrame:
    """Score each upscaled image of a shard against its ground truth.

    One row per (image, seed), for every image of the shard: images that could
    not be scored keep a status and a reason and NaN metrics. Each row carries
    its image's ``alignment`` (``aligned``, ``prealigned``, ``centre_crop``); a
    centre crop has no face, so the metrics that need one (identity) are not
    computed for it (NaN), while every metric against the ground truth is. The
    upscaling stage's per-image facts (time, device, convergence) are joined in.
    Conventions: 8-bit outputs; PSNR/SSIM in float64 after cropping
    ``crop_border`` pixels (BasicSR's), Y is BT.601 limited range;
    ``lr_psnr``/``lr_mse`` compare the output, downscaled with the kernel that
    made the input, with the input (no crop; MSE on [0, 1] values as SR3);
    ``lpips_<net>``: LPIPS v0.1 on RGB scaled to [-1, 1]; ``identity_distance``:
    distance of dlib face descriptors (< 0.6: same person).

    ``lpips``: ``{"net", "features_path", "linear_path", "batch_size"}`` or None;
    ``identity``: options of ``pipeline.identity.identity_distance`` or None.

    Searches that missed eps (facts ``converged`` false): with ``eps_not_reached``
    ``exclude`` (default) their row gets status ``eps_not_reached`` (still scored,
    for the report's failures page and galleries; the summary leaves it out and
    counts it, as every status other than ``ok``); ``score`` keeps them ``ok``.
    """
    if eps_not_reached not in EPS_POLICIES:
        raise ValueError(f"eps_not_reached must be one of {EPS_POLICIES}, got {eps_not_reached!r}")
    faces = pd.read_parquet(faces_path)
    facts = _read_facts(Path(sr_dir) / "facts.parquet")
    lr_size = int(keys["lr_size"])
    lpips_model = None
    if lpips:
        from pipeline.perceptual import load_lpips

        lpips_model = load_lpips(lpips["net"], lpips["features_path"], lpips["linear_path"], device)
    rows: list[dict[str, Any]] = []
    scored: list[tuple[int, np.ndarray, np.ndarray]] = []  # (row index, sr, hr) for LPIPS
    for face in tqdm(faces.itertuples(), total=len(faces), desc="measure", mininterval=10):
        status, reason = _status_of(
            face.status, face.reason if isinstance(face.reason, str) else ""
        )
        hr_path = Path(hr_dir) / f"{face.image_id}.png"
        lr_path = Path(lr_dir) / f"{face.image_id}.png"
        usable = face.status in ("ok", "fallback")
        alignment = getattr(face, "alignment", None)
        alignment = alignment if isinstance(alignment, str) else None
        # Identity compares faces (quality.face_metrics); a centre crop has none to compare.
        with_identity = bool(identity) and usable and alignment != CENTRE_CROP
        hr = load_array(hr_path) if usable else None
        lr = load_array(lr_path) if usable else None
        hr_face = _hr_face(hr, identity) if with_identity else None
        for seed in seeds:
            sr_path = Path(sr_dir) / f"{face.image_id}_s{seed}.png"
            row: dict[str, Any] = {
                **keys, "image_id": face.image_id, "seed": int(seed), "kernel": kernel,
                "status": status, "reason": reason, "alignment": alignment,
                "crop_border": crop_border,
                "lr_path": str(lr_path), "sr_path": str(sr_path), "hr_path": str(hr_path),
                **dict.fromkeys(METRIC_COLUMNS, np.nan),
                **({"identity_distance": np.nan} if identity else {}),
                **facts.get((face.image_id, int(seed)), {}),
            }  # fmt: skip
            if row["status"] == SKIPPED_NO_CUDA:
                pass  # the upscale stage's reason stands
            elif usable and not sr_path.exists():
                row.update(status="missing_output", reason=f"{sr_path} was not produced")
            elif usable:
                sr = load_array(sr_path)
                row.update(_score(sr, hr, lr, lr_size, kernel, crop_border))
                if with_identity:
                    from pipeline.identity import identity_distance

                    row.update(identity_distance(sr, hr, hr_face=hr_face, **identity))
                if lpips_model is not None:
                    scored.append((len(rows), sr, hr))
            if eps_not_reached == "exclude":
                _flag_missed_eps(row)
            rows.append(row)
            if lpips_model is not None and len(scored) >= lpips["batch_size"]:
                _add_lpips(rows, scored, lpips_model, lpips)
    if lpips_model is not None:
        _add_lpips(rows, scored, lpips_model, lpips)
    frame = pd.DataFrame(rows)
    write_parquet(out, frame)
    return frame


def _flag_missed_eps(row: dict[str, Any]) -> None:
    """Status ``eps_not_reached`` for a scored row whose search never reached eps.

    Only rows that are otherwise ``ok``: an image without a face keeps that status.
    Methods that report no ``converged`` fact are never flagged.
    """
    converged = row.get("converged")
    if row["status"] != "ok" or converged is None or pd.isna(converged) or bool(converged):
        return
    reason = "eps not reached"
    if "min_l2" in row and "eps" in row and not pd.isna(row["min_l2"]):
        reason += f" (lowest L2 {float(row['min_l2']):.4g} > eps {float(row['eps']):.4g})"
    row.update(status=EPS_NOT_REACHED, reason=reason)


def _read_facts(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (image, seed) facts of the upscaling stage, keyed for joining."""
    if not path.exists():
        return {}
    facts = pd.read_parquet(path)
    records = facts.drop(columns=["image_id", "seed"]).to_dict("records")
    keys = zip(facts["image_id"], facts["seed"].astype(int), strict=True)
    return {key: record for key, record in zip(keys, records, strict=True)}


def _hr_face(hr: np.ndarray, identity: Mapping[str, Any]) -> Any:
    # The ground truth's descriptor is shared by every seed of the image.
    from pipeline.identity import face_descriptor

    return face_descriptor(hr, **identity)


def _add_lpips(
    rows: list[dict[str, Any]],
    scored: list[tuple[int, np.ndarray, np.ndarray]],
    model: Any,
    lpips: Mapping[str, Any],
) -> None:
    """Compute LPIPS for the collected (row, sr, hr) triples in one batch, then clear them."""
    from pipeline.perceptual import lpips_distance

    if not scored:
        return
    distances = lpips_distance(
        model,
        np.stack([sr for _, sr, _ in scored]),
        np.stack([hr for _, _, hr in scored]),
        batch_size=lpips["batch_size"],
    )
    for (index, _, _), value in zip(scored, distances, strict=True):
        rows[index][f"lpips_{lpips['net']}"] = float(value)
    scored.clear()


def _score(
    sr: np.ndarray, hr: np.ndarray, lr: np.ndarray, lr_size: int, kernel: str, crop_border: int
) -> dict[str, float]:
    reduced = downscale_image(sr, lr_size, kernel)
    return {
        "psnr_rgb": quality.psnr(sr, hr, crop_border=crop_border, y_channel=False),
        "psnr_y": quality.psnr(sr, hr, crop_border=crop_border, y_channel=True),
        "ssim_y": quality.ssim(sr, hr, crop_border=crop_border, y_channel=True),
        "lr_psnr": quality.psnr(reduced, lr, crop_border=0),
        "lr_mse": quality.mse(reduced, lr),
    }


def merge_tables(parts: Sequence[Path], out: Path) -> pd.DataFrame:
    """Concatenate per-shard parquet tables (in the given order) into one."""
    frames = [pd.read_parquet(path) for path in parts]
    merged = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    write_parquet(out, merged)
    return merged


def summarize(
    per_image_path: Path,
    n_boot: int,
    seed: int,
    out_csv: Path,
    out_md: Path,
    manifests: Sequence[Path] = (),
) -> pd.DataFrame:
    """Aggregate per-image metrics: mean, median, bootstrap 95% CI, counts left out.

    Rows: every data set x task x kernel x method x metric, over all images
    (``category == "all"``) and over each category of the manifests (an image
    counts in every category it has). Seeds are pooled; ``seed_std`` is the
    mean over images of the spread across seeds (NaN for one seed). PSNR and
    SSIM names carry their crop (``psnr_y_crop8``), and ``convention`` says
    how every metric was computed. Centre crops count in every metric but
    those that need a face (``excluded_reasons``: ``centre_crop``), and
    ``alignment`` says which alignments each row's values come from.
    """
    per_image = pd.read_parquet(per_image_path)
    metrics = [name for name in quality.METRIC_CONVENTIONS if name in per_image.columns]
    groups = ["dataset", "task", "kernel", "method"]
    options = {"n_boot": n_boot, "seed": seed, "face_metrics": quality.face_metrics()}
    overall = summarize_frame(per_image, metrics, group_cols=groups, **options)
    overall.insert(len(groups), "category", "all")
    parts = [overall]
    categories = _categories(manifests)
    if len(categories):
        tagged = per_image.merge(categories, on=["dataset", "image_id"], how="inner")
        tagged = tagged.explode("category").dropna(subset=["category"])
        if len(tagged):
            parts.append(
                summarize_frame(tagged, metrics, group_cols=[*groups, "category"], **options)
            )
    summary = pd.concat(parts, ignore_index=True)
    summary = summary.merge(
        _seed_spread(per_image, metrics, groups), how="left", on=[*groups, "metric"]
    )
    crops = per_image.groupby("task")["crop_border"].first().to_dict()
    summary["convention"] = [str(quality.METRIC_CONVENTIONS[m]) for m in summary["metric"]]
    summary["metric"] = [
        f"{m}_crop{crops.get(t, 0)}" if m.startswith(("psnr_", "ssim_")) else m
        for m, t in zip(summary["metric"], summary["task"], strict=True)
    ]
    write_csv(out_csv, summary)
    overall = summary[summary["category"] == "all"]
    write_text(out_md, to_markdown(overall.drop(columns=["category", "seed_std", "convention"])))
    return summary


def _categories(manifests: Sequence[Path]) -> pd.DataFrame:
    """(dataset, image_id, category list) of every manifest; the data set is its folder's name."""
    frames = []
    for path in manifests:
        manifest = pd.read_parquet(path, columns=["image_id", "categories"])
        manifest["dataset"] = Path(path).parent.name
        frames.append(manifest.rename(columns={"categories": "category"}))
    if not frames:
        return pd.DataFrame(columns=["dataset", "image_id", "category"])
    return pd.concat(frames, ignore_index=True)


def _seed_spread(
    per_image: pd.DataFrame, metrics: Sequence[str], groups: list[str]
) -> pd.DataFrame:
    """Mean over images of the standard deviation across seeds, per group and metric.

    With one seed every per-image deviation is NaN, and so is the mean.
    """
    ok = per_image[per_image["status"] == "ok"]
    per_image_std = ok.groupby([*groups, "image_id"], dropna=False)[list(metrics)].std(ddof=1)
    spread = per_image_std.groupby(level=groups, dropna=False).mean().reset_index()
    return spread.melt(id_vars=groups, var_name="metric", value_name="seed_std")
