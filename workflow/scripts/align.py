from pipeline.prepare.align import align
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    align(
        snakemake.input.faces,
        snakemake.wildcards.size,
        snakemake.output.aligned,
        threads=snakemake.threads,
    )
