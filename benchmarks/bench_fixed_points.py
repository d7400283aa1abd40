"""Fixed points of trained flip-flop networks: the book's search against a FixedPointFinder-like
baseline, side by side in one run, with recall against an exhaustive reference.

* book (lib.fixed_points): the networks of a shard at once (and, for comparison, the same code
  network by network), default FixedPointConfig;
* baseline, per network, what FixedPointFinder does: 1024 starts from trajectory states plus
  Gaussian noise 0.5, Adam (epsilon 0.01) on the mean q with FixedPointFinder's adaptive learning
  rate (initial 1.0, x1/0.95 after 5 monotonic improvements, x0.95 on a worse loss) and
  adaptive gradient-norm clipping (95th percentile of the last 128 norms), stopping at mean
  q < 1e-12, |dq| < 1e-20 or 5000 iterations; uniqueness 1e-3, outliers beyond 10 radii,
  Jacobians per point;
* reference: lib.fp_recall.exhaustive (4x the starts at four noise scales plus the box, 5x
  the budget, up to three rounds of midpoint and neighbour starts).

Each method runs in its own process (so its peak memory is its own), one thread each, and is
timed ``--repeats`` times (default 3), the methods taking turns; the median is printed. Before
its timed run each process runs its method once on a tiny budget (:func:`warm_up`), so the
rate is per network, not per process start. Kept points: q <= 1e-8. Recall counts the
reference's isolated fixed points (q <= 1e-12, no Jacobian eigenvalue within 1e-3 of 1:
lib.fp_recall.isolated; a continuum cannot be listed point by point) that a method's fixed
points match within 1e-3, as chapter 5 does. "not in ref" counts a method's fixed points
(q <= 1e-12) farther than 1e-3 from every point of the reference, isolated ones (points the
reference itself missed, so the baseline's column checks the book's method with an independent
one) apart from those on a continuum (sampled wherever a search's starts happen to reach it).
Run: ``python benchmarks/bench_fixed_points.py [--per-label 4] [--labels vanilla-tanh,...]
[--repeats 3]``.
Uses ``$RNNBOOK_CACHE`` (trains the default flip-flop population there if missing) and stores
each reference there (``fixed_points/ref-*.npz``; its rate then reads "stored"). Not a test.
"""
from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import resource
import time

import numpy as np
import torch

TOL_FIXED, TOL_SLOW = 1e-12, 1e-8
REFERENCE_STORED = False  # set by reference(): loaded from the cache, not searched in this run


def networks(per_label: int, labels):
    from lib import models
    from lib.config import population_config
    from lib.population import groups, load_or_train
    from lib.tasks import make_task
    pop = load_or_train(population_config("default", "flipflop"), progress=False)
    task = make_task("flipflop")
    out = []
    for g in groups(pop.included()):
        if (labels and g.label not in labels) or any(o[0] == g.label for o in out):
            continue
        k = min(per_label, len(g.nets))
        p = models.select(g.params, range(k))
        out.append((g.label, g.spec, p, task))
    return out


def visited(spec, params, task):
    from lib import fixed_points as fp
    return fp.visited_states(spec, params, task.probe(16).inputs)


# ---------------------------------------------------------------------------------------------
# Methods: each returns a list over networks of (points [M, S], q [M], n_unstable [M],
# isolated [M]: no Jacobian eigenvalue within 1e-3 of 1, lib.fp_result.isolated)


def book(spec, params, task, batched=True):
    from lib import fixed_points as fp, fp_result, models
    cfg = fp.FixedPointConfig()
    parts = [params] if batched else [models.select(params, [i]) for i in range(params["W"].shape[0])]
    out = []
    for p in parts:
        res = fp.find_fixed_points(spec, p, np.zeros(task.n_in), visited(spec, p, task), cfg)
        out += [(r.points, r.q, r.n_unstable, fp_result.isolated(r, fixed_only=False))
                for r in (res.of(i) for i in range(p["W"].shape[0]))]
    return out


def reference(spec, params, task):
    """The exhaustive reference, stored under ``$RNNBOOK_CACHE/fixed_points`` by the networks'
    weights, probe trials and reference configuration (not by the search's source: a reference
    is a list of fixed points, and every stored point is checked again at load, q in float64
    by the current cell, so a rerun after a change of the search costs only the methods)."""
    from lib import fixed_points as fp, fp_cache, fp_recall, store
    cfg = fp_recall.reference_config(fp.FixedPointConfig())
    probe = task.probe(16).inputs
    h = hashlib.sha256(f"exhaustive reference\n{spec}\n{cfg}\n".encode())
    h.update(store.digest({k: v.numpy() for k, v in params.items()}).encode())
    h.update(store.digest({"inputs": np.asarray(probe)}).encode())
    F = fp.CellMap(spec, params)
    key = "ref-" + h.hexdigest()[:24]
    global REFERENCE_STORED
    REFERENCE_STORED = (store.default_root() / "fixed_points" / f"{key}.npz").exists()
    res = fp_cache.cached(key, lambda: fp_recall.exhaustive(
        F, visited(spec, params, task), fp.FixedPointConfig(), inputs=np.zeros(task.n_in)))
    s = torch.as_tensor(res.points)[:, None]
    x = torch.zeros(len(s), 1, task.n_in, dtype=torch.float64)
    q = 0.5 * (F(s, x, torch.as_tensor(res.net, dtype=torch.long)) - s).pow(2).sum(-1)[:, 0]
    still = q.numpy() <= TOL_FIXED
    out = []
    for i in range(params["W"].shape[0]):
        r = res.of(i)
        out.append((r.points, r.q, r.n_unstable, fp_recall.isolated(r) & still[res.net == i]))
    return out


def baseline(spec, params, task):
    from lib import models
    out = []
    for i in range(params["W"].shape[0]):
        p = models.select(params, [i])
        out.append(_fpf_one(spec, p, visited(spec, p, task)[0], task.n_in))
    return out


def _fpf_one(spec, p, vis, n_in, n_starts=1024, noise=0.5, max_iters=5000, tol_q=1e-12,
             tol_dq=1e-20, seed=0):
    from lib import models
    g = torch.Generator().manual_seed(seed)
    s0 = vis[torch.randint(len(vis), (n_starts,), generator=g)]
    s = (s0 + noise * torch.randn(s0.shape, generator=g)).float()[None].requires_grad_(True)
    x = torch.zeros(1, n_starts, n_in)
    opt = torch.optim.Adam([s], lr=1.0, eps=0.01)
    lr, losses, norms, last_change = 1.0, [], [], 0
    for t in range(max_iters):
        q = 0.5 * (models.step(spec, p, s, x) - s).pow(2).sum(-1)
        loss = q.mean()
        opt.zero_grad()
        loss.backward()
        norm = float(s.grad.norm())
        norms = (norms + [norm])[-128:]
        clip = np.percentile(norms, 95) if len(norms) > 1 else 1.0
        if norm > clip:
            s.grad *= clip / norm
        losses.append(float(loss.detach()))
        if losses[-1] < tol_q or (t > 0 and abs(losses[-1] - losses[-2]) < tol_dq):
            break
        if t - last_change >= 5 and all(np.diff(losses[-6:]) < 0):
            lr, last_change = lr / 0.95, t
        elif t - last_change >= 1 and len(losses) > 1 and losses[-1] > losses[-2]:
            lr, last_change = max(lr * 0.95, 1e-3), t
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
    with torch.no_grad():
        sd, pd = s.detach()[0].double(), {k: v.double() for k, v in p.items()}
        q = 0.5 * (models.step(spec, pd, sd[None], x.double())[0] - sd).pow(2).sum(-1)
    centre = vis.double().mean(0)
    radius = (vis.double() - centre).norm(dim=1).mean()
    ok = (q <= TOL_SLOW) & ((sd - centre).norm(dim=1) <= 10 * radius)
    kept = []
    for i in torch.argsort(q).tolist():
        if ok[i] and all(torch.dist(sd[i], sd[j]) >= 1e-3 for j in kept):
            kept.append(i)
    x1 = torch.zeros(1, 1, n_in, dtype=torch.float64)
    f = lambda v: models.step(spec, pd, v[None, None], x1)[0, 0]  # noqa: E731
    from lib.fp_result import ISOLATED
    lam = [torch.linalg.eigvals(torch.autograd.functional.jacobian(f, sd[i])) for i in kept]
    n_unstable = np.array([int((v.abs() > 1 + 1e-6).sum()) for v in lam], dtype=int)
    isolated = np.array([bool((v - 1).abs().min() > ISOLATED) for v in lam], dtype=bool)
    return sd[kept].numpy(), q[kept].numpy(), n_unstable, isolated


METHODS = {"book (batched)": lambda *a: book(*a, batched=True),
           "book (per network)": lambda *a: book(*a, batched=False),
           "FPF-like baseline": baseline, "reference": reference}


def warm_up(name, spec, params, task):
    """A tiny untimed run of a method on the first network, so the timed run does not pay the
    process's one-time costs (library loads, LAPACK and allocator start-up), which a search
    of many networks pays once."""
    from lib import fixed_points as fp, models
    p = models.select(params, [0])
    if name.startswith("book"):
        cfg = fp.FixedPointConfig(n_init=16, adam_iters=5, newton_iters=5, midpoint_rounds=1)
        fp.find_fixed_points(spec, p, np.zeros(task.n_in), visited(spec, p, task), cfg)
    elif name == "FPF-like baseline":
        _fpf_one(spec, p, visited(spec, p, task)[0], task.n_in, n_starts=16, max_iters=5)


def _child(name, label, per_label, conn):
    torch.set_num_threads(1)
    (lab, spec, params, task), = networks(per_label, [label])
    warm_up(name, spec, params, task)
    t = time.perf_counter()
    out = METHODS[name](spec, params, task)
    sec = np.nan if name == "reference" and REFERENCE_STORED else time.perf_counter() - t
    conn.send((sec, out, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


def run(name, label, per_label):
    parent, child = mp.Pipe()
    proc = mp.get_context("fork").Process(target=_child, args=(name, label, per_label, child))
    proc.start()
    res = parent.recv()
    proc.join()
    return res


def recall(found, ref):
    """Mean over networks of the fraction of the reference's isolated fixed points found."""
    out = []
    for (p, q, *_), (rp, _, _, iso) in zip(found, ref):
        r = rp[iso]
        f = p[q <= TOL_FIXED]
        if len(r):
            out.append((_nearest(r, f) < 1e-3).mean())
    return float(np.mean(out)) if out else np.nan


def outside(found, ref):
    """Fixed points (q <= TOL_FIXED) of a method farther than 1e-3 from every point of the
    reference, summed over networks: (isolated, on a continuum). Isolated ones are points the
    exhaustive search itself missed; a continuum is sampled wherever a search's starts reach it."""
    far = [(_nearest(p[q <= TOL_FIXED], rp) >= 1e-3, iso[q <= TOL_FIXED])
           for (p, q, _, iso), (rp, *_) in zip(found, ref)]
    return int(sum((f & i).sum() for f, i in far)), int(sum((f & ~i).sum() for f, i in far))


def _nearest(r, f, chunk=2048):
    """Distance [R] from every point of r [R, S] to its nearest in f [F, S] (inf if F = 0)."""
    if len(f) == 0 or len(r) == 0:
        return np.full(len(r), np.inf)
    ft = torch.as_tensor(f)
    return np.concatenate([torch.cdist(torch.as_tensor(r[i:i + chunk]), ft).amin(1).numpy()
                           for i in range(0, len(r), chunk)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-label", type=int, default=4, help="networks per arch x activation")
    ap.add_argument("--labels", default="", help="comma-separated, e.g. vanilla-tanh,lstm-relu")
    ap.add_argument("--skip-per-network", action="store_true")
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed runs per method, taking turns (the median is printed)")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats must be at least 1, got {args.repeats}")
    labels = [lab for lab, *_ in networks(args.per_label, [s for s in args.labels.split(",") if s])]
    names = [n for n in METHODS if not (args.skip_per_network and n == "book (per network)")]
    print(f"{args.per_label} flip-flop networks per label, one thread per method, "
          f"median of {args.repeats} runs taking turns (the reference: once)")
    print(f"{'label':14s} {'method':20s} {'nets/s':>8s} {'peak MB':>8s}  points by unstable modes"
          f"  recall  not in ref (isolated / continuum)  q median / max")
    for label in labels:
        res = {n: run(n, label, args.per_label) for n in names}
        secs = {n: [res[n][0]] for n in names}
        for _ in range(args.repeats - 1):  # the methods take turns, so a slow spell hits all
            for n in names:
                if n != "reference":
                    secs[n].append(run(n, label, args.per_label)[0])
        res = {n: (float(np.median(secs[n])),) + tuple(res[n][1:]) for n in names}
        ref = res["reference"][1]
        for n in names:
            sec, out, rss = res[n]
            q = np.concatenate([o[1] for o in out])
            nu = np.concatenate([o[2][o[1] <= TOL_FIXED] for o in out])
            counts = np.bincount(nu, minlength=4)[:4].tolist() if len(nu) else [0] * 4
            qs = f"{np.median(q):.1e} / {q.max():.1e}" if len(q) else "no points"
            rate = "stored" if np.isnan(sec) else f"{len(out) / sec:.3f}"
            extra = "{} / {}".format(*outside(out, ref))
            print(f"{label:14s} {n:20s} {rate:>8s} {rss / 1024:8.0f}  {str(counts):22s}"
                  f"  {recall(out, ref):6.3f}  {extra:>29s}  {qs}", flush=True)
        fpf, ours = res["FPF-like baseline"][0], res["book (batched)"][0]
        line = f"{label:14s} speed-up vs baseline {fpf / ours:.1f}x"
        if "book (per network)" in res:
            line += f"; batched vs per network {res['book (per network)'][0] / ours:.1f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
