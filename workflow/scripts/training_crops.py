from pipeline.smk import job_log
from pipeline.train.crops import cache_crops

with job_log(snakemake.log[0]):
    cache_crops(
        snakemake.input.manifest,
        snakemake.input.aligned,
        snakemake.input.lr,
        snakemake.wildcards.split,
        snakemake.output.crops,
    )
