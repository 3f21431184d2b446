# Download rules run on the submitting host (compute nodes are often offline):
# after `snakemake --until download`, nothing later needs the network.
localrules:
    download,


rule download:
    output:
        record="resources/data/{dataset}/source.json",
    log:
        "logs/download/{dataset}.log",
    conda:
        "../../envs/facebench.yaml"
    resources:
        mem_mb=1000,
    params:
        source=lambda wildcards: effective_source(
            config["datasets"][wildcards.dataset]["source"]
        ),
        code=code_digest("pipeline.sources"),
    script:
        "../scripts/download.py"


checkpoint catalog:
    input:
        record=rules.download.output.record,
    output:
        manifest=f"{RESULTS}/{{dataset}}/manifest.parquet",
    log:
        "logs/catalog/{dataset}.log",
    benchmark:
        f"{RESULTS}/benchmarks/catalog/{{dataset}}.tsv"
    conda:
        "../../envs/facebench.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        dataset=lambda wildcards: catalog_options(wildcards.dataset),
        code=code_digest("pipeline.catalog", "pipeline.datasets"),
    script:
        "../scripts/catalog.py"
