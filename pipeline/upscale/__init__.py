"""The upscale stage: the registry of architectures, the networks, the run plan.

Each module of :mod:`pipeline.upscale.specs` declares architectures (its
``SPECS``, see :class:`pipeline.upscale.arch.ArchSpec`); the registry imports
them all when it is imported. Spec modules are torch-free and import only
:mod:`pipeline.upscale.arch`: the registry is read whenever the workflow loads
its config, and a network (``rrdbnet``, ``srresnet``, ``stylegan``, ``pulse``,
on ``torch_runtime``) is imported only when a method of it is built.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any

from pipeline.upscale.arch import (
    COMMON_OPTIONS,
    SKIP_WITHOUT_CUDA,
    TRAINED,
    TRAINED_SLOT,
    ArchSpec,
    DerivedWeights,
    UpscaleBatch,
    Upscaler,
)

__all__ = [
    "COMMON_OPTIONS",
    "DERIVED",
    "REGISTRY",
    "TRAINED",
    "TRAINED_SLOT",
    "ArchSpec",
    "DerivedWeights",
    "UpscaleBatch",
    "Upscaler",
    "build_method",
    "check_method",
    "derived_weights",
    "get_arch",
    "skips_without_cuda",
    "weight_names",
]

# Named inputs of the upscale rule besides the weight slots (which it names by slot).
_RULE_INPUTS = frozenset({"lr"})

REGISTRY: dict[str, ArchSpec] = {}
# The derived files architectures declare, by the slot they fill (each declared once).
DERIVED: dict[str, DerivedWeights] = {}


def _register(spec: ArchSpec) -> None:
    if spec.name in REGISTRY:
        raise ValueError(f"architecture {spec.name!r} declared twice")
    slots = {*spec.weight_slots, *spec.optional_weight_slots}
    if slots & _RULE_INPUTS:
        raise ValueError(
            f"architecture {spec.name!r}: weight slots may not be named {_RULE_INPUTS}"
        )
    for derived in spec.derived:
        if derived.slot not in spec.optional_weight_slots or derived.source not in slots:
            raise ValueError(
                f"architecture {spec.name!r}: derived file {derived.slot!r} must fill an optional "
                f"weight slot from a weight slot (got source {derived.source!r})"
            )
        if DERIVED.setdefault(derived.slot, derived) is not derived:
            raise ValueError(f"derived weights {derived.slot!r} declared twice")
    REGISTRY[spec.name] = spec


def _load_specs() -> None:
    from pipeline.upscale import specs

    for found in sorted(pkgutil.iter_modules(specs.__path__), key=lambda m: m.name):
        for spec in importlib.import_module(f"{specs.__name__}.{found.name}").SPECS:
            _register(spec)


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
    if TRAINED in options:
        if not spec.trainable:
            raise ValueError(
                f"methods.{name}.{TRAINED}: arch {arch!r} cannot run a trained model "
                f"(trainable: {sorted(a for a, s in REGISTRY.items() if s.trainable)})"
            )
        if TRAINED_SLOT in options:
            raise ValueError(
                f"methods.{name}: `{TRAINED}` and `{TRAINED_SLOT}` both name its checkpoint; "
                "keep one"
            )
    for slot in spec.weight_slots:
        if slot == TRAINED_SLOT and TRAINED in options:
            continue
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
    """The checkpoints a method names (required slots, and optional ones it fills):
    weight slot -> name in the config's ``weights`` section. A slot filled by a
    trained model (``trained``) is not among them."""
    spec = get_arch(options["arch"])
    named = {slot: options[slot] for slot in spec.weight_slots if slot in options}
    named.update({slot: options[slot] for slot in spec.optional_weight_slots if slot in options})
    return named


def skips_without_cuda(options: Mapping[str, Any], without_cuda: str) -> bool:
    """Whether a method's jobs upscale nothing on a machine without CUDA: its
    architecture is GPU-only and the config's ``without_cuda`` says ``skip``."""
    return get_arch(options["arch"]).gpu_only and without_cuda == SKIP_WITHOUT_CUDA


def derived_weights(options: Mapping[str, Any]) -> dict[str, DerivedWeights]:
    """The derived files a method needs: its optional slots left empty that its
    architecture fills with a file computed from a checkpoint (slot -> declaration)."""
    spec = get_arch(options["arch"])
    return {d.slot: d for d in spec.derived if d.slot not in options}


def build_method(
    options: Mapping[str, Any], device: str, weight_files: Mapping[str, Any] | None = None
) -> Upscaler:
    """Instantiate a method from its config block (``methods.<name>``).

    ``weight_files`` maps weight slots to fetched (or derived) files: the
    upscale rule's named inputs, passed through as they are (anything with
    ``get(slot)``, such as Snakemake's ``input``). Python callers may pass a
    build option (e.g. ``weights_path``) directly in ``options`` instead.
    """
    spec = get_arch(options["arch"])
    merged = {**spec.defaults, **{k: v for k, v in options.items() if k not in COMMON_OPTIONS}}
    for slot, build_option in {**spec.weight_slots, **spec.optional_weight_slots}.items():
        merged.pop(slot, None)
        path = weight_files.get(slot) if weight_files is not None else None
        if path is not None:
            merged[build_option] = str(path)
    return spec.build(merged, device)


_load_specs()
