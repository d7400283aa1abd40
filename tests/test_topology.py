"""Fixed-point graphs and topology distances, checked on answers known by construction."""
from dataclasses import fields
from itertools import product

import networkx as nx
import numpy as np
import pytest
import torch

from lib import dynamics, embed, fp_result, models, topology as topo
from lib.fixed_points import FixedPointConfig, find_fixed_points
from lib.population import Group
from lib.tasks import make_task

H_STAR = {2.0: 0.9575040240772688, 2.5: 0.9856238716346568, 3.0: 0.9949015284526289}  # h = tanh(g h)


def bits_net(gains):
    """A vanilla tanh net h' = tanh(diag(gains) h): one independent bistable unit per bit.

    Each unit has fixed points -h*, 0, +h* (h* = tanh(g h*)), so the network has stable points
    at the 2^n corners, 1-saddles on the edges (one unit at 0) and higher saddles on faces and
    at the centre. Distinct gains make the eigenvectors the coordinate axes, so the orbits of a
    1-saddle run along one axis to the two corners it separates.
    """
    n = len(gains)
    spec, p = bits_params(gains)
    corners = np.array(list(product([-1.0, 0.0, 1.0], repeat=n))) * [H_STAR[g] for g in gains]
    visited = torch.as_tensor(np.repeat(corners, 8, axis=0))[None]
    fp = find_fixed_points(spec, p, np.zeros(n), visited,
                           FixedPointConfig(n_init=64 * 3 ** n, init_noise=0.01, seed=1))
    return spec, p, fp


def bits_params(gains):
    """The spec and weights of :func:`bits_net`'s network."""
    n = len(gains)
    spec = models.CellSpec("vanilla", "tanh", n, n, n)
    p = models.init_params(spec, [0])
    p["W"] = torch.diag(torch.tensor(gains))[None]
    p["U"], p["b"] = torch.eye(n)[None], torch.zeros(1, 1, n)
    p["W_out"], p["b_out"] = torch.eye(n)[None], torch.zeros(1, 1, n)
    return spec, p


@pytest.fixture(scope="module")
def two_bit():
    spec, p, fp = bits_net([2.0, 2.5])
    return fp, topo.flipflop_graphs(spec, p, fp)[0]


def test_one_bit_network_gives_a_saddle_between_two_codes():
    spec, p, fp = bits_net([2.0])
    G = topo.flipflop_graphs(spec, p, fp)[0]
    labels = nx.get_node_attributes(G, "label")
    assert sorted(labels.values()) == ["+", "-", "s[+|-]"]
    saddle = next(n for n, lab in labels.items() if lab.startswith("s"))
    assert sorted(labels[d] for d in G.successors(saddle)) == ["+", "-"]
    assert topo.matches_canonical(G, n_bits=1)


def test_two_bit_network_yields_the_canonical_square(two_bit):
    fp, G = two_bit
    assert len(fp) == 9 and sorted(fp.n_unstable) == [0] * 4 + [1] * 4 + [2]
    assert topo.isomorphic(topo.core(G), topo.canonical_flipflop_graph(2))
    assert topo.matches_canonical(G, n_bits=2)
    # orbits from the source at the origin pass the 1-saddles (unstable across the axis they
    # follow, so rounding errors grow) and end on stable corners
    origin = next(n for n, u in G.nodes(data="n_unstable") if u == 2)
    ends = [G.nodes[d]["n_unstable"] for d in G.successors(origin)]
    assert len(ends) >= 2 and set(ends) == {0}


def test_canonical_graph_has_eight_codes_and_twelve_saddles():
    G = topo.canonical_flipflop_graph(3)
    stable = [lab for n, lab in G.nodes(data="label") if G.nodes[n]["n_unstable"] == 0]
    assert sorted(stable) == sorted("".join(c) for c in product("+-", repeat=3))
    assert G.number_of_nodes() == 20 and G.number_of_edges() == 24
    assert "s[++-|+--]" in dict(G.nodes(data="label")).values()


def test_isomorphic_labelled_graphs_are_at_distance_zero():
    G = topo.canonical_flipflop_graph(3)
    rng = np.random.default_rng(0)
    relabelled = nx.relabel_nodes(G, dict(zip(G, rng.permutation(100)[:len(G)] + 1000)))
    assert topo.isomorphic(G, relabelled)
    assert topo.graph_distance(G, relabelled) == 0.0
    assert topo.graph_distance(G, relabelled, multiset=True) == 0.0


def test_missing_saddle_or_stable_point_changes_the_distance():
    G = topo.canonical_flipflop_graph(3)
    labels = dict(G.nodes(data="label"))
    saddle = next(n for n, lab in labels.items() if lab == "s[+++|++-]")
    stable = next(n for n, lab in labels.items() if lab == "---")
    no_saddle, no_stable = G.copy(), G.copy()
    no_saddle.remove_node(saddle)
    no_stable.remove_node(stable)
    # 20 nodes + 24 edges; a saddle takes 1 node and 2 edges, a code 1 node and 3 edges
    assert topo.graph_distance(G, no_saddle) == pytest.approx(3 / 44)
    assert topo.graph_distance(G, no_stable) == pytest.approx(4 / 44)
    assert not topo.matches_canonical(no_saddle) and not topo.matches_canonical(no_stable)


def test_distance_is_one_for_disjoint_graphs_and_symmetric():
    A, B = topo.canonical_flipflop_graph(1), topo.canonical_flipflop_graph(2)
    assert topo.graph_distance(A, B) == 1.0
    D = topo.distance_matrix([A, B, A], topo.graph_distance)
    assert np.array_equal(D, D.T) and np.all(np.diag(D) == 0) and D[0, 2] == 0


def planted(n_per=10, n_classes=3, gap=1.0, seed=0):
    """Distances between points of well-separated clusters, and their labels."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per)
    X = rng.normal(size=(len(y), 2)) * 0.1 + gap * np.eye(n_classes)[y][:, :2] * 5
    X[y == 2] += [-5, -5]
    return np.linalg.norm(X[:, None] - X[None], axis=-1), y


def test_statistics_find_planted_clusters():
    D, y = planted()
    s = embed.cluster_stats(D, y, n_perm=200, seed=0)
    assert s["nn_accuracy"] == 1.0 and s["p_value"] < 0.01 and s["silhouette"] > 0.8


def test_statistics_on_shuffled_labels_stay_at_chance():
    D, y = planted()
    rng = np.random.default_rng(1)
    acc = [embed.cluster_stats(D, rng.permutation(y), n_perm=50, seed=k)["nn_accuracy"]
           for k in range(40)]
    chance = embed.chance_accuracy(y)
    # the mean of 40 shuffles of 30 labels: s.e. about 0.09 / sqrt(40) = 0.014
    assert abs(np.mean(acc) - chance) < 0.06


def rotation_spectra(omegas, radius):
    """Eigenvalues [J, 3] of a planar rotation by omega_j scaled by radius, plus a decaying mode."""
    pair = radius * np.exp(1j * np.asarray(omegas))
    return np.stack([pair, pair.conj(), np.full(len(omegas), 0.5 + 0j)], axis=1)


def test_sine_topology_reads_the_rotation_angle_and_kind():
    omegas = np.linspace(0.1, 0.6, 6)
    a = topo.sine_topology(omegas, rotation_spectra(omegas, 1.05))
    assert np.allclose(a.predicted, omegas)
    assert [topo.KINDS[k] for k in a.kind] == ["unstable focus"] * 6 and set(a.n_unstable) == {2}
    b = topo.sine_topology(omegas, rotation_spectra(omegas, 0.9))
    assert set(b.kind) == {topo.KINDS.index("stable focus")}
    assert topo.sine_distance(a, a) == 0.0
    assert topo.sine_distance(a, b) == pytest.approx(1.0)  # every kind differs, same frequencies


def test_sine_distance_grows_with_frequency_error_and_missing_points():
    omegas = np.linspace(0.1, 0.6, 6)
    a = topo.sine_topology(omegas, rotation_spectra(omegas, 1.05))
    b = topo.sine_topology(omegas, rotation_spectra(omegas + 0.05, 1.05))
    assert topo.sine_distance(a, b) == pytest.approx(0.05 / 0.5)
    lam = rotation_spectra(omegas, 1.05)
    lam[2] = np.nan
    c = topo.sine_topology(omegas, lam)
    assert topo.KINDS[c.kind[2]] == "none" and np.isnan(c.predicted[2])
    assert topo.sine_distance(a, c) > 1 / 6


def test_line_attractor_summary_and_distance():
    P = 20
    lam = np.tile([1.0, 0.8, 0.5, 0.1], (P, 1)).astype(complex)
    n_unstable = np.zeros(P, int)
    a = topo.line_attractor(np.linspace(-1, 1, P), lam, n_unstable, k=4, n_bins=4)
    assert np.allclose(a.spectrum, [1.0, 0.8, 0.5, 0.1]) and np.all(a.profile == 0)
    assert topo.cdi_distance([a, a], [a, a]) == 0.0
    n_unstable[:5] = 1  # the lowest quarter of the line becomes unstable
    shuffled = np.random.default_rng(0).permutation(P)  # order comes from the readout
    b = topo.line_attractor(np.linspace(-1, 1, P)[shuffled], lam[shuffled], n_unstable[shuffled],
                            k=4, n_bins=4)
    assert np.allclose(b.profile, [1, 0, 0, 0])
    assert topo.cdi_distance([a, a], [b, a]) == pytest.approx(0.25 / 2)
    empty = topo.line_attractor([], np.zeros((0, 4)), [], k=4, n_bins=4)
    assert topo.cdi_distance([empty], [empty]) == 0.0 and topo.cdi_distance([a], [empty]) > 1


def test_mean_spectra_average_the_contexts_that_have_slow_points():
    lam = lambda v: np.tile(np.asarray(v, complex), (3, 1))  # noqa: E731
    line = lambda v: topo.line_attractor(np.arange(3.0), lam(v), np.zeros(3, int), k=2)  # noqa: E731
    empty = topo.line_attractor([], np.zeros((0, 2)), [], k=2)
    got = topo.mean_spectra([[line([1.0, 0.5]), line([0.8, 0.1])], [empty, line([0.9, 0.3])],
                             [empty, empty]])
    assert np.allclose(got[:2], [[0.9, 0.3], [0.9, 0.3]]) and np.all(np.isnan(got[2]))


def test_all_pairs_at_once_equal_the_pairwise_definitions():
    """sine_distances and cdi_distances against the per-pair formulas written out here, on
    items with missing points and contexts without slow points."""
    rng = np.random.default_rng(0)
    omegas = np.linspace(0.1, 0.6, 6)
    tops = []
    for radius in (1.05, 0.9, 1.1, 0.95):
        lam = rotation_spectra(omegas + rng.normal(0, 0.02, 6), radius)
        lam[rng.integers(6)] = np.nan
        tops.append(topo.sine_topology(omegas, lam))
    lines = []
    for i in range(5):
        P = int(rng.integers(1, 12)) if i else 0  # the first network: no slow points
        lam = np.abs(rng.normal(size=(P, 4))) + 0j
        lines.append([topo.line_attractor(rng.normal(size=P), lam, rng.integers(0, 2, P), k=4,
                                          n_bins=3) for _ in range(2)])

    def sine_pair(a, b, part):
        mismatch = np.mean(a.kind != b.kind)
        diff = np.nan_to_num(a.predicted) - np.nan_to_num(b.predicted)
        rms = np.sqrt(np.mean(diff ** 2)) / np.ptp(a.omegas)
        return {"all": mismatch + rms, "structure": mismatch, "linear": rms}[part]

    def cdi_pair(a, b, part):
        out = []
        for x, y in zip(a, b):
            both = np.isnan(x.profile) & np.isnan(y.profile)
            prof = np.where(both, 0.0, np.nan_to_num(np.abs(x.profile - y.profile), nan=1.0))
            spec = np.nan_to_num(x.spectrum) - np.nan_to_num(y.spectrum)
            terms = {"structure": np.mean(prof), "linear": np.sqrt(np.mean(spec ** 2))}
            out.append(terms[part] if part in terms else sum(terms.values()))
        return np.mean(out)

    for part in topo.PARTS:
        for items, batched, pair in ((tops, topo.sine_distances, sine_pair),
                                     (lines, topo.cdi_distances, cdi_pair)):
            loop = topo.distance_matrix(items, lambda a, b: pair(a, b, part))
            assert np.allclose(batched(items, part), loop, rtol=1e-12, atol=0), part
    assert any(np.isnan(x.profile).all() for net in lines for x in net)  # an empty context


def test_search_between_stable_points_finds_the_saddles_trials_miss():
    spec, p, _ = bits_net([2.0, 2.5])
    corners = np.array(list(product([-1.0, 1.0], repeat=2))) * [H_STAR[2.0], H_STAR[2.5]]
    visited = torch.as_tensor(np.repeat(corners, 8, axis=0))[None]  # only the stable corners
    fp = find_fixed_points(spec, p, np.zeros(2), visited,
                           FixedPointConfig(n_init=64, init_noise=0.01, wide_fraction=0.0,
                                            midpoint_rounds=0))
    assert sorted(fp.n_unstable) == [0, 0, 0, 0]
    more = topo.between_stable_points(spec, p, fp)
    assert sorted(more.n_unstable) == [0] * 4 + [1] * 4 + [2]  # edges' midpoints and the centre
    rounds = find_fixed_points(spec, p, np.zeros(2), visited,  # the search's own midpoint rounds
                               FixedPointConfig(n_init=64, init_noise=0.01, wide_fraction=0.0))
    assert sorted(rounds.n_unstable) == [0] * 4 + [1] * 4 + [2]
    assert topo.matches_canonical(topo.flipflop_graphs(spec, p, more)[0], n_bits=2)


def test_sine_analyses_survive_a_search_that_finds_no_point(monkeypatch, cache_dir):
    """A cell where no (network, command) pair has a point: NaN rows, no error."""
    task = make_task("sine", n_time=20, n_freqs=5)
    spec = models.CellSpec("vanilla", "tanh", 1, 6, 1)
    group = Group(spec, models.init_params(spec, [1, 2]), (None, None))
    empty = fp_result.FixedPoints(**{f.name: np.zeros((0, 6)) for f in fields(fp_result.FixedPoints)})
    monkeypatch.setattr(dynamics.fp, "find_fixed_points", lambda *a, **k: empty)
    df, _, best, _ = dynamics.sine(group, task, FixedPointConfig(), freqs=[0, 4])
    assert len(df) == 4 and (best == -1).all()
    assert df.omega_pred.isna().all() and df.q.isna().all() and not df.limit_cycle.any()
    monkeypatch.setattr(topo.dynamics, "groups", lambda nets: [group])
    tops, table = topo.sine_population([None, None], task, FixedPointConfig(), [0, 4])
    assert len(tops) == 2 and table.freq_corr.isna().all() and (table.limit_cycles == 0).all()


def test_a_continuum_sample_is_not_a_node_nor_a_stable_point(two_bit):
    """A stable point with an eigenvalue at 1 (a sample of a continuum, here with readout "0+")
    would add a fifth stable point and a node; the table and graph count isolated points only."""
    from dataclasses import replace
    from types import SimpleNamespace
    fp, _ = two_bit
    corner = int(np.flatnonzero(fp.n_unstable == 0)[0])
    one = fp.subset([corner], np.zeros(len(fp.start_net), bool))
    eig = one.eigvals.copy()
    eig[0, 0] = 1.0
    sample = replace(one, points=np.array([[0.1, 0.9]]), eigvals=eig)
    both = fp.concat(sample)
    spec, p = bits_params([2.0, 2.5])  # two_bit's network
    group = SimpleNamespace(nets=[0], spec=spec, label="vanilla-tanh")
    codes = dynamics.readout_points(spec, p, both)
    row = dynamics.flipflop_table(group, both, codes).iloc[0]
    assert (row.n_stable, row.n_continuum, row.n_codes, bool(row.canonical)) == (4, 1, 4, True)
    assert not topo.matches_canonical(topo.flipflop_graphs(spec, p, both)[0], n_bits=2)
    assert topo.matches_canonical(topo.flipflop_graphs(spec, p, both.subset(fp_result.isolated(both)))[0],
                                  n_bits=2)


def test_missing_sine_pairs_are_searched_again(monkeypatch, cache_dir):
    """Pairs marked without a point, the first per_cell of the cell, in (network, command)
    order; a vanilla tanh network maps the cube [-1, 1]^S into itself, so it has a fixed point
    under every input (Brouwer) and the exhaustive search must find one."""
    task = make_task("sine", n_time=20, n_freqs=5)
    spec = models.CellSpec("vanilla", "tanh", 1, 6, 1)
    group = Group(spec, models.init_params(spec, [1, 2]), (None, None))
    monkeypatch.setattr(topo.dynamics, "groups", lambda nets: [group])
    freqs = np.array([0, 4])
    none = [topo.sine_topology(task.omegas[freqs], np.full((2, 6), np.nan)) for _ in range(2)]
    out = topo.sine_missing_check([None, None], task, FixedPointConfig(n_init=16), none, freqs,
                                  per_cell=3)
    assert out[["net", "freq"]].values.tolist() == [[0, 0], [0, 4], [1, 0]]
    assert out.found.all() and (out.label == group.label).all()
    assert len(topo.sine_missing_check([None, None], task, FixedPointConfig(), none, freqs,
                                       per_cell=0)) == 0


def test_turns_count_a_point_inside_the_orbit_and_not_one_on_its_band():
    """A sampled orbit (11 cycles of 11.3 steps, its radius breathing by 2 %, in a random plane
    of 6 dimensions) turns once per cycle around its centre. Around a point on the orbit's
    band the discrete trajectory passes on either side: over a turn in all (what "winds at
    least once" alone would accept) but fewer than one per two cycles (what the chapter asks)."""
    rng = np.random.default_rng(0)
    T, omega = 125, 2 * np.pi / 11.3
    plane = np.linalg.qr(rng.standard_normal((6, 2)))[0].T  # [2, 6] orthonormal rows
    angle = omega * np.arange(T)
    radius = 1 + 0.02 * np.sin(0.05 * np.arange(T))
    circle = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)
    states = np.repeat((circle @ plane + 0.3)[None], 3, 0)  # [3, T, 6]
    centres = np.stack([np.full(6, 0.3), 0.3 + plane[0], np.full(6, np.nan)])
    inside, band, none = dynamics.turns(states, centres)
    n_cycles = dynamics.cycles(np.sin(angle)[None])[0]
    assert n_cycles == 10  # upward crossings of the mean at 11.3, 22.6, ..., 113 steps
    assert inside == pytest.approx(omega * (T - 1) / (2 * np.pi), rel=1e-9)
    assert 1 <= band < n_cycles / 2 and np.isnan(none)
    assert dynamics.cycles(np.ones((1, T)))[0] == 0
    steps = np.arange(400)  # 10 slow cycles with noise, which crosses the mean 17 times upward
    noisy = np.sin(2 * np.pi * steps / 40 + 0.5) + 0.2 * rng.standard_normal(400)
    assert dynamics.cycles(noisy[None])[0] == 10


def test_a_code_label_goes_into_the_widest_gap_between_its_edges():
    from lib.plots.topology import away_from_edges, graph_layout
    G = nx.DiGraph([("c", "e"), ("c", "n"), ("w", "c")])
    pos = {"c": np.zeros(2), "e": np.array([1.0, 0]), "n": np.array([0, 1.0]),
           "w": np.array([-1.0, 0])}
    np.testing.assert_allclose(away_from_edges(G, pos, "c"), [0, -1], atol=1e-12)  # south is free
    np.testing.assert_allclose(away_from_edges(G, pos, "e"), [1, 0], atol=1e-12)  # opposite its one edge
    G.add_node("lone")
    pos["lone"] = np.array([5.0, 5])
    np.testing.assert_allclose(away_from_edges(G, pos, "lone"), [0, 1])  # no edge: above
    # every corner of the canonical cube: its label clears each of its three edges by > 45 degrees
    G = topo.canonical_flipflop_graph(3)
    pos = graph_layout(G)
    for p in (p for p, u in G.nodes(data="n_unstable") if u == 0):
        u = away_from_edges(G, pos, p)
        for q in nx.all_neighbors(G, p):
            v = (pos[q] - pos[p]) / np.linalg.norm(pos[q] - pos[p])
            assert u @ v < np.cos(np.pi / 4), (p, q)
