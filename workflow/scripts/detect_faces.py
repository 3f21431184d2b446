from pipeline.prepare.detect import detect_faces
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    detect_faces(
        manifest_path=snakemake.input.manifest,
        shard=snakemake.wildcards.shard,
        shard_size=snakemake.params.shard_size,
        detector=snakemake.params.detector,
        multi_face=snakemake.params.multi_face,
        no_face=snakemake.params.no_face,
        out=snakemake.output.faces,
        threads=snakemake.threads,
        alignment=snakemake.params.alignment,
        # An execution setting: the catalog, whose param it is, refused larger images.
        max_pixels=snakemake.config["max_image_pixels"],
    )
