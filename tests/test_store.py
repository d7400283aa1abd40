"""The shard cache: hits, atomic writes, corrupt/stale/pickled files, checkpoints, a real kill."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lib import store, train
from lib.config import population_config

# The shard used throughout; the kill test's subprocess builds it from the same expression.
CONFIG = ("population_config('smoke', 'flipflop', archs=('gru',), activations=('tanh',), "
          "n_steps={n_steps})")


def config(n_steps=20):
    return eval(CONFIG.format(n_steps=n_steps), {"population_config": population_config}).shards()[0]


def paths(root, cfg):
    key = store.shard_key(cfg)
    return key, Path(root) / f"{key}.npz", Path(root) / f"{key}.ckpt.npz"


def assert_same(a: train.ShardResult, b: train.ShardResult):
    assert a.params.keys() == b.params.keys()
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k]), k
    np.testing.assert_array_equal(a.losses, b.losses)
    np.testing.assert_array_equal(a.nmse, b.nmse)
    np.testing.assert_array_equal(a.diverged_at, b.diverged_at)


def forbid_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("trained although the cache should have been used")
    monkeypatch.setattr(train, "train_shard", fail)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted training of ``config()`` stored in its own cache."""
    root = tmp_path_factory.mktemp("reference")
    return store.load_or_train_shard(config(), root), root


def test_hit_loads_without_retraining(tmp_path, reference, monkeypatch):
    res, _ = reference
    first = store.load_or_train_shard(config(), tmp_path)
    forbid_training(monkeypatch)
    assert_same(store.load_or_train_shard(config(), tmp_path), first)
    assert_same(first, res)  # and training is deterministic


def test_key_changes_with_config_and_device_but_not_with_nothing():
    assert store.shard_key(config()) == store.shard_key(config())
    assert store.shard_key(config(21)) != store.shard_key(config())
    assert store.shard_key(config(), "cuda") != store.shard_key(config(), "cpu")


def test_atomic_write_leaves_no_partial_file(tmp_path):
    path = tmp_path / "x.npz"
    store.save_arrays(path, {"a": np.arange(3)}, {"key": "k"})
    old = path.read_bytes()

    def crash(f):
        f.write(b"half a file")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        store._atomic_write(path, crash)
    assert path.read_bytes() == old  # the previous version is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npz"]  # no temp left
    with pytest.raises(OSError):
        store._atomic_write(tmp_path / "new.npz", crash)
    assert not (tmp_path / "new.npz").exists()


def flip_bytes(path: Path, offset: int = 200):
    data = bytearray(path.read_bytes())
    data[offset:offset + 4] = bytes(b ^ 0xFF for b in data[offset:offset + 4])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip", "truncate", "stale_key", "old_schema"])
def test_damaged_or_stale_file_is_rebuilt_with_a_warning(tmp_path, reference, damage):
    res, ref_root = reference
    key, final, _ = paths(tmp_path, config())
    tmp_path.mkdir(exist_ok=True)
    final.write_bytes(paths(ref_root, config())[1].read_bytes())
    if damage == "flip":
        flip_bytes(final)
    elif damage == "truncate":
        final.write_bytes(final.read_bytes()[:500])
    else:  # a well-formed file with a valid checksum, written for another key or schema
        header = {"key": "someone-else"} if damage == "stale_key" else {"key": key, "schema": 0}
        store.save_arrays(final, {"nmse": np.zeros(2)}, header)
    with pytest.raises(store.CacheError):
        store.load_arrays(final, key)
    with pytest.warns(UserWarning, match="rebuilding cached shard"):
        rebuilt = store.load_or_train_shard(config(), tmp_path)
    assert_same(rebuilt, res)
    store.load_arrays(final, key)  # now intact


class Exploit:
    """An object whose unpickling would create a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_loading_never_unpickles(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "evil.npz"
    header = np.array('{"schema": %d, "key": "k"}' % store.SCHEMA)
    np.savez(path, __header__=header, params=np.array([Exploit(marker)], dtype=object))
    with pytest.raises(store.CacheError, match="unreadable.*pickle"):
        store.load_arrays(path, "k")
    assert not marker.exists()


def test_checkpoint_resume_is_bit_identical(tmp_path, reference, monkeypatch):
    res, _ = reference
    cfg = config()
    key, final, ckpt = paths(tmp_path, cfg)
    real_save = store.save_checkpoint

    def save_then_crash(path, key, st, *rest):  # interrupt right after the checkpoint at step 10
        real_save(path, key, st, *rest)
        raise KeyboardInterrupt
    monkeypatch.setattr(store, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        store.load_or_train_shard(cfg, tmp_path, checkpoint_every=10)
    assert ckpt.exists() and not final.exists()
    assert store.load_checkpoint(ckpt, key).step == 10
    monkeypatch.setattr(store, "save_checkpoint", real_save)

    started = []
    real_train = train.train_shard
    monkeypatch.setattr(train, "train_shard",
                        lambda cfg, state, *a: started.append(state.step) or real_train(cfg, state, *a))
    assert_same(store.load_or_train_shard(cfg, tmp_path, checkpoint_every=10), res)
    assert started == [10] and not ckpt.exists()


def test_a_corrupt_checkpoint_is_ignored(tmp_path, reference):
    res, _ = reference
    key, _, ckpt = paths(tmp_path, config())
    tmp_path.mkdir(exist_ok=True)
    st = train.initial_state(config())
    st.step = 7
    store.save_checkpoint(ckpt, key, st)
    flip_bytes(ckpt)
    with pytest.warns(UserWarning, match="ignoring checkpoint"):
        assert_same(store.load_or_train_shard(config(), tmp_path), res)


KILL_STEPS = 80
CHILD = f"""
from lib import store
from lib.config import population_config
store.load_or_train_shard({CONFIG.format(n_steps=KILL_STEPS)}.shards()[0], {{root!r}},
                          checkpoint_every=10)
"""


def test_real_kill_and_resume_gives_the_same_weights(tmp_path):
    cfg = config(KILL_STEPS)
    key, final, ckpt = paths(tmp_path, cfg)
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(root=str(tmp_path))],
                             stderr=subprocess.PIPE)
    # a checkpoint appears by one atomic rename, so once it exists it is complete
    deadline = time.monotonic() + 120
    while not ckpt.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(child.pid, signal.SIGKILL)  # mid-training, at whatever step it has reached
    _, err = child.communicate()
    assert child.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert ckpt.exists() and not final.exists()
    resumed_from = store.load_checkpoint(ckpt, key).step
    assert 0 < resumed_from < KILL_STEPS

    resumed = store.load_or_train_shard(cfg, tmp_path, checkpoint_every=10)
    uninterrupted = train.train_shard(cfg, progress=False)
    assert_same(resumed, uninterrupted)
    assert not ckpt.exists()
