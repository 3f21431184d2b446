from pipeline import stages
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    wildcards = snakemake.wildcards
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
    )
