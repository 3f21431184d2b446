"""PULSE's loss strings and learning-rate schedules: pure Python, read by the search
(:mod:`pipeline.upscale.pulse`) and by option checking (:mod:`pipeline.upscale.specs.pulse`)."""

from __future__ import annotations

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
