rule report:
    input:
        per_image=rules.merge_metrics.output.table,
        summary=rules.summarize.output.csv,
        manifests=expand(
            f"{RESULTS}/{{dataset}}/manifest.parquet", dataset=enabled_datasets()
        ),
        faces=expand(f"{RESULTS}/{{dataset}}/faces.parquet", dataset=enabled_datasets()),
    output:
        index=f"{REPORT_DIR}/index.html",
    log:
        "logs/report.log",
    conda:
        "../../envs/facebench.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        report=config["report"],
        code=code_digest("pipeline.report", "pipeline.run_info"),
    script:
        "../scripts/report.py"
