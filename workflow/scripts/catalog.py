from pipeline.data.catalog import catalog
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    catalog(
        snakemake.input.record,
        snakemake.params.dataset,
        snakemake.output.manifest,
        metadata_record=snakemake.input.get("metadata"),
        max_pixels=snakemake.params.max_pixels,
    )
