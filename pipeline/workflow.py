"""What the Snakemake rules ask of the package: the checked config, each rule's params, inputs
and resources, and the code each job runs.

The top floor: it knows every stage, and nothing in ``pipeline`` imports it.
``workflow/rules/common.smk`` wraps these functions for the rules; the rules
never name an architecture, a data set kind or a module.

**Rerun digests.** A rule's ``code`` param is the digest of the code its job
runs (:func:`pipeline.provenance.code_digest`): the ``pipeline`` modules its
script imports, with their imports, found by reading the sources. An upscale
job adds its architecture's module (the registry loads those by name), so
changing one network reruns its methods only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipeline.config import (
    ConfigError,
    all_tasks,
    crop_border,
    dataset_tasks,
    lr_source_size,
    normalize,
)
from pipeline.data.kinds import (
    KIND_OPTIONS,
    REQUIRED_OPTIONS,
    alignment_options,
    default_alignment,
)
from pipeline.data.sources import effective_source, local_fingerprint
from pipeline.provenance import code_digest, config_digest, file_imports
from pipeline.resize import WHOLE_FACTOR_KERNELS
from pipeline.train import TRAINABLE_ARCHS
from pipeline.upscale import (
    DERIVED,
    TRAINED,
    TRAINED_SLOT,
    check_method,
    derived_weights,
    get_arch,
    weight_names,
)

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow" / "scripts"
# Where the weights stage puts each checkpoint, and the files derived from them.
WEIGHTS_DIR = "resources/weights"
# Where the train stage puts each model's checkpoint and history.
MODELS_DIR = "resources/models"
# Keys of a model's config block that its training does not depend on: how many
# GPUs run it (the batch is split among them; see pipeline.train.loop).
NOT_TRAINING = ("gpus",)
# The content losses that need torchvision's VGG (a `weights` entry).
VGG_LOSSES = ("vgg", "mse+vgg")
# What a generator's checkpoint must share with the model it initialises (init_from).
GENERATOR_LAYOUT = ("variant", "num_feat", "num_block", "task", "output_range")
# Keys of a data set's config block that its catalog does not depend on: where
# it comes from (the fetched record is the catalog's input), how its faces are
# detected and framed, whether and for which tasks it runs.
NOT_CATALOG = ("source", "metadata", "detector", "alignment", "enabled", "tasks")


# --------------------------------------------------------------------------- config


def load_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as the rules read it: validated against the schema, with its defaults,
    derived values and alignment policies, every data set kind's and architecture's
    options checked. Raises ``ConfigError`` naming the key."""
    out = normalize(config)
    check_datasets(out)
    check_kernels(out)
    check_models(out)
    check_methods(out)
    return out


def check_datasets(config: dict[str, Any]) -> None:
    """Check each data set's kind options and set its alignment policy when it names none.

    Raises ``ConfigError`` naming ``datasets.<name>.<key>`` for an option of
    another kind or a missing required one.
    """
    for name, dataset in config["datasets"].items():
        kind = dataset["kind"]
        for other, keys in KIND_OPTIONS.items():
            misplaced = sorted(keys & set(dataset)) if other != kind else []
            if misplaced:
                raise ConfigError(
                    f"datasets.{name}.{misplaced[0]}: only data sets of kind {other!r} take it "
                    f"(this one is {kind!r})"
                )
        for key in REQUIRED_OPTIONS.get(kind, ()):
            if key not in dataset:
                raise ConfigError(f"datasets.{name}.{key}: required for kind {kind!r}")
        dataset.setdefault("alignment", default_alignment(kind))


def check_kernels(config: Mapping[str, Any]) -> None:
    """Kernels that reduce by whole factors only, against every task's sizes."""
    for kernel in set(config["kernels"]) & set(WHOLE_FACTOR_KERNELS):
        for key, task in all_tasks(config):
            source = lr_source_size(config, task)
            if source % task["lr"]:
                raise ConfigError(
                    f"kernels: {kernel} reduces only by whole factors, but {key} makes "
                    f"{task['lr']} px inputs from {source} px faces"
                )


def check_models(config: Mapping[str, Any]) -> None:
    """Each model's data set, task, kernel and output range, across keys.

    Raises ``ConfigError`` naming ``models.<name>.<key>``.
    """
    for name, model in config["models"].items():
        key = f"models.{name}"
        if model["arch"] not in TRAINABLE_ARCHS:
            raise ConfigError(f"{key}.arch: one of {list(TRAINABLE_ARCHS)}")
        if model["loss"] in VGG_LOSSES and model["vgg"]["weights"] not in config["weights"]:
            raise ConfigError(
                f"{key}.vgg.weights: no checkpoint named {model['vgg']['weights']!r} in "
                f"`weights` (loss {model['loss']} needs torchvision's VGG)"
            )
        check_init_from(config, name)
        for option in ("dataset", "val_dataset"):
            if model[option] is not None and model[option] not in config["datasets"]:
                raise ConfigError(
                    f"{key}.{option}: no data set named {model[option]!r} in `datasets` "
                    f"(known: {sorted(config['datasets'])})"
                )
        task, variant = model["task"], model["variant"]
        # The scales the architecture's methods accept (a variant may take fewer:
        # the network says so when it is built).
        accepts_scale = get_arch(model["arch"]).options["scale"]
        if task["hr"] % task["lr"] or not accepts_scale(task["hr"] // task["lr"]):
            raise ConfigError(
                f"{key}.task: {task['lr']} -> {task['hr']} px is no factor arch "
                f"{model['arch']!r} takes (variant {variant!r})"
            )
        source = lr_source_size(config, task)
        if source <= task["lr"] or (
            model["kernel"] in WHOLE_FACTOR_KERNELS and source % task["lr"]
        ):
            raise ConfigError(
                f"{key}.kernel: {model['kernel']} cannot make {task['lr']} px inputs from "
                f"{source} px faces (prepare.lr_source_size)"
            )
        output_range = model["output_range"]
        if output_range is not None and (
            list(output_range) not in ([-1, 1], [0, 1])
            or (variant != "paper" and list(output_range) != [0, 1])
        ):
            raise ConfigError(
                f"{key}.output_range: {output_range} for variant {variant!r} (paper: [-1, 1] "
                "or [0, 1]; msrresnet and mmedit: [0, 1])"
            )


def check_init_from(config: Mapping[str, Any], name: str) -> None:
    """``models.<name>.init_from``: a model of the same generator, and no cycle."""
    seen = [name]
    model = config["models"][name]
    while model["init_from"] is not None:
        source = model["init_from"]
        key = f"models.{seen[-1]}.init_from"
        if source not in config["models"]:
            raise ConfigError(
                f"{key}: no model named {source!r} in `models` (known: {sorted(config['models'])})"
            )
        if source in seen:
            raise ConfigError(f"{key}: a cycle: {' -> '.join([*seen, source])}")
        other = config["models"][source]
        for option in GENERATOR_LAYOUT:
            if other[option] != model[option]:
                raise ConfigError(
                    f"{key}: model {source!r} has {option} {other[option]!r}, this one "
                    f"{model[option]!r} (the generator's layout must match)"
                )
        seen.append(source)
        model = other


def trained_method(config: Mapping[str, Any], name: str, method: dict[str, Any]) -> None:
    """Give a method that runs a trained model (``trained``) the model's variant,
    output range and scale; raise ``ConfigError`` when it sets them otherwise."""
    model_name = method[TRAINED]
    if model_name not in config["models"]:
        raise ConfigError(
            f"methods.{name}.{TRAINED}: no model named {model_name!r} in `models` "
            f"(known: {sorted(config['models'])})"
        )
    model = config["models"][model_name]
    implied = {
        "variant": model["variant"],
        "scale": model["task"]["hr"] // model["task"]["lr"],
        "input_norm": "unit",
    }
    if model["output_range"] is not None:
        implied["output_range"] = list(model["output_range"])
    for key, value in implied.items():
        if key in method and method[key] != value:
            raise ConfigError(
                f"methods.{name}.{key}: {method[key]!r}, but model {model_name!r} it runs "
                f"has {value!r} (leave it out: it comes from the model)"
            )
        method[key] = value


def check_methods(config: Mapping[str, Any]) -> None:
    """Each method's options against its architecture, and the checkpoints it names."""
    for name, method in config["methods"].items():
        if TRAINED in method:
            trained_method(config, name, method)
        try:
            check_method(name, method)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        for slot, weights in weight_names(method).items():
            if weights not in config["weights"]:
                raise ConfigError(
                    f"methods.{name}.{slot}: no checkpoint named {weights!r} in `weights` "
                    f"(known: {sorted(config['weights'])})"
                )


def enabled(section: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Names of the enabled data sets or methods of a config section."""
    return [name for name, block in section.items() if block["enabled"]]


# --------------------------------------------------------------------------- params


def canonical(value: Any) -> Any:
    """``value`` with the keys of every mapping in it sorted.

    Snakemake compares params as written, so a param taken from a config block
    would rerun its jobs when another config file merely orders the same keys
    differently (``yaml.safe_dump`` sorts them, say); each params function
    here returns its value this way.
    """
    if isinstance(value, Mapping):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    return value


def catalog_options(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """What a data set's catalog depends on (everything but ``NOT_CATALOG``)."""
    dataset = config["datasets"][name]
    return canonical({k: v for k, v in dataset.items() if k not in NOT_CATALOG})


def source_fingerprint(source: Mapping[str, Any]) -> str | None:
    """The fingerprint of a source's local ``path`` (None for URLs, npm packages, Drive files).

    A param of the download and weights rules, computed as Snakemake builds its
    DAG: a local file or folder that changes reruns its fetch, which checks the
    new content against the lock file (:mod:`pipeline.data.sources.fingerprint`).
    A URL's file is fetched once and checked whenever it is fetched again.
    """
    effective = effective_source(source)
    return local_fingerprint(effective["path"]) if "path" in effective else None


def _local(fingerprints: Mapping[str, str | None]) -> dict[str, str]:
    return {key: value for key, value in sorted(fingerprints.items()) if value is not None}


def catalog_sources(config: Mapping[str, Any], name: str) -> dict[str, str]:
    """The fingerprints of data set ``name``'s local sources (``source``, ``metadata``).

    A param of the catalog as well as of the download: a refused fetch (a
    changed local source the lock file does not know) removes its record and
    Snakemake's memory of it, and Snakemake does not fetch a missing record
    again for a manifest that is up to date; the catalog's own param change
    makes it, so the refusal is repeated until the change is accepted, and an
    accepted change reaches the manifest.
    """
    dataset = config["datasets"][name]
    roles = [role for role in ("source", "metadata") if role in dataset]
    return _local({role: source_fingerprint(dataset[role]) for role in roles})


def checkpoint_sources(config: Mapping[str, Any], names: Iterable[str]) -> dict[str, str]:
    """The fingerprints of the local checkpoints ``names`` (entries of ``weights``).

    A param of the jobs that read them, for the reason of :func:`catalog_sources`:
    a checkpoint replaced at its path is fetched again (and refused, until
    accepted) even when the fetched copy was removed by an earlier refusal.
    """
    return _local({name: source_fingerprint(config["weights"][name]) for name in names})


def method_sources(config: Mapping[str, Any], name: str) -> dict[str, str]:
    """The fingerprints of the local checkpoints method ``name`` reads."""
    return checkpoint_sources(config, weight_names(config["methods"][name]).values())


def lpips_sources(config: Mapping[str, Any]) -> dict[str, str]:
    """The fingerprints of LPIPS's local checkpoints (none when LPIPS is off)."""
    lpips = config["measure"]["lpips"]
    names = [lpips["features"], lpips["linear"]] if lpips["enabled"] else []
    return checkpoint_sources(config, names)


def arcface_sources(config: Mapping[str, Any]) -> dict[str, str]:
    """The fingerprint of ArcFace's checkpoint when it is local (none when ArcFace is off)."""
    arcface = config["measure"]["arcface"]
    return checkpoint_sources(config, [arcface["weights"]] if arcface["enabled"] else [])


def measure_sources(config: Mapping[str, Any]) -> dict[str, str]:
    """The fingerprints of every local checkpoint the metric jobs read (LPIPS, ArcFace)."""
    return {**lpips_sources(config), **arcface_sources(config)}


def detector_options(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """How data set ``name``'s faces are detected (its ``detector``, over ``prepare.detector``)."""
    return canonical(config["datasets"][name]["detector"])


def dataset_alignment(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``{"policy", "template"}`` of data set ``name`` (see ``pipeline.data.kinds``)."""
    return alignment_options(config["datasets"][name])


def identity_options(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``measure.identity`` for data set ``name``: a prealigned set whose template knows
    where HOG boxes its faces uses that box when no face is found (``aligned_box``)."""
    identity = dict(config["measure"]["identity"])
    template = dataset_alignment(config, name)["template"]
    if template and template.get("face_box") is not None:
        identity["aligned_box"] = list(template["face_box"])
    return canonical(identity)


def lpips_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """What the metrics depend on of ``measure.lpips`` (its checkpoints are inputs)."""
    lpips = config["measure"]["lpips"]
    return canonical({k: v for k, v in lpips.items() if k in ("enabled", "net", "batch_size")})


def arcface_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """What the metrics depend on of ``measure.arcface`` (its checkpoint is an input)."""
    arcface = config["measure"]["arcface"]
    return canonical({k: v for k, v in arcface.items() if k in ("enabled", "batch_size")})


def method_identity(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """What a method's results depend on: its options, and, for stochastic
    searches (PULSE), its batch size too: in float32 the search path depends
    on batch composition. Elsewhere ``batch_size`` is an execution setting."""
    method = config["methods"][name]
    ignored = {"enabled"} if get_arch(method["arch"]).stochastic else {"enabled", "batch_size"}
    return canonical({k: v for k, v in method.items() if k not in ignored})


def cuda_policy(config: Mapping[str, Any], name: str, host_cuda: bool) -> dict[str, Any] | None:
    """For a GPU-only method: what its jobs do without CUDA, and whether this host
    has CUDA, so that a method skipped on a CPU host runs again where CUDA is.
    ``None`` for every other method (their results do not depend on it)."""
    if not get_arch(config["methods"][name]["arch"]).gpu_only:
        return None
    return {"without_cuda": config["without_cuda"], "host_cuda": host_cuda}


def plan_options(config: Mapping[str, Any]) -> str:
    """Digest of what the plan reads of the config: tasks, kernels, each method's
    arch, seeds and steps (what its cost depends on), the CUDA policy. A digest
    because params compare as written, and config files may order keys any way."""
    return config_digest(
        {
            "tasks": {name: dataset_tasks(config, name) for name in enabled(config["datasets"])},
            "kernels": config["kernels"],
            "methods": {
                name: {
                    key: config["methods"][name][key]
                    for key in ("arch", "seeds", "steps")
                    if key in config["methods"][name]
                }
                for name in enabled(config["methods"])
            },
            "without_cuda": config["without_cuda"],
        }
    )


# --------------------------------------------------------------------------- checkpoints


def weights_file(name: str) -> str:
    """Where the weights stage puts checkpoint ``name`` (a key of the config's ``weights``)."""
    return f"{WEIGHTS_DIR}/{name}.pth"


def derived_file(checkpoint: str, slot: str) -> str:
    """Where the file an architecture derives for ``slot`` from ``checkpoint`` goes."""
    return f"{WEIGHTS_DIR}/{checkpoint}.{slot}.pt"


def model_file(name: str, output: str = "checkpoint.pth") -> str:
    """Where the train stage puts model ``name``'s checkpoint (or its ``history.parquet``)."""
    return f"{MODELS_DIR}/{name}/{output}"


def method_weights(config: Mapping[str, Any], name: str) -> dict[str, str]:
    """The files a method reads, as named inputs by weight slot: the checkpoints it
    names, the trained model's checkpoint (``trained``), and the derived files of
    the optional slots it leaves empty."""
    method = config["methods"][name]
    files = {slot: weights_file(weights) for slot, weights in weight_names(method).items()}
    if TRAINED in method:
        files[TRAINED_SLOT] = model_file(method[TRAINED])
    for slot, derived in derived_weights(method).items():
        files[slot] = derived_file(method[derived.source], slot)
    return files


def derived_slots() -> list[str]:
    """Every slot an architecture fills with a derived file (the rule's wildcard values)."""
    return sorted(DERIVED)


def derived_options(config: Mapping[str, Any], slot: str) -> Any:
    """The config section a derived file is made with (PULSE's ``pulse_gaussian``)."""
    return canonical(config[DERIVED[slot].config_key])


def arcface_weights(config: Mapping[str, Any]) -> dict[str, str]:
    """ArcFace's checkpoint as the named input ``arcface`` (none when ArcFace is off)."""
    arcface = config["measure"]["arcface"]
    return {"arcface": weights_file(arcface["weights"])} if arcface["enabled"] else {}


def measure_weights(config: Mapping[str, Any]) -> dict[str, str]:
    """Checkpoints the metric jobs read (LPIPS, ArcFace; only those enabled), as named inputs."""
    lpips = config["measure"]["lpips"]
    files = {}
    if lpips["enabled"]:
        files["lpips_features"] = weights_file(lpips["features"])
        files["lpips_linear"] = weights_file(lpips["linear"])
    return {**files, **arcface_weights(config)}


def uses_reference_features(config: Mapping[str, Any]) -> bool:
    """Whether the measure jobs read the ground truth's features (rule
    ``reference_features``): a metric that computes some from the ground truth is on."""
    measure = config["measure"]
    return bool(measure["identity"]["enabled"] or measure["arcface"]["enabled"])


# --------------------------------------------------------------------------- models


def model_options(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """What model ``name``'s training depends on: its block but ``NOT_TRAINING``."""
    model = config["models"][name]
    return canonical({k: v for k, v in model.items() if k not in NOT_TRAINING})


def model_weights(config: Mapping[str, Any], name: str) -> dict[str, str]:
    """Files a train job reads besides its pairs, as named inputs: LPIPS's checkpoints
    (validation), the VGG of a vgg loss (``vgg``), the checkpoint of ``init_from``
    (``init``: the DAG runs that model's training first)."""
    model = config["models"][name]
    files = measure_weights(config)
    if model["loss"] in VGG_LOSSES:
        files["vgg"] = weights_file(model["vgg"]["weights"])
    if model["init_from"] is not None:
        files["init"] = model_file(model["init_from"])
    return files


def model_sources(config: Mapping[str, Any], name: str) -> dict[str, str]:
    """The fingerprints of the local checkpoints a train job reads (LPIPS's, VGG's)."""
    model = config["models"][name]
    names = [model["vgg"]["weights"]] if model["loss"] in VGG_LOSSES else []
    return {**lpips_sources(config), **checkpoint_sources(config, names)}


def model_validation(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """How a model's validation is scored: the measure stage's crop border at its
    task's scale, and LPIPS's network (``None`` when LPIPS is off)."""
    task = config["models"][name]["task"]
    lpips = config["measure"]["lpips"]
    return {
        "crop_border": crop_border(config["measure"]["crop_border"], task["lr"], task["hr"]),
        "lpips": lpips["net"] if lpips["enabled"] else None,
    }


def model_gpus(config: Mapping[str, Any], name: str) -> int:
    return int(config["models"][name]["gpus"])


def model_histories(config: Mapping[str, Any]) -> list[str]:
    """Every model's history table (the report draws their curves)."""
    return [model_file(name, "history.parquet") for name in sorted(config["models"])]


# --------------------------------------------------------------------------- resources


def measure_gpus(config: Mapping[str, Any]) -> int:
    measure = config["measure"]
    networks = measure["lpips"]["enabled"] or measure["arcface"]["enabled"]
    return 1 if measure["gpu"] and networks else 0


def method_gpus(config: Mapping[str, Any], name: str) -> int:
    return 1 if get_arch(config["methods"][name]["arch"]).uses_gpu else 0


# --------------------------------------------------------------------------- code


def script_imports(script: str) -> tuple[str, ...]:
    """The ``pipeline`` modules a rule's script (``workflow/scripts/<script>.py``) imports."""
    path = SCRIPTS / f"{script}.py"
    found = file_imports(path)
    if not found:
        raise ValueError(f"{path}: imports nothing from pipeline")
    return found


def script_code(script: str, *modules: str) -> str:
    """Digest of the code a rule's script runs (and of ``modules`` besides)."""
    return code_digest(*script_imports(script), *modules)


def method_code(config: Mapping[str, Any], name: str) -> str:
    """The upscale script's code and the module of the method's architecture."""
    return script_code("upscale", get_arch(config["methods"][name]["arch"]).module)


def plan_code(config: Mapping[str, Any]) -> str:
    """The plan script's code and the modules of the enabled methods' architectures
    (their defaults and whether they need CUDA go into the plan)."""
    archs = {config["methods"][name]["arch"] for name in enabled(config["methods"])}
    return script_code("plan", *(get_arch(arch).module for arch in sorted(archs)))


def derived_code(slot: str) -> str:
    """The derive script's code and the module that declares the derived file."""
    return script_code("derive_weights", DERIVED[slot].make.__module__)
