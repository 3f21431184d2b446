from pipeline import stages
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    stages.align(
        snakemake.input.faces,
        int(snakemake.wildcards.size),
        snakemake.output.aligned,
        threads=snakemake.threads,
    )
