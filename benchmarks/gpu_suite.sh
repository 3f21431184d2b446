#!/usr/bin/env bash
# benchmarks/gpu_suite.py on a lent GPU machine, in one prepared call
# (benchmarks/README.md, "The GPU suite").
#
#   bash benchmarks/gpu_suite.sh prepare   # here, with PyPI: fills .gpu_carry/ (about 36 MB)
#   bash benchmarks/gpu_suite.sh run       # there, as the device tool's command, carrying .gpu_carry
#
# The GPU machine is bare and offline, but its python3 (3.12) has torch, torchvision,
# numpy, pandas, pyarrow, Pillow, scipy, tqdm, PyYAML and attrs: torch is not carried
# (a CUDA wheel is gigabytes, the tree that travels at most 64 MiB). What it lacks
# travels in .gpu_carry/ (ignored by git): the wheels of lpips, dlib-bin and jsonschema
# with the three it needs (the training section checks the recipes' model blocks with
# pipeline.config), at the versions of the venv that prepares them, and dlib's
# face-recognition network and 5-point landmarks (31 MB) for the identity section. `run` installs the wheels into a
# folder of its own and writes $OUT/gpu_suite.json (after each section, so a run
# killed at its limit still brings the finished sections home), $OUT/gpu_suite.log
# and $OUT/nvidia-smi.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

CARRY=.gpu_carry
# The device machine's interpreter, for the wheels' tags (the device README's recipe).
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64
           manylinux2014_x86_64 manylinux1_x86_64)
# The suite's own budget; the timeout leaves room for the imports and CUDA's start.
BUDGET_SECONDS=${BUDGET_SECONDS:-420}
TIMEOUT_SECONDS=${TIMEOUT_SECONDS:-480}
# A rehearsal on a machine without CUDA: DEVICE=cpu SUITE_ARGS=--quick.
DEVICE=${DEVICE:-cuda}

prepare() {
    local python=${PYTHON:-.venv/bin/python}
    rm -rf "$CARRY"
    mkdir -p "$CARRY/wheels" "$CARRY/dlib_models"
    local pins
    pins=$("$python" -c 'from importlib.metadata import version
names = ("dlib-bin", "lpips", "jsonschema", "jsonschema-specifications", "referencing", "rpds-py")
print(" ".join(f"{name}=={version(name)}" for name in names))')
    local platform_args=()
    for platform in "${PLATFORMS[@]}"; do platform_args+=(--platform "$platform"); done
    # shellcheck disable=SC2086  # requirement words
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp "${platform_args[@]}" -d "$CARRY/wheels" $pins
    "$python" - "$CARRY/dlib_models" <<'PY'
import shutil
import sys

from pipeline.prepare.dlib_models import FACE_RECOGNITION, SHAPE_5, model_path

for name in (FACE_RECOGNITION, SHAPE_5):
    shutil.copyfile(model_path(name), f"{sys.argv[1]}/{name}")
PY
    du -sh "$CARRY"
}

run() {
    : "${OUT:?OUT (the folder whose files come back) is not set}"
    [ -d "$CARRY/wheels" ] || { echo "no $CARRY/wheels: run '$0 prepare' here first and carry $CARRY" >&2; exit 2; }
    local site=/tmp/gpu_suite_site
    nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "$CARRY"/wheels/lpips-*.whl
    # Without dlib (another Python there, say) the suite still runs and says why
    # the identity section is empty.
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "$CARRY"/wheels/dlib_bin-*.whl || echo "dlib did not install" >&2
    # Without jsonschema (rpds-py's wheel is cp312 only) the training section fails,
    # recorded as such, and the others run.
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "$CARRY"/wheels/{jsonschema,jsonschema_specifications,referencing,rpds_py}-*.whl \
        || echo "jsonschema did not install" >&2
    export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1
    set -o pipefail
    # shellcheck disable=SC2086  # SUITE_ARGS: words
    timeout "$TIMEOUT_SECONDS" python3 benchmarks/gpu_suite.py --device "$DEVICE" \
        --budget-seconds "$BUDGET_SECONDS" --dlib-models "$CARRY/dlib_models" \
        --out "$OUT/gpu_suite.json" ${SUITE_ARGS:-} 2>&1 | tee "$OUT/gpu_suite.log"
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
