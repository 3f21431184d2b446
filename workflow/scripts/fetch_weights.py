from pipeline.smk import job_log
from pipeline.weights import fetch_weights

with job_log(snakemake.log[0]):
    fetch_weights(
        snakemake.wildcards.weights,
        snakemake.params.source,
        snakemake.output.checkpoint,
        snakemake.params.lock_file,
    )
