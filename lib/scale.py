"""Run independent shards in-process, in local worker processes, or on a Dask cluster.

Every executor calls the same function on the same shard configurations, and training sets
one thread per shard, so all three produce the same stored results.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from multiprocessing import get_context

from tqdm.auto import tqdm

from .checks import Int, Maybe

EXECUTORS = ("inprocess", "processes", "dask")


def run_all(fn: Callable, items: Sequence, executor="inprocess", workers: int | None = None,
            progress: bool = True, desc: str = "shards", on_done: Callable | None = None,
            env: dict | None = None) -> list:
    """``[fn(item) for item in items]`` on the chosen executor, results in input order.

    Parameters
    ----------
    executor : ``"inprocess"``, ``"processes"`` (local worker processes), ``"dask"`` (the
        current ``dask.distributed`` client, or a ``LocalCluster`` started for the call), or a
        ``dask.distributed.Client`` to use an existing cluster.
    workers : worker processes for ``"processes"`` (default: all cores).
    on_done : called as ``on_done(i)`` in this process as soon as item ``i`` is finished, in
        order of completion (e.g. to drive a progress bar of one's own).
    env : environment variables for the ``"processes"`` workers only, in place when they
        start (for settings read at process start, such as glibc's ``MALLOC_*``); this
        process's environment is restored afterwards.
    """
    if _is_client(executor):
        return _run_dask(fn, items, executor, progress, desc, on_done)
    if executor not in EXECUTORS:
        raise ValueError(f"executor={executor!r} is not allowed; choose one of {EXECUTORS} "
                         "or pass a dask.distributed.Client")
    Maybe(Int(1, 4096))("workers", workers)  # 0 is an error, not "all cores"
    if executor == "inprocess" or len(items) <= 1:
        return _run_inprocess(fn, items, progress, desc, on_done)
    if executor == "processes":
        return _run_processes(fn, items, workers if workers is not None else os.cpu_count() or 1,
                              progress, desc, on_done, env)
    return _run_dask(fn, items, _current_client(), progress, desc, on_done)


def _run_inprocess(fn, items, progress, desc, on_done):
    out = []
    for i, it in enumerate(tqdm(items, desc=desc, disable=not progress)):
        out.append(fn(it))
        if on_done:
            on_done(i)
    return out


def _run_processes(fn, items, workers, progress, desc, on_done=None, env=None):
    # spawn, not fork: forking a process that already ran torch can deadlock. A spawned
    # worker is exec'd with this process's environment, so ``env`` is in place for as long
    # as the pool may start workers.
    with _environ(env or {}), \
            ProcessPoolExecutor(min(workers, len(items)), mp_context=get_context("spawn"),
                                initializer=exit_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(fn, it): i for i, it in enumerate(items)}
        with tqdm(total=len(items), desc=desc, disable=not progress) as bar:
            for fut in as_completed(futures):
                bar.update()
                if on_done:
                    on_done(futures[fut])
        return [fut.result() for fut in futures]


@contextmanager
def _environ(env: dict):
    """``os.environ`` updated with ``env`` inside the block, restored after it."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({k: str(v) for k, v in env.items()})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def exit_with_parent(parent: int, poll_s: float = 0.5) -> None:
    """In a worker: exit as soon as process ``parent`` is gone (e.g. SIGKILLed).

    A pool's workers otherwise wait for work forever once their parent is killed. An orphan
    is re-parented, so its ``getppid()`` changes; a daemon thread polls for that (portable,
    unlike Linux's PR_SET_PDEATHSIG, which also fires when the parent *thread* that started
    the worker ends, and the pool starts workers from varying threads).
    """
    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _is_client(obj) -> bool:
    return type(obj).__name__ == "Client" and hasattr(obj, "gather")


def _current_client():
    from dask.distributed import Client, default_client
    try:
        return default_client()
    except ValueError:
        return Client(processes=True, threads_per_worker=1)


def _run_dask(fn, items, client, progress, desc, on_done=None):
    from dask.distributed import as_completed
    futures = client.map(fn, list(items), pure=False)
    index = {fut.key: i for i, fut in enumerate(futures)}
    with tqdm(total=len(items), desc=desc, disable=not progress) as bar:
        for fut in as_completed(futures):
            bar.update()
            if on_done:
                on_done(index[fut.key])
    return client.gather(futures)
