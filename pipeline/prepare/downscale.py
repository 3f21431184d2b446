"""The downscaling stage: a shard's low-resolution inputs, made with a declared kernel."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from pipeline.io import atomic_dir, load_array, save_png
from pipeline.resize import downscale as downscale_image


def downscale(hr_dir: Path, lr_size: int | str, kernel: str, out_dir: Path) -> int:
    """Make the low-resolution inputs of a shard with a declared kernel."""
    lr_size = int(lr_size)
    sources = sorted(Path(hr_dir).glob("*.png"))
    with atomic_dir(out_dir) as staging:
        for path in tqdm(sources, desc=f"downscale {lr_size} {kernel}", mininterval=10):
            save_png(staging / path.name, downscale_image(load_array(path), lr_size, kernel))
    return len(sources)
