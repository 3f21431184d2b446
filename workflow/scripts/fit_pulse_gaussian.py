import torch

from pipeline.smk import job_log
from pipeline.upscale.pulse import fit_gaussian, save_gaussian

with job_log(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    mapping = torch.load(snakemake.input.mapping, map_location="cpu", weights_only=True)
    fit = fit_gaussian(mapping, snakemake.params.samples, snakemake.params.seed, "cpu")
    save_gaussian(
        fit, snakemake.output.fit, n_samples=snakemake.params.samples, seed=snakemake.params.seed
    )
