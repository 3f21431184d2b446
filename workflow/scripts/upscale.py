from pipeline import stages
from pipeline.devices import job_device
from pipeline.smk import job_log

with job_log(snakemake.log[0]):
    method_config = snakemake.config["methods"][snakemake.wildcards.method]
    # Batch size is an execution setting (in params only where it changes results).
    method = {**snakemake.params.method, "batch_size": method_config["batch_size"]}
    weight_files = {
        key.removeprefix("weights_"): path
        for key, path in snakemake.input.items()
        if key.startswith("weights_")
    }
    wants_gpu = int(snakemake.resources.get("gpu", 0)) > 0
    cuda = snakemake.params.cuda
    with job_device(wants_gpu, snakemake.config.get("gpu_lock_dir")) as device:
        stages.upscale(
            snakemake.input.lr,
            int(snakemake.wildcards.hr),
            method,
            snakemake.output.sr,
            device,
            weight_files=weight_files,
            skip_without_cuda=cuda is not None and cuda["without_cuda"] == "skip",
        )
