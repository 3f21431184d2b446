from pipeline.shards import merge_tables
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    merge_tables(snakemake.input, snakemake.output[0])
