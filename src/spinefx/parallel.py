"""Jobs in a process pool that stops at once on Ctrl-C.

``concurrent.futures.ProcessPoolExecutor`` used as a context manager waits for every queued
job when an exception (a KeyboardInterrupt) leaves the block, so ``prepare --workers 2`` ran
to the end after Ctrl-C. :func:`run_jobs` cancels the queued jobs and terminates the running
workers instead, then re-raises. The standard library has no public way to kill running
workers before Python 3.14 (``terminate_workers``), hence the fallback on the pool's process
table. Every output file in spinefx is written atomically, so a killed job leaves no partial
file, only a missing one that a rerun makes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from spinefx.progress import progress

log = logging.getLogger(__name__)


def run_jobs(
    fn: Callable[[Any], Any],
    jobs: Iterable[Any],
    *,
    workers: int = 1,
    desc: str = "jobs",
    ordered: bool = False,
    mp_context=None,
    initializer: Callable | None = None,
    initargs: tuple = (),
) -> Iterator[Any]:
    """Yield ``fn(job)`` for every job, in this process (``workers == 1``) or in a pool.

    Args:
        fn: a picklable function of one argument.
        jobs: its arguments.
        workers: processes (1: run here, no pool).
        desc: progress-bar label.
        ordered: yield results in job order (else as they complete).
        mp_context, initializer, initargs: passed to the pool.

    Raises:
        KeyboardInterrupt: after the queued jobs are cancelled and the workers terminated.
    """
    jobs = list(jobs)
    if workers <= 1 or len(jobs) <= 1:
        for job in progress(jobs, desc=desc, total=len(jobs)):
            yield fn(job)
        return
    pool = ProcessPoolExecutor(
        max_workers=min(int(workers), len(jobs)),
        mp_context=mp_context,
        initializer=initializer,
        initargs=initargs,
    )
    futures = []
    try:
        futures = [pool.submit(fn, job) for job in jobs]
        done = futures if ordered else as_completed(futures)
        for future in progress(done, desc=desc, total=len(futures)):
            yield future.result()
    except BaseException:  # Ctrl-C, a failing job, or the caller closing the generator
        stop_pool(pool, futures)
        raise
    pool.shutdown(wait=True)


def stop_pool(pool: ProcessPoolExecutor, futures=()) -> None:
    """Cancel queued jobs and terminate the running workers now."""
    for future in futures:
        future.cancel()
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
    log.debug("stopped %d worker processes", len(processes))


__all__ = ["run_jobs", "stop_pool"]
