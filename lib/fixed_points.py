"""Fixed points and slow points of whole populations of networks at once.

For a constant input x*, the fixed points of the one-step map ``s -> F(s, x*)`` are the zeros
of ``q(s) = 1/2 |F(s, x*) - s|^2``. The search (:func:`find`):

1. *starts*: states visited on task trials plus Gaussian noise on the scale of the visited
   states (:func:`initial_states`), B per network, each with its own constant input;
2. Adam in float32 from every start, each point with its own adaptive learning rate and
   gradient clip, stopping once ``q < tol_adam`` (:func:`lib.fixed_point_solver.adam`);
3. *merge*: converged points of the same network and input closer than ``tol_merge`` head for
   the same point: one representative each, so what follows costs per unique candidate;
4. a Levenberg-Marquardt polish in float64 on the flat list of candidates with q up to
   ``tol_candidate`` (true fixed points reach q ~ 1e-30; closed-form Jacobians where the map
   has them); after every step the candidates that have settled (q <= ``tol_slow``) are merged
   at ``tol_merge`` and those within ``tol_merge`` of a settled or already known point stop
   (or within ``tol_reach`` radii of one after a step that shrank their distance to it
   tenfold; :class:`lib.fixed_point_solver.Absorb`); then outliers and points with ``q > tol_slow``
   are dropped and the rest deduplicated at ``tol_unique``;
5. Jacobians ``dF/ds`` and input Jacobians ``dF/dx`` of the unique points in one batched
   call, eigen-decomposition (right and left eigenvectors) and the number of unstable modes
   (discrete time: ``|lambda| > 1``).

Every start keeps a record: the point it ended on (or -1, not converged), its q and its
iterations. The map F is any step map (see :mod:`lib.fixed_point_solver`);
:class:`lib.fp_adapters.CellMap` builds it from a trained shard and :mod:`lib.fp_adapters`
from a user's ``torch.nn.RNN/GRU/LSTM`` module or step function.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from . import fixed_point_solver as solver
from . import models
from .checks import MAX_SEED, Int, Maybe, Real, check_order, gather
from .fp_adapters import CellMap, cell_map, visited_states  # noqa: F401  (public here too)
from .fp_result import FixedPoints, classify, isolated  # noqa: F401


@dataclass(frozen=True)
class FixedPointConfig:
    """Starts, budgets and tolerances of the fixed-point search.

    Parameters
    ----------
    n_init : starts per network, drawn from the visited states.
    init_noise : standard deviation of the Gaussian noise added to each start, as a fraction
        of the visited states' standard deviation (pooled over coordinates, per network), so
        that the starts cover the region the network visits, for tanh and ReLU alike.
    wide_fraction : this fraction of the starts gets ``wide_noise`` instead of ``init_noise``:
        some stable points and saddles of ReLU LSTMs lie about a radius from every visited
        state, between the basins that the narrow starts reach.
    wide_noise : their noise, as a fraction of the visited states' standard deviation (1: a
        Gaussian cloud of about the visited states' own RMS radius). On the book's ReLU-LSTM
        flip-flop networks, 1.0 recovered more of the exhaustive reference than 2.0, whose
        starts overshoot that band.
    lr : initial Adam learning rate (each point's rate then adapts).
    adam_iters : Adam iteration budget per point (a short descent into the basin; the polish
        does the rest).
    tol_adam : a point stops its Adam phase once q < tol_adam (float32 resolves ~1e-12).
    tol_candidate : points with q above this after Adam are "not converged" (not polished).
        The polish is a Gauss-Newton method, so it takes over early: after 80-400 Adam steps
        most starts of a ReLU LSTM still have q ~ 1e-3-1e-2 and some of its points are reached
        from none of the others.
    newton_iters : Levenberg-Marquardt polish iterations (0 skips the polish).
    polish_to : the polish stops working on a point once its q is at most this. The default
        polishes fixed points to float64 precision; a slow-point threshold instead (e.g. for
        an approximate line attractor) brings each candidate just onto the line, where it
        came, instead of sliding it along the line to one of its few exact fixed points.
    polish_radius : if given, a candidate that the polish carries farther than this many
        visited RMS radii from where Adam left it is dropped (not converged): the polish then
        refines points where the starts led, and does not fetch slow points from far regions
        (e.g. where a gated network's update gates saturate and F(s) ~ s holds widely).
    stall_iters : the polish stops a candidate whose q fell less than tenfold over this many
        iterations (a slow region, not a zero it converges to; 0: never).
    tol_fixed : a kept point with q <= tol_fixed is a fixed point, above it a slow point.
    tol_slow : points with q above this after the polish are discarded.
    tol_keep : former name of ``tol_slow``; when given it sets ``tol_slow``.
    tol_unique : two points of one network and input closer than this are the same point.
    tol_merge : before the polish, converged points closer than this are merged; during it,
        settled candidates closer than this are merged and moving ones this close to a
        settled or known point stop there.
    tol_reach : a moving candidate also stops at a settled or known point within this many
        visited RMS radii of it after a step that shrank its distance to the point tenfold
        (it is converging onto that point; 0: never).
    outlier_scale : a point farther from the centroid of its network's visited states than
        this many times their mean distance to it is an outlier.
    tol_unstable : a mode is unstable when ``|lambda| > 1 + tol_unstable``.
    midpoint_rounds : further searches started from the midpoints of every two isolated
        points found (of one network and input, at least one of them new) and from the new
        ones' neighbours along slow modes (:func:`round_starts`); stops early when a round
        finds nothing new.
    max_midpoints : most midpoint starts, and most neighbour starts, per network and round
        (a seeded random subset of each).
    neighbour_modes : a round also starts from every new isolated point plus and minus each
        step along the real parts of its this many slowest modes (largest ``|lambda|``): points
        of ReLU networks come in clusters along slow directions, and one member's basin can
        be too small for any random start (0: midpoints only).
    neighbour_steps : the steps, as fractions of the visited states' RMS radius (the
        square root of their total variance): short steps for the members of a cluster, steps
        of about a radius for the points one basin over (stable points of ReLU LSTMs lie about
        1.2 radii from their nearest neighbour).
    seed : seed of the start draw and noise.
    """

    n_init: int = 256
    init_noise: float = 0.5
    wide_fraction: float = 0.25
    wide_noise: float = 1.0
    lr: float = 0.05
    adam_iters: int = 20
    tol_adam: float = 1e-9
    tol_candidate: float = 1.0
    newton_iters: int = 100
    polish_to: float = 1e-30
    polish_radius: float | None = None
    stall_iters: int = 10
    tol_fixed: float = 1e-12
    tol_slow: float = 1e-8
    tol_keep: float | None = None
    tol_unique: float = 1e-3
    tol_merge: float = 1e-3
    tol_reach: float = 0.01
    outlier_scale: float = 10.0
    tol_unstable: float = 1e-6
    midpoint_rounds: int = 2
    max_midpoints: int = 512
    neighbour_modes: int = 2
    neighbour_steps: tuple = (0.03, 0.3, 0.6, 1.2)
    seed: int = 0

    def __post_init__(self):
        if self.tol_keep is not None:  # keeps configurations written with the old name
            Real(0.0, 1.0, low_open=True)("tol_keep", self.tol_keep)
            object.__setattr__(self, "tol_slow", float(self.tol_keep))
            object.__setattr__(self, "tol_keep", None)
        object.__setattr__(self, "neighbour_steps", tuple(self.neighbour_steps))
        gather([lambda n=n, r=r: r(n, getattr(self, n)) for n, r in _FP_RULES.items()]
               + [lambda i=i, v=v: _STEP(f"neighbour_steps[{i}]", v)
                  for i, v in enumerate(self.neighbour_steps)])
        gather([lambda: check_order("tol_fixed", self.tol_fixed, "tol_slow", self.tol_slow),
                lambda: check_order("polish_to", self.polish_to, "tol_slow", self.tol_slow),
                lambda: check_order("tol_adam", self.tol_adam, "tol_candidate", self.tol_candidate)])


_POSITIVE = Real(0.0, 1.0, low_open=True)
# finite everywhere (a NaN tolerance would keep or drop every point silently); budgets bounded
_FP_RULES = {
    "n_init": Int(1, 100_000), "init_noise": Real(0.0, 10.0), "wide_fraction": Real(0.0, 1.0),
    "wide_noise": Real(0.0, 10.0), "lr": Real(0.0, 10.0, low_open=True),
    "adam_iters": Int(0, 1_000_000), "tol_adam": _POSITIVE, "tol_candidate": _POSITIVE,
    "newton_iters": Int(0, 10_000), "polish_to": _POSITIVE,
    "polish_radius": Maybe(Real(0.0, 1e6, low_open=True)), "stall_iters": Int(0, 10_000),
    "tol_fixed": _POSITIVE,
    "tol_slow": _POSITIVE,
    "tol_unique": Real(0.0, 10.0, low_open=True), "tol_merge": Real(0.0, 10.0, low_open=True),
    "tol_reach": Real(0.0, 10.0),
    "outlier_scale": Real(0.0, 1e6, low_open=True), "tol_unstable": Real(0.0, 1.0, high_open=True),
    "midpoint_rounds": Int(0, 100), "max_midpoints": Int(1, 1_000_000),
    "neighbour_modes": Int(0, 100_000), "seed": Int(0, MAX_SEED)}
_STEP = Real(0.0, 10.0, low_open=True)


# ---------------------------------------------------------------------------------------------
# Trained shards


def find_fixed_points(spec: models.CellSpec, params: dict, x_star, visited,
                      config: FixedPointConfig = FixedPointConfig(), init=None) -> FixedPoints:
    """Fixed points of every network of a shard under constant inputs.

    Parameters
    ----------
    spec : the shard's cell specification.
    params : dict of Tensor [N, ...] (not modified).
    x_star : constant input: [I] (all), [N, I] (one per network) or [N, B, I] (one per start).
    visited : [N, V, S] states visited on task trials (see :func:`visited_states`); starts are
        drawn from them and they define the noise and outlier scales.
    config : starts, budgets and tolerances.
    init : optional [N, B, S] starts used as they are (e.g. the centre of a limit cycle).

    Returns
    -------
    FixedPoints with ``net`` indexing the network axis of ``params``.
    """
    return find(CellMap(spec, params), visited, config, inputs=x_star, starts=init)


# ---------------------------------------------------------------------------------------------
# The generic pipeline


def find(F, visited, config: FixedPointConfig = FixedPointConfig(), inputs=None,
         starts=None) -> FixedPoints:
    """Fixed points of a step map F of N networks.

    Parameters
    ----------
    F : step map ``F(s [R, B, S], x [R, B, I], net [R]) -> [R, B, S]``, float32 and float64
        (:mod:`lib.fp_adapters` builds one from cells, torch modules or step functions).
    visited : [N, V, S] states the networks visit (start design, noise and outlier scales).
    inputs : constant input: None (no input, I = 0), [I], [N, I] or [N, B, I] (per start: e.g.
        every command frequency of the sine task in one call).
    starts : optional [N, B, S] starts (default: :func:`initial_states` of ``visited``).

    Returns
    -------
    :class:`FixedPoints`: the unique points with their linearisation and the per-start record
    (starts of the midpoint rounds included).
    """
    ref = torch.as_tensor(np.asarray(visited), dtype=torch.float64)
    s0 = initial_states(ref, config) if starts is None else torch.as_tensor(np.asarray(starts))
    N, B, S = s0.shape
    x = _per_start(inputs, N, B)
    res = search(F, ref, s0, x, config)
    # Saddles lie between the points they connect, where trials pass only briefly, and points
    # of a cluster along slow modes next to each other: search again from the midpoints of
    # every two points found and from their neighbours, until a round adds nothing.
    radius = _radius(ref)
    since = 0  # points new in the last round (union appends them)
    for r in range(config.midpoint_rounds):
        more = round_starts(res, N, radius.numpy(), config, since, config.seed + r)
        if more is None:
            break
        new = search(F, ref, more[0], more[1], config, known=res, net=more[2])
        since = len(res)
        res = union(res, new, config.tol_unique)
        if len(res) == since:
            break
    return res


def search(F, ref, s0, x, config: FixedPointConfig, known: FixedPoints | None = None,
           net=None) -> FixedPoints:
    """One search from starts s0 [R, B, S] under inputs x [R, B, I] (no midpoint rounds).

    Row r holds B starts of network ``net[r]`` (net [R]; default ``arange(R)``: one row per
    network). ``ref`` [N, V, S] float64 visited states (outlier scale); ``known``: points
    found before (of the same networks); a candidate that the polish brings near one of them
    stops there, and the points that repeat a known one are not decomposed (NaN eigen data;
    :func:`union` drops them).
    """
    R, B, S = s0.shape
    net = torch.arange(R) if net is None else torch.as_tensor(net)
    N = len(ref)
    s, q, it = solver.adam(F, s0.float(), x.float(), net, iters=config.adam_iters,
                           lr=config.lr, tol_q=config.tol_adam)
    flat = lambda z: z.reshape(R * B, *z.shape[2:])  # noqa: E731
    s, q, it, xs = flat(s).double(), flat(q).double(), flat(it), flat(x)
    nets = net.repeat_interleave(B)
    kpts, kx, knet = _known(known, S, x.shape[-1])
    sys = _system_ids(torch.cat([nets, knet]), torch.cat([xs, kx]))
    sys, ksys = sys[:R * B], sys[R * B:]
    cand = torch.isfinite(q) & (q <= config.tol_candidate)
    rep = solver.merge(s, q, cand, sys, config.tol_merge)
    c = (rep == torch.arange(R * B)).nonzero()[:, 0]  # the candidates, one per merged group
    cs, cq, cits = s[c].clone(), q[c], torch.zeros(len(c), dtype=torch.long)
    if config.newton_iters:
        radius, before = _radius(ref), cs
        cs, cq, cits = _polish(F, cs, xs[c], nets[c], sys[c], (kpts, kx, knet, ksys),
                               config.tol_reach * radius, config)
        if config.polish_radius is not None:  # carried off: not converged where it came
            far = (cs - before).norm(dim=-1) > config.polish_radius * radius[nets[c]]
            cq = torch.where(far, torch.inf, cq)
    ok = torch.isfinite(cq) & (cq <= config.tol_slow)
    ok &= ~solver.outliers(cs, nets[c], ref, config.outlier_scale)
    rep2 = solver.merge(cs, cq, ok, sys[c], config.tol_unique)
    keep = (rep2 == torch.arange(len(c))).nonzero()[:, 0]
    # start -> candidate -> unique point
    cand_of = torch.full((R * B,), -1, dtype=torch.long)
    cand_of[c] = torch.arange(len(c))
    final_of_cand = torch.full((len(c),), -1, dtype=torch.long)
    final_of_cand[keep] = torch.arange(len(keep))
    point = torch.full((R * B,), -1, dtype=torch.long)
    has = rep >= 0
    r2 = rep2[cand_of[rep[has]]]
    point[has] = torch.where(r2 >= 0, final_of_cand[r2.clamp(min=0)], -1)
    J, Jx = solver.jacobians(F, cs[keep], xs[c][keep].double(), nets[c][keep], inputs=True)
    start_q = torch.where(point >= 0, cq[keep][point.clamp(min=0)] if len(keep) else q, q)
    record = dict(start_states=flat(s0).double().numpy(), start_net=nets.numpy(),
                  start_point=point.numpy(), start_q=start_q.numpy(),
                  start_iters=(it + torch.where(cand_of >= 0, cits[cand_of.clamp(min=0)], 0)
                               if len(c) else it).numpy())
    old = _near(cs[keep], sys[c][keep], kpts, ksys, config.tol_unique)  # union drops them
    inputs = torch.zeros(N, x.shape[-1], dtype=torch.float64)
    owners, first = (torch.as_tensor(a) for a in np.unique(net.numpy(), return_index=True))
    inputs[owners] = x[first, 0].double()  # the input of each network's first start
    return classify(cs[keep], nets[c][keep], cq[keep], J, Jx, xs[c][keep].double(), config,
                    record, network_inputs=inputs, decompose=~old)


def round_starts(fps: FixedPoints, n_nets: int, radius, config: FixedPointConfig, since: int = 0,
                 seed: int = 0):
    """Starts of a further round: midpoints of two points of one network and input, one of
    them new (index >= ``since``; :func:`midpoint_pairs`), and the new isolated points'
    neighbours along slow modes (:func:`neighbours`; a continuum's slowest mode runs along
    the continuum itself), at most ``config.max_midpoints`` of each per network.

    radius : [N] the visited states' RMS radius per network (scale of the neighbour steps).

    Returns (starts [R, B, S], inputs [R, B, I], net [R]) in rows of at most ``ROW`` starts
    of one network (:func:`_rows`); None when no network has a start.
    """
    rng = np.random.default_rng(seed)
    iso = isolated(fps, fixed_only=False)
    per = []
    for i in range(n_nets):
        m = np.flatnonzero((fps.net == i) & iso)
        s1, x1 = midpoint_pairs(fps, m, since)
        s2, x2 = neighbours(fps, m[m >= since], config.neighbour_modes, config.neighbour_steps,
                            radius[i])
        pick = lambda n: np.sort(rng.choice(n, config.max_midpoints, replace=False)) \
            if n > config.max_midpoints else np.arange(n)  # noqa: E731
        k1, k2 = pick(len(s1)), pick(len(s2))
        per.append((np.concatenate([s1[k1], s2[k2]]), np.concatenate([x1[k1], x2[k2]])))
    return _rows(per)


def midpoint_pairs(fps: FixedPoints, m, since: int = 0):
    """Midpoints [P, S] and inputs [P, I] of every two of the points m (ascending) with the
    same input, at least one of them new (index >= since)."""
    a, b = np.triu_indices(len(m), 1)
    a, b = a[m[b] >= since], b[m[b] >= since]  # b > a, so m[b] is the newer of the two
    same = np.all(fps.x[m[a]] == fps.x[m[b]], axis=1)
    a, b = m[a[same]], m[b[same]]
    return (fps.points[a] + fps.points[b]) / 2, fps.x[a]


def neighbours(fps: FixedPoints, m, modes: int, steps, radius: float):
    """Points m moved by +-step x radius along the real parts of their ``modes`` slowest
    modes (largest ``|lambda|``; points with no eigen data are skipped).

    Returns starts [P, S] and inputs [P, I] with P = len(m) x modes x 2 x len(steps) at most.
    """
    S, I = fps.points.shape[1], fps.x.shape[1]
    m = m[np.isfinite(fps.eigvals[m]).all(1)] if modes else m[:0]
    v = np.real(fps.right[m][:, :, :modes])  # [M, S, k] (eigenvalues by decreasing modulus)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-300)
    d = radius * np.concatenate([np.asarray(steps, float), -np.asarray(steps, float)])
    s = fps.points[m][:, None, :, None] + d[None, :, None, None] * v[:, None]  # [M, D, S, k]
    s = s.transpose(0, 1, 3, 2).reshape(-1, S)
    x = np.repeat(fps.x[m], len(d) * v.shape[2], axis=0).reshape(len(s), I)
    return s, x


ROW = 64  # starts per row of a further round: rows of one network each, so a network with
# few starts costs few rows (never the width of the network with the most)


def _rows(per):
    """Per-network (starts [B_i, S], inputs [B_i, I]) -> rows of ``ROW`` (or the largest B_i,
    if smaller) starts of one network: starts [R, B, S], inputs [R, B, I], net [R]; a
    network's last row is filled up by cycling its own starts (repeats merge away). None when
    every B_i is 0."""
    width = min(ROW, max(len(p[0]) for p in per))
    if width == 0:
        return None
    s, x, net = [], [], []
    for i, (p, xi) in enumerate(per):
        rows = -(-len(p) // width)
        s.append(np.resize(p, (rows * width, p.shape[1])).reshape(rows, width, p.shape[1]))
        x.append(np.resize(xi, (rows * width, xi.shape[1])).reshape(rows, width, xi.shape[1]))
        net += [i] * rows
    return (torch.as_tensor(np.concatenate(s)), torch.as_tensor(np.concatenate(x)),
            torch.as_tensor(net, dtype=torch.long))


def union(a: FixedPoints, b: FixedPoints, tol: float) -> FixedPoints:
    """Points of ``a`` plus those of ``b`` farther than tol from every point of ``a`` with the
    same network and input; the starts of both (b's starts on a known point point to it)."""
    close = np.full((len(b), len(a)), np.inf)
    for i in np.intersect1d(a.net, b.net):  # per network: memory O(Mb x Ma), no state axis
        rb, ra = np.flatnonzero(b.net == i), np.flatnonzero(a.net == i)
        d = torch.cdist(torch.as_tensor(b.points[rb]), torch.as_tensor(a.points[ra])).numpy()
        same = np.all(b.x[rb][:, None] == a.x[ra][None], axis=-1)
        close[np.ix_(rb, ra)] = np.where((d < tol) & same, d, np.inf)
    known = np.isfinite(close).any(1)
    out = a.concat(b.subset(~known))
    # b's starts that ended on a point a already had: point them to a's point
    nearest = np.where(known, close.argmin(1) if len(a) else -1, -1)
    sp = out.start_point.copy()
    tail = sp[len(a.start_point):]
    bp = b.start_point
    hit = bp >= 0
    hit[hit] = known[bp[hit]]  # (b may have no point at all)
    tail[hit] = nearest[bp[hit]]
    sp[len(a.start_point):] = tail
    return replace(out, start_point=sp)


def _per_start(inputs, N: int, B: int) -> torch.Tensor:
    """Constant input of every start [N, B, I] from None, [I], [N, I] or [N, B, I]."""
    if inputs is None:
        return torch.zeros(N, B, 0, dtype=torch.float64)
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float64))
    if x.dim() == 1:
        x = x[None, None]
    elif x.dim() == 2:
        x = x[:, None]
    return x.expand(N, B, x.shape[-1]).contiguous()


def _polish(F, s, x, net, system, known, reach, config: FixedPointConfig):
    """Levenberg-Marquardt polish of candidates s [P, S] (x [P, I], net [P], system [P]),
    the known points (points [A, S], x [A, I], net [A], system [A]) as absorbers, within
    ``reach`` [N] of a point after a contracting step (:class:`lib.fixed_point_solver.Absorb`).

    Returns s [P, S], q [P], iterations [P].
    """
    kpts, kx, knet, ksys = known
    P = len(s)
    frozen = torch.cat([torch.zeros(P, dtype=torch.bool), torch.ones(len(kpts), dtype=torch.bool)])
    absorb = solver.Absorb(torch.cat([system, ksys]), frozen, config.tol_merge, config.tol_slow,
                           reach=reach[torch.cat([net, knet])])
    s, q, its, _ = solver.polish(F, torch.cat([s, kpts]), torch.cat([x, kx]),
                                 torch.cat([net, knet]), config.newton_iters,
                                 q_done=config.polish_to, absorb=absorb, stall=config.stall_iters)
    return s[:P], q[:P], its[:P]


def _near(pts, system, known, known_system, tol: float) -> torch.Tensor:
    """[M] bool: points [M, S] within tol of a known point [A, S] of their system."""
    return solver.nearest(pts, system, known, known_system)[0] < tol


def _known(fps: FixedPoints | None, S: int, I: int):
    """Points [A, S], inputs [A, I] and networks [A] of an earlier result (empty for None)."""
    if fps is None:
        return (torch.zeros(0, S, dtype=torch.float64), torch.zeros(0, I, dtype=torch.float64),
                torch.zeros(0, dtype=torch.long))
    return (torch.as_tensor(fps.points), torch.as_tensor(fps.x),
            torch.as_tensor(fps.net, dtype=torch.long))


def _system_ids(net: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """System id [P] of every point (net [P], x [P, I]): one per distinct (network, input)."""
    key = torch.cat([net[:, None].to(x.dtype), x], -1)
    order = torch.arange(len(key))
    for c in reversed(range(key.shape[1])):  # rows in lexicographic order (a stable lexsort)
        order = order[torch.argsort(key[order, c], stable=True)]
    k = key[order]
    new = torch.ones(len(k), dtype=torch.bool)
    new[1:] = (k[1:] != k[:-1]).any(-1)
    ids = torch.empty(len(k), dtype=torch.long)
    ids[order] = new.cumsum(0) - 1  # numbered as torch.unique(key, dim=0) numbers its rows
    return ids


def _radius(ref: torch.Tensor) -> torch.Tensor:
    """[N] RMS radius of the visited states ref [N, V, S] (the square root of their total
    variance; 1 for a network with a single visited state)."""
    return ref.var(1).sum(-1).sqrt() if ref.shape[1] > 1 else torch.ones(len(ref), dtype=ref.dtype)


def initial_states(ref: torch.Tensor, config: FixedPointConfig) -> torch.Tensor:
    """``config.n_init`` starts per network drawn from ref [N, V, S] plus noise -> [N, B, S].

    The noise has standard deviation ``init_noise`` x the visited states' standard deviation
    (pooled over coordinates), so the starts fill the visited region and its surroundings:
    saddles between attractors lie where trials pass only briefly. The last ``wide_fraction``
    of the starts get ``wide_noise`` instead (points about a radius outside the visited region).
    """
    g = torch.Generator().manual_seed(config.seed)
    n, v, S = ref.shape
    idx = torch.randint(v, (n, config.n_init), generator=g)
    s0 = torch.gather(ref, 1, idx[..., None].expand(-1, -1, S))
    scale = ref.std(1).pow(2).mean(-1).sqrt() if v > 1 else torch.ones(n, dtype=ref.dtype)
    noise = torch.randn(s0.shape, generator=g, dtype=ref.dtype)
    wide = torch.arange(config.n_init) >= round((1 - config.wide_fraction) * config.n_init)
    sd = torch.where(wide, config.wide_noise, config.init_noise).to(ref.dtype)  # [B]
    return s0 + sd[None, :, None] * scale[:, None, None] * noise


def solve(F, s0, x, config: FixedPointConfig = FixedPointConfig()):
    """Minimise q from s0 [N, B, S] under inputs x [N, B, I]: Adam then LM, nothing filtered.

    Returns s [N, B, S] float64 and q [N, B] float64.
    """
    N, B, S = s0.shape
    net = torch.arange(N)
    s, q, _ = solver.adam(F, torch.as_tensor(s0).float(), x.float(), net,
                          iters=config.adam_iters, lr=config.lr, tol_q=config.tol_adam)
    s, q, *_ = solver.polish(F, s.double().reshape(N * B, S), x.double().reshape(N * B, -1),
                            net.repeat_interleave(B), config.newton_iters, q_done=config.polish_to)
    return s.reshape(N, B, S), q.reshape(N, B)

