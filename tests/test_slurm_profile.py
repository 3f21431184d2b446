"""The SLURM profile (workflow/profiles/slurm), run through a fake SLURM.

tests/fake_slurm/ holds stand-ins for sbatch, srun, sacct, squeue, ... that run
every job on this machine and log each submission (see fake_slurm.py). Put
first on PATH, they let snakemake-executor-plugin-slurm submit a workflow for
real, and the tests check what reached ``sbatch``: which rules were submitted
and with which partition, memory, wall time, CPUs and GPUs.

The fake cluster's partitions come from the profile's partitions.yaml; the
fake sbatch rejects a GPU request on a partition without GPUs, as a cluster
would.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
PROFILE = REPO / "workflow" / "profiles" / "slurm"
FAKE_SLURM = TESTS / "fake_slurm"

# The workflow's rules; `download`, `fetch_weights`, `plan` and `all` run on the submitting host.
WORKFLOW_RULES = {
    "download", "fetch_weights", "plan", "derive_weights", "catalog", "detect_faces", "align",
    "downscale", "upscale", "reference_features", "measure", "merge_faces", "merge_metrics",
    "summarize", "report", "contact_sheet", "training_crops", "train",
}  # fmt: skip
LOCAL_RULES = {"all", "download", "fetch_weights", "plan"}
# Rules the tiny project does not need (it has no PULSE method).
UNUSED_BY_TINY_PROJECT = {"derive_weights"}

HAVE_PLUGIN = all(
    importlib.util.find_spec(name) is not None
    for name in ("snakemake_executor_plugin_slurm", "snakemake_executor_plugin_slurm_jobstep")
)
requires_plugin = pytest.mark.skipif(
    not HAVE_PLUGIN,
    reason="snakemake-executor-plugin-slurm (with its -jobstep companion) is not installed",
)

# The plugin's defaults wait 40 s before the first status query and 10 s
# between queries: right for a cluster, wasted time for jobs that end in seconds.
FAST_POLLING = ("--slurm-init-seconds-before-status-checks", "1",
                "--seconds-between-status-checks", "1")  # fmt: skip


def load_profile(folder: Path = PROFILE) -> dict:
    return yaml.safe_load((folder / "config.yaml").read_text())


def fake_partitions(folder: Path = PROFILE) -> tuple[list[str], list[str]]:
    """(all partitions, those with GPUs), from the profile's partition file."""
    profile = load_profile(folder)
    config = yaml.safe_load((folder / profile["slurm-partition-config"]).read_text())
    limits = config["partitions"]
    gpu = [name for name, limit in limits.items() if (limit or {}).get("max_gpu", 0) > 0]
    return list(limits), gpu


def expected_resources(profile: dict, rule: str, own: dict | None = None) -> dict:
    """A rule's resources: set-resources over the rule's own over default-resources."""
    resources = dict(profile.get("default-resources") or {})
    resources.update(own or {})
    resources.update((profile.get("set-resources") or {}).get(rule) or {})
    return resources


class FakeCluster:
    """A state folder for tests/fake_slurm plus the environment that selects it."""

    def __init__(self, root: Path, profile: Path) -> None:
        self.state = root / "fake_slurm_state"
        names, gpu = fake_partitions(profile)
        # the first partition without GPUs is the cluster's default
        default = next(name for name in names if name not in gpu)
        env = {
            key: value
            for key, value in os.environ.items()
            # a test run inside a real SLURM job must not leak that job's settings
            if not key.startswith(("SLURM_", "SBATCH_", "SRUN_", "SNAKEMAKE_PROFILE"))
        }
        path = os.pathsep.join([str(FAKE_SLURM), str(Path(sys.executable).parent)])
        env.update(
            PATH=f"{path}{os.pathsep}{env.get('PATH', '')}",
            PYTHONPATH=str(REPO),
            FAKE_SLURM_DIR=str(self.state),
            FAKE_SLURM_PYTHON=sys.executable,
            FAKE_SLURM_PARTITIONS=",".join(n + ("*" if n == default else "") for n in names),
            FAKE_SLURM_GPU_PARTITIONS=",".join(gpu),
        )
        self.env = env
        self.default_partition = default
        self.gpu_partitions = set(gpu)

    def submissions(self) -> list[dict]:
        """Every sbatch call, with the rule, job and attempt read from the job script."""
        log = self.state / "sbatch.jsonl"
        records = (
            [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        )
        for record in records:
            record.update(parse_job_command(record["script"]))
        return records

    def steps(self) -> list[dict]:
        log = self.state / "srun.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def job(self, job_id: str) -> dict:
        return json.loads((self.state / "jobs" / f"{job_id}.json").read_text())

    def command(self, name: str, *args: str) -> subprocess.CompletedProcess:
        """Run one of the fake SLURM commands directly."""
        return subprocess.run(
            [str(FAKE_SLURM / name), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )


def parse_job_command(script: str) -> dict:
    """Rule, target job and attempt of the snakemake call in a job script."""
    line = next((x for x in script.splitlines() if " -m snakemake " in x), None)
    assert line is not None, f"no snakemake call in the job script:\n{script}"
    words = shlex.split(line)
    target = words[words.index("--target-jobs") + 1]
    return {
        "rule": target.split(":", 1)[0],
        "target": target,
        "attempt": int(words[words.index("--attempt") + 1]),
    }


def requested_gpus(options: dict) -> int:
    """GPUs an sbatch call asks for, through --gpus[=model:]N or a gpu GRES."""
    if "gpus" in options:
        return int(str(options["gpus"]).rsplit(":", 1)[-1])
    match = re.search(r"(?:^|,)gpu(?::[\w.]+)?(?::(\d+))?", str(options.get("gres", "")))
    return int(match.group(1) or 1) if match else 0


def run_snakemake(
    cluster: FakeCluster, workdir: Path, *args: str, timeout: int = 300
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *args, *FAST_POLLING],
        cwd=workdir,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        logs = sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
        tails = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in logs[-3:])
        raise AssertionError(
            f"snakemake failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-6000:]}\n{tails}"
        )
    return result


def copy_profile(destination: Path, **set_resources: dict) -> Path:
    """A copy of the repository's profile, with extra set-resources if given."""
    shutil.copytree(PROFILE, destination)
    if set_resources:
        profile = load_profile(destination)
        for rule, resources in set_resources.items():
            profile["set-resources"].setdefault(rule, {}).update(resources)
        (destination / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return destination


def check_submission(
    record: dict, resources: dict, *, threads: int, gpus: int, cluster: FakeCluster
) -> None:
    """sbatch flags of one submission against the resources the profile promises."""
    options, label = record["options"], record["target"]
    assert options.get("mem") == str(resources["mem_mb"]), label
    assert options.get("time") == str(resources["runtime"]), label
    cpus = resources.get("cpus_per_task", threads)
    assert options.get("cpus-per-task") == str(threads if cpus == "threads" else cpus), label
    assert requested_gpus(options) == gpus, label
    partition = options.get("partition")
    if "slurm_partition" in resources:
        assert partition == resources["slurm_partition"], label
    elif gpus:
        assert partition in cluster.gpu_partitions, label
    else:
        assert partition not in cluster.gpu_partitions, label


# ------------------------------------------------------------ the profile file


def test_profile_sizes_every_submitted_rule():
    profile = load_profile()
    assert profile["executor"] == "slurm"
    assert int(profile["jobs"]) >= 1 and int(profile["latency-wait"]) >= 5
    defaults = profile["default-resources"]
    for key in ("mem_mb", "runtime", "cpus_per_task"):
        assert key in defaults, key
    set_resources = profile["set-resources"]
    assert set(set_resources) == WORKFLOW_RULES - LOCAL_RULES
    for rule, resources in set_resources.items():
        assert int(resources["mem_mb"]) > 0 and int(resources["runtime"]) > 0, rule
    names, gpu = fake_partitions()
    assert gpu and set(names) - set(gpu), "needs a partition with GPUs and one without"


def test_profile_rule_names_are_the_workflows(tiny_project):
    # snakemake silently ignores set-resources for a rule that does not exist
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(tiny_project), "--configfile", str(tiny_project / "config.yaml"),
         "--list-rules"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    rules = set(result.stdout.split())
    assert rules == WORKFLOW_RULES | {"all"}, "update WORKFLOW_RULES and the profile"
    assert set(load_profile()["set-resources"]) <= rules - LOCAL_RULES


# ------------------------------------------------------------- the fake SLURM


@pytest.fixture
def cluster(tmp_path: Path) -> FakeCluster:
    return FakeCluster(tmp_path, PROFILE)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "nosuch"], "Invalid partition"),
        (["--gpus=1"], "Requested node configuration is not available"),
        (["-t", "2h"], "Invalid --time"),
        (["--mem", "4G", "--mem-per-cpu", "100"], "mutually exclusive"),
        (["--array=1-3"], "job arrays"),
    ],
)
def test_fake_sbatch_rejects_what_a_cluster_rejects(cluster, args, message):
    # the default partition has no GPUs
    result = cluster.command("sbatch", "--parsable", *args, "--wrap", "true")
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert not (cluster.state / "sbatch.jsonl").exists()


def test_fake_background_jobs_report_running_then_final_state(cluster, tmp_path):
    cluster.env["FAKE_SLURM_MODE"] = "background"
    gate = tmp_path / "go"
    wait = f"while [ ! -e {gate} ]; do sleep 0.05; done"
    common = ["--parsable", "--job-name", "run1", "-D", str(tmp_path)]
    waiting = cluster.command("sbatch", *common, "--wrap", wait).stdout.strip()
    failing = cluster.command("sbatch", *common, "--wrap", f"{wait}; exit 3").stdout.strip()
    cancelled = cluster.command("sbatch", *common, "--wrap", "sleep 60").stdout.strip()

    def states() -> dict[str, str]:
        query = ["-X", "--parsable2", "--noheader", "--format=JobIdRaw,State", "--name", "run1"]
        out = cluster.command("sacct", *query).stdout
        return dict(line.split("|") for line in out.split())

    deadline = time.monotonic() + 20
    while set(states().values()) != {"RUNNING"} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert states() == dict.fromkeys((waiting, failing, cancelled), "RUNNING")
    assert cluster.command("scancel", cancelled).returncode == 0
    gate.touch()
    while time.monotonic() < deadline and "RUNNING" in states().values():
        time.sleep(0.05)
    assert states() == {waiting: "COMPLETED", failing: "FAILED", cancelled: "CANCELLED"}
    assert cluster.job(failing)["exit_code"] == 3
    queue = cluster.command("squeue", "--format=%i|%T", "--noheader", "--name", "run1")
    assert queue.stdout == "", "squeue without --states lists only unfinished jobs"


# -------------------------------------------------- a toy workflow, submitted

TOY_SNAKEFILE = """
localrules: all, download

# like the real workflow: the GPU count of `upscale` depends on the method
GPUS = {"neural": 1, "bicubic": 0}

rule all:
    input: "results/merged.txt"

rule download:
    output: "data/raw.txt"
    shell: "echo raw > {output}"

rule upscale:
    input: "data/raw.txt"
    output: "results/up_{method}.txt"
    resources: gpu=lambda wildcards: GPUS[wildcards.method]
    shell: "echo {wildcards.method} ${{SLURM_JOB_ID:-none}} ${{SLURM_GPUS:-0}} > {output}"

# not in the profile: keeps its own mem_mb/runtime, takes the rest from defaults
rule toy_merge:
    input: expand("results/up_{method}.txt", method=GPUS)
    output: "results/merged.txt"
    threads: 2
    resources: mem_mb=1500, runtime=7
    shell: "cat {input} > {output}"
"""


@requires_plugin
def test_toy_workflow_submits_each_remote_job_once_with_profile_resources(tmp_path):
    profile = copy_profile(tmp_path / "profile")
    cluster = FakeCluster(tmp_path, profile)
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(TOY_SNAKEFILE)
    run_snakemake(cluster, workdir, "--profile", str(profile))

    submissions = cluster.submissions()
    assert Counter(s["rule"] for s in submissions) == {"upscale": 2, "toy_merge": 1}
    by_target = {s["target"]: s for s in submissions}
    neural, bicubic = by_target["upscale:method=neural"], by_target["upscale:method=bicubic"]
    settings = load_profile(profile)
    upscale = expected_resources(settings, "upscale")
    check_submission(neural, upscale, threads=1, gpus=1, cluster=cluster)
    check_submission(bicubic, upscale, threads=1, gpus=0, cluster=cluster)
    merge = expected_resources(settings, "toy_merge", {"mem_mb": 1500, "runtime": 7})
    check_submission(by_target["toy_merge:"], merge, threads=2, gpus=0, cluster=cluster)
    assert bicubic["options"]["partition"] == cluster.default_partition

    # the rules really ran inside those jobs, the GPU one with a GPU step
    ran = (workdir / "results" / "merged.txt").read_text().split("\n")
    assert ran[:2] == [f"neural {neural['jobid']} 1", f"bicubic {bicubic['jobid']} 0"]
    steps = {step["jobid"]: step for step in cluster.steps()}
    assert sorted(steps) == sorted(s["jobid"] for s in submissions), "one srun step per job"
    assert requested_gpus(steps[neural["jobid"]]["options"]) == 1
    assert requested_gpus(steps[bicubic["jobid"]]["options"]) == 0
    assert all(cluster.job(s["jobid"])["state"] == "COMPLETED" for s in submissions)
    # the local rule stayed on the submitting host
    assert (workdir / "data" / "raw.txt").read_text() == "raw\n"


FLAKY_SNAKEFILE = """
rule flaky:
    output: "flaky.txt"
    resources: attempt_no=lambda wildcards, attempt: attempt
    shell: "test {resources.attempt_no} -ge 2 && echo ok > {output}"
"""


@requires_plugin
@pytest.mark.slow  # after a failure the plugin waits 10 s more before its next status query
def test_failed_job_is_seen_as_failed_and_resubmitted(tmp_path):
    profile = copy_profile(tmp_path / "profile")
    assert int(load_profile(profile).get("retries", 0)) >= 1, "the profile promises a retry"
    cluster = FakeCluster(tmp_path, profile)
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(FLAKY_SNAKEFILE)
    result = run_snakemake(cluster, workdir, "--profile", str(profile))

    submissions = cluster.submissions()
    assert [(s["rule"], s["attempt"]) for s in submissions] == [("flaky", 1), ("flaky", 2)]
    assert [cluster.job(s["jobid"])["state"] for s in submissions] == ["FAILED", "COMPLETED"]
    assert f"SLURM-job '{submissions[0]['jobid']}' failed" in result.stderr
    assert (workdir / "flaky.txt").read_text() == "ok\n"


# ------------------------------------------------- the real workflow, submitted


def one_job_per_rule(project: Path) -> None:
    """Shrink the tiny config to one data set, shard, task, kernel and method."""
    path = project / "config.yaml"
    config = yaml.safe_load(path.read_text())
    first = {key: dict([next(iter(config[key].items()))]) for key in ("datasets", "methods")}
    config.update(
        first, shard_size=10_000, tasks=config["tasks"][:1], kernels=config["kernels"][:1]
    )
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def announced_jobs(log: str) -> list[tuple[str, str, int]]:
    """(kind, rule, threads) of every job snakemake announced in its log."""
    jobs = []
    for block in re.split(r"\n(?=(?:localrule|rule|checkpoint) \w+:\n)", log):
        head = re.match(r"(localrule|rule|checkpoint) (\w+):\n", block)
        if head:
            threads = re.search(r"^    threads: (\d+)$", block.split("\n\n")[0], re.M)
            jobs.append((head.group(1), head.group(2), int(threads.group(1)) if threads else 1))
    return jobs


@requires_plugin
@pytest.mark.slow
def test_real_workflow_submits_each_remote_rule_once_with_profile_resources(tiny_project, tmp_path):
    one_job_per_rule(tiny_project)
    # The tiny config has only interpolation methods, which ask for no GPU; a
    # neural method would make the workflow ask for gpu=1, as this copy does.
    profile = copy_profile(tmp_path / "profile", upscale={"gpu": 1})
    cluster = FakeCluster(tmp_path, profile)
    result = run_snakemake(
        cluster,
        tiny_project,
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(tiny_project),
        "--configfile", str(tiny_project / "config.yaml"),
        "--profile", str(profile),
        timeout=600,
    )  # fmt: skip

    jobs = announced_jobs(result.stdout + result.stderr)
    # fetch_weights runs only where the tiny project has LPIPS checkpoints (../shared).
    assert {"all", "download"} <= {rule for kind, rule, _ in jobs if kind == "localrule"}
    assert {rule for kind, rule, _ in jobs if kind == "localrule"} <= LOCAL_RULES
    remote = {rule: threads for kind, rule, threads in jobs if kind != "localrule"}
    assert set(remote) == WORKFLOW_RULES - LOCAL_RULES - UNUSED_BY_TINY_PROJECT
    submissions = cluster.submissions()
    assert Counter(s["rule"] for s in submissions) == dict.fromkeys(remote, 1)
    assert all(s["attempt"] == 1 for s in submissions)
    assert all(cluster.job(s["jobid"])["state"] == "COMPLETED" for s in submissions)

    settings = load_profile(profile)
    # Metric jobs ask for a GPU when LPIPS runs (the tiny project has its weights with ../shared).
    tiny_config = yaml.safe_load((tiny_project / "config.yaml").read_text())
    lpips = tiny_config.get("measure", {}).get("lpips", {}).get("enabled", True)
    gpu_rules = {"upscale", "measure"} if lpips else {"upscale"}
    for record in submissions:
        rule = record["rule"]
        check_submission(
            record,
            expected_resources(settings, rule),
            threads=remote[rule],
            gpus=1 if rule in gpu_rules else 0,
            cluster=cluster,
        )
    steps = {step["jobid"]: step for step in cluster.steps()}
    assert sorted(steps) == sorted(s["jobid"] for s in submissions), "one srun step per job"
    upscale = next(s for s in submissions if s["rule"] == "upscale")
    assert requested_gpus(steps[upscale["jobid"]]["options"]) == 1
    assert (tiny_project / "reports" / "tiny" / "index.html").is_file()
