"""The population trainer against the autograd trainer it replaced, and against the matmul limit.

What is compared, per architecture (tanh, flip-flop task; the same networks, data streams,
Adam, L2 and clipping on both sides), at each hidden size of ``--hidden``:

* **old**: ``lib.train_autograd.train_shard_autograd``, the autograd trainer of the book before
  the hand-written backward pass (kept as the reference);
* **new**: ``lib.train.train_shard`` (``lib.bptt``: hand-written backward pass through time).

The old trainer runs twice: in plain workers, as the book ran it ("old plain"), and in workers
with the allocator settings below ("old"), so the gain of those settings is shown apart.

Both run as the book runs them: ``--workers`` spawned worker processes with one thread each,
each training its own shard of ``--shard`` networks at the same time. Throughput is in
network-training-steps per second (one step = one network, one batch), over all workers.

**Limit.** Each worker also times batched matmuls of the recurrent shape of the step,
[N, B, H] x [N, H, G] (G = gates x H), while the other workers do the same, so the limit is
measured on this machine, in this run, under the same load; both with ``torch.bmm`` (torch's
MKL) and with ``np.matmul`` (numpy's BLAS, which the new trainer uses on the CPU), and the
faster of the two sets the limit. One training step of one network
needs about 3 x the forward matmul FLOPs (forward, and two matmuls of the same size
backward): ``3 x 2 B T ((H + I) G + H O)``. The limit per core is the measured matmul rate
divided by that count; the new trainer's fraction of it is its rate per worker over the limit.

Workers start with glibc's allocator told to keep freed memory
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``), which the book's
workers should do too; "vs old" compares the two trainers both with these settings.
Every path trains one untimed step first (first-call overheads) and the pool is warmed up.
Each rate is the median of ``--repeats`` runs, the paths taking turns within each repeat, so
that a slow spell of a shared machine does not fall on one path only.

    python benchmarks/bench_train.py                     # hidden 32 and 64, 2 workers x 64
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from lib import models, train
from lib.config import population_config
from lib.tasks import make_task
from lib.train_autograd import train_shard_autograd

LR, L2, CLIP = 1e-3, 1e-4, 1.0
MALLOC = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "68719476736",
          "MALLOC_TOP_PAD_": "1073741824"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--archs", nargs="+", default=list(models.ARCHS), choices=models.ARCHS)
    p.add_argument("--hidden", nargs="+", type=int, default=[32, 64])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--time", type=int, default=50, help="steps per trial")
    p.add_argument("--shard", type=int, default=64, help="networks per worker")
    p.add_argument("--steps", type=int, default=20,
                   help="timed training steps (5, the former default, read 15-35 %% lower "
                        "in one comparison here)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="runs per path (median)")
    a = p.parse_args(argv)
    bad = [f"--{k} {v}" for k, v in vars(a).items() if isinstance(v, int) and v < 1]
    bad += [f"--hidden {h}" for h in a.hidden if h < 1]
    if bad:
        p.error(f"{', '.join(bad)}: every count must be a positive integer")
    return a


def shards(arch: str, hidden: int, a) -> list:
    """One shard of ``a.shard`` networks per worker (every network lr=LR, l2=L2, clip=CLIP)."""
    cfg = population_config("default", "flipflop", archs=(arch,), activations=("tanh",),
                            hidden_sizes=(hidden,), lrs=(LR,), l2s=(L2,), clips=(CLIP,),
                            n_seeds=a.shard * a.workers, n_steps=a.steps,
                            batch_size=a.batch, eval_batch=8, shard_size=a.shard,
                            task_overrides=(("n_time", a.time),))
    return cfg.shards()


def timed(which: str, cfg) -> float:
    """Worker: seconds to train one shard with the ``old`` or ``new`` trainer."""
    fn = train_shard_autograd if which == "old" else (
        lambda c: train.train_shard(c, progress=False))
    fn(replace(cfg, n_steps=1))
    t0 = time.perf_counter()
    fn(cfg)
    return time.perf_counter() - t0


def matmul_rate(shape: tuple, repeats: int = 200) -> tuple[float, float]:
    """Worker: FLOP/s of a batched matmul [N, B, H] x [N, H, G] on one thread, with
    ``torch.bmm`` and with ``np.matmul``."""
    torch.set_num_threads(1)
    n, b, h, g = shape
    x, w, out = torch.randn(n, b, h), torch.randn(n, h, g), torch.empty(n, b, g)
    xn, wn, outn = x.numpy(), w.numpy(), out.numpy()
    calls = (lambda: torch.bmm(x, w, out=out), lambda: np.matmul(xn, wn, out=outn))
    rates = []
    with threadpool_limits(1, user_api="blas"):
        for call in calls:
            for _ in range(10):
                call()
            t0 = time.perf_counter()
            for _ in range(repeats):
                call()
            rates.append(2 * n * b * h * g * repeats / (time.perf_counter() - t0))
    return tuple(rates)


def warm_up(_):
    torch.set_num_threads(1)
    return float(torch.ones(8, 8).matmul(torch.ones(8, 8)).sum())


def flops_per_step(arch: str, hidden: int, a, n_in: int, n_out: int) -> float:
    """Matmul FLOPs of one training step of one network: 3 x forward (fwd + bwd)."""
    gates = models.N_BLOCKS[arch] * hidden
    return 3.0 * 2 * a.batch * a.time * ((hidden + n_in) * gates + hidden * n_out)


def row(pool, plain, arch: str, hidden: int, a, n_io) -> str:
    cfgs = shards(arch, hidden, a)
    steps = sum(len(c.nets) * c.n_steps for c in cfgs)
    shape = (a.shard, a.batch, hidden, models.N_BLOCKS[arch] * hidden)
    runs = {"plain": [], "old": [], "new": [], "bmm": [], "np": []}
    for _ in range(a.repeats):  # the paths take turns
        runs["plain"].append(steps / max(plain.map(timed, ["old"] * len(cfgs), cfgs)))
        runs["old"].append(steps / max(pool.map(timed, ["old"] * len(cfgs), cfgs)))
        runs["new"].append(steps / max(pool.map(timed, ["new"] * len(cfgs), cfgs)))
        rates = list(pool.map(matmul_rate, [shape] * a.workers))
        for k, lib in enumerate(("bmm", "np")):
            runs[lib].append(sum(r[k] for r in rates) / a.workers)
    as_today, old, new, bmm, npm = (statistics.median(runs[k]) for k in runs)
    limit = max(bmm, npm) / flops_per_step(arch, hidden, a, *n_io)
    return (f"{arch:8s} {hidden:6d} {as_today:9.0f} {old:9.0f} {new:9.0f} {new / as_today:6.2f}x "
            f"{new / old:6.2f}x "
            f"{bmm / 1e9:8.1f} {npm / 1e9:8.1f} {limit:9.0f} {new / a.workers / limit:7.1%}")


def main(argv=None):
    a = parse_args(argv)
    task = make_task("flipflop", n_time=a.time)

    print(f"flip-flop, tanh, batch={a.batch} time={a.time}; {a.workers} workers x 1 thread, "
          f"{a.shard} networks each; {a.steps} timed steps; median of {a.repeats} runs; "
          f"load average before: "
          f"{os.getloadavg()[0]:.1f}")
    print("steps/s: network-training-steps per second, all workers (old as the book ran it: "
          "plain workers | old and new in workers with the malloc settings); limit: per core, "
          "from the faster matmul rate measured in the workers (torch.bmm | np.matmul); "
          "'of limit': new per worker / limit")
    print(f"{'arch':8s} {'hidden':>6s} {'old plain':>9s} {'old':>9s} {'new':>9s} "
          f"{'vs plain':>7s} {'vs old':>7s} {'bmm GF/s':>8s} {'np GF/s':>8s} {'limit/core':>9s} "
          f"{'of limit':>7s}")
    ctx = get_context("spawn")
    with ProcessPoolExecutor(a.workers, mp_context=ctx) as plain:
        list(plain.map(warm_up, range(a.workers)))  # started before the settings below
        os.environ.update(MALLOC)  # read by glibc when each spawned worker starts
        with ProcessPoolExecutor(a.workers, mp_context=ctx) as pool:
            list(pool.map(warm_up, range(a.workers)))
            for hidden in a.hidden:
                for arch in a.archs:
                    print(row(pool, plain, arch, hidden, a, (task.n_in, task.n_out)),
                          flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
