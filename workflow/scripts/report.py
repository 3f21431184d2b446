from pathlib import Path

import pandas as pd

from pipeline.report import render_report
from pipeline.run_info import collect_run_info
from pipeline.smk import job_log

# Report options of the config passed through to render_report (absent ones keep its defaults).
OPTIONS = ("page_size", "max_images_per_category", "seeds_shown", "title")

with job_log(snakemake.log[0]):
    manifest_paths = list(snakemake.input.manifests)
    faces_paths = list(snakemake.input.faces)
    run_info = collect_run_info(
        config=snakemake.config,
        manifests=manifest_paths,
        faces=faces_paths,
        benchmarks_dir=Path("results/benchmarks"),
        repo=Path(snakemake.scriptdir).parents[1],
    )
    # results/<dataset>/manifest.parquet: the data set is the parent folder's name.
    options = {k: v for k, v in snakemake.params.report.items() if k in OPTIONS}
    render_report(
        per_image=pd.read_parquet(snakemake.input.per_image),
        summary=pd.read_csv(snakemake.input.summary),
        run_info=run_info,
        out_dir=Path(snakemake.output.report),
        manifests={Path(p).parent.name: pd.read_parquet(p) for p in manifest_paths},
        faces={Path(p).parent.name: pd.read_parquet(p) for p in faces_paths},
        **options,
    )
