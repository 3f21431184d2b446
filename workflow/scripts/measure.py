from pipeline import stages
from pipeline.devices import job_device
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    wildcards = snakemake.wildcards
    lpips = dict(snakemake.params.lpips)
    if lpips.pop("enabled"):
        lpips["features_path"] = snakemake.input.lpips_features
        lpips["linear_path"] = snakemake.input.lpips_linear
    else:
        lpips = None
    identity = dict(snakemake.params.identity)
    identity = identity if identity.pop("enabled") else None
    wants_gpu = int(snakemake.resources.get("gpu", 0)) > 0
    with job_device(wants_gpu, snakemake.config.get("gpu_lock_dir")) as device:
        stages.measure(
            faces_path=snakemake.input.faces,
            hr_dir=snakemake.input.hr,
            lr_dir=snakemake.input.lr,
            sr_dir=snakemake.input.sr,
            keys={
                "dataset": wildcards.dataset,
                "method": wildcards.method,
                "task": f"{wildcards.lr}to{wildcards.hr}",
                "lr_size": int(wildcards.lr),
                "hr_size": int(wildcards.hr),
            },
            seeds=snakemake.params.seeds,
            kernel=wildcards.kernel,
            crop_border=snakemake.params.crop_border,
            out=snakemake.output.table,
            lpips=lpips,
            identity=identity,
            device=device,
            eps_not_reached=snakemake.params.eps_not_reached,
        )
