from pipeline.report import report
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    report(
        snakemake.input.per_image,
        snakemake.input.summary,
        snakemake.input.manifests,
        snakemake.input.faces,
        snakemake.output.report,
        config=snakemake.config,
        benchmarks=snakemake.params.benchmarks,
        options=snakemake.params.report,
        histories=snakemake.input.histories,
    )
