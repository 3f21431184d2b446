"""Glue between Snakemake jobs and the stage functions: per-job logs."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import sys
from collections.abc import Iterator
from pathlib import Path

# Starts the job log's last line, which gives the job's CPU time.
CPU_MARK = "job resources:"


@contextlib.contextmanager
def job_log(path: str | Path) -> Iterator[logging.Logger]:
    """Send the job's logging, stdout and stderr (progress bars included) to its log file.

    An exception is written to the log with its traceback and re-raised, so
    Snakemake marks the job failed and the log says why. The last line gives the
    process's CPU seconds so far (interpreter start, imports and work; Snakemake's
    benchmark files sample CPU time once a second and miss a short job's last
    second) and its peak memory (``benchmarks/job_overhead.py`` reads it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8", buffering=1) as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logger = logging.getLogger("facebench.job")
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield logger
        except BaseException:
            logger.exception("job failed")
            print(f"facebench job failed; see {path}", file=sys.__stderr__)
            raise
        finally:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            logger.info(
                "%s %.3f s CPU (user %.3f, system %.3f), %.0f MB peak memory",
                CPU_MARK, usage.ru_utime + usage.ru_stime, usage.ru_utime, usage.ru_stime,
                usage.ru_maxrss / 1024,
            )  # fmt: skip
            root.removeHandler(handler)


def put_checkout_on_pythonpath(checkout: str | Path) -> None:
    """Make job processes (which inherit the environment) import this checkout's package.

    Without it, a job in a conda environment would import no ``pipeline`` at all,
    and one in a virtualenv might import an installed copy other than the code
    the rules' params fingerprint.
    """
    paths = [str(checkout), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
