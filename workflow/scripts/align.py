from pipeline.prepare.align import align
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    align(
        snakemake.input.faces,
        snakemake.wildcards.size,
        snakemake.output.aligned,
        threads=snakemake.threads,
        # An execution setting: the catalog, whose param it is, refused larger images.
        max_pixels=snakemake.config["max_image_pixels"],
    )
