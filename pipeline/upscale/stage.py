"""The upscaling stage: every LR input of a shard through one method, for each of its seeds."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.devices import job_device
from pipeline.io import atomic_dir, load_array, save_animation, save_png, write_parquet
from pipeline.upscale import build_method, skips_without_cuda
from pipeline.vocabulary import SKIPPED_NO_CUDA

log = logging.getLogger(__name__)


def upscale(
    lr_dir: Path,
    hr: int | str,
    method: Mapping[str, Any],
    out_dir: Path,
    *,
    weights: Any = None,
    without_cuda: str | None = None,
    device: str | None = None,
    gpus: int = 0,
    gpu_lock_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Upscale every LR input of a shard to ``hr`` px with one method, for each of its seeds.

    ``method`` is the method's config block as it is (``methods.<name>``, its
    ``seeds`` and ``batch_size`` included); ``weights`` its checkpoint files by
    weight slot (the rule's named inputs, see :func:`pipeline.upscale.build_method`).
    ``device``: a torch device, else one is claimed for the job (a GPU of its
    own when ``gpus`` > 0 and one is visible, see
    :func:`pipeline.devices.job_device`).

    Writes ``<image_id>_s<seed>.png`` and ``facts.parquet`` (per image and seed:
    seconds, device, batch size) into ``out_dir``. A GPU-only architecture on a
    CPU device with ``without_cuda`` ``skip`` upscales nothing: ``facts.parquet``
    gives every (image, seed) the status ``skipped_no_cuda`` and the reason,
    and the measure stage carries them into the tables.
    """
    if device is None:
        with job_device(int(gpus) > 0, gpu_lock_dir) as claimed:
            return upscale(
                lr_dir, hr, method, out_dir, weights=weights, without_cuda=without_cuda,
                device=claimed,
            )  # fmt: skip
    hr_size = int(hr)
    sources = sorted(Path(lr_dir).glob("*.png"))
    # Batches run over (image, seed) pairs, so a stochastic method searches
    # several seeds of one image at once.
    pairs = [(path, int(seed)) for seed in method["seeds"] for path in sources]
    if skips_without_cuda(method, without_cuda) and not str(device).startswith("cuda"):
        return _skip_without_cuda(pairs, method, out_dir, device)
    batch_size = int(method["batch_size"])
    model = build_method(method, device, weights)
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
    save_animation([image for _, image in frames], target)
    return target.name
