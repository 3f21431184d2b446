import sys

sys.path.insert(0, workflow.basedir)

from pipeline.smk import put_checkout_on_pythonpath

# Jobs (local, conda or SLURM) import the pipeline package of this checkout,
# the code whose digests the rules' params record.
put_checkout_on_pythonpath(workflow.basedir)

from pipeline import workflow as facebench
from pipeline.config import crop_border, dataset_tasks, lr_source_size
from pipeline.data.sources import effective_source
from pipeline.devices import host_has_cuda
from pipeline.provenance import data_digest
from pipeline.shards import check_merge_inputs, manifest_shards
from snakemake.io import IOFile

# The schema's defaults, derived values, and every kind's and architecture's checks.
config.update(facebench.load_config(config))

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
    model=r"[A-Za-z0-9_]+",
    split=r"train|val|test",
    derived="|".join(facebench.derived_slots()) or "(?!)",


def shards_of(dataset):
    """Shard names of a data set, known once its catalog (a checkpoint) has run."""
    manifest = checkpoints.catalog.get(dataset=dataset).output.manifest
    return manifest_shards(manifest, config["shard_size"])


def enabled_datasets():
    return facebench.enabled(config["datasets"])


def enabled_methods():
    return facebench.enabled(config["methods"])


def catalog_records(wildcards):
    """The fetched sources a catalog reads: the data set's, and its metadata's if any."""
    records = {"record": f"resources/data/{wildcards.dataset}/source/record.json"}
    if "metadata" in config["datasets"][wildcards.dataset]:
        records["metadata"] = f"resources/data/{wildcards.dataset}/metadata/record.json"
    return records


def lr_inputs(wildcards):
    """The low-resolution inputs of a task's shard (made from prepare.lr_source_size)."""
    source = lr_source_size(config, {"lr": int(wildcards.lr), "hr": int(wildcards.hr)})
    # expand gives a list; the rule's named input `lr` is one folder.
    return expand(rules.downscale.output.lr, size=source, allow_missing=True)[0]


def reference_table(wildcards):
    """The shard's ground-truth features (rule reference_features), when a metric needs them."""
    if not facebench.uses_reference_features(config):
        return {}
    return {"references": rules.reference_features.output.table.format(**wildcards)}


def contact_sheet_size(dataset):
    """The contact sheet shows the largest evaluation-size alignment of a data set."""
    return max(task["hr"] for task in dataset_tasks(config, dataset))


def recorded_inputs(path):
    """The inputs Snakemake recorded for an output when it was made (None: unknown,
    and then the check leaves that output's inputs alone)."""
    try:
        return workflow.persistence.input(IOFile(path))
    except Exception:  # no metadata, or none to read in this mode or version
        return None


def merged_inputs(merge, merged, shards):
    """The shard tables of the merge `merge` (the keys of `shards`, each with the
    outputs it is made from), checked for files lost to a killed job
    (pipeline.shards.check_merge_inputs); not when it is forced to run."""
    forced = workflow.dag_settings.forceall or merge in workflow.dag_settings.forcerun
    if forced:
        return list(shards)
    return check_merge_inputs(merged, shards, merge, recorded_inputs)


def measure_targets(wildcards):
    """Every metric shard, with the outputs each is made from (the measure inputs)."""
    shards = {}
    for dataset in enabled_datasets():
        for shard in shards_of(dataset):
            for method in enabled_methods():
                for kernel in config["kernels"]:
                    for task in dataset_tasks(config, dataset):
                        values = dict(
                            dataset=dataset,
                            shard=shard,
                            method=method,
                            kernel=kernel,
                            lr=task["lr"],
                            hr=task["hr"],
                        )
                        source = lr_source_size(config, task)
                        shards[rules.measure.output.table.format(**values)] = [
                            rules.detect_faces.output.faces.format(**values),
                            rules.align.output.aligned.format(
                                **values, size=task["hr"]
                            ),
                            rules.downscale.output.lr.format(**values, size=source),
                            rules.upscale.output.sr.format(**values),
                        ]
    return merged_inputs("merge_metrics", rules.merge_metrics.output.table, shards)


def face_shards(wildcards):
    """The detection shards of a data set (made from its manifest, a checkpoint)."""
    shards = expand(
        rules.detect_faces.output.faces,
        dataset=wildcards.dataset,
        shard=shards_of(wildcards.dataset),
    )
    merged = rules.merge_faces.output.faces.format(dataset=wildcards.dataset)
    return merged_inputs("merge_faces", merged, dict.fromkeys(shards, ()))


def all_targets(wildcards):
    return [
        *(f"{RESULTS}/{dataset}/faces.parquet" for dataset in enabled_datasets()),
        *(f"{RESULTS}/{dataset}/contact_sheet.png" for dataset in enabled_datasets()),
        f"{RESULTS}/plan.md",
        f"{RESULTS}/metrics/per_image.parquet",
        f"{RESULTS}/metrics/summary.csv",
        *facebench.model_histories(config),
        REPORT_DIR,
    ]


def training_pairs(wildcards):
    """Every shard's aligned crops and LR inputs of a data set, for a task and kernel."""
    task = {"lr": int(wildcards.lr), "hr": int(wildcards.hr)}
    values = dict(wildcards.items())
    shards = shards_of(wildcards.dataset)
    return {
        "aligned": [
            rules.align.output.aligned.format(**values, size=task["hr"], shard=shard)
            for shard in shards
        ],
        "lr": [
            rules.downscale.output.lr.format(
                **values, size=lr_source_size(config, task), shard=shard
            )
            for shard in shards
        ],
    }


def model_pairs(wildcards):
    """The cached pairs a model trains and validates on."""
    model = config["models"][wildcards.model]
    crops = rules.training_crops.output.crops
    common = dict(kernel=model["kernel"], **model["task"])
    return {
        "train": crops.format(**common, dataset=model["dataset"], split=model["split"]),
        "val": crops.format(
            **common,
            dataset=model["val_dataset"] or model["dataset"],
            split=model["val_split"],
        ),
    }
