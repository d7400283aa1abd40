"""The result of a fixed-point search: unique points, their linearisation, a record per start."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

FORMAT_VERSION = 2
START_FIELDS = ("start_states", "start_net", "start_point", "start_q", "start_iters")


@dataclass(frozen=True)
class FixedPoints:
    """Unique fixed (or slow) points of a set of networks and their linearisation.

    M points, K starts, state dimension S, I inputs, N networks. Plain numpy arrays only, so
    :meth:`save` / :meth:`load` need no pickle.

    Attributes
    ----------
    points : [M, S] float64, the points (LSTM: [h, c]).
    net : [M] int, network index (position on the network axis of the map searched).
    x : [M, I] float64, the constant input under which each point is fixed.
    q : [M] float64, ``1/2 |F(s) - s|^2`` at each point.
    slow : [M] bool, ``q > tol_fixed``: a slow point rather than a fixed point.
    jacobians : [M, S, S] float64, ``J[m, i, j] = dF_i / ds_j``.
    input_jacobians : [M, S, I] float64, ``dF_i / dx_j``.
    eigvals : [M, S] complex128, sorted by decreasing modulus.
    right : [M, S, S] complex128, right eigenvectors as columns: ``J right[m][:, k] = lam_k right[m][:, k]``.
    left : [M, S, S] complex128, left eigenvectors as rows, ``left[m] = inv(right[m])``:
        ``left[m][k] J = lam_k left[m][k]`` and ``left[m] @ right[m] = I``.
    n_unstable : [M] int, number of eigenvalues with ``|lambda| > 1 + tol_unstable``.
    inputs : [N, I] float64, the input of each network's first start (its constant input
        when the network was searched under one input).
    start_states : [K, S] the starts; start_net : [K] their network;
    start_point : [K] index into the points of the point each start ended on, -1 when it did
        not converge (q above the slow threshold, an outlier, or diverged);
    start_q : [K] q where the start ended (at its point when it has one);
    start_iters : [K] Adam plus polish iterations it used.
    """

    points: np.ndarray
    net: np.ndarray
    x: np.ndarray
    q: np.ndarray
    slow: np.ndarray
    jacobians: np.ndarray
    input_jacobians: np.ndarray
    eigvals: np.ndarray
    right: np.ndarray
    left: np.ndarray
    n_unstable: np.ndarray
    inputs: np.ndarray
    start_states: np.ndarray
    start_net: np.ndarray
    start_point: np.ndarray
    start_q: np.ndarray
    start_iters: np.ndarray

    def __len__(self) -> int:
        return len(self.q)

    @property
    def n_nets(self) -> int:
        return len(self.inputs)

    def of(self, net: int) -> "FixedPoints":
        """The points (and starts) of one network (``net`` stays the original index)."""
        return self.subset(self.net == net, self.start_net == net)

    def subset(self, mask, start_mask=None) -> "FixedPoints":
        """Points selected by a boolean mask or index array [M]; starts by ``start_mask`` [K]
        (default all), their ``start_point`` renumbered (-1 where the point was left out)."""
        idx = np.arange(len(self))[mask]
        new = np.full(len(self) + 1, -1)
        new[idx] = np.arange(len(idx))
        keep = {f: getattr(self, f)[idx] for f in _point_fields()}
        sm = np.ones(len(self.start_net), bool) if start_mask is None else start_mask
        starts = {f: getattr(self, f)[sm] for f in START_FIELDS}
        starts["start_point"] = new[starts["start_point"]]  # -1 stays -1 (last slot)
        return FixedPoints(**keep, **starts, inputs=self.inputs)

    def concat(self, other: "FixedPoints") -> "FixedPoints":
        """Points and starts of two searches of the same networks, this one's first."""
        both = {f: np.concatenate([getattr(self, f), getattr(other, f)])
                for f in _point_fields() + START_FIELDS}
        both["start_point"][len(self.start_point):] = np.where(
            other.start_point >= 0, other.start_point + len(self), -1)
        return FixedPoints(**both, inputs=self.inputs)

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


ISOLATED = 1e-3  # an eigenvalue of J this close to 1: the point lies on a continuum (I - J singular)


def isolated(fps: FixedPoints, tol: float = ISOLATED, fixed_only: bool = True) -> np.ndarray:
    """[M] bool: fixed (not slow, unless ``fixed_only`` is False) points whose Jacobian has no
    eigenvalue within tol of 1 (points with no eigen data are not isolated).

    By the implicit function theorem such a point is isolated. Points with an eigenvalue at 1
    lie on a continuum of (numerically) fixed points, e.g. where a GRU's update gate saturates
    and F(h) = h holds along whole regions; a search cannot "find all" of those, so recall is
    measured on isolated points only.
    """
    gap = np.abs(fps.eigvals - 1).min(axis=1, initial=np.inf)
    return (gap > tol) & (~fps.slow if fixed_only else True)


def _point_fields() -> tuple:
    return tuple(f.name for f in fields(FixedPoints)
                 if f.name not in START_FIELDS and f.name != "inputs")


def classify(pts, net, q, J, Jx, x, config, record: dict, network_inputs,
             decompose=None) -> FixedPoints:
    """Eigen-decomposition and stability of points pts [M, S] with Jacobians J [M, S, S].

    ``config`` supplies ``tol_fixed`` and ``tol_unstable``; ``record`` the start fields;
    ``network_inputs`` [N, I]; ``decompose`` [M] bool (default all): the points to decompose,
    the others (e.g. duplicates of points already known) get NaN eigen data and
    ``n_unstable`` -1.
    """
    M, S = J.shape[:2]
    todo = torch.ones(M, dtype=torch.bool) if decompose is None else torch.as_tensor(decompose)
    lam = torch.full((M, S), complex("nan"), dtype=torch.complex128)
    R, L = (torch.full((M, S, S), complex("nan"), dtype=torch.complex128) for _ in range(2))
    if todo.any():
        lam[todo], R[todo], L[todo] = _eig(J[todo])
    n_unstable = torch.where(todo, (lam.abs() > 1 + config.tol_unstable).sum(-1), -1)
    return FixedPoints(
        points=pts.numpy(), net=net.numpy().astype(np.int64), x=x.numpy(), q=q.numpy(),
        slow=(q > config.tol_fixed).numpy(), jacobians=J.numpy(), input_jacobians=Jx.numpy(),
        eigvals=lam.numpy(), right=R.numpy(), left=L.numpy(),
        n_unstable=n_unstable.numpy().astype(np.int64),
        inputs=np.asarray(network_inputs, np.float64), **record)


def _eig(J: torch.Tensor):
    """Eigenvalues [M, S] by decreasing modulus, right eigenvectors (columns) and left ones
    (rows, the inverse) [M, S, S] of J [M, S, S] (float64)."""
    lam, R = torch.linalg.eig(J)
    order = torch.argsort(lam.abs(), dim=-1, descending=True)
    lam = torch.gather(lam, -1, order)
    R = torch.gather(R, -1, order[:, None, :].expand_as(R))
    return lam, R, torch.linalg.inv(R)
