"""OpenMMLab (mmediting, now mmagic) model checkpoints: the generator among the training parts.

OpenMMLab saves the whole training model under ``state_dict`` (beside
``meta``, sometimes ``optimizer``): the network that upscales sits under a
``generator.`` prefix, next to parts that only training uses (a GAN's
``discriminator.``, the VGG of a perceptual loss, a model's fixed
normalisation layer or step counter). Each architecture names the parts it
may meet; they are dropped by name, and every other key is kept so that strict
loading names it. Used by ``srresnet`` (variant ``mmedit``), ``dic`` and ``glean``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.io import InputError

log = logging.getLogger(__name__)

GENERATOR = "generator."
# The training-only parts of OpenMMLab's GAN restorers (SRGAN, ESRGAN, GLEAN):
# the discriminator and the perceptual loss's VGG.
GAN_TRAINING_ONLY = ("discriminator.", "perceptual_loss.")


def is_openmmlab_model(state: Mapping[str, Any], training_only: Sequence[str]) -> bool:
    """Whether a state dict is an OpenMMLab model's (a ``generator.`` or training-only key)."""
    return any(key.startswith((GENERATOR, *training_only)) for key in state)


def generator_weights(
    state: Mapping[str, Any], path: str | Path, training_only: Sequence[str]
) -> dict[str, Any]:
    """The generator's weights of an OpenMMLab model's state dict, ``generator.`` removed.

    Keys that start with one of ``training_only`` (prefixes, or whole key
    names) are dropped; any other key is kept as it is, so that strict loading
    names it. A file without a single generator key raises ``InputError``
    naming what it holds.
    """
    generator: dict[str, Any] = {}
    dropped: dict[str, int] = {}
    for key, value in state.items():
        if key.startswith(GENERATOR):
            generator[key.removeprefix(GENERATOR)] = value
        elif training := next((p for p in training_only if key.startswith(p)), None):
            dropped[training] = dropped.get(training, 0) + 1
        else:
            generator[key] = value
    if not any(key.startswith(GENERATOR) for key in state):
        held = ", ".join(f"{count} {prefix} keys" for prefix, count in dropped.items())
        raise InputError(
            path,
            f"OpenMMLab checkpoint without a generator: it holds {held or 'no known keys'} "
            f"but no {GENERATOR} keys (a discriminator-only file?); first keys: "
            f"{', '.join(list(state)[:5])}",
        )
    if dropped:
        log.info(
            "%s: dropped the training-only parts of the OpenMMLab model (%s)",
            path,
            ", ".join(f"{prefix} {count} keys" for prefix, count in dropped.items()),
        )
    return generator
