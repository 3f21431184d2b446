from pipeline.smk import job_log
from pipeline.upscale.plan import plan

with job_log(snakemake.log[0]):
    plan(
        snakemake.config,
        snakemake.params.datasets,
        snakemake.input.manifests,
        snakemake.params.host_cuda,
        snakemake.output.json,
        snakemake.output.markdown,
    )
