from pipeline.measure.reference import reference_features
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    reference_features(
        snakemake.input.faces,
        snakemake.input.hr,
        snakemake.output.table,
        identity=snakemake.params.identity,
        arcface=snakemake.params.arcface,
        checkpoints=snakemake.input,
        threads=snakemake.threads,
    )
