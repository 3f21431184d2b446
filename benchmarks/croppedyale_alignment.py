"""Cropped Extended Yale B: the prealigned template, and how many images each policy scores.

Three measurements on the real archive (``../shared/mirror/CroppedYale.zip`` by
default, cataloged with the repository's ``croppedyale`` kind):

1. **Template.** On the frontal-lit images (category ``lighting:frontal``),
   dlib's HOG (upsample 1, the default detector) and the 68 landmarks give the
   eye centres and the mouth centre (mean of points 48 and 54). The template is
   the largest square that fits (the image's full width), centred vertically on
   the median eye-mouth midpoint, rounded to whole pixels. Compared with
   ``pipeline.data.kinds.croppedyale.TEMPLATE``.
2. **Face box.** A seeded sample of usable images, cut with the template to
   128 px: where HOG (identity's detection: upsample 0, then 1) boxes the face,
   as fractions of the image (median), and how far dlib's face descriptor moves
   when that median box, or identity's FFHQ box (``ALIGNED_FACE_BOX``), replaces
   the detected one (the fallback identity uses when it finds no face).
3. **Scored images.** A seeded sample of ``--sample`` usable images (default 40,
   seed 0) runs through the pipeline's own stages (detect_faces, align at 128 px,
   downscale with pil-bicubic, bicubic upscaling, measure with identity, the
   summary's exclusion rules) under ``detect`` and under ``prealigned``, for the
   default tasks 16 -> 128 and 32 -> 128. Per policy and metric: images scored
   and left out (with reasons); the HOG detection rate; and "before": what the
   summary scored before centre crops counted (only images with a detected face,
   in every metric).

Run it on one core (about two minutes)::

    taskset -c 1 .venv/bin/python benchmarks/croppedyale_alignment.py \\
        [--archive ../shared/mirror/CroppedYale.zip] [--work /tmp/croppedyale]

Writes ``benchmarks/results/croppedyale_alignment.json`` and prints the numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import cpu_name  # noqa: E402

from pipeline.data.kinds import croppedyale  # noqa: E402
from pipeline.data.sources import unpack_archive  # noqa: E402
from pipeline.io import load_rgb, write_json, write_parquet  # noqa: E402
from pipeline.measure.aggregate import summarize  # noqa: E402
from pipeline.measure.catalogue import face_metrics  # noqa: E402
from pipeline.measure.identity import ALIGNED_FACE_BOX, LANDMARK_MODELS  # noqa: E402
from pipeline.measure.stage import measure  # noqa: E402
from pipeline.prepare import align as face_align  # noqa: E402
from pipeline.prepare import dlib_models  # noqa: E402
from pipeline.prepare.detect import detect_face, detect_faces  # noqa: E402
from pipeline.prepare.downscale import downscale  # noqa: E402
from pipeline.upscale.stage import upscale  # noqa: E402
from pipeline.vocabulary import ALIGNED, DETECT, PREALIGNED  # noqa: E402
from pipeline.workflow import dataset_alignment, identity_options, load_config  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "croppedyale_alignment.json"
DEFAULT_ARCHIVE = REPO.parent / "shared" / "mirror" / "CroppedYale.zip"
TASKS = ((16, 128), (32, 128))  # config.yaml's default tasks
BOX_SIZE = 128
METRICS = ("psnr_y", "ssim_y", "lr_psnr", "identity_distance")


def _catalog(archive: Path, work: Path) -> pd.DataFrame:
    root = work / "unpacked"
    if not root.is_dir():
        unpack_archive(archive, root)
    manifest = croppedyale.catalog(root, {})
    return manifest[manifest["status"] == "ok"].reset_index(drop=True)


def _stats(values: np.ndarray) -> dict[str, float]:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3)}


def measure_template(usable: pd.DataFrame) -> dict[str, Any]:
    frontal = usable[usable["categories"].map(lambda c: "lighting:frontal" in c)]
    eyes, mouths = [], []
    for path in frontal["path"]:
        result = detect_face(load_rgb(path), "hog", upsample=1, fallback="none")
        if result.status == "ok":
            eyes.append(face_align.eye_centres(result.landmarks))
            mouths.append((result.landmarks[48] + result.landmarks[54]) / 2)
    eyes_array, mouths_array = np.array(eyes), np.array(mouths)
    width, height = (int(v) for v in frontal[["width", "height"]].iloc[0])
    eye_y = np.median(eyes_array[:, :, 1])
    mouth_y = np.median(mouths_array[:, 1])
    midpoint = (eye_y + mouth_y) / 2
    # Pixel-index centre of a square starting at row `top` is top + (side - 1) / 2.
    top = int(np.clip(round(midpoint - (width - 1) / 2), 0, height - width))
    return {
        "frontal_images": len(frontal),
        "detected": len(eyes),
        "image_size": [width, height],
        "left_eye_x": _stats(eyes_array[:, 0, 0]),
        "left_eye_y": _stats(eyes_array[:, 0, 1]),
        "right_eye_x": _stats(eyes_array[:, 1, 0]),
        "right_eye_y": _stats(eyes_array[:, 1, 1]),
        "eye_distance": _stats(np.hypot(*(eyes_array[:, 1] - eyes_array[:, 0]).T)),
        "mouth_y": _stats(mouths_array[:, 1]),
        "eye_mouth_midpoint_y": float(midpoint),
        "derived": {"left": 0, "top": top, "side": width},
        "declared": croppedyale.TEMPLATE.as_dict(),
    }


def measure_face_box(usable: pd.DataFrame, n: int, seed: int) -> dict[str, Any]:
    import dlib

    template = croppedyale.TEMPLATE
    rng = np.random.default_rng(seed)
    picked = usable.iloc[np.sort(rng.choice(len(usable), size=min(n, len(usable)), replace=False))]
    detector = dlib_models.hog_detector()
    found: list[tuple[np.ndarray, Any]] = []
    for path in picked["path"]:
        image = load_rgb(path)
        crop = np.asarray(face_align.align_face(image, template.quad(*image.size), BOX_SIZE))
        for level in (0, 1):
            rects, _, _ = detector.run(crop, level, 0.0)
            if rects:
                found.append((crop, max(rects, key=lambda r: r.area())))
                break
    boxes = np.array(
        [(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for _, r in found], float
    ) / float(BOX_SIZE)
    median_box = np.median(boxes, axis=0)
    predictor = dlib_models.load_model(LANDMARK_MODELS[5])
    network = dlib_models.load_model(dlib_models.FACE_RECOGNITION)

    def descriptor(crop: np.ndarray, box: Any) -> np.ndarray:
        return np.asarray(network.compute_face_descriptor(crop, predictor(crop, box)))

    def rectangle(fractions: Any) -> Any:
        left, top, right, bottom = (round(v * BOX_SIZE) for v in fractions)
        return dlib.rectangle(left, top, right - 1, bottom - 1)

    shifts: dict[str, list[float]] = {"template_box": [], "ffhq_box": []}
    for crop, rect in found:
        reference = descriptor(crop, rect)
        for name, box in (("template_box", median_box), ("ffhq_box", ALIGNED_FACE_BOX)):
            shifts[name].append(float(np.linalg.norm(descriptor(crop, rectangle(box)) - reference)))
    return {
        "sample": len(picked),
        "detected_on_crops": len(found),
        "median_box": [round(float(v), 3) for v in median_box],
        "declared_box": list(template.face_box or ()),
        "descriptor_shift": {
            name: {"median": float(np.median(v)), "max": float(np.max(v))}
            for name, v in shifts.items()
        },
    }


def _config(policy: str) -> dict[str, Any]:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["datasets"] = {"croppedyale": {**config["datasets"]["croppedyale"], "alignment": policy}}
    return load_config(config)


def measure_policies(usable: pd.DataFrame, work: Path, n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    picked = usable.iloc[np.sort(rng.choice(len(usable), size=n, replace=False))]
    manifest = work / "sample" / "manifest.parquet"
    write_parquet(manifest, picked.reset_index(drop=True))
    out: dict[str, Any] = {"sample": n, "seed": seed, "image_ids": list(picked["image_id"])}
    for policy in (DETECT, PREALIGNED):
        config = _config(policy)
        folder = work / "sample" / policy
        faces_path = folder / "faces.parquet"
        began = time.process_time()
        faces = detect_faces(
            manifest, "0000", n, config["datasets"]["croppedyale"]["detector"],
            config["prepare"]["multi_face"], config["prepare"]["no_face"], faces_path,
            alignment=dataset_alignment(config, "croppedyale"),
        )  # fmt: skip
        detect_seconds = (time.process_time() - began) / n
        identity = identity_options(config, "croppedyale")
        face_align.align(faces_path, 128, folder / "aligned")
        rows = []
        for lr, hr in TASKS:
            lr_dir, sr_dir = folder / f"lr{lr}", folder / f"sr{lr}"
            downscale(folder / "aligned", lr, "pil-bicubic", lr_dir)
            method = {"arch": "interpolate", "filter": "bicubic", "seeds": [0], "batch_size": 16}
            upscale(lr_dir, hr, method, sr_dir, device="cpu")
            rows.append(
                measure(
                    faces_path, folder / "aligned", lr_dir, sr_dir, folder / f"metrics{lr}.parquet",
                    dataset="croppedyale", method="bicubic", kernel="pil-bicubic", lr=lr, hr=hr,
                    seeds=[0], crop_border=hr // lr, identity=identity, device="cpu",
                )
            )  # fmt: skip
        per_image = pd.concat(rows, ignore_index=True)
        summary = summarize(
            per_image, list(METRICS), group_cols=["task"], n_boot=200, face_metrics=face_metrics()
        )
        detected = faces["n_faces"].fillna(0) > 0
        out[policy] = {
            "hog_detected": int(detected.sum()),
            "hog_detection_rate": float(detected.mean()),
            "detect_cpu_seconds_per_image": round(detect_seconds, 4),
            "alignments": {str(k): int(v) for k, v in Counter(faces["alignment"]).items()},
            # Before centre crops counted, the summary scored detected faces only.
            "before_scored": int((faces["alignment"] == ALIGNED).sum()),
            "summary": [
                {
                    "task": row.task,
                    "metric": row.metric,
                    "n": int(row.n),
                    "excluded_reasons": row.excluded_reasons,
                    "alignment": row.alignment,
                    "mean": None if np.isnan(row.mean) else round(float(row.mean), 4),
                }
                for row in summary.itertuples()
            ],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    parser.add_argument("--work", type=Path, default=Path("/tmp/croppedyale_alignment"))
    parser.add_argument("--sample", type=int, default=40)
    parser.add_argument("--box-sample", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.archive.is_file():
        raise SystemExit(f"{args.archive}: no such archive (see ../shared/mirror/README.md)")
    began = time.perf_counter()
    usable = _catalog(args.archive, args.work)
    result = {
        "archive": str(args.archive),
        "usable_images": len(usable),
        "template": measure_template(usable),
        "face_box": measure_face_box(usable, args.box_sample, args.seed),
        "policies": measure_policies(usable, args.work, args.sample, args.seed),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "seconds": round(time.perf_counter() - began, 1),
    }
    write_json(RESULTS, result)
    template, box = result["template"], result["face_box"]
    print(f"template: {template['detected']} of {template['frontal_images']} frontal-lit found;")
    print(f"  derived {template['derived']}, declared top {template['declared']['top']}")
    for name in ("left_eye_x", "left_eye_y", "right_eye_x", "right_eye_y", "mouth_y"):
        print(f"  {name}: {template[name]}")
    print(
        f"face box: {box['detected_on_crops']} of {box['sample']} crops; median {box['median_box']}"
    )
    print(f"  descriptor shift: {box['descriptor_shift']}")
    policies = result["policies"]
    before = policies[DETECT]["before_scored"]
    print(f"before centre crops counted: {before} of {args.sample} scored, in every metric")
    for policy in (DETECT, PREALIGNED):
        facts = policies[policy]
        print(f"{policy}: HOG {facts['hog_detected']}/{args.sample}, {facts['alignments']}")
        for row in facts["summary"]:
            print(f"  {row['task']} {row['metric']}: n {row['n']} ({row['excluded_reasons']})")
    print(f"wrote {RESULTS} ({result['seconds']} s)")


if __name__ == "__main__":
    main()
