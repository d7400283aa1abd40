"""Fixed points of a population of trained flip-flop networks: batched search vs one at a time.

Both methods start from the same initial states (visited probe states plus noise) under zero
input, and both deduplicate, drop outliers, compute Jacobians and classify stability.

* batched (lib.fixed_points): all networks of a shard at once, Adam with per-point stop, then a
  float64 Levenberg-Marquardt polish, vectorised dedup, one batched Jacobian call.
* straightforward: one network at a time, plain Adam on the sum of q over its points with
  FixedPointFinder's defaults (tol_q = 1e-12, up to 5000 iterations, stopping when every
  point is below tol_q), a Python dedup loop, and one torch.autograd.functional.jacobian call
  per unique point.

Uses the default-profile flip-flop population when it is in the cache, else trains a small one.
Run: ``python benchmarks/bench_fixed_points.py [--nets 64] [--n-init 128]``. Not a test.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lib import dynamics, fixed_points as fp, models, store
from lib.config import population_config
from lib.population import load_or_train
from lib.tasks import make_task


def population(n_nets: int):
    cfg = population_config("default", "flipflop")
    root = store.default_root()
    if all((Path(root) / f"{store.shard_key(c, 'cpu')}.npz").exists() for c in cfg.shards()):
        pop = load_or_train(cfg, progress=False)
    else:
        print("default flip-flop population not cached: training a small one")
        cfg = population_config("default", "flipflop", n_seeds=2, l2s=(1e-4,), n_steps=400)
        pop = load_or_train(cfg, root=tempfile.mkdtemp(), progress=False)
    nets = pop.included()
    # spread the subset over the architectures: every k-th network
    step = max(len(nets) // n_nets, 1)
    return make_task("flipflop"), nets[::step][:n_nets]


def batched(task, nets, config):
    out = []
    for g in dynamics.groups(nets):
        vis = fp.visited_states(g.spec, g.params, task.probe(16).inputs)
        init = fp.initial_states(vis.double(), config)
        out.append(fp.find_fixed_points(g.spec, g.params, np.zeros(task.n_in), vis, config, init=init))
    return out


def straightforward(task, nets, config, max_iters=5000, tol_q=1e-12, lr=1e-2):
    out = []
    for net in nets:
        spec, params = net.spec, {k: v.detach() for k, v in net.params.items()}
        vis = fp.visited_states(spec, params, task.probe(16).inputs)
        s = fp.initial_states(vis.double(), config).float().requires_grad_(True)
        x = torch.zeros(1, s.shape[1], task.n_in)
        opt = torch.optim.Adam([s], lr=lr)
        for _ in range(max_iters):
            q = 0.5 * (models.step(spec, params, s, x) - s).pow(2).sum(-1)
            if q.max() < tol_q:
                break
            opt.zero_grad()
            q.sum().backward()
            opt.step()
        out.append(_finish(spec, params, s.detach()[0], q.detach()[0], vis[0], config))
    return out


def _finish(spec, params, s, q, vis, config):
    """Keep q <= tol_keep, drop outliers, dedup with a Python loop, Jacobian per point."""
    centre = vis.mean(0)
    radius = (vis - centre).norm(dim=1).mean()
    ok = (q <= config.tol_keep) & ((s - centre).norm(dim=1) <= config.outlier_scale * radius)
    kept = []
    for i in torch.argsort(q).tolist():
        if ok[i] and all(torch.dist(s[i], s[j]) >= config.tol_unique for j in kept):
            kept.append(i)
    x = torch.zeros(1, 1, spec.n_in)
    f = lambda v: models.step(spec, params, v[None, None], x)[0, 0]
    jac = [torch.autograd.functional.jacobian(f, s[i]) for i in kept]
    n_unstable = [int((torch.linalg.eigvals(J).abs() > 1 + config.tol_unstable).sum()) for J in jac]
    return q[kept].double().numpy(), np.array(n_unstable, dtype=int)


def report(name, seconds, qs, n_unstable):
    q = np.concatenate(qs) if qs else np.zeros(0)
    counts = np.bincount(np.concatenate(n_unstable), minlength=4)[:4] if len(q) else np.zeros(4, int)
    print(f"{name:16s} {seconds:8.1f} s  unique points {len(q):5d}  by unstable modes {counts.tolist()}"
          f"  q median {np.median(q):.1e}  q max {q.max():.1e}  q<=1e-12: {np.mean(q <= 1e-12):.0%}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", type=int, default=64)
    ap.add_argument("--n-init", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    task, nets = population(args.nets)
    config = fp.FixedPointConfig(n_init=args.n_init)
    print(f"{len(nets)} flip-flop networks, {args.n_init} initial states each, "
          f"{args.threads} thread(s)")
    t = time.perf_counter()
    fast = batched(task, nets, config)
    t_fast = time.perf_counter() - t
    report("batched", t_fast, [r.q for r in fast], [r.n_unstable for r in fast])
    t = time.perf_counter()
    slow = straightforward(task, nets, config)
    t_slow = time.perf_counter() - t
    report("one at a time", t_slow, [r[0] for r in slow], [r[1] for r in slow])
    print(f"speed-up {t_slow / t_fast:.1f}x")


if __name__ == "__main__":
    main()
