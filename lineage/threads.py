"""How many CPU threads a process may use: the CPUs it was given, never more.

Set once, where the process starts (a CLI command, a job's driver, a Ray actor's
constructor), never per call: torch's OpenMP pool, BLAS and the fingerprint's own
worker threads all read the same number. More threads than CPUs is what collapses
throughput on a shared node: an OpenMP team waits at every barrier for its slowest
thread, and a thread whose core another process holds is late by a scheduler time
slice (milliseconds), many times per tensor.
"""

from __future__ import annotations

import os
import sys

from lineage.errors import SpecError

# Read by OpenMP, MKL, OpenBLAS and numba when they load: covers libraries imported
# after the call (and child processes, which inherit the environment).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMBA_NUM_THREADS")

_configured: int | None = None


def cpus_given() -> int:
    """The CPUs this process may run on (its affinity mask: what taskset, cgroups'
    cpusets and container runtimes restrict), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_threads(requested: int | None = None, cpus: float | None = None) -> int:
    """Threads to use: `requested`, else `cpus` (a Ray actor's num_cpus, rounded down,
    at least 1), else the affinity; never more than the CPUs given. A request above
    them is refused rather than silently cut, so a typo does not go unnoticed."""
    given = cpus_given() if cpus is None else max(1, int(cpus))
    given = min(given, cpus_given())
    if requested is None:
        return given
    if requested < 1 or requested > given:
        raise SpecError(
            f"threads {requested}",
            f"this process was given {given} CPU(s); more threads than CPUs make "
            "them fight for the cores",
            f"Give --threads between 1 and {given} (or give the process more CPUs)",
        )
    return requested


def use_threads(threads: int) -> int:
    """Set this process's thread pools to `threads`: the environment for libraries
    loaded later (torch's intra-op pool among them: the CPU fingerprint never imports
    torch), torch's pool when it is loaded already, and loaded BLAS pools
    (threadpoolctl).
    Returns `threads`; `configured_threads()` reads it back."""
    global _configured
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    if "torch" in sys.modules:  # else torch's pool reads OMP_NUM_THREADS when it loads
        sys.modules["torch"].set_num_threads(threads)
    if "numpy" in sys.modules:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # optional: the variables still cover later loads
            pass
        else:
            threadpool_limits(threads)
    _configured = threads
    return threads


def configured_threads() -> int:
    """The number `use_threads` set in this process; else OMP_NUM_THREADS when it is
    set (Ray sets it to a task's or actor's num_cpus), else the CPUs given; never more
    than the CPUs given."""
    if _configured is not None:
        return _configured
    try:
        from_env = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        from_env = 0
    given = cpus_given()
    return min(from_env, given) if from_env >= 1 else given
