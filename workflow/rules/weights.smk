# Every checkpoint is fetched on the submitting host before any GPU job:
# compute nodes may be offline, and a GPU job never downloads.
localrules:
    fetch_weights,


rule fetch_weights:
    output:
        checkpoint="resources/weights/{weights}.pth",
    log:
        "logs/fetch_weights/{weights}.log",
    conda:
        "../../envs/facebench.yaml"
    resources:
        mem_mb=2000,
    params:
        source=lambda wildcards: effective_source(config["weights"][wildcards.weights]),
        # Every fetch records its file's hash under a file lock: the lock file
        # is neither an input nor an output.
        lock_file="resources/sources.lock.json",
        code=code_digest("pipeline.weights"),
    script:
        "../scripts/fetch_weights.py"


rule fit_pulse_gaussian:
    input:
        mapping="resources/weights/{weights}.pth",
    output:
        fit="resources/weights/{weights}.gaussian.pt",
    log:
        "logs/fit_pulse_gaussian/{weights}.log",
    benchmark:
        "results/benchmarks/fit_pulse_gaussian/{weights}.tsv"
    conda:
        "../../envs/facebench.yaml"
    threads: 4
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        samples=config["pulse_gaussian"]["samples"],
        seed=config["pulse_gaussian"]["seed"],
        code=code_digest("pipeline.upscale.pulse"),
    script:
        "../scripts/fit_pulse_gaussian.py"
