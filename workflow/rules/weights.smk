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
        # A checkpoint replaced at the same local path fetches again.
        fingerprint=lambda wildcards: facebench.source_fingerprint(
            config["weights"][wildcards.weights]
        ),
        # Every fetch records its file's hash under a file lock: the lock file
        # is neither an input nor an output.
        lock_file="resources/sources.lock.json",
        code=facebench.script_code("fetch_weights"),
    script:
        "../scripts/fetch_weights.py"


# A file an architecture computes once from one of its checkpoints, for the
# methods that leave the weight slot it fills empty (PULSE's Gaussian fit of
# its mapping network); the architecture's spec declares it.
rule derive_weights:
    input:
        source="resources/weights/{weights}.pth",
    output:
        derived="resources/weights/{weights}.{derived}.pt",
    log:
        "logs/derive_weights/{weights}.{derived}.log",
    benchmark:
        "results/benchmarks/derive_weights/{weights}.{derived}.tsv"
    conda:
        "../../envs/facebench.yaml"
    threads: 4
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        options=lambda wildcards: facebench.derived_options(config, wildcards.derived),
        # A local checkpoint replaced at its path fetches again.
        checkpoints=lambda wildcards: facebench.checkpoint_sources(
            config, [wildcards.weights]
        ),
        code=lambda wildcards: facebench.derived_code(wildcards.derived),
    script:
        "../scripts/derive_weights.py"
