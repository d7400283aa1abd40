"""Population trainer against training the same networks one after another with PyTorch's RNNs.

What is compared, per architecture (tanh, flip-flop task, the same hidden size, batch, trial
length, number of training steps, Adam, L2 and gradient clipping in both):

* **population**: ``lib.train.train_shard`` as the book runs it: the networks split into
  ``--workers`` shards trained in parallel by spawned worker processes, one thread each (what
  ``load_or_train(..., executor="processes")`` does). Also shown: all networks stacked in one
  shard in one worker (the gain of stacking alone, on one core).
* **sequential**: each network in turn as ``nn.RNN``/``nn.GRU``/``nn.LSTM`` (UGRNN: a plain
  single-network cell written below) + ``nn.Linear`` readout + ``torch.optim.Adam``, in this
  process with 1 thread and with ``--baseline-threads`` threads (PyTorch's default: every
  core), timed on the first ``--seq-nets`` networks (the rate is per network, and the
  multi-threaded loop is slow enough on a shared machine to dominate the run otherwise); the
  ratio is taken against the faster of the two. Also shown, as the strongest baseline: the
  sequential loop over all networks split over the worker processes (1 thread each).

The worker pool is started and warmed up before timing and every path trains one untimed step
first, so process start-up and first-call overheads are not counted. Both sides draw a fresh
batch of trials from the task generator at every step. Throughput is in network-training-steps
per second (one step = one network, one batch). FLOP/s counts the matmuls of the forward pass
(recurrent, input and readout) times 3 for forward + backward, against ``torch.matmul`` on a
large square matrix measured in the same run with the same number of threads as cores used.
Peak memory is the resident-set high-water mark (``ru_maxrss``) of this (sequential) process
and of each worker.

Defaults are the book's ``default`` profile (32 units, batch 32, 50-step flip-flop trials, and
16 networks per architecture: two 8-network shards, as the book trains two cells at once)::

    python benchmarks/bench_train.py                      # the book's sizes
    python benchmarks/bench_train.py --hidden 64 --batch 64 --time 100   # larger matmuls
"""
from __future__ import annotations

import argparse
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context

import numpy as np
import torch
from torch import nn

from lib import models, train
from lib.config import population_config
from lib.tasks import make_task

LR, L2, CLIP = 1e-3, 1e-4, 1.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--archs", nargs="+", default=list(models.ARCHS), choices=models.ARCHS)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--time", type=int, default=50, help="steps per trial")
    p.add_argument("--nets", type=int, default=16, help="networks per architecture")
    p.add_argument("--steps", type=int, default=20, help="training steps per network")
    p.add_argument("--seq-nets", type=int, default=3,
                   help="networks timed for the in-process sequential rates (a per-network rate)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--baseline-threads", type=int, default=torch.get_num_threads())
    p.add_argument("--matmul-size", type=int, default=2048)
    return p.parse_args(argv)


def shard_configs(arch: str, a, n_shards: int):
    """The population split into ``n_shards`` shards (every network lr=LR, l2=L2, clip=CLIP)."""
    cfg = population_config("default", "flipflop", archs=(arch,), activations=("tanh",),
                            hidden_sizes=(a.hidden,), lrs=(LR,), l2s=(L2,), clips=(CLIP,),
                            n_seeds=a.nets, n_steps=a.steps, batch_size=a.batch, eval_batch=8,
                            shard_size=-(-a.nets // n_shards),
                            task_overrides=(("n_time", a.time),))
    return cfg.shards()


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def population_shard(cfg) -> tuple[float, float]:
    """Worker: train one shard with the book's trainer; (seconds, peak MiB).

    One untimed step first, so that first-call overheads are not counted.
    """
    train.train_shard(replace(cfg, n_steps=1), progress=False)
    t0 = time.perf_counter()
    train.train_shard(cfg, progress=False)
    return time.perf_counter() - t0, peak_mib()


def sequential_shard(cfg) -> tuple[float, float]:
    """Worker: train the networks of one shard one after another with torch.nn, 1 thread."""
    torch.set_num_threads(1)
    sequential(replace(cfg, nets=cfg.nets[:1], n_steps=1), cfg.arch)
    t0 = time.perf_counter()
    sequential(cfg, cfg.arch)
    return time.perf_counter() - t0, peak_mib()


def warm_up(_):
    """Worker: import and run torch once so that process start-up is not timed."""
    torch.set_num_threads(1)
    return float(torch.ones(8, 8).matmul(torch.ones(8, 8)).sum())


def in_pool(pool, fn, shards) -> tuple[float, float]:
    """Network-steps per second of ``fn`` over ``shards`` in parallel; the workers' peak MiB.

    The workers start together, so the wall time is the slowest worker's timed section.
    """
    out = list(pool.map(fn, shards))
    steps = sum(len(s.nets) * s.n_steps for s in shards)
    return steps / max(t for t, _ in out), max(m for _, m in out)


class UGRNN(nn.Module):
    """One update-gate RNN (tanh), written plainly: u = s(W_u h + U_u x), c = tanh(...)."""

    def __init__(self, n_in, n_hidden):
        super().__init__()
        self.n_hidden = n_hidden
        self.inp, self.rec = nn.Linear(n_in, 2 * n_hidden), nn.Linear(n_hidden, 2 * n_hidden)

    def forward(self, x):  # x [B, T, I] -> h [B, T, H]
        h = x.new_zeros(x.shape[0], self.n_hidden)
        out = []
        for d in self.inp(x).unbind(1):
            z = d + self.rec(h)
            u = torch.sigmoid(z[:, :self.n_hidden])
            h = u * h + (1 - u) * torch.tanh(z[:, self.n_hidden:])
            out.append(h)
        return torch.stack(out, 1), None


def torch_rnn(arch, n_in, n_hidden):
    if arch == "ugrnn":
        return UGRNN(n_in, n_hidden)
    cls = {"vanilla": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[arch]
    return cls(n_in, n_hidden, batch_first=True)


def sequential(shard, arch: str) -> None:
    """Train each network of ``shard`` in turn with torch.nn, Adam, L2 and clipping."""
    task = shard.make_task()
    for net in shard.nets:
        torch.manual_seed(net.seed)
        rnn, head = torch_rnn(arch, task.n_in, shard.n_hidden), nn.Linear(shard.n_hidden, task.n_out)
        params = [*rnn.parameters(), *head.parameters()]
        opt = torch.optim.Adam(params, lr=net.lr)
        for t in range(shard.n_steps):
            tr = task.sample(shard.batch_size, np.random.default_rng([net.seed, t]))
            x, y = torch.from_numpy(tr.inputs), torch.from_numpy(tr.targets)
            loss = ((head(rnn(x)[0]) - y) ** 2).mean()
            loss = loss + net.l2 * sum(p.pow(2).sum() for p in params if p.dim() > 1)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, net.clip)
            opt.step()


def sequential_rate(shard, threads: int) -> float:
    """Network-steps per second of :func:`sequential` in this process with ``threads``."""
    torch.set_num_threads(threads)
    sequential(replace(shard, nets=shard.nets[:1], n_steps=1), shard.arch)
    t0 = time.perf_counter()
    sequential(shard, shard.arch)
    return len(shard.nets) * shard.n_steps / (time.perf_counter() - t0)


def flops_per_step(arch: str, a, n_in: int, n_out: int) -> float:
    """Matmul FLOPs of one training step of one network: 3 x forward (fwd + bwd)."""
    gates = models.N_BLOCKS[arch] * a.hidden
    fwd = 2 * a.batch * a.time * ((a.hidden + n_in) * gates + a.hidden * n_out)
    return 3.0 * fwd


def matmul_flops(n: int, threads: int, repeats: int = 5) -> float:
    """Measured float32 matmul FLOP/s of this process with ``threads`` threads."""
    torch.set_num_threads(threads)
    x, y = torch.randn(n, n), torch.randn(n, n)
    x @ y
    t0 = time.perf_counter()
    for _ in range(repeats):
        x @ y
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0)


def report_row(arch, a, pool, n_io, peak) -> tuple[str, float]:
    """Measure one architecture; return its printed row and the workers' peak MiB."""
    one_shard, per_worker = shard_configs(arch, a, 1), shard_configs(arch, a, a.workers)
    stacked, mib1 = in_pool(pool, population_shard, one_shard)
    pop, mib2 = in_pool(pool, population_shard, per_worker)
    seq_procs, mib3 = in_pool(pool, sequential_shard, per_worker)
    few = replace(one_shard[0], nets=one_shard[0].nets[:a.seq_nets])
    seq1, seqn = sequential_rate(few, 1), sequential_rate(few, a.baseline_threads)
    gflops = pop * flops_per_step(arch, a, *n_io) / 1e9
    row = (f"{arch:8s} {seq1:8.1f} {seqn:8.1f} {seq_procs:8.1f} {stacked:8.1f} {pop:8.1f} "
           f"{pop / max(seq1, seqn):6.2f}x {pop / seq_procs:6.2f}x {gflops:7.2f} "
           f"{gflops * 1e9 / peak:6.1%}")
    return row, max(mib1, mib2, mib3)


def main(argv=None):
    a = parse_args(argv)
    task = make_task("flipflop", n_time=a.time)
    peak = matmul_flops(a.matmul_size, a.workers)
    print(f"hidden={a.hidden} batch={a.batch} time={a.time} nets={a.nets} steps={a.steps} "
          f"workers={a.workers} baseline_threads={a.baseline_threads} "
          f"load average before: {os.getloadavg()[0]:.1f}")
    print(f"machine matmul ({a.matmul_size}^2 float32, {a.workers} threads): "
          f"{peak / 1e9:.1f} GFLOP/s")
    print("network-training-steps/s: sequential torch.nn (1 thread | "
          f"{a.baseline_threads} threads | {a.workers} procs), population (stacked in 1 proc | "
          f"{a.workers} procs); ratio = population / best sequential in one process | "
          f"/ sequential in {a.workers} procs")
    print(f"{'arch':8s} {'seq 1t':>8s} {'seq nt':>8s} {'seq np':>8s} {'stack 1p':>8s} "
          f"{'pop np':>8s} {'ratio':>7s} {'vs np':>7s} {'GFLOP/s':>7s} {'of peak':>6s}")
    worker_mib = 0.0
    with ProcessPoolExecutor(a.workers, mp_context=get_context("spawn")) as pool:
        list(pool.map(warm_up, range(a.workers)))
        for arch in a.archs:
            row, mib = report_row(arch, a, pool, (task.n_in, task.n_out), peak)
            worker_mib = max(worker_mib, mib)
            print(row, flush=True)
    print(f"peak memory (max RSS): sequential process {peak_mib():.0f} MiB; each of "
          f"{a.workers} workers {worker_mib:.0f} MiB; load average after: "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
