from pathlib import Path

import pandas as pd

from pipeline.report import render_report
from pipeline.run_info import collect_run_info
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    summary = pd.read_csv(snakemake.input.summary)
    run_info = collect_run_info(
        config=snakemake.config,
        manifests=snakemake.input.manifests,
        faces=snakemake.input.faces,
        benchmarks_dir=Path("results/benchmarks"),
        repo=Path(snakemake.scriptdir).parents[1],
    )
    render_report(
        per_image=pd.read_parquet(snakemake.input.per_image),
        # Per-category rows belong to the category galleries (not in this report yet).
        summary=summary[summary["category"] == "all"],
        run_info=run_info,
        out_dir=Path(snakemake.output.index).parent,
        gallery_rows=snakemake.params.report["gallery_rows"],
        title=snakemake.params.report["title"],
    )
