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


rule training_crops:
    input:
        unpack(training_pairs),
        manifest=rules.catalog.output.manifest,
    output:
        crops=directory(
            f"{RESULTS}/{{dataset}}/training/{{kernel}}/{{lr}}to{{hr}}/{{split}}"
        ),
    log:
        "logs/training_crops/{dataset}/{kernel}/{lr}to{hr}/{split}.log",
    benchmark:
        f"{RESULTS}/benchmarks/training_crops/{{dataset}}/{{kernel}}/{{lr}}to{{hr}}/{{split}}.tsv"
    conda:
        "../../envs/facebench.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        code=facebench.script_code("training_crops"),
    script:
        "../scripts/training_crops.py"


rule train:
    input:
        unpack(model_pairs),
        unpack(lambda wildcards: facebench.model_weights(config, wildcards.model)),
    output:
        checkpoint=facebench.model_file("{model}"),
        history=facebench.model_file("{model}", "history.parquet"),
    log:
        "logs/train/{model}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{model}}.tsv"
    conda:
        "../../envs/facebench.yaml"
    threads: 2
    resources:
        gpu=lambda wildcards: facebench.model_gpus(config, wildcards.model),
        mem_mb=16000,
        runtime=2880,
    params:
        model=lambda wildcards: facebench.model_options(config, wildcards.model),
        validation=lambda wildcards: facebench.model_validation(config, wildcards.model),
        # A local LPIPS or VGG checkpoint replaced at its path fetches again.
        checkpoints=lambda wildcards: facebench.model_sources(config, wildcards.model),
        code=facebench.script_code("train"),
    script:
        "../scripts/train.py"
