"""Checks and defaults for the workflow config beyond what the JSON schema can say."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pipeline.upscale import check_method, weight_names

DATASET_DEFAULTS: dict[str, Any] = {
    "kind": "images",
    "enabled": True,
    "limit": None,
    "split": "test",
}
DETECTOR_DEFAULTS: dict[str, Any] = {"kind": "hog", "upsample": 1, "pad": 0.0}
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
    out["measure"] = {"crop_border": "scale", **out.get("measure", {})}
    out["summary"] = {"bootstrap_samples": 1000, "seed": 0, **out.get("summary", {})}
    out["report"] = {"gallery_rows": 8, "title": "facebench report", **out.get("report", {})}
    out.setdefault("gpu_lock_dir", None)
    prepare = out.setdefault("prepare", {})
    prepare["detector"] = {**DETECTOR_DEFAULTS, **prepare.get("detector", {})}
    prepare.setdefault("multi_face", "largest")
    prepare.setdefault("no_face", "center_crop")
    for name, dataset in out["datasets"].items():
        merged = {**DATASET_DEFAULTS, **dataset}
        merged["detector"] = {**prepare["detector"], **dataset.get("detector", {})}
        out["datasets"][name] = merged
    for index, task in enumerate(out["tasks"]):
        if task["hr"] <= task["lr"]:
            raise ConfigError(
                f"tasks[{index}]: hr ({task['hr']}) must be larger than lr ({task['lr']})"
            )
    pairs = [(task["lr"], task["hr"]) for task in out["tasks"]]
    if len(set(pairs)) != len(pairs):
        raise ConfigError(f"tasks: duplicate (lr, hr) pairs in {pairs}")
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
    if not any(dataset["enabled"] for dataset in out["datasets"].values()):
        raise ConfigError("datasets: every data set is disabled (enabled: false)")
    if not any(method["enabled"] for method in out["methods"].values()):
        raise ConfigError("methods: every method is disabled (enabled: false)")
    return out


def effective_source(source: Mapping[str, Any]) -> dict[str, Any]:
    """The source a fetch uses: a local ``path`` overrides a ``url`` merged from defaults."""
    if "path" in source:
        return {key: source[key] for key in ("path", "sha256") if key in source}
    return {key: source[key] for key in ("url", "sha256") if key in source}


def crop_border(setting: int | str, lr: int, hr: int) -> int:
    """Pixels cropped before PSNR/SSIM: an integer, or the scale factor for ``scale``."""
    if setting == "scale":
        return max(1, round(hr / lr))
    return int(setting)
