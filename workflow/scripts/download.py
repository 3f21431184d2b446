from pathlib import Path

from pipeline.smk import job_log
from pipeline.sources import fetch_source

with job_log(snakemake.log[0]):
    record = Path(snakemake.output.record)
    fetch_source(
        snakemake.params.source,
        record.parent,
        record,
        snakemake.params.lock_file,
        config_key=snakemake.params.config_key,
    )
