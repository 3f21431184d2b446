from pipeline import stages
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    stages.contact_sheet(
        snakemake.input.faces,
        snakemake.input.aligned,
        snakemake.params.size,
        snakemake.output.sheet,
        snakemake.params.options,
        template=snakemake.params.template,
    )
