import sys

sys.path.insert(0, workflow.basedir)

from pipeline.smk import put_checkout_on_pythonpath

# Jobs (local, conda or SLURM) import the pipeline package of this checkout,
# the code whose digests the rules' params record.
put_checkout_on_pythonpath(workflow.basedir)

from pipeline.config import normalize, effective_source, crop_border
from pipeline.provenance import code_digest
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


def shards_of(dataset):
    """Shard names of a data set, known once its catalog (a checkpoint) has run."""
    manifest = checkpoints.catalog.get(dataset=dataset).output.manifest
    return manifest_shards(manifest, config["shard_size"])


def enabled_datasets():
    return [name for name, dataset in config["datasets"].items() if dataset["enabled"]]


def catalog_options(name):
    """What a data set's catalog depends on: everything but where it comes from
    (the fetched record is the catalog's input) and how faces are detected."""
    return {
        key: value
        for key, value in config["datasets"][name].items()
        if key not in ("source", "detector", "enabled")
    }


def enabled_methods():
    return [name for name, method in config["methods"].items() if method["enabled"]]


def method_identity(name):
    """What a method's results depend on: its options, not how it is batched."""
    return {
        k: v
        for k, v in config["methods"][name].items()
        if k not in ("batch_size", "enabled")
    }


def method_code(name):
    return code_digest(
        "pipeline.stages", *get_arch(config["methods"][name]["arch"]).code_modules
    )


def method_weights(wildcards):
    """Fetched checkpoints of a method, as named inputs ``weights_<slot>``."""
    return {
        f"weights_{slot}": f"resources/weights/{weights}.pth"
        for slot, weights in weight_names(config["methods"][wildcards.method]).items()
    }


def method_gpus(name):
    return 1 if get_arch(config["methods"][name]["arch"]).uses_gpu else 0


def measure_targets(wildcards):
    return [
        f"{RESULTS}/metrics/shards/{dataset}/{method}/{kernel}/{task['lr']}to{task['hr']}/shard-{shard}.parquet"
        for dataset in enabled_datasets()
        for shard in shards_of(dataset)
        for method in enabled_methods()
        for kernel in config["kernels"]
        for task in config["tasks"]
    ]


def all_targets(wildcards):
    return [
        *(f"{RESULTS}/{dataset}/faces.parquet" for dataset in enabled_datasets()),
        f"{RESULTS}/metrics/per_image.parquet",
        f"{RESULTS}/metrics/summary.csv",
        f"{REPORT_DIR}/index.html",
    ]
