"""Registry of upscaling architectures.

A *method* in the config is a named instance of an architecture with its
options (``methods.<name>: {arch: ..., ...}``). Each architecture module
registers an ``ArchSpec``; the workflow looks methods up here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

# Keys every method accepts, whatever its architecture (see the config schema).
COMMON_OPTIONS = frozenset({"arch", "seeds", "enabled", "batch_size"})


@dataclass
class UpscaleBatch:
    """Outputs of one batch: images and per-image facts.

    ``images``: (N, size, size, 3) uint8 RGB. ``facts``: one dict per image
    (may be empty dicts) with what the method knows about it, e.g. PULSE's
    ``converged``, ``final_loss``, ``steps``; or ``resampled_with`` when a
    fixed-scale network's output was resized to the evaluation size. The
    upscale stage adds time, seed and device itself.
    """

    images: np.ndarray
    facts: list[dict[str, Any]]


class Upscaler(Protocol):
    def __call__(self, batch: np.ndarray, size: int, seeds: Sequence[int]) -> UpscaleBatch:
        """Upscale ``batch`` (N, h, w, 3) uint8 RGB to ``size`` x ``size`` uint8 RGB.

        ``seeds[i]`` is the seed of item ``i`` (a batch may hold one image under
        several seeds, so stochastic methods search them all at once);
        deterministic methods ignore it.
        """
        ...


@dataclass(frozen=True)
class ArchSpec:
    name: str
    build: Callable[[Mapping[str, Any], str], Upscaler]
    options: Mapping[str, Callable[[Any], bool]] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    uses_gpu: bool = False
    stochastic: bool = False
    code_modules: tuple[str, ...] = ()


REGISTRY: dict[str, ArchSpec] = {}


def register(spec: ArchSpec) -> ArchSpec:
    if spec.name in REGISTRY:
        raise ValueError(f"architecture {spec.name!r} registered twice")
    REGISTRY[spec.name] = spec
    return spec


def get_arch(name: str) -> ArchSpec:
    if name not in REGISTRY:
        raise KeyError(f"unknown architecture {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name]


def check_method(name: str, options: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming ``methods.<name>.<key>`` for an unknown key or bad value."""
    arch = options.get("arch")
    if arch not in REGISTRY:
        raise ValueError(
            f"methods.{name}.arch: unknown architecture {arch!r}; known: {sorted(REGISTRY)}"
        )
    spec = REGISTRY[arch]
    for key, value in options.items():
        if key in COMMON_OPTIONS:
            continue
        if key not in spec.options:
            known = sorted(spec.options)
            raise ValueError(
                f"methods.{name}.{key}: unknown option for arch {arch!r}; known: {known}"
            )
        if not spec.options[key](value):
            raise ValueError(f"methods.{name}.{key}: invalid value {value!r} for arch {arch!r}")
    if not spec.stochastic and list(options.get("seeds", [0])) != [0]:
        raise ValueError(f"methods.{name}.seeds: arch {arch!r} is deterministic; use seeds: [0]")


def build_method(options: Mapping[str, Any], device: str) -> Upscaler:
    spec = get_arch(options["arch"])
    merged = {**spec.defaults, **{k: v for k, v in options.items() if k not in COMMON_OPTIONS}}
    return spec.build(merged, device)


# Architectures register themselves on import.
from pipeline.upscale import interpolate  # noqa: E402, F401
