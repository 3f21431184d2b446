from pipeline.smk import job_log
from pipeline.upscale.derive import derive_weights

with job_log(snakemake.log[0]):
    derive_weights(
        snakemake.wildcards.derived,
        snakemake.input.source,
        snakemake.output.derived,
        snakemake.params.options,
        threads=snakemake.threads,
    )
