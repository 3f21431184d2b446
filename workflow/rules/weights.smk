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
        code=code_digest("pipeline.weights"),
    script:
        "../scripts/fetch_weights.py"
