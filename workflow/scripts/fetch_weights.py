from pipeline.data.weights import fetch_weights
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    fetch_weights(
        snakemake.wildcards.weights,
        snakemake.params.source,
        snakemake.output.checkpoint,
        snakemake.params.lock_file,
    )
