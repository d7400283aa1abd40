"""All-pairs distances, side by side in one run: batched against per-pair, grouped against padded.

1. SVCCA and PWCCA, batched against a per-pair loop. The population is N random-weight networks (vanilla
   tanh, H units, the lib's own stacked cells) driven by the flip-flop probe trials, so the state
   matrices have a realistic size and spectrum (M = trials x steps samples). The per-pair loop
   computes every pair from scratch (centre, SVD-truncate both networks, whitened CCA:
   ``lib.cca.svcca_pair``; ``lib.cca.pwcca_pair``). It is too slow for all N(N-1)/2 pairs, so a random subset of pairs
   is timed and the time per pair extrapolated.
2. A population of mixed sizes (``--small`` networks of ``--hidden-small`` units and one of
   ``--hidden-big``): ``lib.cca`` (blocks grouped by width, tiles bounded by a memory budget)
   against the previous implementation kept here as the baseline (every network zero-padded to
   the largest width, one stacked [M, N K_max] matrix). Procrustes, CKA and SVCCA under the
   99 % variance rule (networks keep different numbers of directions); time, peak memory
   allocated by numpy (tracemalloc, in a second, untimed run) and the largest difference.
3. All four metrics (SVCCA at k and under the 99 % rule, PWCCA, Procrustes, CKA) of the population
   of 1. in one pass (``lib.cca.distances``: one factorisation per network, one block per pair)
   against one call per metric, as a user without it would make them.

    python benchmarks/bench_cca.py [--networks 200] [--hidden 64] [--k 10] [--pairs 300]
                                   [--small 60] [--hidden-small 32] [--hidden-big 256]
"""
import argparse
import time
import tracemalloc

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
    ap.add_argument("--small", type=int, default=60, help="small networks of the mixed population")
    ap.add_argument("--hidden-small", type=int, default=32)
    ap.add_argument("--hidden-big", type=int, default=256)
    a = ap.parse_args()
    # Both sides get the same BLAS threads; one thread by default because multithreaded
    # OpenBLAS on a small, shared machine spends more time waiting than computing.
    with threadpool_limits(a.threads):
        run(a)
        print()
        run_mixed(a)
        print()
        run_one_pass(a)


def run(a):
    Xs = population_states(a.networks, a.hidden, a.trials, a.steps)
    n_pairs = a.networks * (a.networks - 1) // 2
    print(f"{a.networks} networks, states {Xs[0].shape[0]} samples x {a.hidden} units, "
          f"{n_pairs} pairs; BLAS threads {a.threads}")
    print(f"{'metric':<16}{'batched s':>10}{'per-pair s':>12}{'ms/pair':>9}{'speed-up':>10}"
          f"{'max |diff|':>12}{'mean D':>8}")
    rng = np.random.default_rng(0)
    iu = np.triu_indices(a.networks, 1)
    pick = rng.choice(n_pairs, size=min(a.pairs, n_pairs), replace=False)
    for name, batched, pair in ((f"SVCCA k={a.k}", lambda: cca.svcca_distances(Xs, a.k),
                                 lambda X, Y: cca.svcca_pair(X, Y, a.k)),
                                ("PWCCA", lambda: cca.pwcca_distances(Xs), cca.pwcca_pair)):
        D, t_batched = timed(batched)
        ref, t_ref = timed(lambda: [pair(Xs[i], Xs[j]) for i, j in zip(iu[0][pick], iu[1][pick])])
        err = np.max(np.abs(np.array(ref) - D[iu[0][pick], iu[1][pick]]))
        t_pair = t_ref / len(pick)
        t_loop = t_pair * n_pairs  # extrapolated from the timed random pairs
        print(f"{name:<16}{t_batched:10.2f}{t_loop:12.2f}{1e3 * t_pair:9.2f}"
              f"{t_loop / t_batched:9.1f}x{err:12.1e}{D[iu].mean():8.3f}")
        assert err < 1e-8, f"batched and per-pair {name} disagree"
    print(f"(per-pair: {len(pick)} random pairs timed, the time per pair extrapolated to all)")


# --- the previous, padded implementation (the baseline) ----------------------------------------

def padded_blocks(mats, reduce, max_elements: int = 2 ** 24) -> np.ndarray:
    """``lib.cca.pairwise_blocks`` before grouping: every network zero-padded to K = max K_i."""
    M, N, K = mats[0].shape[0], len(mats), max(m.shape[1] for m in mats)
    flat = np.zeros((M, N, K))
    for i, m in enumerate(mats):
        flat[:, i, :m.shape[1]] = m
    flat = flat.reshape(M, -1)
    rows = max(1, max_elements // (N * K * K))
    out = np.zeros((N, N))
    for i0 in range(0, N, rows):
        i1 = min(N, i0 + rows)
        G = flat[:, i0 * K:i1 * K].T @ flat[:, i0 * K:]
        G = G.reshape(i1 - i0, K, N - i0, K).transpose(0, 2, 1, 3)
        out[i0:i1, i0:] = reduce(G)
    upper = np.triu(out)
    return upper + np.triu(upper, 1).T


def _nuclear(G):
    return np.linalg.svd(G, compute_uv=False).sum(axis=-1)


def padded_distance(Xs, metric: str) -> np.ndarray:
    """Procrustes, CKA or SVCCA (99 % variance rule) as computed before grouping."""
    if metric == "svcca 0.99":
        bases = [cca.svcca_basis(X, 0.99) for X in Xs]
        ks = np.array([b.shape[1] for b in bases])
        D = 1.0 - padded_blocks(bases, _nuclear) / np.minimum.outer(ks, ks)
    else:
        mats = [(X - X.mean(0)) / np.linalg.norm(X - X.mean(0)) for X in Xs]
        if metric == "procrustes":
            D = np.arccos(np.clip(padded_blocks(mats, _nuclear), -1, 1))
        else:
            hsic = padded_blocks(mats, lambda G: (G ** 2).sum(axis=(-1, -2)))
            D = 1.0 - hsic / np.sqrt(np.outer(np.diag(hsic), np.diag(hsic)))
    D = np.clip(D, 0, None)
    np.fill_diagonal(D, 0)
    return D


def grouped_distance(Xs, metric: str) -> np.ndarray:
    return cca.svcca_distances(Xs, 0.99) if metric == "svcca 0.99" else cca.distance_matrix(Xs, metric)


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def peak_mib(fn, *args) -> float:
    tracemalloc.start()
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2 ** 20


def run_mixed(a):
    Xs = (population_states(a.small, a.hidden_small, a.trials, a.steps)
          + population_states(1, a.hidden_big, a.trials, a.steps))
    M = Xs[0].shape[0]
    print(f"mixed sizes: {a.small} networks x {a.hidden_small} units + 1 x {a.hidden_big}, "
          f"{M} samples; padded stack {M * len(Xs) * a.hidden_big * 8 / 2 ** 20:.0f} MiB, "
          f"the states themselves {sum(X.nbytes for X in Xs) / 2 ** 20:.0f} MiB")
    print(f"{'metric':<12}{'padded s':>10}{'grouped s':>11}{'speed-up':>10}"
          f"{'padded MiB':>12}{'grouped MiB':>13}{'max |diff|':>12}")
    for metric in ("procrustes", "cka", "svcca 0.99"):
        old, t_old = timed(padded_distance, Xs, metric)
        new, t_new = timed(grouped_distance, Xs, metric)
        m_old, m_new = peak_mib(padded_distance, Xs, metric), peak_mib(grouped_distance, Xs, metric)
        err = np.abs(old - new).max()
        print(f"{metric:<12}{t_old:10.2f}{t_new:11.2f}{t_old / t_new:9.1f}x"
              f"{m_old:12.0f}{m_new:13.0f}{err:12.1e}")
        assert err < 1e-10, f"grouped and padded {metric} disagree"


def run_one_pass(a):
    Xs = population_states(a.networks, a.hidden, a.trials, a.steps)
    ks = [a.k, 0.99]
    separate = lambda: {"svcca": cca.svcca_curve(Xs, ks),  # noqa: E731
                        **{m: cca.distance_matrix(Xs, m) for m in ("pwcca", "procrustes", "cka")}}
    one, t_one = timed(cca.distances, Xs, cca.METRICS, ks)
    sep, t_sep = timed(separate)
    err = max(np.abs(one[m] - sep[m]).max() for m in sep)
    print(f"every metric ({len(Xs)} networks; SVCCA k={a.k} and 99 %, PWCCA, Procrustes, CKA): "
          f"one call per metric {t_sep:.2f} s, one pass {t_one:.2f} s, speed-up "
          f"{t_sep / t_one:.1f}x, max |diff| {err:.1e}")
    assert err < 1e-10, "one pass and one call per metric disagree"


if __name__ == "__main__":
    main()
