"""The OpenMP wait policy of the example scripts, chosen from the machine's load before torch loads.

OpenMP (torch's CPU wheels use GNU libgomp) keeps a finished worker thread
spinning for a while before it sleeps, so the next parallel region starts at
once. On an idle machine spinning is the fast choice: a ``tiny`` pose-model step
took 0.33 s with libgomp's default, 0.34 s spinning at most 10,000 rounds
(``GOMP_SPINCOUNT=10000``) and 0.42 s with ``OMP_WAIT_POLICY=PASSIVE`` (2
threads, 2 cores). When other jobs hold the cores, spinning threads steal time
from each other: the same step took 1.4 s with the default, 1.3 s with the
bounded spin and 0.8 s passive with two such processes on two cores, and a
fine-tuning run that had started on an idle machine with the default slowed to
8 s per step when two more jobs started (docs/training.md, "Timings"). So
:func:`omp_wait_policy` asks for ``PASSIVE`` when the cores are busy as the
script starts and for the bounded spin when they are not; a policy the user set
wins. Imports nothing heavy: call it before ``import torch``.
"""

from __future__ import annotations

import os
import time

__all__ = ["cpu_busy_fraction", "omp_wait_policy"]


def cpu_busy_fraction(interval: float = 0.25) -> float | None:
    """Fraction of all CPU time spent busy over ``interval`` seconds (Linux ``/proc/stat``), None where unreadable.

    Unlike the load average, which trails a finished job by minutes, this sees
    the machine as it is now.
    """
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return values[3] + (values[4] if len(values) > 4 else 0), sum(values)  # idle + iowait, total

    try:
        idle0, total0 = sample()
        time.sleep(interval)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return None if total1 <= total0 else 1.0 - (idle1 - idle0) / (total1 - total0)


def omp_wait_policy(environ=None, *, busy: float | None = None) -> dict[str, str]:
    """OpenMP settings for ``os.environ.update(...)`` before ``import torch``.

    ``{"OMP_WAIT_POLICY": "PASSIVE"}`` when the CPUs are busy,
    ``{"GOMP_SPINCOUNT": "10000"}`` (a short, bounded spin) when they are idle,
    ``{}`` when the environment already sets ``OMP_WAIT_POLICY`` or
    ``GOMP_SPINCOUNT`` (the user's choice). Busy means other processes use at
    least half of the CPU time right now (:func:`cpu_busy_fraction`, a
    quarter-second sample); where that cannot be read, a one-minute load
    average of at least half the CPUs (an unknown load counts as busy).

    Args:
        environ: the environment to read (``os.environ`` by default).
        busy: the busy fraction to use instead of measuring it (tests).

    Returns:
        The variables to set.

    Example:
        >>> omp_wait_policy({}, busy=0.9), omp_wait_policy({}, busy=0.1)
        ({'OMP_WAIT_POLICY': 'PASSIVE'}, {'GOMP_SPINCOUNT': '10000'})
    """
    env = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" in env or "GOMP_SPINCOUNT" in env:
        return {}
    if busy is None:
        busy = cpu_busy_fraction()
    if busy is None:
        try:
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            busy = os.getloadavg()[0] / cpus
        except (OSError, AttributeError):  # no load average here (Windows): assume busy, the safe side
            busy = 1.0
    return {"OMP_WAIT_POLICY": "PASSIVE"} if busy >= 0.5 else {"GOMP_SPINCOUNT": "10000"}
