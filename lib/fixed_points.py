"""Fixed points and slow points of whole populations of networks at once.

For a constant input x*, the fixed points of the one-step map ``F(s) = step(s, x*)`` are the
zeros of ``q(s) = 1/2 |F(s) - s|^2``. Every network of a shard is searched from many initial
states at once (a tensor [N, B, S]: networks x initial states x state):

1. Adam on q, all points together in float32, each point stopping once ``q < tol_adam``;
   points closer than ``tol_merge`` are then merged (they head for the same point);
2. a damped Newton (Levenberg-Marquardt) polish in float64 on ``(J - I) d = -(F(s) - s)`` with
   per-point damping, accepting only steps that lower q, so true fixed points reach q ~ 1e-20;
3. outliers (far from the visited states) and points with ``q > tol_keep`` are dropped, the rest
   deduplicated per network (exact greedy in q order, vectorised over all networks);
4. Jacobians of all points in one batched call, eigen-decomposition (right and left
   eigenvectors), and the number of unstable modes (discrete time: ``|lambda| > 1``).

The core (:func:`find`) takes any batched map ``F: [N, B, S] -> [N, B, S]`` whose points evolve
independently; :func:`find_fixed_points` builds that map from a trained shard. The solvers
themselves live in :mod:`lib.fixed_point_solver` (re-exported here).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from . import models
from .checks import MAX_SEED, Int, Real, gather
from .fixed_point_solver import (adam, compact, jacobians, outliers, polish, q_of,  # noqa: F401
                                 unique)

FORMAT_VERSION = 1


@dataclass(frozen=True)
class FixedPointConfig:
    """Tolerances and budgets of the fixed-point search.

    Parameters
    ----------
    n_init : initial states per network, drawn from the visited states.
    init_noise : standard deviation of Gaussian noise added to each initial state.
    lr : Adam learning rate.
    adam_iters : Adam iteration budget.
    tol_adam : a point stops its Adam phase once q < tol_adam.
    newton_iters : Levenberg-Marquardt polish iterations (0 skips the polish, e.g. to keep
        slow points along an approximate line attractor instead of sliding to its ends).
    tol_keep : points with q above this after the search are discarded (slow-point threshold).
    tol_unique : two points of one network closer than this are the same point.
    tol_merge : before the polish, points closer than this are merged (they would converge
        to the same point; merging first makes the polish cheaper). Distinct fixed points of
        trained networks lie O(1) apart; benchmarks/bench_fixed_points.py shows 0.1 loses
        about 3% of the unique points found with 0.01 and saves a third of the time.
    outlier_scale : a point farther from the centroid of the visited states than this many
        times their mean distance to it is an outlier.
    tol_unstable : a mode is unstable when ``|lambda| > 1 + tol_unstable``.
    seed : seed of the initial-state draw and noise.
    """

    n_init: int = 256
    init_noise: float = 0.02
    lr: float = 0.01
    adam_iters: int = 300
    tol_adam: float = 1e-8
    newton_iters: int = 15
    tol_keep: float = 1e-8
    tol_unique: float = 1e-3
    tol_merge: float = 0.1
    outlier_scale: float = 10.0
    tol_unstable: float = 1e-6
    seed: int = 0

    def __post_init__(self):
        gather([lambda n=n, r=r: r(n, getattr(self, n)) for n, r in _FP_RULES.items()])


_POSITIVE = Real(0.0, 1.0, low_open=True)
# finite everywhere (a NaN tolerance would keep or drop every point silently); budgets bounded
_FP_RULES = {
    "n_init": Int(1, 100_000), "init_noise": Real(0.0, 10.0), "lr": Real(0.0, 10.0, low_open=True),
    "adam_iters": Int(0, 1_000_000), "tol_adam": _POSITIVE, "newton_iters": Int(0, 10_000),
    "tol_keep": _POSITIVE, "tol_unique": Real(0.0, 10.0, low_open=True),
    "tol_merge": Real(0.0, 10.0, low_open=True), "outlier_scale": Real(0.0, 1e6, low_open=True),
    "tol_unstable": Real(0.0, 1.0, high_open=True), "seed": Int(0, MAX_SEED)}

@dataclass(frozen=True)
class FixedPoints:
    """Unique fixed (or slow) points of a set of networks and their linearisation.

    M points in all, state dimension S, N networks, I inputs. Plain numpy arrays only, so
    :meth:`save` / :meth:`load` need no pickle.

    Attributes
    ----------
    points : [M, S] float64, the points (LSTM: [h, c]).
    net : [M] int, network index (position on the network axis of the params searched).
    q : [M] float64, ``1/2 |F(s) - s|^2`` at each point.
    jacobians : [M, S, S] float64, ``J[m, i, j] = dF_i / ds_j``.
    eigvals : [M, S] complex128, sorted by decreasing modulus.
    right : [M, S, S] complex128, right eigenvectors as columns: ``J right[m][:, k] = lam_k right[m][:, k]``.
    left : [M, S, S] complex128, left eigenvectors as rows, ``left[m] = inv(right[m])``:
        ``left[m][k] J = lam_k left[m][k]`` and ``left[m] @ right[m] = I``; so
        ``J = sum_k lam_k outer(right[m][:, k], left[m][k])``.
    n_unstable : [M] int, number of eigenvalues with ``|lambda| > 1 + tol_unstable``.
    inputs : [N, I] float64, the constant input x* of each network.
    """

    points: np.ndarray
    net: np.ndarray
    q: np.ndarray
    jacobians: np.ndarray
    eigvals: np.ndarray
    right: np.ndarray
    left: np.ndarray
    n_unstable: np.ndarray
    inputs: np.ndarray

    def __len__(self) -> int:
        return len(self.q)

    @property
    def n_nets(self) -> int:
        return len(self.inputs)

    def of(self, net: int) -> "FixedPoints":
        """The points of one network (its ``net`` stays the original index)."""
        return self.subset(self.net == net)

    def subset(self, mask) -> "FixedPoints":
        """Points selected by a boolean mask or index array [M]."""
        keep = {f.name: getattr(self, f.name)[mask] for f in fields(self) if f.name != "inputs"}
        return FixedPoints(**keep, inputs=self.inputs)

    def save(self, path) -> None:
        """Write to ``path`` (.npz), plain arrays only."""
        np.savez(path, format_version=FORMAT_VERSION, **asdict(self))

    @classmethod
    def load(cls, path) -> "FixedPoints":
        """Read a file written by :meth:`save` (``allow_pickle=False``)."""
        with np.load(path, allow_pickle=False) as z:
            if int(z["format_version"]) != FORMAT_VERSION:
                raise ValueError(f"{path}: fixed-point format {int(z['format_version'])}, "
                                 f"expected {FORMAT_VERSION}")
            return cls(**{f.name: z[f.name] for f in fields(cls)})


# ---------------------------------------------------------------------------------------------
# The map F of a trained shard


def cell_map(spec: models.CellSpec, params: dict, x_star):
    """The batched map ``F(s) = step(s, x*)`` of every network of a shard.

    Parameters
    ----------
    params : dict of Tensor [N, ...], never modified (cast copies are cached per dtype).
    x_star : [N or 1, I] or [I] constant input.

    Returns
    -------
    F : callable, s [N, B, S] (float32 or float64) -> [N, B, S].
    """
    x = torch.as_tensor(np.asarray(x_star, dtype=np.float64))
    x = x.reshape(1, 1, -1) if x.dim() == 1 else x.reshape(x.shape[0], 1, -1)
    cache = {}

    def F(s):
        if s.dtype not in cache:
            cache[s.dtype] = ({k: v.detach().to(s.dtype) for k, v in params.items()},
                              x.to(s.dtype))
        p, xs = cache[s.dtype]
        return models.step(spec, p, s, xs.expand(xs.shape[0], s.shape[1], xs.shape[2]))

    return F


def visited_states(spec: models.CellSpec, params: dict, inputs) -> torch.Tensor:
    """States [N, B*T, S] visited by every network on the trials ``inputs`` [B, T, I]."""
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))[None]
    p = {k: v.detach() for k, v in params.items()}
    with torch.no_grad():
        states = models.unroll(spec, p, x)
    return states.reshape(states.shape[0], -1, states.shape[-1])


def find_fixed_points(spec: models.CellSpec, params: dict, x_star, visited,
                      config: FixedPointConfig = FixedPointConfig(), init=None) -> FixedPoints:
    """Fixed points of every network of a shard under the constant input ``x_star``.

    Parameters
    ----------
    spec : the shard's cell specification.
    params : dict of Tensor [N, ...] (not modified).
    x_star : [N or 1, I] or [I] constant input.
    visited : [N, V, S] states visited on task trials (see :func:`visited_states`); initial
        states are drawn from them and they define the outlier scale.
    config : tolerances and budgets.
    init : optional [N, B, S] initial states used as they are (e.g. the centre of a limit
        cycle), instead of ``config.n_init`` noisy draws from ``visited``.

    Returns
    -------
    FixedPoints with ``net`` indexing the network axis of ``params``.
    """
    F = cell_map(spec, params, x_star)
    n = params["W"].shape[0]
    x = np.broadcast_to(np.asarray(x_star, dtype=np.float64).reshape(-1, spec.n_in), (n, spec.n_in))
    return find(F, visited, config, inputs=x, init=init)


# ---------------------------------------------------------------------------------------------
# The generic pipeline


def find(F, visited, config: FixedPointConfig = FixedPointConfig(), inputs=None,
         init=None) -> FixedPoints:
    """Fixed points of a batched map F from initial states drawn among ``visited``.

    Parameters
    ----------
    F : callable [N, B, S] -> [N, B, S], accepting float32 and float64, points independent.
    visited : [N, V, S] array or Tensor of reference states.
    inputs : [N, I] recorded in the result (zeros [N, 0] if omitted).
    init : optional [N, B, S] initial states (default: :func:`initial_states` of visited).
    """
    ref = torch.as_tensor(np.asarray(visited), dtype=torch.float64)
    s0 = initial_states(ref, config) if init is None else torch.as_tensor(np.asarray(init))
    s = adam(F, s0.to(torch.float32), config).to(torch.float64)
    with torch.no_grad():
        q = q_of(F, s)
    # Most initial states fall to the same few points: merge them before the costly polish.
    s, valid = compact(s, unique(s, q, torch.isfinite(q), config.tol_merge))
    s, q = polish(F, s, config.newton_iters)
    ok = valid & (q <= config.tol_keep) & ~outliers(s, ref, config.outlier_scale)
    J = jacobians(F, s)  # all networks in one call (F needs the [N, B] layout)
    ok &= torch.isfinite(q) & torch.isfinite(J).flatten(2).all(-1)  # diverging untrained nets
    net, idx = unique(s, q, ok, config.tol_unique).nonzero(as_tuple=True)
    J = J[net, idx]
    inputs = np.zeros((ref.shape[0], 0)) if inputs is None else np.asarray(inputs, np.float64)
    return classify(s[net, idx], net, q[net, idx], J, config.tol_unstable, inputs)


def initial_states(ref: torch.Tensor, config: FixedPointConfig) -> torch.Tensor:
    """``config.n_init`` states per network drawn from ref [N, V, S], plus noise -> [N, B, S]."""
    g = torch.Generator().manual_seed(config.seed)
    n, v, S = ref.shape
    idx = torch.randint(v, (n, config.n_init), generator=g)
    s0 = torch.gather(ref, 1, idx[..., None].expand(-1, -1, S))
    return s0 + config.init_noise * torch.randn(s0.shape, generator=g, dtype=ref.dtype)


def solve(F, s0, config: FixedPointConfig = FixedPointConfig()):
    """Minimise q from s0 [N, B, S]: Adam (float32) then Levenberg-Marquardt (float64).

    Returns
    -------
    s : [N, B, S] float64 and q : [N, B] float64 (not filtered).
    """
    s = adam(F, torch.as_tensor(s0).to(torch.float32), config)
    return polish(F, s.to(torch.float64), config.newton_iters)


def classify(pts, net, q, J, tol_unstable: float, inputs) -> FixedPoints:
    """Eigen-decomposition and stability of points [M, S] with Jacobians [M, S, S]."""
    lam, R = torch.linalg.eig(J)
    order = torch.argsort(lam.abs(), dim=-1, descending=True)
    lam = torch.gather(lam, -1, order)
    R = torch.gather(R, -1, order[:, None, :].expand_as(R))
    L = torch.linalg.inv(R) if len(pts) else R
    return FixedPoints(
        points=pts.numpy(), net=net.numpy().astype(np.int64), q=q.numpy(), jacobians=J.numpy(),
        eigvals=lam.numpy(), right=R.numpy(), left=L.numpy(),
        n_unstable=(lam.abs() > 1 + tol_unstable).sum(-1).numpy().astype(np.int64),
        inputs=np.asarray(inputs, np.float64))
