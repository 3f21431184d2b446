rule measure:
    input:
        unpack(measure_weights),
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
        gpu=measure_gpus(),
        mem_mb=4000,
        runtime=60,
    params:
        seeds=lambda wildcards: config["methods"][wildcards.method]["seeds"],
        crop_border=lambda wildcards: crop_border(
            config["measure"]["crop_border"], int(wildcards.lr), int(wildcards.hr)
        ),
        lpips={
            k: v
            for k, v in config["measure"]["lpips"].items()
            if k in ("enabled", "net", "batch_size")
        },
        identity=lambda wildcards: identity_options(config, wildcards.dataset),
        eps_not_reached=config["measure"]["eps_not_reached"],
        code=code_digest(
            "pipeline.metrics",
            "pipeline.stages",
            "pipeline.perceptual",
            "pipeline.identity",
            "pipeline.status",
        ),
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
        code=code_digest("pipeline.aggregate", "pipeline.metrics", "pipeline.status"),
    script:
        "../scripts/summarize.py"
