"""Registry entries of the face super-resolution networks ``dic`` and ``glean`` (OpenMMLab).

Both take a fixed input size and make a fixed output size, read off the
network (not options): DIC 16 -> 128 px (x8, CelebA-HQ), GLEAN FFHQ x16
64 -> 1024 px. Torch-free; the networks load only when a method is built
(``pipeline.upscale.dic``, ``pipeline.upscale.glean``).

Options (besides the common ``arch``, ``seeds``, ``enabled``, ``batch_size``):

- ``weights``: name of a checkpoint in the config's ``weights`` section (an
  OpenMMLab model file, ``generator.`` keys under ``state_dict``).
- ``input_kernel``: kernel that brings each low-resolution image to the
  network's input size when it differs (``pipeline.resize.KERNELS``; default
  ``pil-bicubic``, the kernel OpenMMLab made both networks' training inputs
  with); recorded per image as ``input_size`` / ``input_resized_with``.
- ``resample_kernel``: kernel that brings the network's output to the task's
  ``hr`` size when it differs (default ``pil-bicubic``); recorded per image as
  ``native_size`` / ``resampled_with``.
- ``tf32``, ``bf16``: CUDA precision (default off, i.e. true fp32).

``channels_last`` and ``tile``, options of the CNN methods (``specs.cnn``), are
not options here: neither was tried on these networks, and a method that sets
one is refused as having an unknown option.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.upscale.arch import ArchSpec, Upscaler

# The same options as the 512 px restoration models: a fixed input size
# reached with `input_kernel`, the output brought to the task with `resample_kernel`.
from pipeline.upscale.specs.face_restoration import COMMON as OPTIONS
from pipeline.upscale.specs.face_restoration import COMMON_DEFAULTS as DEFAULTS


def build_dic(options: Mapping[str, Any], device: str) -> Upscaler:
    from pipeline.upscale import dic

    return dic.build(options, device)


def build_glean(options: Mapping[str, Any], device: str) -> Upscaler:
    from pipeline.upscale import glean

    return glean.build(options, device)


DIC = ArchSpec(
    name="dic",
    build=build_dic,
    options=OPTIONS,
    defaults=DEFAULTS,
    uses_gpu=True,
    weight_slots={"weights": "weights_path"},
)

GLEAN = ArchSpec(
    name="glean",
    build=build_glean,
    options=OPTIONS,
    defaults=DEFAULTS,
    uses_gpu=True,
    weight_slots={"weights": "weights_path"},
)

SPECS = (DIC, GLEAN)
