"""Registration of the ``pulse`` architecture, without importing torch.

The registry is imported whenever the workflow loads its config, and torch is
an optional dependency that takes seconds to import, so the search itself
(``pipeline.upscale.pulse``) is imported only when a method is built. The
pure-Python parts that option checking needs (loss strings, schedules) live here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipeline.resize import KERNELS
from pipeline.upscale import ArchSpec, Upscaler, register

LOSS_TERMS = ("L2", "L1", "GEOCROSS")
LR_SCHEDULES = ("fixed", "linear1cycle", "linear1cycledrop")
DEFAULT_LOSS = "100*L2+0.05*GEOCROSS"


def parse_loss(spec: str) -> list[tuple[float, str]]:
    """Parse a PULSE loss string such as ``"100*L2+0.05*GEOCROSS"`` into (weight, term) pairs.

    As PULSE: terms separated by ``+``, each ``WEIGHT*NAME``; NAME is one of
    ``L2``, ``L1``, ``GEOCROSS``.
    """
    if not isinstance(spec, str):
        raise ValueError(f"loss must be a string such as {DEFAULT_LOSS!r}, got {spec!r}")
    terms = []
    for part in spec.replace(" ", "").split("+"):
        pieces = part.split("*")
        if len(pieces) != 2 or pieces[1] not in LOSS_TERMS:
            raise ValueError(
                f"loss {spec!r}: each term must be WEIGHT*NAME with NAME in {LOSS_TERMS}, "
                f"got {part!r}"
            )
        try:
            weight = float(pieces[0])
        except ValueError as exc:
            raise ValueError(f"loss {spec!r}: weight {pieces[0]!r} is not a number") from exc
        terms.append((weight, pieces[1]))
    return terms


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """Learning-rate multiplier at ``step`` (0-based) of ``steps``, as PULSE's ``LambdaLR``.

    ``linear1cycledrop``: 0.1 at step 0, rising linearly to 1 at 45 % of the
    steps, back to 0.1 at 90 %, then falling linearly towards 0.001 (reached at
    ``steps``). ``linear1cycle``: the same cycle over all steps. ``fixed``: 1.
    """
    if schedule == "fixed":
        return 1.0
    if schedule == "linear1cycle":
        return (9 * (1 - abs(step / steps - 0.5) * 2) + 1) / 10
    if schedule == "linear1cycledrop":
        ramp = 0.9 * steps
        if step < ramp:
            return (9 * (1 - abs(step / ramp - 0.5) * 2) + 1) / 10
        return 0.1 + (step - ramp) / (0.1 * steps) * (0.001 - 0.1)
    raise ValueError(f"unknown lr_schedule {schedule!r}; known: {LR_SCHEDULES}")


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


SPEC = register(
    ArchSpec(
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
        # without it the workflow fits the mapping network once (rule
        # fit_pulse_gaussian, seeded) and passes that file under the same slot.
        optional_weight_slots={"gaussian": "gaussian_path"},
        check=check_early_stop_name,
        code_modules=(
            "pipeline.upscale.pulse_spec",
            "pipeline.upscale.pulse",
            "pipeline.upscale.stylegan",
            "pipeline.resize_pulse",
        ),
    )
)
