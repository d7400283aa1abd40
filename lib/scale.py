"""Run independent shards in-process, in local worker processes, or on a Dask cluster.

Every executor calls the same function on the same shard configurations, and training sets
one thread per shard, so all three produce the same stored results.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from tqdm.auto import tqdm

from .checks import Int, Maybe

EXECUTORS = ("inprocess", "processes", "dask")


def run_all(fn: Callable, items: Sequence, executor="inprocess", workers: int | None = None,
            progress: bool = True, desc: str = "shards") -> list:
    """``[fn(item) for item in items]`` on the chosen executor, results in input order.

    Parameters
    ----------
    executor : ``"inprocess"``, ``"processes"`` (local worker processes), ``"dask"`` (the
        current ``dask.distributed`` client, or a ``LocalCluster`` started for the call), or a
        ``dask.distributed.Client`` to use an existing cluster.
    workers : worker processes for ``"processes"`` (default: all cores).
    """
    if _is_client(executor):
        return _run_dask(fn, items, executor, progress, desc)
    if executor not in EXECUTORS:
        raise ValueError(f"executor={executor!r} is not allowed; choose one of {EXECUTORS} "
                         "or pass a dask.distributed.Client")
    Maybe(Int(1, 4096))("workers", workers)  # 0 is an error, not "all cores"
    if executor == "inprocess" or len(items) <= 1:
        return [fn(it) for it in tqdm(items, desc=desc, disable=not progress)]
    if executor == "processes":
        return _run_processes(fn, items, workers if workers is not None else os.cpu_count() or 1,
                              progress, desc)
    return _run_dask(fn, items, _current_client(), progress, desc)


def _run_processes(fn, items, workers, progress, desc):
    # spawn, not fork: forking a process that already ran torch can deadlock
    with ProcessPoolExecutor(min(workers, len(items)), mp_context=get_context("spawn"),
                             initializer=exit_with_parent, initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(fn, it) for it in items]
        with tqdm(total=len(items), desc=desc, disable=not progress) as bar:
            for fut in futures:
                fut.add_done_callback(lambda _: bar.update())
            return [fut.result() for fut in futures]


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


def _run_dask(fn, items, client, progress, desc):
    from dask.distributed import as_completed
    futures = client.map(fn, list(items), pure=False)
    with tqdm(total=len(items), desc=desc, disable=not progress) as bar:
        for _ in as_completed(futures):
            bar.update()
    return client.gather(futures)
