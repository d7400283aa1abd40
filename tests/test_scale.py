"""Every executor stores byte-identical arrays for the same configuration.

The process pool uses ``spawn`` (a fresh interpreter that imports ``lib``), so this also checks
that shards pickle and that workers started from pytest find the package.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lib import store, train
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
    with pytest.raises(ValueError, match=r"workers=0 must be an integer in \[1, 4096\]"):
        run_all(abs, [1, 2], executor="processes", workers=0)


def test_corrupt_shards_are_rebuilt_on_the_executor(inprocess, tmp_path, monkeypatch):
    """The caller never trains: a damaged file is retrained by the worker processes."""
    for path in inprocess[0].glob("*.npz"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    damaged = sorted(tmp_path.glob("*.npz"))[:2]
    for path in damaged:
        path.write_bytes(path.read_bytes()[:300])

    def no_training_here(*args, **kwargs):
        raise AssertionError("a shard was rebuilt in the calling process")
    monkeypatch.setattr(train, "train_shard", no_training_here)
    with pytest.warns(UserWarning, match="rebuilding cached shard"):
        load_or_train(CFG, executor="processes", workers=2, root=tmp_path, progress=False)
    assert stored_arrays(tmp_path) == stored_arrays(inprocess[0])


ORPHANS = """
import time
from lib.scale import run_all
run_all(time.sleep, [600, 600], executor="processes", workers=2, progress=False)
"""


def _children(pid: int) -> list[int]:
    """Live pool workers (spawned interpreters) whose parent is ``pid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and b"spawn_main" in cmd:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_workers_exit_when_their_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", ORPHANS])
    try:
        while len(workers := _children(parent.pid)) < 2:
            assert parent.poll() is None
            time.sleep(0.05)
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 60  # a guard against hanging, not a timing claim
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [w for w in workers if _alive(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)
    assert not left, "pool workers outlived their killed parent"


def test_missing_shards_are_trained_costliest_first_and_kept_in_config_order(tmp_path,
                                                                             monkeypatch):
    from lib import population
    cfg = population_config("smoke", "cdi", archs=("vanilla", "lstm"), n_steps=3,
                            cell_steps=(("vanilla", "relu", 9),))
    order, train_one = [], population._train_into_store
    monkeypatch.setattr(population, "_train_into_store",
                        lambda c, **kw: order.append((c.arch, c.activation)) or train_one(c, **kw))
    pop = load_or_train(cfg, root=tmp_path, progress=False)
    # vanilla-relu: 9 steps x 1 block = 9; lstm: 3 steps x 4 blocks = 12; vanilla-tanh 3
    assert order == [("lstm", "tanh"), ("lstm", "relu"), ("vanilla", "relu"), ("vanilla", "tanh")]
    assert [(s.config.arch, s.config.activation) for s in pop.shards] == [
        (c.arch, c.activation) for c in cfg.shards()]


def test_the_missing_shards_of_several_tasks_share_one_pool_costliest_first(tmp_path,
                                                                            monkeypatch):
    """tools/train.py trains every task at once: a long shard of one task is handed out before
    the short ones of another, and each task's stored shards are what load_or_train reads."""
    from lib import population
    long_sine = population_config("smoke", "sine", archs=("lstm",), activations=("tanh",),
                                  n_steps=4)
    short_ff = population_config("smoke", "flipflop", archs=("vanilla",), activations=("tanh",),
                                 n_steps=2)
    order, train_one = [], population._train_into_store
    monkeypatch.setattr(population, "_train_into_store",
                        lambda c, **kw: order.append(c.task) or train_one(c, **kw))
    loaded = population.train_missing([short_ff, long_sine], root=tmp_path, progress=False)
    assert order == ["sine", "flipflop"] and loaded == [[None], [None]]
    again = population.train_missing([short_ff, long_sine], root=tmp_path, progress=False)
    assert order == ["sine", "flipflop"] and all(r is not None for got in again for r in got)
    assert load_or_train(short_ff, root=tmp_path, progress=False).counts().trained.sum() == 2
