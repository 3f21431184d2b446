rule measure:
    input:
        faces=rules.detect_faces.output.faces,
        hr=f"{RESULTS}/{{dataset}}/aligned/{{hr}}/shard-{{shard}}",
        lr=rules.downscale.output.lr,
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
        mem_mb=2000,
        runtime=60,
    params:
        seeds=lambda wildcards: config["methods"][wildcards.method]["seeds"],
        crop_border=lambda wildcards: crop_border(
            config["measure"]["crop_border"], int(wildcards.lr), int(wildcards.hr)
        ),
        code=code_digest("pipeline.metrics", "pipeline.stages"),
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
    output:
        csv=f"{RESULTS}/metrics/summary.csv",
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
        code=code_digest("pipeline.aggregate"),
    script:
        "../scripts/summarize.py"
