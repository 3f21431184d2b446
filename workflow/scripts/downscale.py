from pipeline import stages
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    stages.downscale(
        snakemake.input.aligned,
        int(snakemake.wildcards.lr),
        snakemake.wildcards.kernel,
        snakemake.output.lr,
    )
