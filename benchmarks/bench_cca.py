"""All-pairs SVCCA: the batched implementation against a per-pair loop, side by side.

The population is N random-weight networks (vanilla tanh, H units, the lib's own stacked cells)
driven by the flip-flop probe trials, so the state matrices have a realistic size and spectrum
(M = trials x steps samples). The per-pair loop computes every pair from scratch (centre,
SVD-truncate both networks, whitened CCA: ``lib.cca.svcca_pair``). It is too slow for all
N(N-1)/2 pairs, so a random subset of pairs is timed and the time per pair extrapolated.

    python benchmarks/bench_cca.py [--networks 200] [--hidden 64] [--k 10] [--pairs 300]
"""
import argparse
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from lib import cca, models
from lib.tasks import FlipFlop


def population_states(n: int, hidden: int, trials: int, steps: int) -> list:
    """States [M, H] of n random-weight networks on shared probe trials, M = trials * steps."""
    spec = models.CellSpec("vanilla", "tanh", 3, hidden, 3)
    params = models.init_params(spec, range(n))
    params["W"] *= 1.3  # a little above the edge of chaos: richer, higher-dimensional states
    x = torch.as_tensor(FlipFlop(n_time=steps).probe(trials).inputs)[None]
    with torch.no_grad():
        s = models.unroll(spec, params, x).double().numpy()
    return list(s.reshape(n, -1, hidden))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", type=int, default=200)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--pairs", type=int, default=300, help="pairs timed in the per-pair loop")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads for both sides")
    a = ap.parse_args()
    # Both sides get the same BLAS threads; one thread by default because multithreaded
    # OpenBLAS on a small, shared machine spends more time waiting than computing.
    with threadpool_limits(a.threads):
        run(a)


def run(a):
    Xs = population_states(a.networks, a.hidden, a.trials, a.steps)
    n_pairs = a.networks * (a.networks - 1) // 2
    print(f"{a.networks} networks, states {Xs[0].shape[0]} samples x {a.hidden} units, "
          f"k = {a.k}, {n_pairs} pairs; BLAS threads {a.threads}")

    t0 = time.perf_counter()
    D = cca.svcca_distances(Xs, a.k)
    t_batched = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    iu = np.triu_indices(a.networks, 1)
    pick = rng.choice(n_pairs, size=min(a.pairs, n_pairs), replace=False)
    t0 = time.perf_counter()
    ref = [cca.svcca_pair(Xs[i], Xs[j], a.k) for i, j in zip(iu[0][pick], iu[1][pick])]
    t_pair = (time.perf_counter() - t0) / len(pick)
    err = np.max(np.abs(np.array(ref) - D[iu[0][pick], iu[1][pick]]))

    t_loop = t_pair * n_pairs
    print(f"batched all pairs        : {t_batched:8.2f} s")
    print(f"per-pair loop            : {t_loop:8.2f} s  (extrapolated from {len(pick)} random "
          f"pairs timed, {1e3 * t_pair:.2f} ms per pair)")
    print(f"speed-up                 : {t_loop / t_batched:8.1f} x")
    print(f"max |difference| on the timed pairs: {err:.2e}  (mean distance {D[iu].mean():.3f})")
    assert err < 1e-8, "batched and per-pair SVCCA disagree"


if __name__ == "__main__":
    main()
