"""Jobs in a process pool that stops at once on Ctrl-C.

``concurrent.futures.ProcessPoolExecutor`` used as a context manager waits for every queued
job when an exception (a KeyboardInterrupt) leaves the block, so ``prepare --workers 2`` ran
to the end after Ctrl-C. :func:`run_jobs` cancels the queued jobs and terminates the running
workers instead, then raises :class:`Interrupted` (a KeyboardInterrupt that knows how many
jobs were done). The standard library has no public way to kill running workers before
Python 3.14 (``terminate_workers``), hence the fallback on the pool's process table.

No partial file is left behind. Every output file in spinefx is written atomically (a
temporary ``.<stem>.<random>.part<ext>`` next to it, then ``os.replace``), and a worker:

* ignores SIGINT: Ctrl-C in a terminal reaches the whole process group, and only this (the
  parent) process decides what stops; the workers stop when it terminates them (SIGINT is
  held back while they start, so one still importing prints no traceback either);
* turns SIGTERM (:func:`stop_pool`) into an exception while a job runs, so the job's
  ``atomic_path`` blocks delete their temporary files on the way out, then exits at once.

A worker stuck in C code for longer than ``grace_s`` is killed (SIGKILL); that one may leave
a temporary file, which the next run's writers sweep away (their names mark them as such).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from spinefx.progress import progress

log = logging.getLogger(__name__)

#: Seconds terminated workers get to delete their temporary files before they are killed.
GRACE_S = 5.0


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`run_jobs`: ``done`` of ``total`` jobs had finished.

    A KeyboardInterrupt, so code that handles Ctrl-C handles it; the CLI prints its
    :attr:`message` and exits with 130.
    """

    def __init__(self, done: int, total: int, unit: str = "cases") -> None:
        super().__init__(done, total, unit)
        self.done, self.total, self.unit = int(done), int(total), unit

    @property
    def message(self) -> str:
        return (
            f"interrupted: {self.done} of {self.total} {self.unit} done; run the same command "
            "again to resume"
        )

    def __str__(self) -> str:
        return self.message


def run_jobs(
    fn: Callable[[Any], Any],
    jobs: Iterable[Any],
    *,
    workers: int = 1,
    desc: str = "jobs",
    ordered: bool = False,
    already_done: int = 0,
    unit: str = "cases",
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
        already_done: jobs of the same batch finished by an earlier run (resumed, not in
            ``jobs``); counted in :class:`Interrupted`'s "N of M done".
        unit: what a job is, for that message ("cases").
        mp_context, initializer, initargs: passed to the pool (the initializer runs in every
            worker after its signal handlers are set).

    Raises:
        Interrupted: on Ctrl-C, after the queued jobs are cancelled and the workers terminated.
    """
    jobs = list(jobs)
    total = already_done + len(jobs)
    if workers <= 1 or len(jobs) <= 1:
        done = 0
        try:
            for job in progress(jobs, desc=desc, total=len(jobs)):
                result = fn(job)
                done += 1
                yield result
        except Interrupted:
            raise
        except KeyboardInterrupt:
            raise Interrupted(already_done + done, total, unit) from None
        return
    pool = ProcessPoolExecutor(
        max_workers=min(int(workers), len(jobs)),
        mp_context=mp_context,
        initializer=_init_worker,
        initargs=(initializer, tuple(initargs)),
    )
    futures = []
    try:
        with _sigint_blocked():  # the workers start now, deaf to Ctrl-C (see _init_worker)
            futures = [pool.submit(_run_in_worker, fn, job) for job in jobs]
        results = futures if ordered else as_completed(futures)
        for future in progress(results, desc=desc, total=len(futures)):
            yield future.result()
    except BaseException as exc:  # Ctrl-C, a failing job, or the caller closing the generator
        finished = sum(1 for f in futures if f.done() and not f.cancelled() and not f.exception())
        stop_pool(pool, futures)
        if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, Interrupted):
            raise Interrupted(already_done + finished, total, unit) from None
        raise
    pool.shutdown(wait=True)


def stop_pool(pool: ProcessPoolExecutor, futures=(), *, grace_s: float = GRACE_S) -> None:
    """Cancel queued jobs and terminate the running workers now.

    Terminated workers get ``grace_s`` seconds (together) to delete their temporary files;
    any still alive then is killed. A second Ctrl-C meanwhile is ignored (when called from the
    main thread) so that no worker is left running.
    """
    with _sigint_ignored():
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for future in futures:
            future.cancel()
        terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
        if terminate is not None:
            terminate()
        else:
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                if process.is_alive():
                    process.terminate()
        running = _wait_for_exit(processes, grace_s)
        for process in running:
            log.warning("worker %s did not stop in %.0f s: killed", process.pid, grace_s)
            process.kill()
        _wait_for_exit(running, grace_s)
    log.debug("stopped %d worker processes", len(processes))


def _wait_for_exit(processes, timeout_s: float) -> list:
    """Wait up to ``timeout_s`` in all for ``processes`` to end; those still running.

    Waits on the processes' sentinels rather than ``join``: the pool's own thread may reap
    a worker at the same time, and then ``is_alive`` can say True of a dead one.
    """
    from multiprocessing.connection import wait

    pending = {}
    for process in processes:
        try:
            pending[process.sentinel] = process
        except ValueError:  # closed: long gone
            continue
    deadline = time.monotonic() + timeout_s
    while pending and (left := deadline - time.monotonic()) > 0:
        for sentinel in wait(list(pending), timeout=left):
            pending.pop(sentinel)
    return list(pending.values())


class _sigint_ignored:
    """Ignore SIGINT inside the block (only possible in the main thread; elsewhere a no-op)."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


class _sigint_blocked:
    """Hold SIGINT back inside the block; one that arrives is delivered when it ends.

    Processes started inside inherit the blocked signal, so a Ctrl-C while a worker is still
    importing (spawn) does not print its traceback; :func:`_init_worker` then ignores SIGINT
    and unblocks it.
    """

    def __enter__(self):
        self.previous = None
        if hasattr(signal, "pthread_sigmask"):  # POSIX
            self.previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.previous)


# --- in the worker processes -----------------------------------------------------------------
_IN_JOB = False


class _Terminated(SystemExit):
    """Raised in a worker's job by SIGTERM, so its ``finally``/``except`` blocks clean up."""


def _init_worker(initializer: Callable | None, initargs: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # drops a Ctrl-C held back since the start
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGTERM, _on_sigterm)
    if initializer is not None:
        initializer(*initargs)


def _on_sigterm(signum, frame) -> None:
    if _IN_JOB:
        raise _Terminated(128 + signum)
    os._exit(128 + signum)  # idle: nothing to clean up


def _run_in_worker(fn: Callable[[Any], Any], job: Any) -> Any:
    global _IN_JOB
    _IN_JOB = True
    try:
        return fn(job)
    except _Terminated as exc:  # the job's own cleanup has run: leave now, report nothing
        os._exit(int(exc.code))
    finally:
        _IN_JOB = False


__all__ = ["GRACE_S", "Interrupted", "run_jobs", "stop_pool"]
