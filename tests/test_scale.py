"""Every executor stores byte-identical arrays for the same configuration.

The process pool uses ``spawn`` (a fresh interpreter that imports ``lib``), so this also checks
that shards pickle and that workers started from pytest find the package.
"""
from pathlib import Path

import numpy as np
import pytest

from lib import store
from lib.config import population_config
from lib.population import load_or_train
from lib.scale import run_all

# four shards of two networks: enough for two workers to share
CFG = population_config("smoke", "cdi", archs=("vanilla", "lstm"), n_steps=10)


def stored_arrays(root: Path) -> dict:
    """{file name: {array name: raw bytes}} of every stored shard under ``root``."""
    out = {}
    for path in sorted(root.glob("*.npz")):
        with np.load(path, allow_pickle=False) as f:
            out[path.name] = {k: (f[k].dtype.str, f[k].shape, f[k].tobytes()) for k in f.files}
    return out


@pytest.fixture(scope="module")
def inprocess(tmp_path_factory):
    root = tmp_path_factory.mktemp("inprocess")
    pop = load_or_train(CFG, executor="inprocess", root=root, progress=False)
    return root, pop


def test_inprocess_stores_every_shard(inprocess):
    root, pop = inprocess
    assert len(CFG.shards()) == 4
    assert len(stored_arrays(root)) == 4 and len(pop.table()) == CFG.n_networks


def test_worker_processes_store_the_same_bytes(inprocess, tmp_path):
    pop = load_or_train(CFG, executor="processes", workers=2, root=tmp_path, progress=False)
    assert stored_arrays(tmp_path) == stored_arrays(inprocess[0])
    assert pop.table().equals(inprocess[1].table())


def test_dask_local_cluster_stores_the_same_bytes(inprocess, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        load_or_train(CFG, executor=client, root=tmp_path, progress=False)
        ran_on = client.run(lambda: sorted(p.name for p in Path(tmp_path).glob("*.npz")))
    assert len(ran_on) == 2  # two real worker processes saw the shared cache
    assert stored_arrays(tmp_path) == stored_arrays(inprocess[0])


def test_the_stored_arrays_are_not_trivially_equal(inprocess, tmp_path):
    """The comparison above can fail: another seed stores other bytes under other keys."""
    other = population_config("smoke", "cdi", archs=("vanilla", "lstm"), n_steps=10, seed=1)
    load_or_train(other, root=tmp_path, progress=False)
    a, b = stored_arrays(tmp_path), stored_arrays(inprocess[0])
    assert a.keys().isdisjoint(b.keys())
    assert [v["nmse"] for v in a.values()] != [v["nmse"] for v in b.values()]
    assert store.shard_key(other.shards()[0]) + ".npz" in a


def test_run_all_keeps_input_order_across_processes():
    assert run_all(abs, [-3, 1, -2, 5], executor="processes", workers=2, progress=False) == \
        [3, 1, 2, 5]


def test_bad_executor_lists_the_allowed_values():
    with pytest.raises(ValueError, match=r"executor='threads'.*'inprocess', 'processes', 'dask'"):
        run_all(abs, [1, 2], executor="threads")
    with pytest.raises(ValueError, match="executor="):
        load_or_train(CFG, executor="slurm", root="/nonexistent", progress=False)
