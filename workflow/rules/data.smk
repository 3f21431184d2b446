# Download rules run on the submitting host (compute nodes are often offline):
# after `snakemake --until download`, nothing later needs the network.
localrules:
    download,


rule download:
    output:
        record="resources/data/{dataset}/{role}/record.json",
    log:
        "logs/download/{dataset}-{role}.log",
    conda:
        "../../envs/facebench.yaml"
    resources:
        mem_mb=1000,
    params:
        source=lambda wildcards: effective_source(
            config["datasets"][wildcards.dataset][wildcards.role]
        ),
        config_key=lambda wildcards: f"datasets.{wildcards.dataset}.{wildcards.role}",
        # A local path that changes (a file replaced, an image added) fetches again.
        fingerprint=lambda wildcards: facebench.source_fingerprint(
            config["datasets"][wildcards.dataset][wildcards.role]
        ),
        # Every download job updates the lock under a file lock: it is neither
        # an input nor an output.
        lock_file="resources/sources.lock.json",
        code=facebench.script_code("download"),
    script:
        "../scripts/download.py"


checkpoint catalog:
    input:
        unpack(catalog_records),
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
        dataset=lambda wildcards: facebench.catalog_options(config, wildcards.dataset),
        # Larger images become error rows: the limit changes the manifest.
        max_pixels=config["max_image_pixels"],
        # A changed local source reruns the catalog too, so that its fetch runs again
        # even after a refused fetch removed the record (pipeline.workflow.catalog_sources).
        sources=lambda wildcards: facebench.catalog_sources(config, wildcards.dataset),
        code=facebench.script_code("catalog"),
    script:
        "../scripts/catalog.py"
