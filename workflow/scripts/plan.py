import sys

from pipeline.plan import write_plan
from pipeline.smk import job_log

with job_log(snakemake.log[0]) as log:
    markdown = write_plan(
        snakemake.config,
        dict(zip(snakemake.params.datasets, snakemake.input.manifests, strict=True)),
        snakemake.params.host_cuda,
        snakemake.output.json,
        snakemake.output.markdown,
    )
    log.info("plan:\n%s", markdown)
    # Shown in the terminal too: the user sees the cost before the first upscale job.
    print(markdown, file=sys.__stderr__)
