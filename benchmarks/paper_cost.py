"""What the ``paper`` profile costs: its matmul FLOPs, measured CPU throughput, a GPU estimate.

FLOPs of one network-step (one Adam step of one network: a batch of B trials of T time steps):
the forward pass multiplies, every time step, the state by the recurrent weights [H, G], the
input by [I, G] and the state by the readout [H, O] (G = gate blocks x H: 1, 2, 3, 4 for
vanilla, UGRNN, GRU, LSTM); the backward pass costs about twice the forward, so
``flops = 3 x 2 B T (H G + I G + H O)``. Elementwise work (gates, activations, Adam) is left
out: it is memory-bound, small next to the matmuls at H >= 64, and what the GPU assumption
below has to absorb.

The CPU throughput is measured here, on a sample of paper-profile shards cut to a few networks
(``--nets``; every architecture and size, tanh, flip-flop trials), one thread, in a process started with the training workers' allocator settings:
each shard is trained for ``--steps`` and for one step, and the difference (no set-up, no
evaluation) gives network-steps per second, turned into achieved GFLOP/s. No GPU was measured:
the GPU time is an estimate, total FLOPs over an assumed sustained rate (``--gpu-tflops``).

    python benchmarks/paper_cost.py [--nets 4] [--steps 3] [--gpu-tflops 10]
"""
import argparse
import os
import sys
import time
from dataclasses import replace

from lib.config import population_config
from lib.population import TRAINING_WORKER_ENV, flops_per_network_step, shard_flops
from lib.tasks import TASKS
from lib.train import train_shard


def measure(shard, nets: int, steps: int) -> float:
    """Network-steps per second of training ``shard`` cut to ``nets`` networks (one thread)."""
    def run(n_steps):
        cfg = replace(shard, nets=shard.nets[:nets], n_steps=n_steps, eval_batch=8)
        t0 = time.perf_counter()
        train_shard(cfg, progress=False)
        return time.perf_counter() - t0
    return nets * (steps - 1) / (run(steps) - run(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", type=int, default=4, help="networks per measured shard")
    ap.add_argument("--steps", type=int, default=4, help="training steps per measurement")
    ap.add_argument("--cores", type=int, default=2, help="cores of the CPU estimate")
    ap.add_argument("--gpu-tflops", type=float, default=10.0,
                    help="assumed sustained FP32 matmul rate of one GPU, TFLOP/s")
    a = ap.parse_args()

    configs = {t: population_config("paper", t) for t in TASKS}
    total = {t: sum(shard_flops(s) for s in c.shards()) for t, c in configs.items()}
    print("paper profile (lib.config): per task")
    for t, c in configs.items():
        print(f"  {t:<9} {c.n_networks:5d} networks, {len(c.shards()):3d} shards, "
              f"{c.n_steps} steps x batch {c.batch_size} x T {c.shards()[0].make_task().n_time}: "
              f"{total[t]:.2e} FLOPs")
    n_all, f_all = sum(c.n_networks for c in configs.values()), sum(total.values())
    print(f"  all       {n_all:5d} networks: {f_all:.2e} matmul FLOPs (forward + backward)")

    print(f"\nCPU, measured ({a.nets} networks a shard, {a.steps - 1} timed steps, 1 thread, "
          "flip-flop shards):")
    rates = {}
    ff = configs["flipflop"]
    for shard in ff.shards():
        if shard.activation != "tanh":
            continue
        ns = measure(shard, a.nets, a.steps)
        task = shard.make_task()
        per = flops_per_network_step(shard.arch, task.n_in, shard.n_hidden, task.n_out,
                                     shard.batch_size, task.n_time)
        rates[shard.arch, shard.n_hidden] = per * ns
        print(f"  {shard.arch:<8} H={shard.n_hidden:<4} {ns:8.2f} network-steps/s  "
              f"{per * ns / 1e9:6.1f} GFLOP/s")
    # every task's shards at the GFLOP/s measured for their architecture and size
    cpu_s = sum(shard_flops(s) / rates[s.arch, s.n_hidden]
                for c in configs.values() for s in c.shards()) / a.cores
    print(f"  overall {f_all / (cpu_s * a.cores) / 1e9:.1f} GFLOP/s per core (FLOP-weighted); the "
          f"paper profile would need {cpu_s / 86400:.0f} days on {a.cores} cores (ideal scaling)")

    print("\nGPU, estimated (no GPU measured): total FLOPs / assumed sustained rate")
    for tf in sorted({a.gpu_tflops / 2, a.gpu_tflops, a.gpu_tflops * 2}):
        print(f"  at {tf:5.1f} TFLOP/s: {f_all / (tf * 1e12) / 3600:5.2f} h"
              + ("   <- planning assumption" if tf == a.gpu_tflops else ""))


if __name__ == "__main__":
    # glibc reads its allocator settings at process start: measure as a training worker runs
    if any(os.environ.get(k) != v for k, v in TRAINING_WORKER_ENV.items()):
        os.execve(sys.executable, [sys.executable] + sys.argv,
                  {**os.environ, **TRAINING_WORKER_ENV})
    main()
