from pipeline.prepare.contact_sheet import write_contact_sheet
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    write_contact_sheet(
        snakemake.input.faces,
        snakemake.input.aligned,
        snakemake.params.size,
        snakemake.output.sheet,
        snakemake.params.options,
        template=snakemake.params.template,
    )
