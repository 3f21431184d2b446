"""What the reliability guarantees of issue 16 cost: fingerprints of local sources, and
face detection on a huge photo with and without the bounded copy.

- **Fingerprints**: ``pipeline.data.sources.fingerprint.local_fingerprint`` of a
  folder of 30,000 small files (flat, as CelebA-HQ's ``CelebA-HQ-img/``, and in
  30 subfolders), computed at every DAG build of the download rule. Timed three
  times each (the first after the files were written, so from the page cache).
- **Detection**: ``detect_face`` (HOG, upsample 1: the defaults of
  ``prepare.detector``) on an 8000 x 8000 photo, ``../shared/data/ffhq/
  ffhq_00001.png`` enlarged (bicubic), with ``max_size`` 0 (the full image, as
  before) and 2048 (the default). Each runs in its own process: wall seconds of
  decoding and of detection, and the process's peak resident memory; and how
  far the bounded run's box, landmarks and FFHQ square are from the full one's.

Run::

    .venv/bin/python benchmarks/reliability_costs.py [--files 30000] [--side 8000]

Writes ``benchmarks/results/reliability_costs.json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import cpu_name  # noqa: E402

from pipeline.io import write_json  # noqa: E402

PHOTO = REPO.parent / "shared" / "data" / "ffhq" / "ffhq_00001.png"

# Run in a child process per setting, so that each peak memory is its own.
DETECT = """
import json, resource, sys, time
import numpy as np
from pipeline.io import load_rgb
from pipeline.prepare.detect import detect_face
began = time.perf_counter()
image = load_rgb(sys.argv[1], 100_000_000)
decoded = time.perf_counter()
result = detect_face(image, upsample=1, max_size=int(sys.argv[2]))
done = time.perf_counter()
print(json.dumps({
    "decode_s": decoded - began, "detect_s": done - decoded,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "status": result.status, "box": result.box,
    "landmarks": None if result.landmarks is None else result.landmarks.tolist(),
    "quad": None if result.quad is None else result.quad.tolist(),
}))
"""


def fingerprints(count: int) -> dict:
    from pipeline.data.sources.fingerprint import local_fingerprint

    out = {}
    with tempfile.TemporaryDirectory() as scratch:
        for layout, folders in (("flat", 1), ("30 subfolders", 30)):
            root = Path(scratch) / layout.replace(" ", "_")
            for index in range(count):
                folder = root / (f"d{index % folders:02d}" if folders > 1 else "")
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{index:05d}.jpg").write_bytes(os.urandom(200))
            times = []
            for _ in range(3):
                began = time.perf_counter()
                local_fingerprint(root, Path(scratch) / "cache.json")
                times.append(time.perf_counter() - began)
            out[layout] = {"files": count, "seconds": times}
    return out


def detection(side: int) -> dict:
    import numpy as np
    from PIL import Image

    with tempfile.TemporaryDirectory() as scratch:
        photo = Path(scratch) / f"photo{side}.png"
        with Image.open(PHOTO) as opened:
            opened.convert("RGB").resize((side, side), Image.Resampling.BICUBIC).save(
                photo, compress_level=1
            )
        runs = {}
        for max_size in (0, 2048):
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            done = subprocess.run(
                [sys.executable, "-c", DETECT, str(photo), str(max_size)],
                capture_output=True, text=True, env=env, check=True,
            )  # fmt: skip
            runs[f"max_size={max_size}"] = json.loads(done.stdout.strip().splitlines()[-1])
    full, bounded = runs["max_size=0"], runs["max_size=2048"]
    if full["status"] == bounded["status"] == "ok":
        width = full["box"][2] - full["box"][0]
        apart = np.hypot(*(np.array(bounded["landmarks"]) - np.array(full["landmarks"])).T)
        quad_full = np.array(full["quad"])
        corners = np.hypot(*(np.array(bounded["quad"]) - quad_full).T)
        runs["agreement"] = {
            "face_box_px": width,
            "box_max_px": float(np.abs(np.subtract(bounded["box"], full["box"])).max()),
            "landmarks_mean_px": float(apart.mean()),
            "landmarks_max_px": float(apart.max()),
            "quad_corner_max_px": float(corners.max()),
            "quad_side_px": float(np.hypot(*(quad_full[0] - quad_full[3]))),
        }
    for run in (full, bounded):
        run.pop("landmarks"), run.pop("quad")
    return {"side": side, "photo": str(PHOTO.relative_to(REPO.parent)), **runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=30_000)
    parser.add_argument("--side", type=int, default=8000)
    args = parser.parse_args()
    load = os.getloadavg()
    result = {
        "fingerprints": fingerprints(args.files),
        "detection": detection(args.side) if PHOTO.is_file() else "no ../shared photo",
        "machine": {"cpu": cpu_name(), "cpu_count": os.cpu_count()},
        "load_average_1min": {"before": load[0], "after": os.getloadavg()[0]},
    }
    out = REPO / "benchmarks" / "results" / "reliability_costs.json"
    write_json(out, result)
    print(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
