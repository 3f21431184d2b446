# Local and ahead of every other ready job: it needs only the catalogs, while
# the first upscale job waits for detection, alignment and downscaling, so the
# plan and its cost estimate are printed before any upscaling starts.
localrules:
    plan,


rule plan:
    input:
        manifests=lambda wildcards: expand(
            rules.catalog.output.manifest, dataset=sorted(enabled_datasets())
        ),
    output:
        json=f"{RESULTS}/plan.json",
        markdown=f"{RESULTS}/plan.md",
    log:
        "logs/plan.log",
    priority: 100
    conda:
        "../../envs/facebench.yaml"
    resources:
        mem_mb=1000,
    params:
        datasets=sorted(enabled_datasets()),
        host_cuda=host_has_cuda(),
        plan=lambda wildcards: plan_options(),
        costs=data_digest("pipeline", "upscale/costs.json"),
        code=code_digest("pipeline.plan"),
    script:
        "../scripts/plan.py"


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
        cuda=lambda wildcards: cuda_policy(wildcards.method),
        code=lambda wildcards: method_code(wildcards.method),
    script:
        "../scripts/upscale.py"
