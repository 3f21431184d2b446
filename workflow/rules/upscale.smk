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
        plan=lambda wildcards: facebench.plan_options(config),
        costs=data_digest("upscale/costs.json"),
        code=facebench.plan_code(config),
    script:
        "../scripts/plan.py"


rule upscale:
    input:
        # The method's checkpoints (and files derived from them), named by weight slot.
        unpack(lambda wildcards: facebench.method_weights(config, wildcards.method)),
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
        gpu=lambda wildcards: facebench.method_gpus(config, wildcards.method),
        mem_mb=8000,
        runtime=240,
    params:
        method=lambda wildcards: facebench.method_identity(config, wildcards.method),
        cuda=lambda wildcards: facebench.cuda_policy(
            config, wildcards.method, host_has_cuda()
        ),
        # A local checkpoint replaced at its path fetches again (see checkpoint_sources).
        checkpoints=lambda wildcards: facebench.method_sources(config, wildcards.method),
        code=lambda wildcards: facebench.method_code(config, wildcards.method),
    script:
        "../scripts/upscale.py"
