"""Spread independent recovery tasks (architecture groups) over local processes.

Groups share nothing: each one's casts, trees, merges and direction prior are its own,
so they run in separate processes and the results are put back in task order (the
same graph whatever the number of workers). Workers are spawned, not forked (faiss and
BLAS thread pools do not survive a fork), each with `threads` BLAS/OpenMP threads so
that workers x threads matches the CPUs given. A Ray job spreads the same tasks over a
cluster (jobs/recover.py --ray); this module is the pure library's own pool.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def map_tasks(fn: Callable[..., Any], tasks: Sequence[tuple], workers: int = 1,
              threads: int = 1) -> list:
    """[fn(*task) for task in tasks], over `workers` processes when more than one."""
    if workers <= 1 or len(tasks) <= 1:
        return [fn(*task) for task in tasks]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=context,
                             initializer=init_worker, initargs=(threads,)) as pool:
        return list(pool.map(_call, [(fn, task) for task in tasks]))


def _call(item: tuple[Callable[..., Any], tuple]) -> Any:
    fn, task = item
    return fn(*task)


def init_worker(threads: int) -> None:
    limit_threads(threads)
    keep_freed_memory()


# glibc mallopt parameters (malloc.h); values are C ints
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEEP_BELOW = 2**30  # bytes: arrays up to this size reuse freed memory


def keep_freed_memory() -> bool:
    """Let this worker's later arrays reuse the memory its earlier ones freed, instead
    of mapping fresh pages each time (glibc maps large blocks anew and hands freed ones
    back at once). A worker recovers group after group of the same sizes, and faulting
    in fresh pages costs more than filling them where memory is virtualised (measured:
    about 2 ms per MiB on the shared VM against 0.04 ms to rewrite it). Peak memory is
    what it was; memory freed after the peak stays with the worker until it exits.
    False where the C library is not glibc (nothing changed)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BELOW) and mallopt(M_TRIM_THRESHOLD,
                                                                  KEEP_BELOW))


def limit_threads(threads: int) -> None:
    """Thread pools of a worker: environment for libraries loaded later, and the live
    pools of those already loaded (numpy's BLAS, torch) through threadpoolctl."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: the environment variables still cover later loads
        pass
    else:
        threadpool_limits(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
