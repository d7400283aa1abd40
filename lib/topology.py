"""Topology of fixed points, compared across networks.

*Flip-flop.* A network's fixed points under zero input become the nodes of a directed graph;
from every saddle, orbits leave along each unstable eigenvector (both signs, a small step
``eps``), are iterated with the network's own one-step map (:func:`lib.models.step`, all
saddles x directions x networks of a shard in one batch) and end near a fixed point: the edge
saddle -> endpoint records that transition. Nodes carry labels that mean the same thing in every
network, so graphs of different networks can be compared node for node:

* a stable point is labelled by the output code it holds, the sign pattern of its readout,
  e.g. ``"+-+"`` (``"0"`` for a channel whose readout lies within ``zero_band`` of zero: a
  stable point that holds no bit there);
* a saddle is labelled by the labels of the points its orbits reach, e.g. ``"s[+++|++-]"``
  for the saddle that mediates the flip of the third bit. Saddles are labelled in order of
  increasing number of unstable modes, so a 2-saddle whose orbits end at 1-saddles gets a
  nested label. We chose labels by connection rather than by the saddle's own readout (a
  ``"++0"`` pattern) because they need no threshold on where "near zero" ends and say what the
  saddle *does*, which is what the topology is about.

Distance between two labelled graphs (:func:`graph_distance`): the Jaccard distance between
their sets of labelled nodes and labelled edges, ``1 - |A & B| / |A | B|``. It is 0 for
isomorphic labelled graphs (an isomorphism that keeps labels maps node labels and edge label
pairs onto each other), 1 for graphs that share nothing, and it counts a missing saddle or
stable point through the node and the transitions it takes with it. Sets rather than multisets:
near-duplicate points that a fixed-point search may leave would otherwise count as differences.
``networkx.graph_edit_distance`` would be exact but takes exponential time on the 20-odd node
graphs of trained networks, for thousands of pairs.

*Sine wave and CDI.* The fixed points depend on the static input. Their topology is the
sequence of fixed-point types as the input varies (sine: one point per command frequency,
classified as a stable/unstable node/focus; CDI: the slow points along each context's line
attractor, ordered by readout, with their number of unstable modes), and the linearised
dynamics add the predicted frequency (sine) or the sorted eigenvalue spectrum (CDI). Distances
between networks are given in :func:`sine_distance` and :func:`cdi_distance` (every pair at
once: :func:`sine_distances`, :func:`cdi_distances`).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import product

import networkx as nx
import numpy as np
import pandas as pd
import torch

from . import dynamics, fp_cache, fp_recall
from .checks import Int, Real, check_choice, gather
from .fixed_points import FixedPointConfig, FixedPoints, cell_map, find_fixed_points, isolated
from .fixed_points import visited_states as fp_visited


@dataclass(frozen=True)
class OrbitConfig:
    """How orbits leave saddles and where they are judged to land.

    Parameters
    ----------
    eps : step from the saddle along each unit unstable direction (state units).
    n_steps : iterations of the network's map.
    land_ratio : an orbit has landed on its nearest fixed point when that point is at most
        ``land_ratio`` times as far as the runner-up (scale-free, so it works for tanh and ReLU
        networks alike); otherwise the orbit is unresolved and gives no edge.
    zero_band : readout channels within this distance of 0 get a ``"0"`` in the code.
    """

    eps: float = 1e-2
    n_steps: int = 1000
    land_ratio: float = 0.25
    zero_band: float = 0.5

    def __post_init__(self):
        gather([lambda: Int(1, 1_000_000)("n_steps", self.n_steps),
                lambda: Real(0.0, 10.0, low_open=True)("eps", self.eps),
                lambda: Real(0.0, 1.0, low_open=True)("land_ratio", self.land_ratio),
                lambda: Real(0.0, 1e6, low_open=True)("zero_band", self.zero_band)])


# ---------------------------------------------------------------------------------------------
# Orbits leaving saddles


def unstable_directions(fp: FixedPoints) -> tuple[np.ndarray, np.ndarray]:
    """Unit unstable directions of every saddle, both signs.

    A real unstable eigenvalue gives its eigenvector; a complex pair gives the real and
    imaginary parts of its eigenvector (the unstable plane).

    Returns
    -------
    src : [K] index of the saddle (into ``fp``) each direction leaves from.
    dirs : [K, S] unit vectors.
    """
    src, dirs = [], []
    for m in np.flatnonzero(fp.n_unstable > 0):
        for k in range(int(fp.n_unstable[m])):  # eigvals are sorted by decreasing modulus
            v = fp.right[m][:, k]
            parts = [v.real] + ([v.imag] if abs(fp.eigvals[m, k].imag) > 1e-12 else [])
            for p in parts:
                norm = np.linalg.norm(p)
                if norm > 1e-8:
                    src += [m, m]
                    dirs += [p / norm, -p / norm]
    S = fp.points.shape[1]
    return np.asarray(src, dtype=np.int64), np.asarray(dirs, dtype=np.float64).reshape(-1, S)


def iterate(spec, params: dict, inputs, starts: np.ndarray, net: np.ndarray,
            n_steps: int) -> np.ndarray:
    """Run ``n_steps`` of each network's map from starts [K, S] (network ``net`` [K]).

    The starts are packed into one [N, B, S] batch (B = most starts of any network, padded),
    so every network of the shard moves in the same batched call. ``inputs`` [N, I] is the
    constant input of each network. Returns the end states [K, S].
    """
    n = params["W"].shape[0]
    slot = np.zeros(len(net), dtype=np.int64)
    for i in range(n):
        slot[net == i] = np.arange(np.sum(net == i))
    B = max(int(slot.max(initial=-1)) + 1, 1)
    s = torch.zeros(n, B, starts.shape[1], dtype=torch.float64)
    s[torch.as_tensor(net), torch.as_tensor(slot)] = torch.as_tensor(starts)
    F = cell_map(spec, params, np.array(inputs))  # a writable copy for torch
    with torch.no_grad():
        for _ in range(n_steps):
            s = F(s)
    return s[torch.as_tensor(net), torch.as_tensor(slot)].numpy()


def landing(ends: np.ndarray, net: np.ndarray, fp: FixedPoints, land_ratio: float) -> np.ndarray:
    """Index into ``fp`` of the fixed point each end state [K, S] landed on, -1 if none.

    Only fixed points of the orbit's own network (``net`` [K]) are candidates.
    """
    dst = np.full(len(ends), -1, dtype=np.int64)
    for i in np.unique(net):
        rows, cand = np.flatnonzero(net == i), np.flatnonzero(fp.net == i)
        d = np.linalg.norm(ends[rows, None, :] - fp.points[None, cand, :], axis=-1)
        d = np.where(np.isfinite(d), d, np.inf)
        order = np.argsort(d, axis=1)
        d1 = d[np.arange(len(rows)), order[:, 0]]
        d2 = d[np.arange(len(rows)), order[:, 1]] if len(cand) > 1 else np.full(len(rows), np.inf)
        ok = np.isfinite(d1) & (d1 <= land_ratio * d2)
        dst[rows[ok]] = cand[order[ok, 0]]
    return dst


def saddle_orbits(spec, params: dict, fp: FixedPoints,
                  config: OrbitConfig = OrbitConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Where the orbits leaving every saddle of every network of a shard end.

    Parameters
    ----------
    spec, params : the shard (params [N, ...]; ``fp.net`` indexes its network axis).
    fp : fixed points found under the constant inputs ``fp.inputs`` [N, I].

    Returns
    -------
    src, dst : [K] indices into ``fp``: orbit k leaves saddle ``src[k]`` and lands on
        ``dst[k]`` (-1: unresolved, or back on its own saddle).
    """
    src, dirs = unstable_directions(fp)
    if len(src) == 0:
        return src, src.copy()
    net = fp.net[src]
    ends = iterate(spec, params, fp.inputs, fp.points[src] + config.eps * dirs, net,
                   config.n_steps)
    dst = landing(ends, net, fp, config.land_ratio)
    dst[dst == src] = -1
    return src, dst


# ---------------------------------------------------------------------------------------------
# Labelled graphs


def readout_codes(spec, params: dict, fp: FixedPoints, zero_band: float = 0.5) -> list[str]:
    """Output code of every fixed point [M]: ``"+"``/``"-"``/``"0"`` per readout channel."""
    W = params["W_out"].detach().double().numpy()[fp.net]   # [M, H, O]
    b = params["b_out"].detach().double().numpy()[fp.net]   # [M, 1, O]
    y = np.einsum("mh,mho->mo", fp.points[:, :spec.n_hidden], W) + b[:, 0]
    return [code(row, zero_band) for row in y]


def code(y: np.ndarray, zero_band: float = 0.5) -> str:
    """Sign pattern of a readout vector y [O], e.g. ``"+-0"``."""
    return "".join("0" if abs(v) < zero_band else ("+" if v > 0 else "-") for v in y)


def saddle_label(endpoint_labels) -> str:
    """Label of a saddle from the labels of the points its orbits reach."""
    return "s[" + "|".join(sorted(set(endpoint_labels))) + "]"


def build_graph(codes, n_unstable, src, dst) -> nx.DiGraph:
    """The labelled fixed-point graph of one network.

    Parameters
    ----------
    codes : [P] readout code of each fixed point (used as the label of stable points).
    n_unstable : [P] number of unstable modes.
    src, dst : [K] orbits: from saddle ``src[k]`` to point ``dst[k]`` (-1: no edge).

    Returns
    -------
    DiGraph on nodes 0..P-1 with attributes ``label``, ``code``, ``n_unstable``; an edge
    saddle -> endpoint for every resolved orbit (``orbits``: how many orbits took it).
    """
    G = nx.DiGraph()
    for p, (c, u) in enumerate(zip(codes, n_unstable)):
        G.add_node(p, code=c, n_unstable=int(u), label=c if u == 0 else None)
    for s, d in zip(src, dst):
        if d >= 0:
            n_orbits = G.edges[s, d]["orbits"] if G.has_edge(s, d) else 0
            G.add_edge(int(s), int(d), orbits=n_orbits + 1)
    for p in sorted(G, key=lambda p: G.nodes[p]["n_unstable"]):
        if G.nodes[p]["label"] is None:
            ends = [G.nodes[d]["label"] or "s" + G.nodes[d]["code"] for d in G.successors(p)]
            G.nodes[p]["label"] = saddle_label(ends)
    return G


def flipflop_graphs(spec, params: dict, fp: FixedPoints,
                    config: OrbitConfig = OrbitConfig()) -> list[nx.DiGraph]:
    """Labelled fixed-point graph of every network of a shard (one per network of ``params``)."""
    src, dst = saddle_orbits(spec, params, fp, config)
    codes = np.asarray(readout_codes(spec, params, fp, config.zero_band), dtype=object)
    graphs = []
    for i in range(params["W"].shape[0]):
        idx = np.flatnonzero(fp.net == i)
        local = {int(m): p for p, m in enumerate(idx)}
        mine = np.isin(src, idx)
        s = [local[int(m)] for m in src[mine]]
        d = [local.get(int(m), -1) for m in dst[mine]]
        graphs.append(build_graph(codes[idx], fp.n_unstable[idx], s, d))
    return graphs


def canonical_flipflop_graph(n_bits: int = 3) -> nx.DiGraph:
    """The ideal graph: 2^n stable codes, one 1-saddle between every two codes one flip apart."""
    codes = ["".join(c) for c in product("+-", repeat=n_bits)]
    pairs = [(a, b) for i, a in enumerate(codes) for b in codes[i + 1:]
             if sum(x != y for x, y in zip(a, b)) == 1]
    src = [len(codes) + k for k in range(len(pairs)) for _ in range(2)]
    dst = [codes.index(c) for pair in pairs for c in pair]
    return build_graph(codes + ["0" * n_bits] * len(pairs), [0] * len(codes) + [1] * len(pairs),
                       src, dst)


def core(G: nx.DiGraph) -> nx.DiGraph:
    """Subgraph of the stable points and the saddles with one unstable mode."""
    return G.subgraph([p for p, u in G.nodes(data="n_unstable") if u <= 1]).copy()


def matches_canonical(G: nx.DiGraph, n_bits: int = 3) -> bool:
    """Whether a network's stable points and 1-saddles form exactly the canonical graph.

    Higher-index saddles (on the faces and at the centre of the cube of codes) are left out:
    whether a search finds them depends on its initial states, not on what the network computes.
    """
    return graph_distance(core(G), canonical_flipflop_graph(n_bits)) == 0.0


def isomorphic(G1: nx.DiGraph, G2: nx.DiGraph) -> bool:
    """Label-preserving isomorphism (networkx VF2)."""
    return nx.is_isomorphic(G1, G2, node_match=lambda a, b: a["label"] == b["label"])


def signature(G: nx.DiGraph, multiset: bool = False) -> Counter:
    """Labelled nodes and labelled edges of a graph, as a (multi)set."""
    lab = nx.get_node_attributes(G, "label")
    items = [("node", lab[p]) for p in G] + [("edge", lab[u], lab[v]) for u, v in G.edges]
    counts = Counter(items)
    return counts if multiset else Counter(set(counts))


def graph_distance(G1: nx.DiGraph, G2: nx.DiGraph, multiset: bool = False) -> float:
    """Jaccard distance between labelled node and edge sets (0 for isomorphic labelled graphs)."""
    a, b = signature(G1, multiset), signature(G2, multiset)
    union = sum((a | b).values())
    return 0.0 if union == 0 else 1.0 - sum((a & b).values()) / union


def distance_matrix(items, metric) -> np.ndarray:
    """Symmetric matrix [N, N] of ``metric(items[i], items[j])`` with a zero diagonal."""
    n = len(items)
    D = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            D[i, j] = D[j, i] = metric(items[i], items[j])
    return D


# ---------------------------------------------------------------------------------------------
# Sine wave: one input-dependent fixed point per command frequency

KINDS = ("none", "stable node", "stable focus", "unstable node", "unstable focus")


@dataclass(frozen=True)
class SineTopology:
    """Fixed-point topology and linearisation of one sine-wave network along its input.

    Attributes
    ----------
    omegas : [J] commanded frequencies (rad / step), in input order.
    kind : [J] int index into :data:`KINDS` of the fixed point at each command: a *focus* when
        the dominant eigenvalue (largest modulus) is complex, *unstable* when its modulus
        exceeds 1 (an unstable focus is what a limit cycle surrounds); 0 when no point was found.
    n_unstable : [J] number of unstable modes (-1 when no point).
    predicted : [J] rotation per step of the dominant complex pair, ``|arg lambda|``: the
        frequency the linearisation predicts (nan when no point or no complex pair).
    """

    omegas: np.ndarray
    kind: np.ndarray
    n_unstable: np.ndarray
    predicted: np.ndarray


def sine_topology(omegas, eigvals, tol_complex: float = 1e-6) -> SineTopology:
    """Topology from the eigenvalues [J, S] (decreasing modulus; nan rows: no point found)."""
    lam = np.asarray(eigvals, dtype=complex)
    found = np.all(np.isfinite(lam), axis=1)
    complex_ = np.abs(lam.imag) > tol_complex
    first = np.argmax(complex_, axis=1)  # the dominant complex pair: largest modulus first
    has_pair = complex_.any(axis=1) & found
    predicted = np.where(has_pair, np.abs(np.angle(lam[np.arange(len(lam)), first])), np.nan)
    unstable = np.abs(lam[:, 0]) > 1
    kind = np.where(found, 1 + complex_[:, 0] + 2 * unstable, 0)
    n_unstable = np.where(found, np.sum(np.abs(lam) > 1, axis=1), -1)
    return SineTopology(np.asarray(omegas, float), kind, n_unstable, predicted)


PARTS = ("all", "structure", "linear")


def sine_distance(a: SineTopology, b: SineTopology, part: str = "all") -> float:
    """Topology plus linearisation: ``mismatch + rms_error``, each in [0, ~1].

    ``mismatch`` (``part="structure"``) is the fraction of command frequencies whose fixed
    points are of different kinds; ``rms_error`` (``part="linear"``) is the root-mean-square
    difference of the predicted frequencies, divided by the range of ``a``'s commanded
    frequencies (a missing prediction counts as 0 rad/step). See :func:`sine_distances`.
    """
    return float(sine_distances([a, b], part)[0, 1])


def sine_distances(tops, part: str = "all") -> np.ndarray:
    """:func:`sine_distance` of every pair of ``tops`` (sequence of :class:`SineTopology` with
    the same commands) at once: [N, N], the range of the earlier item of a pair as scale."""
    check_choice("part", part, PARTS)
    kind = np.stack([t.kind for t in tops])  # [N, J]
    pred = np.nan_to_num(np.stack([t.predicted for t in tops]))
    scale = np.maximum([np.ptp(t.omegas) for t in tops], 1e-12)
    i = np.arange(len(tops))
    mismatch = (kind[:, None] != kind[None]).mean(-1)
    rms = np.sqrt(((pred[:, None] - pred[None]) ** 2).mean(-1)) / scale[np.minimum.outer(i, i)]
    return {"all": mismatch + rms, "structure": mismatch, "linear": rms}[part]


# ---------------------------------------------------------------------------------------------
# CDI: slow points along each context's line attractor


@dataclass(frozen=True)
class LineAttractor:
    """Slow points of one network under one context, ordered along the line by their readout.

    Attributes
    ----------
    readout : [P] readout of each slow point, increasing.
    n_unstable : [P] unstable modes of each point, in the same order.
    profile : [n_bins] fraction of points with an unstable mode in each stretch of the line
        (points split by rank into equal stretches): where along the line it is stable.
    spectrum : [k] top-k eigenvalue moduli, averaged over the points; ``spectrum[0]`` is the
        integrating mode (near 1 on a line attractor).
    """

    readout: np.ndarray
    n_unstable: np.ndarray
    profile: np.ndarray
    spectrum: np.ndarray


def line_attractor(readout, eigvals, n_unstable, k: int = 10, n_bins: int = 5) -> LineAttractor:
    """Summarise slow points: readout [P], eigenvalues [P, S] (decreasing modulus), n_unstable [P]."""
    readout = np.asarray(readout, float)
    order = np.argsort(readout)
    mods = np.abs(np.asarray(eigvals))[order][:, :k]
    unstable = (np.asarray(n_unstable)[order] > 0).astype(float)
    if len(order) == 0:
        return LineAttractor(readout, np.asarray(n_unstable), np.full(n_bins, np.nan),
                             np.full(k, np.nan))
    stretch = np.minimum((np.arange(len(order)) * n_bins) // len(order), n_bins - 1)
    profile = np.array([unstable[stretch == i].mean() if np.any(stretch == i) else np.nan
                        for i in range(n_bins)])
    spectrum = np.pad(mods.mean(0), (0, max(k - mods.shape[1], 0)))
    return LineAttractor(readout[order], np.asarray(n_unstable)[order], profile, spectrum)


def cdi_distance(a, b, part: str = "all") -> float:
    """Mean over contexts of ``|profile_a - profile_b|`` (mean) plus the RMS spectrum difference.

    ``part="structure"`` keeps the profile term only, ``part="linear"`` the spectrum term only.

    ``a``, ``b`` : sequences of :class:`LineAttractor`, one per context. A context without
    slow points has nan summaries: against a context with points they count as the largest
    profile difference (1) and a zero spectrum; two such contexts do not differ. See
    :func:`cdi_distances`.
    """
    return float(cdi_distances([a, b], part)[0, 1])


def cdi_distances(lines, part: str = "all") -> np.ndarray:
    """:func:`cdi_distance` of every pair of ``lines`` (one sequence of :class:`LineAttractor`
    per network, one per context) at once: [N, N]."""
    check_choice("part", part, PARTS)
    prof = np.stack([[x.profile for x in net] for net in lines])  # [N, C, bins]
    spec = np.nan_to_num(np.stack([[x.spectrum for x in net] for net in lines]))  # [N, C, k]
    d = np.abs(prof[:, None] - prof[None])  # [N, N, C, bins]
    both = np.isnan(prof[:, None]) & np.isnan(prof[None])
    structure = np.where(both, 0.0, np.nan_to_num(d, nan=1.0)).mean(-1)  # [N, N, C]
    linear = np.sqrt(((spec[:, None] - spec[None]) ** 2).mean(-1))
    per_context = {"structure": structure, "linear": linear, "all": structure + linear}[part]
    return per_context.mean(-1)


def mean_spectra(lines) -> np.ndarray:
    """[N, k] spectrum of each network averaged over its contexts (``lines``: one sequence of
    :class:`LineAttractor` per network); nan where no context has a slow point."""
    spec = np.stack([[x.spectrum for x in net] for net in lines])  # [N, C, k]
    n = np.isfinite(spec).sum(1)
    return np.where(n > 0, np.nansum(spec, 1) / np.maximum(n, 1), np.nan)


# ---------------------------------------------------------------------------------------------
# Whole populations (fixed points from lib.dynamics, shard by shard)


def between_stable_points(spec, params: dict, fps: FixedPoints,
                          config: FixedPointConfig | None = None) -> FixedPoints:
    """``fps`` plus the fixed points found by a second search started between stable points.

    Saddles that mediate transitions sit between the stable points they connect, where task
    trials spend only a step or two, so a search started from visited states can miss some. The
    second search starts from the midpoints of every pair of stable points of each network
    (plus the search's noise); points it finds within ``tol_unique`` of a known one are dropped.
    """
    config = config or FixedPointConfig(n_init=128)
    n = params["W"].shape[0]
    mids = []
    for i in range(n):
        st = fps.points[(fps.net == i) & (fps.n_unstable == 0)]
        a, b = np.triu_indices(len(st), 1)
        mids.append((st[a] + st[b]) / 2 if len(a) else fps.points[fps.net == i][:1])
    width = max(max(len(m) for m in mids), 1)
    seeds = np.stack([np.resize(m, (width, fps.points.shape[1])) if len(m) else
                      np.zeros((width, fps.points.shape[1])) for m in mids])
    extra = find_fixed_points(spec, params, np.array(fps.inputs), torch.as_tensor(seeds), config)
    d = np.linalg.norm(extra.points[:, None] - fps.points[None], axis=-1)
    known = ((d < config.tol_unique) & (extra.net[:, None] == fps.net[None])).any(1)
    return concat(fps, extra.subset(~known))


def concat(a: FixedPoints, b: FixedPoints) -> FixedPoints:
    """Points of two searches of the same networks and inputs, ``a``'s first."""
    return a.concat(b)


def flipflop_population(nets, task, fp_config, orbit: OrbitConfig = OrbitConfig()):
    """Fixed-point graph of every network (``pop.included()`` order) of a flip-flop population.

    Returns
    -------
    graphs : list of DiGraph, one per network.
    table : DataFrame, one row per network: arch, activation, label, points by number of
        unstable modes, ``canonical_points`` (8 stable points at the 8 codes, lib.dynamics),
        ``n_continuum`` (fixed points on a continuum, not nodes of the graph) and ``matches``
        (isolated stable points and 1-saddles form the canonical graph).
    """
    graphs, tables = [], []
    for g in dynamics.groups(nets):
        fps, _, _ = dynamics.flipflop(g, task, fp_config)  # its midpoint rounds find the saddles
        codes = dynamics.readout_points(g.spec, g.params, fps)
        # nodes: isolated fixed points only (see dynamics.flipflop_table: how many samples of
        # a continuum a search returns follows its budget, and they would decide the match)
        graphs += flipflop_graphs(g.spec, g.params, fps.subset(isolated(fps)), orbit)
        tables.append(dynamics.flipflop_table(g, fps, codes))
    table = pd.concat(tables, ignore_index=True)
    table["matches"] = [matches_canonical(G, task.n_out) for G in graphs]
    table = table.rename(columns={"canonical": "canonical_points"})
    return graphs, table


def sine_population(nets, task, fp_config, freqs=None):
    """:class:`SineTopology` of every network of a sine-wave population, and a table.

    The fixed point of each (network, command) is the one :func:`lib.dynamics.sine` picks (the
    point nearest the centre of the trajectory); ``freqs`` are the command indices analysed
    (default all). Returns (topologies, per-network DataFrame with the correlation of predicted
    and commanded frequency, the fraction of limit cycles and of unstable foci).
    """
    freqs = np.arange(task.n_freqs) if freqs is None else np.asarray(freqs)
    tops, rows = [], []
    for g in dynamics.groups(nets):
        df, fps, best, _ = dynamics.sine(g, task, fp_config, freqs)
        J = len(freqs)
        lam = dynamics.at_points(fps.eigvals, best)
        for k in range(len(g.nets)):
            tops.append(sine_topology(task.omegas[freqs], lam[k * J:(k + 1) * J]))
            d = df[df.net == k]
            ok = np.isfinite(d.omega_pred)
            r = np.corrcoef(d.omega[ok], d.omega_pred[ok])[0, 1] if ok.sum() > 2 else np.nan
            rows.append(dict(arch=g.spec.arch, activation=g.spec.activation, label=g.label,
                             freq_corr=r, limit_cycles=float(d.limit_cycle.mean()),
                             unstable_focus=float(np.mean(tops[-1].kind == KINDS.index("unstable focus")))))
    return tops, pd.DataFrame(rows)


def sine_missing_check(nets, task, fp_config, tops, freqs, per_cell: int = 2,
                       executor="inprocess") -> pd.DataFrame:
    """Would an exhaustive search find a point where the sine search found none?

    For the first ``per_cell`` (network, command) pairs of each architecture x activation
    whose :class:`SineTopology` (``tops``, from :func:`sine_population` on the same ``nets``
    and ``freqs``) has no point, runs :func:`lib.fp_recall.exhaustive` (cached; searches of
    all cells side by side on ``executor``) started from the pair's own probe trajectory
    under its own command. Returns one row per checked pair: label, net (index within its
    cell), freq (command index), ``found`` (the exhaustive search returned a point) and
    ``spiral`` (one with an unstable complex pair, the kind :func:`sine_population` picks).
    """
    freqs, jobs, checked, first = np.asarray(freqs), [], [], 0
    for g in dynamics.groups(nets):
        kind = np.stack([t.kind for t in tops[first:first + len(g.nets)]])  # [n, J]
        first += len(g.nets)
        pairs = np.argwhere(kind == 0)[:per_cell]  # (net, command) rows
        if len(pairs):
            jobs.append(_pair_reference(g, task, fp_config, pairs[:, 0], freqs[pairs[:, 1]]))
            checked.append((g.label, pairs))
    fp_cache.fill(jobs, executor)
    rows = []
    for job, (label, pairs) in zip(jobs, checked):
        ref = job.result()
        spiral = ((np.abs(ref.eigvals) > 1) & (np.abs(ref.eigvals.imag) > 1e-6)).any(1)
        for p, (k, j) in enumerate(pairs):
            rows.append(dict(label=label, net=int(k), freq=int(freqs[j]),
                             found=bool((ref.net == p).any()),
                             spiral=bool(((ref.net == p) & spiral).any())))
    return pd.DataFrame(rows, columns=["label", "net", "freq", "found", "spiral"])


def _pair_reference(g, task, fp_config, nets, freqs) -> fp_cache.Search:
    """Exhaustive reference search of (network, command) pairs nets [P], freqs [P] of group
    g: pair p is network nets[p] under command freqs[p], started from its own trajectory."""
    params = {k: v[torch.as_tensor(nets)] for k, v in g.params.items()}
    trials = task.trials_for(freqs)
    T = task.n_time
    vis = fp_visited(g.spec, params, trials.inputs)  # [P, P*T, S]: every pair on every trial
    own = torch.stack([vis[p, p * T:(p + 1) * T] for p in range(len(nets))])
    return fp_recall.reference_search(g.spec, params, own, fp_config, task.levels[freqs, None])


def cdi_population(nets, task, fp_config, k: int = 10, n_bins: int = 5):
    """Line attractors of every network of a CDI population: one per context.

    Slow points come from :func:`lib.dynamics.cdi` (context cue alone as input), searched with
    ``fp_config`` (use it without the Newton polish, which would slide points along an
    approximate line attractor to its few exact fixed points). Returns (list of [LineAttractor, LineAttractor] per network,
    per-network DataFrame with ``n_slow`` and the integrating eigenvalue per context).
    """
    lines, tables = [], []
    for g in dynamics.groups(nets):
        table, _, _, found = dynamics.cdi(g, task, fp_config, n_modes=k)
        per_ctx = []
        for c in (0, 1):
            fps = found[c][0]
            y = dynamics.readout_points(g.spec, g.params, fps)[:, 0]
            per_ctx.append([line_attractor(y[fps.net == i], fps.eigvals[fps.net == i],
                                           fps.n_unstable[fps.net == i], k, n_bins)
                            for i in range(len(g.nets))])
        lines += [list(pair) for pair in zip(*per_ctx)]
        table = table.reindex(columns=table.columns.union(["n_slow", "lam_int"], sort=False))
        tables.append(table.pivot_table(index=["net", "arch", "activation", "label"],
                                        columns="context", values=["n_slow", "lam_int"],
                                        dropna=False).reset_index())
    table = pd.concat(tables, ignore_index=True)
    table.columns = ["_".join(str(c) for c in col if c != "") for col in table.columns]
    return lines, table
