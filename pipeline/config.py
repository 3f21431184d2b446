"""The workflow config: its schema's defaults and checks, and what it says beyond them.

Every key, its meaning and its default are declared once, in the JSON schema
(``workflow/schemas/config.schema.yaml``); :func:`apply_schema` validates a
config against it and fills in the defaults. :func:`normalize` adds what a
schema cannot say: values derived from others (LPIPS's checkpoint names from
its network, a data set's detector on top of ``prepare.detector``) and checks
that involve several keys. What data set kinds, kernels and architectures
accept is checked with their registries (``pipeline.workflow.load_config``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config value that is wrong for the benchmark; the message names the key."""


@cache
def _validator() -> Any:
    """The schema's validator, extended to set each property's ``default`` before checking it
    (the recipe of jsonschema's FAQ, which Snakemake's ``validate`` uses too)."""
    schema = _schema()
    base = jsonschema.validators.validator_for(schema)
    check_properties = base.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: Any, instance: Any, schema: Any) -> Any:
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})(schema)


@cache
def _schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))


def schema_defaults(section: str) -> dict[str, Any]:
    """The defaults the schema declares for the keys of a top-level section (``archives``),
    for code called outside the workflow with no config."""
    properties = _schema()["properties"][section]["properties"]
    return {
        key: copy.deepcopy(value["default"])
        for key, value in properties.items()
        if "default" in value
    }


def apply_definition(definition: str, block: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A copy of ``block`` validated against the schema's ``$defs/<definition>`` (a
    ``models.<name>`` entry, say), with its defaults filled in: for code called
    outside the workflow. Raises ``ConfigError`` naming ``where`` and the key."""
    out = copy.deepcopy(dict(block))
    # Refs inside the definition resolve against the whole schema (the validator's).
    validator = _validator().evolve(schema=_schema()["$defs"][definition])
    error = jsonschema.exceptions.best_match(validator.iter_errors(out))
    if error is not None:
        inner = ".".join(str(part) for part in error.absolute_path)
        raise ConfigError(f"config: {where}{'.' + inner if inner else ''}: {error.message}")
    return out


def apply_schema(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` validated against the schema, with its defaults filled in.

    Raises ``ConfigError`` naming the first wrong key (``config: datasets.x: ...``).
    """
    out = copy.deepcopy(dict(config))
    error = jsonschema.exceptions.best_match(_validator().iter_errors(out))
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        raise ConfigError(f"config: {where}: {error.message}")
    return out


def normalize(config: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`apply_schema`, then the values derived from others and the checks across keys.

    Derived: ``measure.lpips.features`` and ``linear`` default to
    ``lpips_<net>_features`` and ``lpips_<net>_linear``; a data set's
    ``detector`` is ``prepare.detector`` with the data set's own keys on top.
    Raises ``ConfigError`` naming the key for task sizes, LR source sizes,
    LPIPS and ArcFace checkpoints that ``weights`` lacks, and runs without an enabled data
    set or method.
    """
    out = apply_schema(config)
    lpips = out["measure"]["lpips"]
    lpips.setdefault("features", f"lpips_{lpips['net']}_features")
    lpips.setdefault("linear", f"lpips_{lpips['net']}_linear")
    for dataset in out["datasets"].values():
        dataset["detector"] = {**out["prepare"]["detector"], **dataset.get("detector", {})}
    _check_tasks("tasks", out["tasks"])
    for name, dataset in out["datasets"].items():
        if "tasks" in dataset:
            _check_tasks(f"datasets.{name}.tasks", dataset["tasks"])
    _check_lr_sources(out)
    if lpips["enabled"]:
        for key in ("features", "linear"):
            if lpips[key] not in out["weights"]:
                raise ConfigError(
                    f"measure.lpips.{key}: no checkpoint named {lpips[key]!r} in `weights` "
                    "(add it, or set measure.lpips.enabled: false)"
                )
    arcface = out["measure"]["arcface"]
    if arcface["enabled"] and arcface["weights"] not in out["weights"]:
        raise ConfigError(
            f"measure.arcface.weights: no checkpoint named {arcface['weights']!r} in `weights` "
            "(add it, or set measure.arcface.enabled: false)"
        )
    if not any(dataset["enabled"] for dataset in out["datasets"].values()):
        raise ConfigError("datasets: every data set is disabled (enabled: false)")
    if not any(method["enabled"] for method in out["methods"].values()):
        raise ConfigError("methods: every method is disabled (enabled: false)")
    return out


def _check_tasks(key: str, tasks: list[dict[str, int]]) -> None:
    for index, task in enumerate(tasks):
        if task["hr"] <= task["lr"]:
            raise ConfigError(
                f"{key}[{index}]: hr ({task['hr']}) must be larger than lr ({task['lr']})"
            )
    pairs = [(task["lr"], task["hr"]) for task in tasks]
    if len(set(pairs)) != len(pairs):
        raise ConfigError(f"{key}: duplicate (lr, hr) pairs in {pairs}")


def lr_source_size(config: Mapping[str, Any], task: Mapping[str, int]) -> int:
    """Size of the aligned faces a task's low-resolution inputs are made from.

    The task's own ``hr`` unless ``prepare.lr_source_size`` is set (1024 is
    PULSE's recipe: align at 1024 px, then downscale).
    """
    return config["prepare"].get("lr_source_size") or task["hr"]


def all_tasks(config: Mapping[str, Any]) -> list[tuple[str, dict[str, int]]]:
    """Every task of the config with its key: the global ones and each data set's own."""
    return [
        (f"datasets.{name}.tasks", task)
        for name, dataset in config["datasets"].items()
        for task in dataset.get("tasks") or []
    ] + [("tasks", task) for task in config["tasks"]]


def _check_lr_sources(config: Mapping[str, Any]) -> None:
    for key, task in all_tasks(config):
        source = lr_source_size(config, task)
        if source <= task["lr"]:
            raise ConfigError(
                f"prepare.lr_source_size: {source} must be larger than the lr size "
                f"{task['lr']} of {key}"
            )


def dataset_tasks(config: Mapping[str, Any], name: str) -> list[dict[str, int]]:
    """The tasks of one data set: its own ``tasks`` if set, else the global ones."""
    return config["datasets"][name].get("tasks") or config["tasks"]


def crop_border(setting: int | str, lr: int, hr: int) -> int:
    """Pixels cropped before PSNR/SSIM: an integer, or the scale factor for ``scale``."""
    if setting == "scale":
        return max(1, round(hr / lr))
    return int(setting)
