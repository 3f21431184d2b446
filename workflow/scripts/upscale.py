from pipeline.smk import job_log
from pipeline.upscale.stage import upscale

with job_log(snakemake.log[0]):
    upscale(
        snakemake.input.lr,
        snakemake.wildcards.hr,
        snakemake.config["methods"][snakemake.wildcards.method],
        snakemake.output.sr,
        weights=snakemake.input,
        without_cuda=snakemake.config["without_cuda"],
        gpus=snakemake.resources.gpu,
        gpu_lock_dir=snakemake.config["gpu_lock_dir"],
    )
