import sys

sys.path.insert(0, workflow.basedir)

from pipeline.smk import put_checkout_on_pythonpath

# Jobs (local, conda or SLURM) import the pipeline package of this checkout,
# the code whose digests the rules' params record.
put_checkout_on_pythonpath(workflow.basedir)

from pipeline.config import (
    alignment_options,
    crop_border,
    dataset_tasks,
    effective_source,
    identity_options,
    lr_source_size,
    normalize,
)
from pipeline.devices import host_has_cuda
from pipeline.provenance import code_digest, config_digest, data_digest
from pipeline.shards import manifest_shards
from pipeline.upscale import get_arch, weight_names

config.update(normalize(config))

RESULTS = "results"
REPORT_DIR = f"reports/{config['run_name']}"


wildcard_constraints:
    dataset=r"[A-Za-z0-9_]+",
    method=r"[A-Za-z0-9_]+",
    shard=r"\d{4}",
    size=r"\d+",
    lr=r"\d+",
    hr=r"\d+",
    kernel=r"[a-z0-9-]+",
    role=r"source|metadata",
    weights=r"[A-Za-z0-9_]+",


def shards_of(dataset):
    """Shard names of a data set, known once its catalog (a checkpoint) has run."""
    manifest = checkpoints.catalog.get(dataset=dataset).output.manifest
    return manifest_shards(manifest, config["shard_size"])


def enabled_datasets():
    return [name for name, dataset in config["datasets"].items() if dataset["enabled"]]


def catalog_options(name):
    """What a data set's catalog depends on: everything but where it comes from
    (the fetched record is the catalog's input) and how faces are detected and framed."""
    return {
        key: value
        for key, value in config["datasets"][name].items()
        if key not in ("source", "metadata", "detector", "alignment", "enabled", "tasks")
    }


def catalog_records(wildcards):
    """The fetched sources a catalog reads: the data set's, and its metadata's if any."""
    records = {"record": f"resources/data/{wildcards.dataset}/source/record.json"}
    if "metadata" in config["datasets"][wildcards.dataset]:
        records["metadata"] = f"resources/data/{wildcards.dataset}/metadata/record.json"
    return records


def enabled_methods():
    return [name for name, method in config["methods"].items() if method["enabled"]]


def method_identity(name):
    """What a method's results depend on: its options, and, for stochastic
    searches (PULSE), its batch size too: in float32 the search path depends
    on batch composition."""
    method = config["methods"][name]
    ignored = (
        {"enabled"}
        if get_arch(method["arch"]).stochastic
        else {"enabled", "batch_size"}
    )
    return {k: v for k, v in method.items() if k not in ignored}


def cuda_policy(name):
    """For a GPU-only method: what its jobs do without CUDA, and whether this host
    has CUDA, so that a method skipped on a CPU host runs again where CUDA is.
    ``None`` for every other method (their results do not depend on it)."""
    if not get_arch(config["methods"][name]["arch"]).gpu_only:
        return None
    return {"without_cuda": config["without_cuda"], "host_cuda": host_has_cuda()}


def plan_options():
    """Digest of what the plan reads of the config: tasks, kernels, each method's
    arch, seeds and steps (what its cost depends on), the CUDA policy. A digest
    because params compare as written, and config files may order keys any way."""
    return config_digest(
        {
            "tasks": {name: dataset_tasks(config, name) for name in enabled_datasets()},
            "kernels": config["kernels"],
            "methods": {
                name: {
                    key: config["methods"][name][key]
                    for key in ("arch", "seeds", "steps")
                    if key in config["methods"][name]
                }
                for name in enabled_methods()
            },
            "without_cuda": config["without_cuda"],
        }
    )


def method_code(name):
    return code_digest(
        "pipeline.stages", *get_arch(config["methods"][name]["arch"]).code_modules
    )


def method_weights(wildcards):
    """Fetched checkpoints of a method (and files derived from them), as named
    inputs ``weights_<slot>``. PULSE's Gaussian fit: the checkpoint its optional
    ``gaussian`` slot names (PULSE's gaussian_fit.pt, used as is), else the fit
    of its mapping network (rule fit_pulse_gaussian)."""
    method = config["methods"][wildcards.method]
    files = {
        f"weights_{slot}": f"resources/weights/{weights}.pth"
        for slot, weights in weight_names(method).items()
    }
    if method["arch"] == "pulse" and "gaussian" not in method:
        files["weights_gaussian"] = f"resources/weights/{method['mapping']}.gaussian.pt"
    return files


def measure_weights(wildcards):
    """Checkpoints the metric jobs read (LPIPS), as named inputs."""
    lpips = config["measure"]["lpips"]
    if not lpips["enabled"]:
        return {}
    return {
        "lpips_features": f"resources/weights/{lpips['features']}.pth",
        "lpips_linear": f"resources/weights/{lpips['linear']}.pth",
    }


def measure_gpus():
    measure = config["measure"]
    return 1 if measure["gpu"] and measure["lpips"]["enabled"] else 0


def method_gpus(name):
    return 1 if get_arch(config["methods"][name]["arch"]).uses_gpu else 0


def lr_inputs(wildcards):
    """The low-resolution inputs of a task's shard (made from prepare.lr_source_size)."""
    source = lr_source_size(config, {"lr": int(wildcards.lr), "hr": int(wildcards.hr)})
    # expand gives a list; the rule's named input `lr` is one folder.
    return expand(rules.downscale.output.lr, size=source, allow_missing=True)[0]


def contact_sheet_size(dataset):
    """The contact sheet shows the largest evaluation-size alignment of a data set."""
    return max(task["hr"] for task in dataset_tasks(config, dataset))


def measure_targets(wildcards):
    return [
        f"{RESULTS}/metrics/shards/{dataset}/{method}/{kernel}/{task['lr']}to{task['hr']}/shard-{shard}.parquet"
        for dataset in enabled_datasets()
        for shard in shards_of(dataset)
        for method in enabled_methods()
        for kernel in config["kernels"]
        for task in dataset_tasks(config, dataset)
    ]


def all_targets(wildcards):
    return [
        *(f"{RESULTS}/{dataset}/faces.parquet" for dataset in enabled_datasets()),
        *(f"{RESULTS}/{dataset}/contact_sheet.png" for dataset in enabled_datasets()),
        f"{RESULTS}/plan.md",
        f"{RESULTS}/metrics/per_image.parquet",
        f"{RESULTS}/metrics/summary.csv",
        REPORT_DIR,
    ]
