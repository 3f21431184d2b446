from pipeline.measure.summary import summarize
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    summarize(
        snakemake.input.per_image,
        n_boot=snakemake.params.bootstrap_samples,
        seed=snakemake.params.seed,
        out_csv=snakemake.output.csv,
        out_md=snakemake.output.markdown,
        manifests=snakemake.input.manifests,
    )
