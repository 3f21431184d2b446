from pipeline.prepare.downscale import downscale
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    downscale(
        snakemake.input.aligned,
        snakemake.wildcards.lr,
        snakemake.wildcards.kernel,
        snakemake.output.lr,
    )
