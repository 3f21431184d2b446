"""Checks and defaults for the workflow config beyond what the JSON schema can say."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pipeline.upscale import check_method, weight_names

# Options that only some data set kinds read; anything else is a config error.
KIND_OPTIONS: dict[str, frozenset[str]] = {
    "celebahq": frozenset(
        {"split_rule", "split_seed", "splits", "attributes_file", "mapping_file", "partition_file"}
    ),
    "emoji": frozenset({"platform", "metadata", "size", "background", "subcategories"}),
}
DATASET_DEFAULTS: dict[str, Any] = {
    "kind": "images",
    "enabled": True,
    "limit": None,
    "split": "test",
}
DETECTOR_DEFAULTS: dict[str, Any] = {"kind": "hog", "upsample": 1, "pad": 0.0, "min_size": 0}
CONTACT_SHEET_DEFAULTS: dict[str, Any] = {"columns": 8, "max_images": 64, "tile_size": 128}
# Kernels that only reduce by whole factors.
INTEGER_FACTOR_KERNELS = ("pulse-bicubic",)
METHOD_DEFAULTS: dict[str, Any] = {"seeds": [0], "enabled": True, "batch_size": 16}


class ConfigError(ValueError):
    """A config value that is valid JSON-schema-wise but wrong for the benchmark."""


def normalize(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy with defaults filled in for data sets, detectors and methods.

    Raises ``ConfigError`` naming the key for anything the schema cannot check:
    task sizes, architecture options, seeds of deterministic methods.
    """
    out = copy.deepcopy(dict(config))
    out.setdefault("shard_size", 500)
    measure = {
        "crop_border": "scale",
        "gpu": True,
        "eps_not_reached": "exclude",
        **out.get("measure", {}),
    }
    lpips = {"enabled": True, "net": "alex", "batch_size": 32, **measure.get("lpips", {})}
    lpips.setdefault("features", f"lpips_{lpips['net']}_features")
    lpips.setdefault("linear", f"lpips_{lpips['net']}_linear")
    identity = {"enabled": True, "fallback": "aligned_box", "landmarks": 5, "upsample": None}
    measure["lpips"] = lpips
    measure["identity"] = {**identity, **measure.get("identity", {})}
    out["measure"] = measure
    out["summary"] = {"bootstrap_samples": 1000, "seed": 0, **out.get("summary", {})}
    out["report"] = {
        "page_size": 24,
        "max_images_per_category": None,
        "seeds_shown": 4,
        "title": "facebench report",
        **out.get("report", {}),
    }
    out.setdefault("gpu_lock_dir", None)
    out.setdefault("without_cuda", "skip")
    out["pulse_gaussian"] = {"samples": 1_000_000, "seed": 0, **out.get("pulse_gaussian", {})}
    prepare = out.setdefault("prepare", {})
    prepare["detector"] = {**DETECTOR_DEFAULTS, **prepare.get("detector", {})}
    prepare.setdefault("multi_face", "largest")
    prepare.setdefault("no_face", "center_crop")
    prepare.setdefault("lr_source_size", None)
    prepare["contact_sheet"] = {**CONTACT_SHEET_DEFAULTS, **prepare.get("contact_sheet", {})}
    from pipeline.datasets import default_alignment  # deferred: imports every kind

    for name, dataset in out["datasets"].items():
        merged = {**DATASET_DEFAULTS, **dataset}
        merged["detector"] = {**prepare["detector"], **dataset.get("detector", {})}
        merged.setdefault("alignment", default_alignment(merged["kind"]))
        for kind, keys in KIND_OPTIONS.items():
            misplaced = sorted(keys & set(dataset)) if merged["kind"] != kind else []
            if misplaced:
                raise ConfigError(
                    f"datasets.{name}.{misplaced[0]}: only data sets of kind {kind!r} take it "
                    f"(this one is {merged['kind']!r})"
                )
        out["datasets"][name] = merged
    _check_tasks("tasks", out["tasks"])
    for name, dataset in out["datasets"].items():
        if dataset["kind"] == "emoji" and "platform" not in dataset:
            raise ConfigError(f"datasets.{name}.platform: required for kind 'emoji'")
        if "tasks" in dataset:
            _check_tasks(f"datasets.{name}.tasks", dataset["tasks"])
    _check_lr_sources(out)
    out.setdefault("weights", {})
    for name, method in out["methods"].items():
        merged = {**METHOD_DEFAULTS, **method}
        try:
            check_method(name, merged)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        for slot, weights in weight_names(merged).items():
            if weights not in out["weights"]:
                raise ConfigError(
                    f"methods.{name}.{slot}: no checkpoint named {weights!r} in `weights` "
                    f"(known: {sorted(out['weights'])})"
                )
        out["methods"][name] = merged
    if lpips["enabled"]:
        for key in ("features", "linear"):
            if lpips[key] not in out["weights"]:
                raise ConfigError(
                    f"measure.lpips.{key}: no checkpoint named {lpips[key]!r} in `weights` "
                    "(add it, or set measure.lpips.enabled: false)"
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


def _check_lr_sources(config: Mapping[str, Any]) -> None:
    tasks = [
        (f"datasets.{name}.tasks", task)
        for name, dataset in config["datasets"].items()
        for task in dataset.get("tasks") or []
    ] + [("tasks", task) for task in config["tasks"]]
    for key, task in tasks:
        source = lr_source_size(config, task)
        if source <= task["lr"]:
            raise ConfigError(
                f"prepare.lr_source_size: {source} must be larger than the lr size "
                f"{task['lr']} of {key}"
            )
        for kernel in set(config["kernels"]) & set(INTEGER_FACTOR_KERNELS):
            if source % task["lr"]:
                raise ConfigError(
                    f"kernels: {kernel} reduces only by whole factors, but {key} makes "
                    f"{task['lr']} px inputs from {source} px faces"
                )


def dataset_tasks(config: Mapping[str, Any], name: str) -> list[dict[str, int]]:
    """The tasks of one data set: its own ``tasks`` if set, else the global ones."""
    return config["datasets"][name].get("tasks") or config["tasks"]


def alignment_options(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """How data set ``name`` is framed: ``{"policy", "template"}`` for the detection stage.

    ``template`` is the kind's :class:`pipeline.align.Template` as plain values
    (``Template.as_dict``) under ``prealigned``, None under ``detect``; being a
    rule param, a changed template reruns what depends on it.
    """
    from pipeline.datasets import template_of
    from pipeline.status import PREALIGNED

    dataset = config["datasets"][name]
    policy = dataset["alignment"]
    template = template_of(dataset["kind"]).as_dict() if policy == PREALIGNED else None
    return {"policy": policy, "template": template}


def identity_options(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``measure.identity`` for data set ``name``: a prealigned set whose template knows
    where HOG boxes its faces uses that box when no face is found (``aligned_box``)."""
    identity = dict(config["measure"]["identity"])
    template = alignment_options(config, name)["template"]
    if template and template.get("face_box") is not None:
        identity["aligned_box"] = list(template["face_box"])
    return identity


def effective_source(source: Mapping[str, Any]) -> dict[str, Any]:
    """The source a fetch uses: a local ``path`` overrides ``npm``, which overrides a
    ``url``, which overrides a Google Drive file (``gdrive``, checkpoints only).

    Several kinds appear when an override is merged onto a default: a local
    copy or a mirror URL given on top of a default then wins.
    """
    if "path" in source:
        keys: tuple[str, ...] = ("path", "sha256")
    elif "npm" in source:
        keys = ("npm", "version", "registry", "sha256")
    elif "url" in source:
        keys = ("url", "sha256")
    else:
        keys = ("gdrive", "sha256")
    return {key: source[key] for key in keys if key in source}


def crop_border(setting: int | str, lr: int, hr: int) -> int:
    """Pixels cropped before PSNR/SSIM: an integer, or the scale factor for ``scale``."""
    if setting == "scale":
        return max(1, round(hr / lr))
    return int(setting)
