"""Registry entries of the CNN super-resolution methods: ``esrgan``, ``srresnet``, ``srgan``.

Kept apart from the networks so that importing the registry does not import
torch: the networks load only when a method is built.

Options (besides the common ``arch``, ``seeds``, ``enabled``, ``batch_size``):

- ``weights``: name of a checkpoint in the config's ``weights`` section; the
  weights stage fetches it and the build receives its path as ``weights_path``.
- ``scale``: the network's own factor; must match the checkpoint (checked at
  load). esrgan: 4. srresnet/srgan: 2, 4 or 8 (variants ``msrresnet``, ``mmedit``: 4).
- ``resample_kernel``: kernel that brings the network's ``scale x lr`` output
  to the task's ``hr`` size when they differ (``pipeline.resize.KERNELS``;
  default ``pil-bicubic``); reported per image as ``resampled_with``.
- ``tf32``, ``bf16``: CUDA precision (default off, i.e. true fp32).
- ``channels_last``: run the network in the channels-last memory layout
  (default off); a speed option of cuDNN's NHWC kernels, whose outputs differ
  from the default layout's by float rounding (``benchmarks/gpu_suite.py``
  measures it).
- ``tile``: process inputs larger than ``tile`` pixels in overlapping tiles
  (0 = off, the default; face crops are small).
- srresnet/srgan only: ``variant`` (``paper``, ``msrresnet`` (BasicSR) or
  ``mmedit`` (OpenMMLab)), ``output_range`` (``[-1, 1]`` or ``[0, 1]``;
  default: the variant's own, [-1, 1] for paper, [0, 1] for the others),
  ``input_norm`` (``unit`` or ``imagenet``). See ``pipeline.upscale.srresnet``.
- srresnet/srgan only: ``trained`` instead of ``weights``: a model the train
  stage makes (``models.<name>``, see ``pipeline.train``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.resize import KERNELS
from pipeline.upscale.arch import ArchSpec, Upscaler


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_tile(value: Any) -> bool:
    # Tiles smaller than the overlap would be mostly padding.
    return _is_int(value) and (value == 0 or value >= 16)


def _is_range(value: Any) -> bool:
    return value is None or (isinstance(value, list | tuple) and list(value) in ([-1, 1], [0, 1]))


COMMON = {
    "scale": _is_int,
    "resample_kernel": lambda value: value in KERNELS,
    "tf32": lambda value: isinstance(value, bool),
    "bf16": lambda value: isinstance(value, bool),
    "channels_last": lambda value: isinstance(value, bool),
    "tile": _is_tile,
}
COMMON_DEFAULTS = {
    "scale": 4,
    "resample_kernel": "pil-bicubic",
    "tf32": False,
    "bf16": False,
    "channels_last": False,
    "tile": 0,
}


def build_esrgan(options: Mapping[str, Any], device: str) -> Upscaler:
    from pipeline.upscale import rrdbnet

    return rrdbnet.build(options, device)


def build_srresnet(options: Mapping[str, Any], device: str) -> Upscaler:
    from pipeline.upscale import srresnet

    return srresnet.build(options, device)


ESRGAN = ArchSpec(
    name="esrgan",
    build=build_esrgan,
    options={**COMMON, "scale": lambda value: _is_int(value) and value == 4},
    defaults=COMMON_DEFAULTS,
    uses_gpu=True,
    stochastic=False,
    weight_slots={"weights": "weights_path"},
)

SRRESNET_OPTIONS = {
    **COMMON,
    "scale": lambda value: _is_int(value) and value in (2, 4, 8),
    "variant": lambda value: value in ("paper", "msrresnet", "mmedit"),
    "output_range": _is_range,
    "input_norm": lambda value: value in ("unit", "imagenet"),
}
SRRESNET_DEFAULTS = {
    **COMMON_DEFAULTS,
    "variant": "paper",
    "output_range": None,
    "input_norm": "unit",
}

# One generator, two names: ``srgan`` is the adversarially trained checkpoint
# of the same network, kept apart so that reports name the training.
SRRESNET, SRGAN = (
    ArchSpec(
        name=name,
        build=build_srresnet,
        options=SRRESNET_OPTIONS,
        defaults=SRRESNET_DEFAULTS,
        uses_gpu=True,
        stochastic=False,
        weight_slots={"weights": "weights_path"},
        trainable=True,
    )
    for name in ("srresnet", "srgan")
)

SPECS = (ESRGAN, SRRESNET, SRGAN)
