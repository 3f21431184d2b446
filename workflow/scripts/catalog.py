from pipeline import stages
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    stages.catalog(
        snakemake.input.record,
        snakemake.params.dataset,
        snakemake.output.manifest,
        metadata_record=snakemake.input.get("metadata"),
    )
