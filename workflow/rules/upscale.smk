rule upscale:
    input:
        unpack(method_weights),
        lr=lr_inputs,
    output:
        sr=directory(
            f"{RESULTS}/{{dataset}}/sr/{{method}}/{{kernel}}/{{lr}}to{{hr}}/shard-{{shard}}"
        ),
    log:
        "logs/upscale/{dataset}/{method}/{kernel}/{lr}to{hr}/{shard}.log",
    benchmark:
        f"{RESULTS}/benchmarks/upscale/{{dataset}}/{{method}}/{{kernel}}/{{lr}}to{{hr}}/{{shard}}.tsv"
    conda:
        "../../envs/facebench.yaml"
    threads: 2
    resources:
        gpu=lambda wildcards: method_gpus(wildcards.method),
        mem_mb=8000,
        runtime=240,
    params:
        method=lambda wildcards: method_identity(wildcards.method),
        code=lambda wildcards: method_code(wildcards.method),
    script:
        "../scripts/upscale.py"
