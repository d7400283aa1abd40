"""The shard cache: hits, atomic writes, corrupt/stale/pickled files, checkpoints, a real kill."""
import errno
import json
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


# ---- the file must hold what its key promises ---------------------------------------------

def _foreign(final, key, ref_root, how):
    """Plant at ``final`` a well-formed file with a valid checksum that is not config()'s."""
    other = store.load_or_train_shard(config(21), ref_root)  # 21 steps: other losses shape
    arrays = {**{f"params/{k}": v.numpy() for k, v in other.params.items()},
              "losses": other.losses, "nmse": other.nmse, "diverged_at": other.diverged_at}
    header = {"key": key, "config": json.loads(config().to_json())}
    if how == "other_header":
        header["config"] = json.loads(config(21).to_json())
    elif how == "missing_array":
        arrays = {k: v for k, v in arrays.items() if k != "nmse"}
        arrays["losses"] = np.zeros((20, 2), np.float32)
    # "other_arrays": the right header over another configuration's arrays
    store.save_arrays(final, arrays, header)


@pytest.mark.parametrize("how", ["other_header", "other_arrays", "missing_array"])
def test_a_foreign_file_with_a_valid_checksum_is_rebuilt(tmp_path, reference, how):
    res, ref_root = reference
    key, final, _ = paths(tmp_path, config())
    _foreign(final, key, ref_root, how)
    store.load_arrays(final, key)  # the checksum alone accepts it ...
    with pytest.warns(UserWarning, match="rebuilding cached shard"):
        rebuilt = store.load_or_train_shard(config(), tmp_path)  # ... the layout check does not
    assert_same(rebuilt, res)


def test_layout_names_what_differs(tmp_path, reference):
    key, final, _ = paths(tmp_path, config())
    _foreign(final, key, reference[1], "missing_array")
    with pytest.raises(store.CacheError, match=r"missing \['nmse'\]"):
        store.load_result(final, key, config())
    _foreign(final, key, reference[1], "other_arrays")
    with pytest.raises(store.CacheError, match=r"losses is float32\[21, 2\], expected float32\[20, 2\]"):
        store.load_result(final, key, config())


# ---- nothing left behind -------------------------------------------------------------------

def listing(root: Path) -> list[str]:
    """Every file under root (lock files included), relative to it."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_stale_checkpoint_of_a_saved_shard_is_removed_unread(tmp_path, reference, monkeypatch):
    res, ref_root = reference
    key, final, ckpt = paths(tmp_path, config())
    final.write_bytes(paths(ref_root, config())[1].read_bytes())
    ckpt.write_bytes(b"a checkpoint left by a kill after the save; never read")
    forbid_training(monkeypatch)
    assert_same(store.load_or_train_shard(config(), tmp_path), res)
    assert listing(tmp_path) == [f".locks/{key}.lock", f"{key}.npz"]


def test_a_population_load_removes_a_stale_checkpoint_and_temp_files(tmp_path, reference,
                                                                     monkeypatch):
    from lib.population import load_or_train
    res, ref_root = reference
    key, final, ckpt = paths(tmp_path, config())
    final.write_bytes(paths(ref_root, config())[1].read_bytes())
    ckpt.write_bytes(b"stale")
    (tmp_path / f".{key}.npz.k1ll.tmp").write_bytes(b"half")
    forbid_training(monkeypatch)
    pop_cfg = eval(CONFIG.format(n_steps=20), {"population_config": population_config})
    assert_same(load_or_train(pop_cfg, root=tmp_path, progress=False).shards[0], res)
    assert listing(tmp_path) == [f".locks/{key}.lock", f"{key}.npz"]


HANG = f"""
import pathlib, time
from lib import store
from lib.config import population_config
real = store._atomic_write
def hang(path, write):  # write half of the file {{which!r}}, then wait to be killed
    if path.name.endswith({{suffix!r}}):
        def half(f):
            f.write(b"half a file")
            f.flush()
            pathlib.Path({{marker!r}}).touch()
            time.sleep(600)
        write = half
    real(path, write)
store._atomic_write = hang
store.load_or_train_shard({CONFIG.format(n_steps=20)}.shards()[0], {{root!r}},
                          checkpoint_every=10)
"""


@pytest.mark.parametrize("which", ["checkpoint", "shard"])
def test_a_writer_killed_mid_write_leaves_nothing_after_the_next_run(tmp_path, reference, which):
    res, _ = reference
    root, marker = tmp_path / "cache", tmp_path / "writing"
    suffix = ".ckpt.npz" if which == "checkpoint" else f"{store.shard_key(config())}.npz"
    child = subprocess.Popen([sys.executable, "-c", HANG.format(
        which=which, suffix=suffix, marker=str(marker), root=str(root))], stderr=subprocess.PIPE)
    while not marker.exists() and child.poll() is None:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    _, err = child.communicate()
    assert child.returncode == -signal.SIGKILL, err.decode()[-2000:]
    key = store.shard_key(config())
    assert any(name.endswith(".tmp") for name in listing(root))  # the kill left a temp file
    assert_same(store.load_or_train_shard(config(), root), res)
    assert listing(root) == [f".locks/{key}.lock", f"{key}.npz"]


def test_temp_files_of_other_shards_are_left_alone(tmp_path, reference):
    key, _, _ = paths(tmp_path, config())
    theirs = tmp_path / ".0123456789abcdef01234567.npz.x1y2.tmp"  # maybe being written now
    theirs.write_bytes(b"")
    mine = tmp_path / f".{key}.ckpt.npz.a1b2.tmp"
    mine.write_bytes(b"")
    store.load_or_train_shard(config(), tmp_path)
    assert theirs.exists() and not mine.exists()


# ---- shared caches -------------------------------------------------------------------------

def test_files_honour_the_umask(tmp_path):
    old = os.umask(0o002)  # a lab group's setting: group may write
    try:
        store.save_arrays(tmp_path / "x.npz", {"a": np.arange(3)}, {"key": "k"})
    finally:
        os.umask(old)
    assert (tmp_path / "x.npz").stat().st_mode & 0o777 == 0o664


def test_disk_full_names_the_cache_directory(tmp_path):
    def full(f):
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError, match=f"cache directory {tmp_path}.*RNNBOOK_CACHE") as err:
        store._atomic_write(tmp_path / "x.npz", full)
    assert err.value.errno == errno.ENOSPC
    assert listing(tmp_path) == []


TRAINER = f"""
import os, pathlib, sys
from lib import store, train
from lib.config import population_config
real = train.train_shard
def counted(*args, **kwargs):
    with open({{log!r}}, "a") as f:
        f.write(f"{{{{os.getpid()}}}}\\n")
    return real(*args, **kwargs)
train.train_shard = counted
pathlib.Path({{log!r}} + "." + sys.argv[1]).touch()  # about to ask for the shard
store.load_or_train_shard({CONFIG.format(n_steps=20)}.shards()[0], {{root!r}})
"""


def test_two_concurrent_trainers_of_a_missing_shard_train_it_once(tmp_path, reference):
    res, _ = reference
    root, log = tmp_path / "cache", str(tmp_path / "trained")
    key = store.shard_key(config())
    script = TRAINER.format(log=log, root=str(root))
    # Hold the shard's lock while both start, so both are certainly asking at the same time.
    with store.shard_lock(root, key):
        children = [subprocess.Popen([sys.executable, "-c", script, str(i)],
                                     stderr=subprocess.PIPE) for i in range(2)]
        while not all(Path(f"{log}.{i}").exists() for i in range(2)):
            assert all(c.poll() is None for c in children), children[0].stderr.read().decode()
            time.sleep(0.01)
    for c in children:
        _, err = c.communicate()
        assert c.returncode == 0, err.decode()[-2000:]
    assert len(Path(log).read_text().split()) == 1  # one of them trained, the other loaded
    assert_same(store.load_or_train_shard(config(), root), res)
