# facebench: a reproducible benchmark for face super-resolution.
# This file only loads the config and includes the stages; the rules live in
# workflow/rules/, their logic in the pipeline package. common.smk checks the
# config against workflow/schemas/config.schema.yaml and fills in its defaults.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/upscale.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets,
