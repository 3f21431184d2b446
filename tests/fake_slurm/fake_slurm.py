"""A fake SLURM installation for testing the SLURM profile without a cluster.

One module implements the commands that snakemake-executor-plugin-slurm calls:
``sbatch``, ``srun``, ``squeue``, ``sacct``, ``scancel``, ``sinfo``, ``scontrol``,
``sacctmgr`` and ``sshare``. The bash wrappers beside this file (one per command)
run ``fake_slurm.py <command> ARGS...``; put this folder first on ``PATH``.

The fake cluster is one node on the local machine. ``sbatch`` really runs the
job script (with ``/bin/sh``, in the ``-D`` folder, output to ``--output``) and
``srun`` inside a job simply executes its command, so a workflow submitted
through it really completes. Submissions are checked the way a real cluster
would reject them: unknown partition, a GPU request on a partition without
GPUs, malformed ``--time``/``--mem``, ``--mem`` with ``--mem-per-cpu``, an account
the user may not charge, and an ``srun`` step asking for GPUs its job did not
allocate.

Environment variables:

``FAKE_SLURM_DIR`` (required)
    State folder: ``jobs/<id>.json`` (job records), ``jobs/<id>.sh`` (scripts),
    ``srun.jsonl`` (one JSON line per ``srun`` call), ``lock``.
``FAKE_SLURM_LOG``
    Where ``sbatch`` appends one JSON line per submission
    (default ``$FAKE_SLURM_DIR/sbatch.jsonl``). Keys: ``jobid``, ``argv`` (the
    arguments after ``sbatch``), ``options`` (long option name without dashes ->
    value, ``True`` for flags; short options are translated, e.g. ``-p`` ->
    ``partition``), ``script`` (the job script text, ``--wrap`` or stdin
    included), ``cwd``, ``env`` (the ``SLURM_*``, ``SBATCH_*`` and ``SNAKEMAKE_*``
    variables sbatch saw).
``FAKE_SLURM_MODE``
    ``sync`` (default): sbatch runs the job to its end before printing the job
    id, so every status query sees it finished (the plugin submits from two
    threads, so at most two jobs run at once). ``background``: sbatch starts
    the job detached and returns at once; the job is RUNNING until it ends.
``FAKE_SLURM_PARTITIONS``
    Comma-separated partition names, the default one marked with ``*``
    (default ``cpu*,gpu``).
``FAKE_SLURM_GPU_PARTITIONS``
    Partitions whose nodes have GPUs (default ``gpu``).
``FAKE_SLURM_ACCOUNTS``
    Comma-separated accounts the user may charge. Empty or unset: sacctmgr and
    sshare report none and sbatch accepts any ``-A``.

Job states are PENDING -> RUNNING -> COMPLETED (exit 0), FAILED (non-zero
exit) or CANCELLED (scancel). Job arrays (``--array``) are not supported and
are rejected. An option this fake does not know is read as a flag when written
``--name`` and as name and value when written ``--name=value``.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

FIRST_JOB_ID = 1000
CLUSTER_NAME = "fakecluster"
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED"}

# Long options of sbatch (and srun) that take a value, written `--opt value` or
# `--opt=value`; any other `--opt` is taken for a flag.
SBATCH_VALUE_OPTIONS = {
    "account", "array", "begin", "chdir", "clusters", "comment", "constraint",
    "cpus-per-gpu", "cpus-per-task", "dependency", "error", "exclude", "export",
    "gpus", "gpus-per-node", "gpus-per-task", "gres", "input", "job-name",
    "licenses", "mail-type", "mail-user", "mem", "mem-per-cpu", "mem-per-gpu",
    "nice", "nodelist", "nodes", "ntasks", "ntasks-per-gpu", "ntasks-per-node",
    "output", "partition", "qos", "reservation", "signal", "time", "time-min",
    "tmp", "wrap",
}  # fmt: skip
SBATCH_SHORT_OPTIONS = {
    "A": "account", "a": "array", "C": "constraint", "c": "cpus-per-task",
    "D": "chdir", "d": "dependency", "e": "error", "G": "gpus",
    "J": "job-name", "L": "licenses", "M": "clusters", "N": "nodes",
    "n": "ntasks", "o": "output", "p": "partition", "q": "qos",
    "t": "time", "w": "nodelist", "x": "exclude",
}  # fmt: skip
SRUN_VALUE_OPTIONS = SBATCH_VALUE_OPTIONS | {"cpu-bind", "jobid", "mpi"}
SRUN_SHORT_OPTIONS = SBATCH_SHORT_OPTIONS

TIME_RE = re.compile(r"^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+(:\d{1,2}(:\d{1,2})?)?)$")
MEM_RE = re.compile(r"^\d+[KMGT]?$")


class SlurmError(Exception):
    """A command-line error, printed to stderr with exit status 1."""


# ---------------------------------------------------------------- state files


def state_dir() -> Path:
    value = os.environ.get("FAKE_SLURM_DIR")
    if not value:
        raise SlurmError("FAKE_SLURM_DIR is not set: the fake SLURM needs a state folder")
    path = Path(value)
    (path / "jobs").mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def locked() -> Iterator[Path]:
    """Hold the cluster-wide lock (job ids, job records, logs) while inside."""
    root = state_dir()
    with open(root / "lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield root
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def job_path(root: Path, job_id: str) -> Path:
    return root / "jobs" / f"{job_id}.json"


def read_job(root: Path, job_id: str) -> dict | None:
    path = job_path(root, job_id)
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def write_job(root: Path, job: dict) -> None:
    path = job_path(root, job["id"])
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(job, indent=1))
    os.replace(tmp, path)


def all_jobs(root: Path) -> list[dict]:
    jobs = [json.loads(p.read_text()) for p in (root / "jobs").glob("*.json")]
    return sorted(jobs, key=lambda job: int(job["id"]))


def update_job(job_id: str, **changes: object) -> dict:
    with locked() as root:
        job = read_job(root, job_id)
        if job is None:
            raise SlurmError(f"no such job: {job_id}")
        job.update(changes)
        write_job(root, job)
        return job


def append_jsonl(path: Path, record: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def now() -> str:
    return datetime.now().isoformat(timespec="seconds")


# ------------------------------------------------------------- option parsing


def parse_options(
    args: list[str],
    value_options: set[str],
    short_options: dict[str, str],
    *,
    stop_at_positional: bool = True,
) -> tuple[dict[str, object], list[str]]:
    """Split ``args`` into options and positional arguments, getopt style.

    ``short_options`` maps option letters to long names; a long name in
    ``value_options`` takes a value (``--opt v``, ``--opt=v``, ``-o v``, ``-ov``),
    any other option is a flag (``True``). Short flags may be bundled (``-nu me``).
    sbatch and srun stop at the first positional argument (``stop_at_positional``):
    what follows belongs to the script or command.
    """
    options: dict[str, object] = {}
    positional: list[str] = []
    i = 0

    def next_value(flag: str) -> str:
        nonlocal i
        if i >= len(args):
            raise SlurmError(f"option '{flag}' requires an argument")
        i += 1
        return args[i - 1]

    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            positional.extend(args[i:])
            break
        if arg.startswith("--"):
            name, sep, value = arg[2:].partition("=")
            if sep:
                options[name] = value
            elif name in value_options:
                options[name] = next_value(arg)
            else:
                options[name] = True
        elif arg.startswith("-") and len(arg) > 1:
            letters = arg[1:]
            for j, letter in enumerate(letters):
                name = short_options.get(letter, letter)
                if name in value_options:
                    attached = letters[j + 1 :].removeprefix("=")
                    options[name] = attached or next_value(f"-{letter}")
                    break
                options[name] = True
        elif stop_at_positional:
            positional.extend(args[i - 1 :])
            break
        else:
            positional.append(arg)
    return options, positional


def requested_gpus(options: dict[str, object]) -> int:
    """Number of GPUs asked for by --gpus/-G, --gpus-per-node or a gpu GRES."""
    for key in ("gpus", "gpus-per-node", "gpus-per-task"):
        value = options.get(key)
        if isinstance(value, str):
            # "--gpus=a100:2" names the model before the count
            count = value.rsplit(":", 1)[-1]
            if not count.isdigit():
                raise SlurmError(f"Invalid --{key} specification: {value}")
            return int(count)
    gres = options.get("gres")
    if isinstance(gres, str):
        for item in gres.split(","):
            parts = item.split(":")
            if parts[0] == "gpu":
                count = parts[-1] if len(parts) > 1 and parts[-1].isdigit() else "1"
                return int(count)
    return 0


def partitions() -> tuple[list[str], str | None]:
    """The configured partition names and the default one (if any)."""
    raw = os.environ.get("FAKE_SLURM_PARTITIONS", "cpu*,gpu")
    names, default = [], None
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        name = item.rstrip("*")
        if item.endswith("*"):
            default = name
        names.append(name)
    return names, default


def gpu_partitions() -> set[str]:
    raw = os.environ.get("FAKE_SLURM_GPU_PARTITIONS", "gpu")
    return {name.strip() for name in raw.split(",") if name.strip()}


def accounts() -> list[str]:
    raw = os.environ.get("FAKE_SLURM_ACCOUNTS", "")
    return [name.strip() for name in raw.split(",") if name.strip()]


# --------------------------------------------------------------------- sbatch


def validate_submission(options: dict[str, object]) -> str:
    """Reject what a real cluster would reject; return the job's partition."""
    if "array" in options:
        raise SlurmError("fake sbatch does not support job arrays (--array)")
    names, default = partitions()
    partition = options.get("partition", default)
    if not isinstance(partition, str) or not partition:
        raise SlurmError("No partition specified or system default partition")
    if partition not in names:
        raise SlurmError(
            f"Batch job submission failed: Invalid partition name specified: {partition}"
        )
    gpus = requested_gpus(options)
    if gpus and partition not in gpu_partitions():
        raise SlurmError(
            "Batch job submission failed: Requested node configuration is not available "
            f"({gpus} GPU(s) requested on partition {partition}, which has none)"
        )
    time_limit = options.get("time")
    if time_limit is not None and not TIME_RE.match(str(time_limit)):
        raise SlurmError(f"Invalid --time specification: {time_limit}")
    if "mem" in options and "mem-per-cpu" in options:
        raise SlurmError("--mem, --mem-per-cpu, and --mem-per-gpu are mutually exclusive")
    for key in ("mem", "mem-per-cpu"):
        if key in options and not MEM_RE.match(str(options[key])):
            raise SlurmError(f"Invalid --{key} specification: {options[key]}")
    account = options.get("account")
    allowed = accounts()
    if allowed and account is not None and account not in allowed:
        raise SlurmError(
            "Batch job submission failed: Invalid account or account/partition "
            f"combination specified: {account}"
        )
    return partition


def job_script(options: dict[str, object], rest: list[str]) -> tuple[str, list[str]]:
    """The job script text and its arguments, from --wrap, a file, or stdin."""
    wrap = options.get("wrap")
    if isinstance(wrap, str):
        if rest:
            raise SlurmError("script arguments not permitted with --wrap option")
        return f"#!/bin/sh\n# This script was created by sbatch --wrap.\n\n{wrap}\n", []
    if not rest or rest[0] in ("-", "/dev/stdin"):
        return sys.stdin.read(), rest[1:]
    path = Path(rest[0])
    if not path.is_file():
        raise SlurmError(f"Unable to open file {path}")
    return path.read_text(), rest[1:]


def sbatch(args: list[str]) -> int:
    options, rest = parse_options(args, SBATCH_VALUE_OPTIONS, SBATCH_SHORT_OPTIONS)
    partition = validate_submission(options)
    script, script_args = job_script(options, rest)
    if not script.startswith("#!"):
        raise SlurmError(
            "This does not look like a batch script. The first line must start with #!"
        )
    workdir = str(Path(str(options.get("chdir", os.getcwd()))).resolve())
    env_record = {
        key: value
        for key, value in os.environ.items()
        if key.startswith(("SLURM_", "SBATCH_", "SNAKEMAKE_"))
    }
    with locked() as root:
        counter = root / "next_job_id"
        job_id = int(counter.read_text()) if counter.exists() else FIRST_JOB_ID
        counter.write_text(str(job_id + 1))
        job_id = str(job_id)
        script_path = root / "jobs" / f"{job_id}.sh"
        script_path.write_text(script)
        job = {
            "id": job_id,
            "name": job_name(options, rest),
            "partition": partition,
            "account": str(options.get("account", "")),
            "comment": str(options.get("comment", "")),
            "gpus": requested_gpus(options),
            "cpus_per_task": str(options.get("cpus-per-task", "1")),
            "mem": str(options.get("mem", "")),
            "time": str(options.get("time", "")),
            "workdir": workdir,
            "output": str(options.get("output", "slurm-%j.out")),
            "error": str(options["error"]) if "error" in options else None,
            "script": str(script_path),
            "script_args": script_args,
            "state": "PENDING",
            "exit_code": None,
            "reason": "None",
            "pid": None,
            "submit_time": now(),
            "start_time": None,
            "end_time": None,
        }
        write_job(root, job)
        log = Path(os.environ.get("FAKE_SLURM_LOG") or root / "sbatch.jsonl")
        append_jsonl(
            log,
            {
                "jobid": job_id,
                "argv": args,
                "options": options,
                "script": script,
                "cwd": os.getcwd(),
                "env": env_record,
            },
        )
    mode = os.environ.get("FAKE_SLURM_MODE", "sync")
    if mode == "sync":
        run_job(job_id)
    elif mode == "background":
        subprocess.Popen(
            [sys.executable, __file__, "_run", job_id],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    else:
        raise SlurmError(f"FAKE_SLURM_MODE must be 'sync' or 'background', not {mode!r}")
    if "parsable" in options:
        cluster = options.get("clusters")
        print(f"{job_id};{cluster}" if isinstance(cluster, str) else job_id)
    else:
        print(f"Submitted batch job {job_id}")
    return 0


def job_name(options: dict[str, object], rest: list[str]) -> str:
    """--job-name, else the script's file name, as sbatch names jobs."""
    if isinstance(options.get("job-name"), str):
        return str(options["job-name"])
    if "wrap" in options:
        return "wrap"
    return Path(rest[0]).name if rest and rest[0] != "-" else "sbatch"


def expand_filename(pattern: str, job: dict) -> str:
    replacements = {"%j": job["id"], "%x": job["name"], "%u": getpass.getuser(), "%%": "%"}
    return re.sub(r"%[jxu%]", lambda m: replacements[m.group(0)], pattern)


def job_environment(job: dict) -> dict[str, str]:
    # sbatch's default is --export=ALL: the job sees the submitting environment
    env = dict(os.environ)
    env.update(
        {
            "SLURM_JOB_ID": job["id"],
            "SLURM_JOBID": job["id"],
            "SLURM_JOB_NAME": job["name"],
            "SLURM_JOB_PARTITION": job["partition"],
            "SLURM_JOB_ACCOUNT": job["account"],
            "SLURM_CLUSTER_NAME": CLUSTER_NAME,
            "SLURM_SUBMIT_DIR": os.getcwd(),
            "SLURM_NTASKS": "1",
            "SLURM_JOB_NUM_NODES": "1",
            "SLURM_CPUS_PER_TASK": job["cpus_per_task"],
        }
    )
    if job["mem"]:
        env["SLURM_MEM_PER_NODE"] = job["mem"]
    if job["gpus"]:
        env["SLURM_GPUS"] = str(job["gpus"])
    return env


def run_job(job_id: str) -> None:
    """Run a submitted job to its end and record how it ended."""
    job = update_job(job_id, state="RUNNING", pid=os.getpid(), start_time=now())
    workdir = Path(job["workdir"])
    output = workdir / expand_filename(job["output"], job)
    error = workdir / expand_filename(job["error"], job) if job["error"] else None
    with contextlib.ExitStack() as stack:
        try:
            out_handle = stack.enter_context(output.open("a"))
            err_handle = stack.enter_context(error.open("a")) if error else subprocess.STDOUT
        except OSError as exc:
            # a real job whose log file cannot be opened fails without running
            update_job(
                job_id,
                state="FAILED",
                exit_code=1,
                reason=f"cannot open log file: {exc}",
                end_time=now(),
            )
            return
        proc = subprocess.run(
            ["/bin/sh", job["script"], *job["script_args"]],
            cwd=workdir,
            env=job_environment(job),
            stdin=subprocess.DEVNULL,
            stdout=out_handle,
            stderr=err_handle,
            check=False,
        )
    with locked() as root:
        job = read_job(root, job_id)
        if job["state"] == "RUNNING":  # scancel may have got there first
            code = proc.returncode
            job.update(
                state="COMPLETED" if code == 0 else "FAILED",
                exit_code=code if code >= 0 else 128 - code,
                reason="None" if code == 0 else "NonZeroExitCode",
                end_time=now(),
            )
            write_job(root, job)


# ----------------------------------------------------------------------- srun


def srun(args: list[str]) -> int:
    options, command = parse_options(args, SRUN_VALUE_OPTIONS, SRUN_SHORT_OPTIONS)
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id:
        raise SlurmError("fake srun only runs job steps inside a fake sbatch job")
    if not command:
        raise SlurmError("no command given to srun")
    with locked() as root:
        job = read_job(root, job_id)
        if job is None:
            raise SlurmError(f"Unable to create step for job {job_id}: Invalid job id specified")
        step_gpus = requested_gpus(options)
        if step_gpus > job["gpus"]:
            raise SlurmError(
                f"Unable to create step for job {job_id}: Invalid generic resource (gres) "
                f"specification ({step_gpus} GPU(s) asked, job has {job['gpus']})"
            )
        append_jsonl(
            root / "srun.jsonl",
            {"jobid": job_id, "argv": args, "options": options, "command": command},
        )
    # what a real srun exports to the step it starts
    os.environ.update(
        {"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "1", "SLURM_STEP_NUM_NODES": "1"}
    )
    if isinstance(options.get("cpus-per-task"), str):
        os.environ["SLURM_CPUS_PER_TASK"] = str(options["cpus-per-task"])
    if step_gpus:
        os.environ["SLURM_GPUS"] = str(step_gpus)
        os.environ["SLURM_STEP_GPUS"] = ",".join(str(n) for n in range(step_gpus))
    sys.stdout.flush()
    os.execvp(command[0], command)
    return 1  # not reached


# ------------------------------------------------------------ status queries


def split_list(value: object) -> list[str]:
    if not isinstance(value, str):
        return []
    return [item for item in value.split(",") if item]


def sacct_field(job: dict, field: str, step: str | None) -> str:
    field = field.split("%", 1)[0].lower()
    job_id = job["id"] if step is None else f"{job['id']}.{step}"
    exit_code = job["exit_code"]
    values = {
        "jobid": job_id,
        "jobidraw": job_id,
        "jobname": job["name"],
        "state": job["state"],
        "exitcode": "" if exit_code is None else f"{exit_code}:0",
        "partition": job["partition"],
        "account": job["account"],
        "reason": job["reason"],
        "comment": job["comment"],
        "nodelist": "fakenode1",
        "alloccpus": job["cpus_per_task"],
        "reqmem": job["mem"],
        "timelimit": job["time"],
        "cluster": CLUSTER_NAME,
    }
    return values.get(field, "")


def sacct(args: list[str]) -> int:
    # the plugin's account guess passes "| tail -1" as plain arguments: ignore them
    options, _ = parse_options(
        args,
        {"format", "name", "jobs", "user", "clusters", "starttime", "endtime", "state"},
        {
            "o": "format", "j": "jobs", "u": "user", "M": "clusters", "S": "starttime",
            "E": "endtime", "s": "state", "n": "noheader", "X": "allocations",
            "P": "parsable2", "a": "allusers",
        },
        stop_at_positional=False,
    )  # fmt: skip
    noheader = "noheader" in options
    parsable2 = "parsable2" in options
    fields = split_list(options.get("format")) or ["JobID", "JobName", "State", "ExitCode"]
    names = set(split_list(options.get("name")))
    wanted = split_list(options.get("jobs"))
    states = {state.upper() for state in split_list(options.get("state"))}
    with locked() as root:
        jobs = all_jobs(root)
    rows = []
    for job in jobs:
        if names and job["name"] not in names:
            continue
        if states and job["state"] not in states:
            continue
        if not wanted:
            rows.append([sacct_field(job, f, None) for f in fields])
            continue
        for item in wanted:
            base, _, step = item.partition(".")
            # this fake's jobs have a single step, "0", once they have started
            if base != job["id"] or (step and (step != "0" or job["state"] == "PENDING")):
                continue
            rows.append([sacct_field(job, f, step or None) for f in fields])
    separator = "|" if parsable2 else " "
    if not noheader:
        print(separator.join(f.split("%", 1)[0] for f in fields))
    for row in rows:
        print(separator.join(row))
    return 0


SQUEUE_CODES = {
    "i": lambda job: job["id"],
    "A": lambda job: job["id"],
    "j": lambda job: job["name"],
    "T": lambda job: job["state"],
    "t": lambda job: {"PENDING": "PD", "RUNNING": "R", "COMPLETED": "CD", "FAILED": "F"}.get(
        job["state"], "CA"
    ),
    "P": lambda job: job["partition"],
    "a": lambda job: job["account"],
    "u": lambda job: getpass.getuser(),
    "k": lambda job: job["comment"],
}


def squeue(args: list[str]) -> int:
    options, _ = parse_options(
        args,
        {"format", "name", "jobs", "user", "states", "partition"},
        {"o": "format", "n": "name", "j": "jobs", "u": "user", "t": "states", "h": "noheader"},
        stop_at_positional=False,
    )
    noheader = "noheader" in options
    fmt = str(options.get("format", "%i|%P|%j|%T"))
    names = set(split_list(options.get("name")))
    wanted = set(split_list(options.get("jobs")))
    states = {state.upper() for state in split_list(options.get("states"))}
    with locked() as root:
        jobs = all_jobs(root)
    token = re.compile(r"%\.?\d*([a-zA-Z])")
    if not noheader:
        print(token.sub(lambda m: m.group(1).upper(), fmt))
    for job in jobs:
        if names and job["name"] not in names:
            continue
        if wanted and job["id"] not in wanted:
            continue
        # without --states squeue lists only jobs that have not ended
        if "ALL" not in states and (
            job["state"] not in states if states else job["state"] in FINAL_STATES
        ):
            continue
        print(token.sub(lambda m, job=job: SQUEUE_CODES.get(m.group(1), str)(job), fmt))
    return 0


# --------------------------------------------------------------- the others


def scancel(args: list[str]) -> int:
    _, job_ids = parse_options(
        args,
        {"clusters", "signal", "name", "user"},
        {"M": "clusters", "s": "signal", "n": "name", "u": "user"},
        stop_at_positional=False,
    )
    status = 0
    for job_id in job_ids:
        with locked() as root:
            job = read_job(root, job_id)
            if job is None:
                print(f"scancel: error: Invalid job id specified: {job_id}", file=sys.stderr)
                status = 1
                continue
            if job["state"] in FINAL_STATES:
                continue
            pid = job["pid"]
            job.update(state="CANCELLED", reason="Cancelled", end_time=now())
            write_job(root, job)
        if pid and os.environ.get("FAKE_SLURM_MODE") == "background":
            # the background runner leads its own session: end it with its children
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
    return status


def sinfo(args: list[str]) -> int:
    options, _ = parse_options(
        args,
        {"format", "partition"},
        {"o": "format", "p": "partition", "h": "noheader"},
        stop_at_positional=False,
    )
    names, default = partitions()
    gpus = gpu_partitions()
    fmt = str(options.get("format", "%P %a %G"))
    codes = {
        "P": lambda name: name + ("*" if name == default else ""),
        "R": lambda name: name,
        "a": lambda name: "up",
        "G": lambda name: "gpu:4" if name in gpus else "(null)",
        "D": lambda name: "1",
        "N": lambda name: "fakenode1",
    }
    token = re.compile(r"%\.?\d*([a-zA-Z])")
    if "noheader" not in options:
        headers = {"P": "PARTITION", "R": "PARTITION", "a": "AVAIL", "G": "GRES"}
        print(token.sub(lambda m: headers.get(m.group(1), m.group(1).upper()), fmt))
    for name in names:
        print(token.sub(lambda m, name=name: codes.get(m.group(1), lambda _: "")(name), fmt))
    return 0


def scontrol(args: list[str]) -> int:
    if args[:2] == ["show", "config"]:
        print(f"ClusterName             = {CLUSTER_NAME}")
        print("MaxArraySize            = 1001")
        print("MinJobAge               = 300 sec")
        return 0
    if args[:2] == ["show", "job"] and len(args) == 3:
        with locked() as root:
            job = read_job(root, args[2])
        if job is None:
            raise SlurmError("Invalid job id specified")
        print(
            f"JobId={job['id']} JobName={job['name']} JobState={job['state']} "
            f"Partition={job['partition']} WorkDir={job['workdir']}"
        )
        return 0
    raise SlurmError(f"fake scontrol does not support: {' '.join(args)}")


def list_accounts(args: list[str]) -> int:
    """sacctmgr/sshare: print the accounts the user may charge, one per line."""
    for name in accounts():
        print(name)
    return 0


COMMANDS = {
    "sbatch": sbatch,
    "srun": srun,
    "sacct": sacct,
    "squeue": squeue,
    "scancel": scancel,
    "sinfo": sinfo,
    "scontrol": scontrol,
    "sacctmgr": list_accounts,
    "sshare": list_accounts,
    "_run": lambda args: run_job(args[0]) or 0,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: fake_slurm.py {{{','.join(COMMANDS)}}} ARGS...", file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    try:
        return COMMANDS[command](args)
    except SlurmError as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
