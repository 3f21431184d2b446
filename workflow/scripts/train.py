from pipeline.smk import job_log
from pipeline.train.stage import train_model

with job_log(snakemake.log[0]):
    validation = snakemake.params.validation
    lpips = None
    if validation["lpips"] is not None:
        lpips = {
            "net": validation["lpips"],
            "features": snakemake.input.lpips_features,
            "linear": snakemake.input.lpips_linear,
        }
    train_model(
        snakemake.wildcards.model,
        snakemake.config["models"][snakemake.wildcards.model],
        snakemake.input.train,
        snakemake.input.val,
        snakemake.output.checkpoint,
        snakemake.output.history,
        crop_border=validation["crop_border"],
        lpips=lpips,
        vgg=snakemake.input.get("vgg"),
        init=snakemake.input.get("init"),
        threads=snakemake.threads,
        gpus=snakemake.resources.gpu,
        gpu_lock_dir=snakemake.config["gpu_lock_dir"],
    )
