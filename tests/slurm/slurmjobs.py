"""Submitting and watching jobs on the local SLURM, for the tests in tests/slurm."""

import json
import re
import subprocess
import time
from pathlib import Path

FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                "DEADLINE", "PREEMPTED"}


def sbatch(env, args, wait=False, timeout=110):
    """Runs ``sbatch [--wait] --parsable ARGS``; returns (job id, CompletedProcess)."""
    cmd = ["sbatch", "--parsable"] + (["--wait"] if wait else []) + [str(a) for a in args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    job = proc.stdout.strip().splitlines()[0].split(";")[0] if proc.stdout.strip() else None
    return job, proc


def job_info(env, job):
    """``scontrol show job -o`` as a dict (JobState, ExitCode, Restarts, ...)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", str(job)], env=env, capture_output=True, text=True).stdout
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", out))


def wait_job(env, job, timeout=110):
    """Polls the job every second until it reaches a final state; returns its info."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = job_info(env, job)
        if info.get("JobState") in FINAL_STATES:
            return info
        time.sleep(1)
    subprocess.run(["scancel", str(job)], env=env)
    raise AssertionError(f"job {job} did not finish within {timeout} s: {job_info(env, job)}")


def wait_for_text(path, text, timeout=60):
    """Waits until a file contains ``text``; returns the file's content."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Path(path).exists() and text in Path(path).read_text():
            return Path(path).read_text()
        time.sleep(0.5)
    raise AssertionError(f"{path} never contained {text!r}")


def wait_for_epochs(metrics_path, count, timeout=60, env=None, job=None):
    """Waits until a metrics.jsonl holds at least ``count`` epoch records; returns them.

    With ``env`` and ``job``, fails at once when the job ends before that.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job is not None and job_info(env, job).get("JobState") in FINAL_STATES:
            raise AssertionError(f"job {job} ended ({job_info(env, job).get('JobState')}) before {metrics_path} "
                                 f"held {count} epoch records")
        if Path(metrics_path).exists():
            try:
                found = epochs(metrics_path)
            except json.JSONDecodeError:  # a line being written
                found = []
            if len(found) >= count:
                return found
        time.sleep(0.5)
    raise AssertionError(f"{metrics_path} never held {count} epoch records")


def ranks_output(text):
    """The JSON objects the ranks of tests/stack/hvd_allreduce.py printed (several may share a line)."""
    found = [json.loads(m) for m in re.findall(r'\{[^{}]*"rank"[^{}]*\}', text)]
    return sorted(found, key=lambda r: r["rank"])


def epochs(metrics_path):
    """The epoch records of a metrics.jsonl."""
    lines = Path(metrics_path).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip() and json.loads(line).get("kind") == "epoch"]
