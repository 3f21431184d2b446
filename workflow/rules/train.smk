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
