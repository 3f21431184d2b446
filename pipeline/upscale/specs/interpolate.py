"""Classical interpolation baselines (bicubic and friends), any scale, CPU."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from pipeline.upscale.arch import ArchSpec, UpscaleBatch, Upscaler

FILTERS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
}


def build(options: Mapping[str, Any], device: str) -> Upscaler:
    resample = FILTERS[options["filter"]]

    def upscale(batch: np.ndarray, size: int, seeds: Sequence[int]) -> UpscaleBatch:
        images = np.stack(
            [np.asarray(Image.fromarray(image).resize((size, size), resample)) for image in batch]
        ).astype(np.uint8)
        return UpscaleBatch(images, [{} for _ in batch])

    return upscale


SPECS = (
    ArchSpec(
        name="interpolate",
        build=build,
        options={"filter": lambda value: value in FILTERS},
        defaults={"filter": "bicubic"},
    ),
)
