"""The ``pulse`` architecture, declared without importing torch.

The registry is imported whenever the workflow loads its config, and torch takes
seconds to import, so the search itself (``pipeline.upscale.pulse``) is
imported only when a method is built. Option checking reads the loss strings
and schedules of :mod:`pipeline.upscale.pulse_loss`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipeline.resize import KERNELS
from pipeline.upscale.arch import ArchSpec, DerivedWeights, Upscaler
from pipeline.upscale.pulse_loss import DEFAULT_LOSS, LR_SCHEDULES, parse_loss

EARLY_SUFFIX = "_early"


def check_early_stop_name(name: str, options: Mapping[str, Any]) -> None:
    """An early-stopped search is a different method from PULSE: it must say so in its name.

    ``stop_at_eps`` returns the first image at eps rather than PULSE's final one, so
    the report must never show it as plain PULSE: its method name must end in
    ``_early`` (e.g. ``pulse_early``). ``ValueError`` naming the key otherwise.
    """
    if options.get("stop_at_eps") and not name.endswith(EARLY_SUFFIX):
        raise ValueError(
            f"methods.{name}.stop_at_eps: an early-stopped search returns another image than "
            f"PULSE, so it is another method: give it a name ending in {EARLY_SUFFIX!r} "
            f"(e.g. {name}{EARLY_SUFFIX})"
        )


def _build(options: Mapping[str, Any], device: str) -> Upscaler:
    from pipeline.upscale import pulse

    return pulse.build(options, device)


def _fit_gaussian(mapping: str, out: str, options: Mapping[str, Any], threads: int) -> None:
    from pipeline.upscale import pulse

    pulse.fit_gaussian_file(mapping, out, options["samples"], options["seed"], threads)


def _is_int(minimum: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _is_path(value: Any) -> bool:
    return value is None or (isinstance(value, str) and bool(value))


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_loss(value: Any) -> bool:
    try:
        parse_loss(value)
    except ValueError:
        return False
    return True


SPEC = ArchSpec(
    name="pulse",
    build=_build,
    options={
        "synthesis_path": _is_path,
        "mapping_path": _is_path,
        "gaussian_path": _is_path,
        "steps": _is_int(1),
        "eps": _is_positive_number,
        "learning_rate": _is_positive_number,
        "loss": _is_loss,
        "tile_latent": _is_bool,
        "num_trainable_noise_layers": _is_int(0),
        "lr_schedule": lambda value: value in LR_SCHEDULES,
        "stop_at_eps": _is_bool,
        "save_every": _is_int(0),
        "resample_kernel": lambda value: value in KERNELS,
        "bf16": _is_bool,
        "tf32": _is_bool,
    },
    defaults={
        "synthesis_path": None,
        "mapping_path": None,
        "gaussian_path": None,
        "steps": 100,
        "eps": 2e-3,
        "learning_rate": 0.4,
        "loss": DEFAULT_LOSS,
        "tile_latent": False,
        "num_trainable_noise_layers": 5,
        "lr_schedule": "linear1cycledrop",
        "stop_at_eps": False,
        "save_every": 0,
        "resample_kernel": "pil-bicubic",
        "bf16": False,
        "tf32": False,
    },
    uses_gpu=True,
    gpu_only=True,
    stochastic=True,
    weight_slots={"synthesis": "synthesis_path", "mapping": "mapping_path"},
    # `gaussian` names PULSE's gaussian_fit.pt (a `weights` entry), used as is;
    # without it the workflow fits the mapping network once (seeded, with the
    # config's `pulse_gaussian` options) and passes that file under the same slot.
    optional_weight_slots={"gaussian": "gaussian_path"},
    derived=(
        DerivedWeights(
            slot="gaussian", source="mapping", config_key="pulse_gaussian", make=_fit_gaussian
        ),
    ),
    check=check_early_stop_name,
)

SPECS = (SPEC,)
