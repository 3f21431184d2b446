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
    # Runs at a useful speed only on CUDA (PULSE's 1024 px search: minutes per
    # image on a CPU). Its jobs skip on a machine without CUDA unless the
    # config's `without_cuda` says `run`.
    gpu_only: bool = False
    stochastic: bool = False
    code_modules: tuple[str, ...] = ()
    # Config option naming a checkpoint (a key of the config's ``weights``) ->
    # the build option that receives the fetched file's path, e.g.
    # {"weights": "weights_path"}. GPU jobs never download: the weights stage
    # fetched every file before.
    weight_slots: Mapping[str, str] = field(default_factory=dict)
    # The same for checkpoints a method may name but need not (PULSE's Gaussian fit).
    optional_weight_slots: Mapping[str, str] = field(default_factory=dict)
    # Checks that involve the method's name or several options:
    # check(name, options with defaults) raises ValueError naming methods.<name>.<key>.
    check: Callable[[str, Mapping[str, Any]], None] | None = None


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
    for slot in spec.weight_slots:
        if not isinstance(options.get(slot), str):
            raise ValueError(
                f"methods.{name}.{slot}: arch {arch!r} needs a checkpoint: the name of an "
                "entry of the config's `weights` section"
            )
    for slot in spec.optional_weight_slots:
        if slot in options and not isinstance(options[slot], str):
            raise ValueError(
                f"methods.{name}.{slot}: the name of an entry of the config's `weights` "
                f"section, got {options[slot]!r}"
            )
    for key, value in options.items():
        if key in COMMON_OPTIONS or key in spec.weight_slots or key in spec.optional_weight_slots:
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
    if spec.check is not None:
        spec.check(name, {**spec.defaults, **options})


def weight_names(options: Mapping[str, Any]) -> dict[str, str]:
    """The checkpoints a method uses (required slots, and optional ones it names):
    config option -> name in the ``weights`` section."""
    spec = get_arch(options["arch"])
    named = {slot: options[slot] for slot in spec.weight_slots}
    named.update({slot: options[slot] for slot in spec.optional_weight_slots if slot in options})
    return named


def build_method(
    options: Mapping[str, Any], device: str, weight_files: Mapping[str, str] | None = None
) -> Upscaler:
    """Instantiate a method.

    ``weight_files`` maps its weight slots to fetched files (the workflow's
    way); Python callers may pass the build option (e.g. ``weights_path``)
    directly in ``options`` instead.
    """
    spec = get_arch(options["arch"])
    merged = {**spec.defaults, **{k: v for k, v in options.items() if k not in COMMON_OPTIONS}}
    # The architecture's own build says which files it cannot do without.
    for slot, build_option in {**spec.weight_slots, **spec.optional_weight_slots}.items():
        merged.pop(slot, None)
        if weight_files and slot in weight_files:
            merged[build_option] = str(weight_files[slot])
    # Files the workflow derives from checkpoints (e.g. PULSE's Gaussian fit).
    for key, path in (weight_files or {}).items():
        if key not in spec.weight_slots and key not in spec.optional_weight_slots:
            merged[f"{key}_path"] = str(path)
    return spec.build(merged, device)


# Architectures register themselves on import.
from pipeline.upscale import cnn as cnn  # noqa: E402
from pipeline.upscale import interpolate  # noqa: E402, F401
from pipeline.upscale import pulse_spec as pulse_spec  # noqa: E402
