"""The cache of fixed-point searches: same networks and settings load, anything else searches."""
import numpy as np
import pytest
import torch

from lib import dynamics, models
from lib import fixed_points as fp
from lib import fp_cache, fp_kernels, fp_recall
from lib.config import population_config
from lib.population import Group, load_or_train
from lib.tasks import make_task

CFG = fp.FixedPointConfig(n_init=16, midpoint_rounds=0)


def _search(spec, params, calls):
    vis = torch.randn(1, 64, 8, generator=torch.Generator().manual_seed(0))  # around 0 and +-a

    def run():
        calls.append(1)
        return fp.find_fixed_points(spec, params, np.zeros(1), vis, CFG)
    return run


def test_a_second_search_loads_what_the_first_stored(tmp_path):
    spec, params, _, _ = fp_recall.known_network(8, 1, seed=0)
    key = fp_cache.search_key(spec, params, np.zeros((2, 5, 1)), CFG)
    calls = []
    a = fp_cache.cached(key, _search(spec, params, calls), root=tmp_path)
    b = fp_cache.cached(key, _search(spec, params, calls), root=tmp_path)
    assert len(calls) == 1 and np.array_equal(a.points, b.points)
    assert np.array_equal(a.start_point, b.start_point) and len(a) == 3


def test_the_key_follows_networks_inputs_and_settings():
    spec, params, _, _ = fp_recall.known_network(8, 1, seed=0)
    probe = np.zeros((2, 5, 1))
    key = fp_cache.search_key(spec, params, probe, CFG)
    other = {**params, "W": params["W"] * 1.01}
    assert key == fp_cache.search_key(spec, dict(params), probe.copy(), CFG)
    assert key != fp_cache.search_key(spec, other, probe, CFG)
    assert key != fp_cache.search_key(spec, params, probe + 1, CFG)
    assert key != fp_cache.search_key(spec, params, probe, fp.FixedPointConfig(n_init=17))
    assert key != fp_cache.search_key(spec, params, probe, CFG, inputs=np.ones(1))
    assert key != fp_cache.search_key(spec, params, probe, CFG, sources=("dynamics.py",))


def test_searches_without_the_c_kernels_are_stored_apart(monkeypatch):
    """The torch-ops fallback differs in the last bits: its searches get their own key."""
    spec, params, _, _ = fp_recall.known_network(8, 1, seed=0)
    probe = np.zeros((2, 5, 1))
    key = fp_cache.search_key(spec, params, probe, CFG)
    monkeypatch.setattr(fp_kernels, "available", lambda: False)
    assert fp_cache.search_key(spec, params, probe, CFG) != key


def test_a_damaged_entry_is_searched_again(tmp_path):
    spec, params, _, _ = fp_recall.known_network(8, 1, seed=0)
    key = fp_cache.search_key(spec, params, np.zeros((2, 5, 1)), CFG)
    calls = []
    fp_cache.cached(key, _search(spec, params, calls), root=tmp_path)
    path = tmp_path / "fixed_points" / f"{key}.npz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="searching again"):
        again = fp_cache.cached(key, _search(spec, params, calls), root=tmp_path)
    assert len(calls) == 2 and len(again) == 3
    assert len(fp_cache.cached(key, _search(spec, params, calls), root=tmp_path)) == 3
    assert len(calls) == 2


@pytest.mark.parametrize("task", ["sine", "cdi"])
def test_the_sine_and_integration_searches_run_once_for_two_chapters(task, cache_dir, monkeypatch):
    """Chapters 5 and 6 both analyse these populations: the second analysis loads the search."""
    t = make_task(task, n_time=20, **({"n_freqs": 5} if task == "sine" else {}))
    spec = models.CellSpec("vanilla", "tanh", t.n_in, 6, t.n_out)
    calls, search = [], fp.find_fixed_points
    monkeypatch.setattr(dynamics.fp, "find_fixed_points",
                        lambda *a, **k: calls.append(1) or search(*a, **k))

    def run(seeds):
        group = Group(spec, models.init_params(spec, seeds), (None, None))
        if task == "sine":
            return dynamics.sine(group, t, CFG, freqs=[0, 4])[1]
        return dynamics.cdi(group, t, CFG, n_trials=4)[3][1][0]

    first, n_searches = run([1, 2]), len(calls)
    again = run([1, 2])
    assert n_searches >= 1 and len(calls) == n_searches  # nothing searched the second time
    assert np.array_equal(first.points, again.points) and np.array_equal(first.net, again.net)
    run([3, 4])
    assert len(calls) > n_searches  # other networks: searched


def test_fill_runs_each_missing_search_once_in_worker_processes(tmp_path):
    """Searches handed to worker processes store what the same search stores in this process;
    a key given twice runs once, and a filled cache runs nothing."""
    jobs = []
    for seed in (0, 1, 1):
        spec, params, _, _ = fp_recall.known_network(8, 1, seed=seed)
        vis = torch.randn(1, 64, 8, generator=torch.Generator().manual_seed(seed))
        key = fp_cache.search_key(spec, params, np.zeros((2, 5, 1)), CFG)
        jobs.append(fp_cache.Search.of(key, spec, params, np.zeros(1), vis, CFG))
    assert fp_cache.fill(jobs, "processes", workers=2, root=tmp_path) == 2
    assert sorted(p.stem for p in (tmp_path / "fixed_points").glob("*.npz")) == sorted(
        {j.key for j in jobs})
    for job in jobs[:2]:
        here, stored = job.run(), job.result(tmp_path)
        assert len(stored) == 3
        for name in ("points", "q", "eigvals", "right", "left", "start_point", "start_q"):
            assert np.array_equal(getattr(here, name), getattr(stored, name)), name
    assert fp_cache.fill(jobs, "processes", workers=2, root=tmp_path) == 0


def test_a_chapter_fills_the_recall_references_with_its_own_searches(cache_dir, monkeypatch):
    """``population_recall`` checks against exactly the searches that ``reference_searches``
    lists, so a chapter that fills those first leaves it nothing to search."""
    cfg = population_config("smoke", "flipflop", archs=("vanilla",), n_steps=2)
    pop = load_or_train(cfg, executor="inprocess", progress=False)
    task = cfg.shards()[0].make_task()
    x, config = np.zeros(task.n_in), fp.FixedPointConfig(n_init=8, midpoint_rounds=0)

    def visited_of(group):
        return dynamics.flipflop_visited(group, task)

    jobs = fp_recall.reference_searches(pop.included(), x, visited_of, config)
    assert len(jobs) == 2 and fp_cache.fill(jobs) == 2  # one network of each activation
    fill, ran = fp_cache.fill, []
    monkeypatch.setattr(fp_cache, "fill", lambda *a, **k: ran.append(fill(*a, **k)))
    table = fp_recall.population_recall(pop.included(), x, visited_of, config)
    assert ran == [0] and len(table) == 2


def test_a_reference_search_is_costed_as_the_searches_it_runs():
    """``fill`` hands out the costliest searches first, so the exhaustive reference (five
    searches of 4x the starts and 5x the Adam budget) must not be costed as a trifle: its
    cost is those five searches' on the same scale as the search it checks."""
    spec, params, _, _ = fp_recall.known_network(8, 1, seed=0)
    vis = torch.randn(1, 64, 8, generator=torch.Generator().manual_seed(0))
    own = fp_cache.Search.of("own", spec, params, np.zeros(1), vis, CFG)
    ref = fp_recall.reference_search(spec, params, vis, CFG, np.zeros(1))
    big = fp_recall.reference_config(CFG)
    assert own.cost == fp_cache.cost(CFG.n_init, 8, CFG)
    assert ref.cost == 5 * fp_cache.cost(big.n_init, 8, big) > own.cost


def test_an_entry_stores_no_left_eigenvectors_and_loads_them_as_searched(tmp_path):
    """The left eigenvectors (the inverse of the right ones) are not stored; loading inverts
    the stored right ones again and gets the search's own numbers, bit for bit, with NaN where
    a point was not decomposed."""
    spec, params, _, _ = fp_recall.known_network(8, 1, seed=0)
    key = fp_cache.search_key(spec, params, np.zeros((2, 5, 1)), CFG)
    searched = fp_cache.cached(key, _search(spec, params, []), root=tmp_path)
    with np.load(tmp_path / "fixed_points" / f"{key}.npz") as z:
        assert "right" in z.files and "left" not in z.files
    loaded = fp_cache.cached(key, _search(spec, params, []), root=tmp_path)
    assert np.array_equal(loaded.left, searched.left) and np.isfinite(loaded.left).all()
    undecomposed = dict(right=np.full((2, 3, 3), np.nan + 0j), eigvals=np.full((2, 3), np.nan + 0j))
    assert np.isnan(fp_cache._left(undecomposed)).all()
