# Made once per ground-truth shard and read by every measure job of it (all
# methods, tasks of that size, kernels and seeds).
rule reference_features:
    input:
        unpack(lambda wildcards: facebench.arcface_weights(config)),
        faces=rules.detect_faces.output.faces,
        hr=f"{RESULTS}/{{dataset}}/aligned/{{hr}}/shard-{{shard}}",
    output:
        table=f"{RESULTS}/{{dataset}}/reference/{{hr}}/shard-{{shard}}.parquet",
    log:
        "logs/reference_features/{dataset}/{hr}/{shard}.log",
    benchmark:
        f"{RESULTS}/benchmarks/reference_features/{{dataset}}/{{hr}}/{{shard}}.tsv"
    conda:
        "../../envs/facebench.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        identity=lambda wildcards: facebench.identity_options(config, wildcards.dataset),
        arcface=facebench.arcface_options(config),
        # A local ArcFace checkpoint replaced at its path fetches again.
        checkpoints=lambda wildcards: facebench.arcface_sources(config),
        code=facebench.script_code("reference_features"),
    script:
        "../scripts/reference_features.py"


rule measure:
    input:
        unpack(lambda wildcards: facebench.measure_weights(config)),
        unpack(reference_table),
        faces=rules.detect_faces.output.faces,
        hr=f"{RESULTS}/{{dataset}}/aligned/{{hr}}/shard-{{shard}}",
        lr=lr_inputs,
        sr=rules.upscale.output.sr,
    output:
        table=f"{RESULTS}/metrics/shards/{{dataset}}/{{method}}/{{kernel}}/{{lr}}to{{hr}}/shard-{{shard}}.parquet",
    log:
        "logs/measure/{dataset}/{method}/{kernel}/{lr}to{hr}/{shard}.log",
    benchmark:
        f"{RESULTS}/benchmarks/measure/{{dataset}}/{{method}}/{{kernel}}/{{lr}}to{{hr}}/{{shard}}.tsv"
    conda:
        "../../envs/facebench.yaml"
    threads: 1
    resources:
        gpu=facebench.measure_gpus(config),
        mem_mb=4000,
        runtime=60,
    params:
        seeds=lambda wildcards: config["methods"][wildcards.method]["seeds"],
        crop_border=lambda wildcards: crop_border(
            config["measure"]["crop_border"], int(wildcards.lr), int(wildcards.hr)
        ),
        lpips=facebench.lpips_options(config),
        identity=lambda wildcards: facebench.identity_options(config, wildcards.dataset),
        arcface=facebench.arcface_options(config),
        eps_not_reached=config["measure"]["eps_not_reached"],
        # A local LPIPS or ArcFace checkpoint replaced at its path fetches again.
        checkpoints=lambda wildcards: facebench.measure_sources(config),
        code=facebench.script_code("measure"),
    script:
        "../scripts/measure.py"


rule merge_metrics:
    input:
        tables=measure_targets,
    output:
        table=f"{RESULTS}/metrics/per_image.parquet",
    log:
        "logs/merge_metrics.log",
    conda:
        "../../envs/facebench.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        code=facebench.script_code("merge_tables"),
    script:
        "../scripts/merge_tables.py"


rule summarize:
    input:
        per_image=rules.merge_metrics.output.table,
        manifests=lambda wildcards: expand(
            f"{RESULTS}/{{dataset}}/manifest.parquet", dataset=enabled_datasets()
        ),
    output:
        csv=report(
            f"{RESULTS}/metrics/summary.csv",
            caption="../report/summary.rst",
            category="Summary",
            labels={"table": "summary with 95 % confidence intervals"},
        ),
        markdown=f"{RESULTS}/metrics/summary.md",
    log:
        "logs/summarize.log",
    conda:
        "../../envs/facebench.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        bootstrap_samples=config["summary"]["bootstrap_samples"],
        seed=config["summary"]["seed"],
        code=facebench.script_code("summarize"),
    script:
        "../scripts/summarize.py"
