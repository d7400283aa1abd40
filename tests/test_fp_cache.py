"""The cache of fixed-point searches: same networks and settings load, anything else searches."""
import numpy as np
import pytest
import torch

from lib import fixed_points as fp
from lib import fp_cache, fp_recall

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
