from pipeline import stages
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    stages.merge_tables(list(snakemake.input), snakemake.output[0])
