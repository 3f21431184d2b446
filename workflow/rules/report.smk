rule report:
    input:
        per_image=rules.merge_metrics.output.table,
        summary=rules.summarize.output.csv,
        manifests=expand(
            f"{RESULTS}/{{dataset}}/manifest.parquet", dataset=enabled_datasets()
        ),
        faces=expand(f"{RESULTS}/{{dataset}}/faces.parquet", dataset=enabled_datasets()),
        histories=facebench.model_histories(config),
    output:
        report=report(
            directory(REPORT_DIR),
            htmlindex="index.html",
            caption="../report/benchmark_report.rst",
            category="Report",
            labels={"report": config["run_name"]},
        ),
    log:
        "logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/report.tsv"
    conda:
        "../../envs/facebench.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        report=facebench.canonical(config["report"]),
        benchmarks=f"{RESULTS}/benchmarks",
        code=facebench.script_code("report"),
        templates=data_digest("report/templates"),
    script:
        "../scripts/report.py"
