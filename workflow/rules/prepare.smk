rule detect_faces:
    input:
        manifest=rules.catalog.output.manifest,
    output:
        faces=f"{RESULTS}/{{dataset}}/faces/shard-{{shard}}.parquet",
    log:
        "logs/detect_faces/{dataset}/{shard}.log",
    benchmark:
        f"{RESULTS}/benchmarks/detect_faces/{{dataset}}/{{shard}}.tsv"
    conda:
        "../../envs/facebench.yaml"
    threads: 4
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        detector=lambda wildcards: facebench.detector_options(config, wildcards.dataset),
        multi_face=config["prepare"]["multi_face"],
        no_face=config["prepare"]["no_face"],
        alignment=lambda wildcards: facebench.dataset_alignment(
            config, wildcards.dataset
        ),
        shard_size=config["shard_size"],
        code=facebench.script_code("detect_faces"),
    script:
        "../scripts/detect_faces.py"


rule merge_faces:
    input:
        faces=face_shards,
    output:
        faces=f"{RESULTS}/{{dataset}}/faces.parquet",
    log:
        "logs/merge_faces/{dataset}.log",
    conda:
        "../../envs/facebench.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        code=facebench.script_code("merge_tables"),
    script:
        "../scripts/merge_tables.py"


rule align:
    input:
        faces=rules.detect_faces.output.faces,
    output:
        aligned=directory(f"{RESULTS}/{{dataset}}/aligned/{{size}}/shard-{{shard}}"),
    log:
        "logs/align/{dataset}/{size}/{shard}.log",
    benchmark:
        f"{RESULTS}/benchmarks/align/{{dataset}}/{{size}}/{{shard}}.tsv"
    conda:
        "../../envs/facebench.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        code=facebench.script_code("align"),
    script:
        "../scripts/align.py"


rule contact_sheet:
    input:
        faces=rules.merge_faces.output.faces,
        aligned=lambda wildcards: expand(
            f"{RESULTS}/{{dataset}}/aligned/{{size}}/shard-{{shard}}",
            dataset=wildcards.dataset,
            size=contact_sheet_size(wildcards.dataset),
            shard=shards_of(wildcards.dataset),
        ),
    output:
        sheet=report(
            f"{RESULTS}/{{dataset}}/contact_sheet.png",
            caption="../report/contact_sheet.rst",
            category="Prepare",
            subcategory="{dataset}",
            labels={"data set": "{dataset}", "figure": "aligned faces"},
        ),
    log:
        "logs/contact_sheet/{dataset}.log",
    conda:
        "../../envs/facebench.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        size=lambda wildcards: contact_sheet_size(wildcards.dataset),
        options=facebench.canonical(config["prepare"]["contact_sheet"]),
        template=lambda wildcards: facebench.dataset_alignment(
            config, wildcards.dataset
        )["template"],
        code=facebench.script_code("contact_sheet"),
    script:
        "../scripts/contact_sheet.py"


rule downscale:
    input:
        aligned=f"{RESULTS}/{{dataset}}/aligned/{{size}}/shard-{{shard}}",
    output:
        lr=directory(
            f"{RESULTS}/{{dataset}}/lr{{lr}}/{{kernel}}/from{{size}}/shard-{{shard}}"
        ),
    log:
        "logs/downscale/{dataset}/{lr}-{kernel}-{size}/{shard}.log",
    conda:
        "../../envs/facebench.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        code=facebench.script_code("downscale"),
    script:
        "../scripts/downscale.py"
