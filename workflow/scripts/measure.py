from pipeline.measure.stage import measure
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    measure(
        snakemake.input.faces,
        snakemake.input.hr,
        snakemake.input.lr,
        snakemake.input.sr,
        snakemake.output.table,
        dataset=snakemake.wildcards.dataset,
        method=snakemake.wildcards.method,
        kernel=snakemake.wildcards.kernel,
        lr=snakemake.wildcards.lr,
        hr=snakemake.wildcards.hr,
        seeds=snakemake.params.seeds,
        crop_border=snakemake.params.crop_border,
        lpips=snakemake.params.lpips,
        identity=snakemake.params.identity,
        arcface=snakemake.params.arcface,
        checkpoints=snakemake.input,
        references=snakemake.input.get("references"),
        eps_not_reached=snakemake.params.eps_not_reached,
        gpus=snakemake.resources.gpu,
        gpu_lock_dir=snakemake.config["gpu_lock_dir"],
        threads=snakemake.threads,
    )
