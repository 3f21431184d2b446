from pipeline.data.sources import download_source
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    download_source(
        snakemake.params.source,
        snakemake.output.record,
        snakemake.params.lock_file,
        config_key=snakemake.params.config_key,
        # Safety limits, not results: changing them reruns nothing.
        archive_limits=snakemake.config["archives"],
    )
