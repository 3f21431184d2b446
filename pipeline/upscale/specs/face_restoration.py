"""Registry entries of the face restoration models: ``gfpgan``, ``codeformer``, ``restoreformer``.

Networks trained on 512 px FFHQ-aligned faces: they restore a face at the
size they were trained at, they do not enlarge it. Each low-resolution input
is brought to 512 x 512 with ``input_kernel`` and the network's 512 px output
to the task's evaluation size with ``resample_kernel`` (both
``pipeline.resize.KERNELS``, default ``pil-bicubic``), recorded per image as
``input_size``, ``input_resized_with``, ``native_size`` and ``resampled_with``.
The checkpoints are loaded through ``spandrel`` (``spandrel_extra_arches``
for CodeFormer), see :mod:`pipeline.upscale.face_restoration`.

Options (besides the common ``arch``, ``seeds``, ``enabled``, ``batch_size``):

- ``weights``: name of a checkpoint in the config's ``weights`` section.
- ``input_kernel``, ``resample_kernel``: the two declared resizes above.
- ``tf32``, ``bf16``: CUDA precision (default off, i.e. true fp32); ``channels_last``
  and ``tile`` (``specs.cnn``) are not options here (untried on these networks:
  a method that sets one is refused as having an unknown option).
- codeformer only: ``w``, the fidelity weight in [0, 1] (CodeFormer's
  ``--fidelity_weight``; default 0.5): 0 keeps the codebook's face, 1 leans
  on the input's features.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.resize import KERNELS
from pipeline.upscale.arch import ArchSpec, Upscaler


def _is_weight(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


COMMON = {
    "input_kernel": lambda value: value in KERNELS,
    "resample_kernel": lambda value: value in KERNELS,
    "tf32": lambda value: isinstance(value, bool),
    "bf16": lambda value: isinstance(value, bool),
}
COMMON_DEFAULTS = {
    "input_kernel": "pil-bicubic",
    "resample_kernel": "pil-bicubic",
    "tf32": False,
    "bf16": False,
}


def build(options: Mapping[str, Any], device: str) -> Upscaler:
    from pipeline.upscale import face_restoration

    return face_restoration.build(options, device)


def _spec(name: str, options: Mapping[str, Any], defaults: Mapping[str, Any]) -> ArchSpec:
    return ArchSpec(
        name=name,
        build=lambda merged, device: build({**merged, "arch": name}, device),
        options={**COMMON, **options},
        defaults={**COMMON_DEFAULTS, **defaults},
        uses_gpu=True,
        stochastic=False,
        weight_slots={"weights": "weights_path"},
    )


SPECS = (
    _spec("gfpgan", {}, {}),
    _spec("codeformer", {"w": _is_weight}, {"w": 0.5}),
    _spec("restoreformer", {}, {}),
)
