"""DIC's published number, checked: PSNR / SSIM of the OpenMMLab checkpoint on CelebA-HQ x8.

OpenMMLab publishes 25.2319 dB / 0.7422 for ``dic_x8c48b6_g4_150k_CelebAHQ``
(mmediting ``configs/restorers/dic``, model zoo README). Its test protocol
(mmediting 0.x ``dic_x8c48b6_g4_150k_CelebAHQ.py``, ``DIC.forward_test``,
``BasicRestorer.evaluate``), reproduced here:

1. Each ground-truth image is read as RGB and resized to 128 x 128 with
   Pillow's bicubic filter (mmcv ``Resize``, backend ``pillow``).
2. The input is that 128 px image resized to 16 x 16 with Pillow's bicubic
   filter (``Resize`` with scale 1/8).
3. Both are scaled to [0, 1] minus the RGB mean (129.795, 108.12, 96.39) / 255;
   the network's last step's output gets the mean back.
4. Output and ground truth are clamped to [0, 1], scaled to 255 and rounded
   (``tensor2img``); PSNR and SSIM (Wang et al.'s 11x11 Gaussian window,
   sigma 1.5, per RGB channel, averaged) on the RGB channels after cropping
   8 px from every border, per image, then averaged over the images
   (``pipeline.measure.quality``, the same definitions in float64).

The test images: OpenMMLab's config reads ``data/celeba-hq/val/`` and its
README does not list the files; mmagic's data preparation page describes
CelebA-HQ at 256 px (``test_256``) made with the progressive-GAN recipe. Pass
that folder (or any CelebA-HQ copy; the JSON records the image sizes found,
and a 1024 px original resized straight to 128 px is not the published
protocol); ``--list`` restricts it to the names in a text file, ``--limit`` to
the first N in name order.

    python benchmarks/dic_celebahq.py --images data/CelebA-HQ/test_256 \\
        --weights resources/weights/mmedit_dic_x8_celebahq.pth

(the weights stage puts the checkpoint there once a config enables method
``dic``). Writes ``benchmarks/results/dic_celebahq.json``: the published and
measured means, their differences, the image count and sizes, the
checkpoint's sha256, device, precision (fp32, TF32 off) and machine facts.
Runs only where the checkpoint and a CelebA-HQ copy are present.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import device_name, run_facts  # noqa: E402

from pipeline.io import write_json  # noqa: E402
from pipeline.measure.quality import psnr, ssim  # noqa: E402
from pipeline.resize import KERNELS  # noqa: E402

PUBLISHED = {"psnr": 25.2319, "ssim": 0.7422}
HR, SCALE, CROP = 128, 8, 8
SUFFIXES = {".png", ".jpg", ".jpeg"}


def list_images(folder: Path, names: Path | None, limit: int | None) -> list[Path]:
    """The folder's images in name order, restricted to ``names`` (one per line) and ``limit``."""
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    if names is not None:
        wanted = {line.strip() for line in names.read_text().splitlines() if line.strip()}
        found = [p for p in found if p.name in wanted or p.stem in wanted]
    if not found:
        raise SystemExit(f"{folder}: no images (.png, .jpg) to test")
    return found[:limit] if limit else found


def pair(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(ground truth 128 px, input 16 px, original size) as OpenMMLab's test pipeline makes them."""
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    gt = KERNELS["pil-bicubic"](rgb, HR)
    return gt, KERNELS["pil-bicubic"](gt, HR // SCALE), (rgb.shape[1], rgb.shape[0])


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def evaluate(
    paths: list[Path], weights: Path, device: str, batch_size: int
) -> tuple[list[dict], Counter]:
    """Per-image PSNR / SSIM of the checkpoint's outputs, and the original sizes seen."""
    import torch

    from pipeline.upscale import dic
    from pipeline.upscale.torch_runtime import precision, round_to_uint8, to_tensor

    net = dic.load_dic(weights).to(device)
    forward = dic.make_forward(net, device)
    rows, sizes = [], Counter()
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        made = [pair(path) for path in chunk]
        sizes.update(f"{w}x{h}" for _, _, (w, h) in made)
        lr = np.stack([lr for _, lr, _ in made])
        with torch.inference_mode(), precision(device):
            out = round_to_uint8(forward(to_tensor(lr, device)).cpu())
        for path, (gt, _, _), sr in zip(chunk, made, out, strict=True):
            rows.append(
                {
                    "image": path.name,
                    "psnr": psnr(sr, gt, crop_border=CROP, y_channel=False),
                    "ssim": ssim(sr, gt, crop_border=CROP, y_channel=False),
                }
            )
    return rows, sizes


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, required=True, help="CelebA-HQ test images")
    parser.add_argument("--weights", type=Path, required=True, help="the DIC checkpoint")
    parser.add_argument("--list", type=Path, default=None, help="file names to use, one a line")
    parser.add_argument("--limit", type=int, default=None, help="the first N images only")
    parser.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda if any)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "dic_celebahq.json"
    )
    args = parser.parse_args(argv)

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    load_before = os.getloadavg()
    paths = list_images(args.images, args.list, args.limit)
    rows, sizes = evaluate(paths, args.weights, device, args.batch_size)
    measured = {
        "psnr": float(np.mean([row["psnr"] for row in rows])),
        "ssim": float(np.mean([row["ssim"] for row in rows])),
    }
    report = {
        "checkpoint": {"path": str(args.weights), "sha256": sha256(args.weights)},
        "images": {"folder": str(args.images), "count": len(rows), "sizes": dict(sizes)},
        "protocol": (
            "Pillow bicubic to 128 px (ground truth), Pillow bicubic to 16 px (input); "
            "RGB PSNR/SSIM after rounding to 8 bits, 8 px border crop, mean over images"
        ),
        "published": PUBLISHED,
        "measured": measured,
        "difference": {key: measured[key] - PUBLISHED[key] for key in PUBLISHED},
        "device": device,
        "device_name": device_name(device),
        "precision": "fp32 (tf32 and bf16 off)",
        **run_facts(load_before),
        "per_image": rows,
    }
    write_json(args.out, report)
    print(
        f"{len(rows)} images: PSNR {measured['psnr']:.4f} dB (published {PUBLISHED['psnr']}), "
        f"SSIM {measured['ssim']:.4f} (published {PUBLISHED['ssim']}); wrote {args.out}"
    )
    return report


if __name__ == "__main__":
    main()
