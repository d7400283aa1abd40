"""Content-addressed disk cache of trained shards, with atomic writes and resumable training.

A shard is stored as one file ``<key>.npz``: plain arrays plus a JSON header that carries a
SHA-256 digest of the arrays, written with a single atomic rename and loaded with
``allow_pickle=False``. The key hashes the shard's canonical
configuration and the source of the modules that determine training, so editing an analysis
module keeps the cache while editing a model or the trainer retrains. A file whose checksum,
schema or key does not match is rebuilt, never used; so is one whose header configuration or
whose arrays' names, shapes and dtypes differ from what the key's :class:`ShardConfig` promises.
Training writes ``<key>.ckpt.npz`` checkpoints and resumes from the last one.

Caches may be shared (a lab group's folder): files honour the umask like any other file, and
each shard is trained under its own lock ``.locks/<key>.lock`` (the ``filelock`` package), so
two processes that miss the same shard train it once; the lock files stay (a zero-byte file per
shard: removing a lock file that another process may be waiting on would break the lock). The
holder of a shard's lock also removes what a killed writer of that shard left behind: temporary
files, and a checkpoint of a shard that is already saved.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from . import cell_kernels, models, train
from .checks import Int
from .config import ShardConfig

SCHEMA = 2  # 2: checkpoints carry their configuration; fixed array dtypes
# what determines the weights
TRAINING_SOURCES = ("tasks.py", "models.py", "train.py", "bptt.py", "streams.py", "cell_kernels.c",
                    "stream_kernels.c")
LIB = Path(__file__).resolve().parent


class CacheError(RuntimeError):
    """A cache file that is missing, corrupt, stale or of another schema."""


def default_root() -> Path:
    """``$RNNBOOK_CACHE`` if set, else ``.cache/populations`` at the project root."""
    return Path(os.environ.get("RNNBOOK_CACHE", LIB.parent / ".cache" / "populations"))


def source_hash() -> str:
    h = hashlib.sha256()
    for name in TRAINING_SOURCES:
        h.update(name.encode() + (LIB / name).read_bytes())
    return h.hexdigest()


def shard_key(cfg: ShardConfig, device: str = "cpu") -> str:
    """Content address of a shard: configuration, training source, schema and device kind.

    CPU and GPU arithmetic differ in the last bits, so their results are stored apart; so do
    the CPU's fused kernels and the torch ops it falls back to without a C compiler.
    """
    kind = train.resolve_device(device).type
    if kind == "cpu" and not cell_kernels.available():
        kind = "cpu, torch ops"
    text = f"{SCHEMA}\n{cfg.to_json()}\n{source_hash()}" + ("" if kind == "cpu" else f"\n{kind}")
    return hashlib.sha256(text.encode()).hexdigest()[:24]


# ---- atomic array files -----------------------------------------------------------------

def digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of the arrays, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _umask() -> int:
    """The process umask, read without changing it where Linux allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: the classic set-and-restore
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _named(err, path) from err
    try:
        # mkstemp creates 0600; a shared cache needs what any new file would get
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _named(err, path) from err
        raise


def _named(err: OSError, path: Path) -> OSError:
    """A disk-full or quota error that names the cache directory (the one to clean)."""
    if err.errno not in (errno.ENOSPC, errno.EDQUOT):
        return err
    return OSError(err.errno, f"{os.strerror(err.errno)} while writing {path.name} to the cache "
                              f"directory {path.parent}; free space there or point "
                              "$RNNBOOK_CACHE at another disk")


def save_arrays(path: Path, arrays: dict[str, np.ndarray], header: dict) -> None:
    """Write arrays and a JSON header (with their digest) to one file, atomically."""
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    meta = {"schema": SCHEMA, **header, "digest": digest(payload)}
    payload["__header__"] = np.array(json.dumps(meta, sort_keys=True))
    _atomic_write(path, lambda f: np.savez(f, **payload))


def load_arrays(path: Path, key: str, expect: dict | None = None,
                config: dict | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Read arrays written by :func:`save_arrays`; raise CacheError unless intact and current.

    Parameters
    ----------
    expect : optional {name: (shape, dtype)}: the file must hold exactly these arrays.
    config : optional JSON-decoded configuration the header must carry.
    """
    if not path.exists():
        raise CacheError(f"{path.name}: missing")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        header = json.loads(str(arrays.pop("__header__")))
    except Exception as err:  # a truncated, damaged or foreign file
        raise CacheError(f"{path.name}: unreadable ({err})") from err
    if header.get("schema") != SCHEMA or header.get("key") != key:
        raise CacheError(f"{path.name}: stale (schema or key differs)")
    if header.get("digest") != digest(arrays):
        raise CacheError(f"{path.name}: checksum mismatch")
    if config is not None and header.get("config") != config:
        raise CacheError(f"{path.name}: its header describes another configuration")
    if expect is not None:
        _check_layout(path, arrays, expect)
    return arrays, header


def _check_layout(path: Path, arrays: dict, expect: dict) -> None:
    if arrays.keys() != expect.keys():
        gone, extra = sorted(expect.keys() - arrays.keys()), sorted(arrays.keys() - expect.keys())
        raise CacheError(f"{path.name}: arrays differ (missing {gone}, unexpected {extra})")
    for name, (shape, dtype) in expect.items():
        a = arrays[name]
        if a.shape != tuple(shape) or a.dtype != dtype:
            raise CacheError(f"{path.name}: {name} is {a.dtype}{list(a.shape)}, "
                             f"expected {np.dtype(dtype)}{list(shape)}")


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)


# ---- shards -------------------------------------------------------------------------------

def _param_layout(cfg: ShardConfig) -> dict[str, tuple]:
    """{name: (shape [N, ...], dtype)} of a shard's parameters, from one network's init."""
    one = models.init_params(train.cell_spec(cfg), [cfg.nets[0].seed])
    return {k: ((len(cfg.nets), *v.shape[1:]), v.numpy().dtype) for k, v in one.items()}


def result_layout(cfg: ShardConfig) -> dict[str, tuple]:
    """The arrays a stored shard of ``cfg`` holds: {name: (shape, dtype)}."""
    n = len(cfg.nets)
    return {**{f"params/{k}": v for k, v in _param_layout(cfg).items()},
            "losses": ((cfg.n_steps, n), np.dtype(np.float32)),
            "nmse": ((n,), np.dtype(np.float64)), "diverged_at": ((n,), np.dtype(np.int64))}


def checkpoint_layout(cfg: ShardConfig) -> dict[str, tuple]:
    """The arrays a checkpoint of ``cfg`` holds: {name: (shape, dtype)}."""
    params = _param_layout(cfg)
    out = {f"{p}/{k}": v for p in ("params", "m", "v") for k, v in params.items()}
    n = len(cfg.nets)
    return {**out, "losses": ((cfg.n_steps, n), np.dtype(np.float32)),
            "diverged_at": ((n,), np.dtype(np.int64)), "step": ((), np.dtype(np.int64))}


def _tensors(arrays: dict, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: torch.from_numpy(v.copy()) for k, v in arrays.items()
            if k.startswith(prefix)}


def _flat(prefix: str, tensors: dict) -> dict[str, np.ndarray]:
    return {prefix + k: v.detach().cpu().numpy() for k, v in tensors.items()}


def _cast(arrays: dict, layout: dict) -> dict:
    """Arrays in the layout's dtypes; a shape the layout does not expect is a trainer bug."""
    out = {k: np.asarray(v, dtype=layout[k][1]) if k in layout else v for k, v in arrays.items()}
    _check_layout(Path("(being saved)"), out, layout)
    return out


def _config_json(cfg: ShardConfig) -> dict:
    return json.loads(cfg.to_json())


def save_result(path: Path, key: str, res: train.ShardResult) -> None:
    arrays = {**_flat("params/", res.params), "losses": res.losses, "nmse": res.nmse,
              "diverged_at": res.diverged_at}
    save_arrays(path, _cast(arrays, result_layout(res.config)),
                {"key": key, "config": _config_json(res.config)})


def load_result(path: Path, key: str, cfg: ShardConfig) -> train.ShardResult:
    a, _ = load_arrays(path, key, result_layout(cfg), _config_json(cfg))
    return train.ShardResult(cfg, train.cell_spec(cfg), _tensors(a, "params/"), a["losses"],
                             a["nmse"], a["diverged_at"])


def save_checkpoint(path: Path, key: str, st: train.TrainState,
                    cfg: ShardConfig | None = None) -> None:
    arrays = {**_flat("params/", st.params), **_flat("m/", st.m), **_flat("v/", st.v),
              "losses": st.losses, "diverged_at": st.diverged_at, "step": np.array(st.step)}
    header = {"key": key}
    if cfg is not None:
        arrays = _cast(arrays, checkpoint_layout(cfg))
        header["config"] = _config_json(cfg)
    save_arrays(path, arrays, header)


def load_checkpoint(path: Path, key: str, cfg: ShardConfig | None = None) -> train.TrainState:
    layout, config = (None, None) if cfg is None else (checkpoint_layout(cfg), _config_json(cfg))
    a, _ = load_arrays(path, key, layout, config)
    return train.TrainState(_tensors(a, "params/"), _tensors(a, "m/"), _tensors(a, "v/"),
                            int(a["step"]), a["losses"].copy(), a["diverged_at"].copy())


def shard_lock(root: Path, key: str) -> FileLock:
    """The lock under which one process at a time trains, writes or cleans shard ``key``."""
    folder = root / ".locks"
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(folder / f"{key}.lock")


def sweep(root: Path, key: str) -> list[Path]:
    """Remove temporary files that writers of shard ``key`` left (call with its lock held)."""
    found = [p for pattern in (f".{key}.npz.*.tmp", f".{key}.ckpt.npz.*.tmp")
             for p in root.glob(pattern)]
    for p in found:
        p.unlink(missing_ok=True)
    return found


def try_load(cfg: ShardConfig, root: str | Path | None = None,
             device: str = "cpu") -> train.ShardResult | None:
    """The stored shard of ``cfg`` if present and verified, else None (warning if damaged)."""
    root = Path(root) if root is not None else default_root()
    key = shard_key(cfg, device)
    final = root / f"{key}.npz"
    try:
        res = load_result(final, key, cfg)
    except CacheError as err:
        if final.exists():
            warnings.warn(f"rebuilding cached shard: {err}", stacklevel=2)
        return None
    if (root / f"{key}.ckpt.npz").exists() or any(root.glob(f".{key}.*.tmp")):
        _tidy(root, key)  # what a writer killed after saving this shard left behind
    return res


def _tidy(root: Path, key: str) -> None:
    # Under the lock no writer of this shard is running, so what is left is dead; the saved
    # shard was verified, so its checkpoint is stale.
    with shard_lock(root, key):
        sweep(root, key)
        remove(root / f"{key}.ckpt.npz")


def load_or_train_shard(cfg: ShardConfig, root: str | Path | None = None,
                        progress: bool = False, checkpoint_every: int = 100,
                        device: str = "cpu") -> train.ShardResult:
    """Load a trained shard from the cache, or train it (resuming a checkpoint) and store it.

    Everything happens under the shard's lock: a second process asking for the same shard
    waits, then loads what the first one stored.
    """
    Int(1)("checkpoint_every", checkpoint_every)
    root = Path(root) if root is not None else default_root()
    key = shard_key(cfg, device)
    final, ckpt = root / f"{key}.npz", root / f"{key}.ckpt.npz"
    with shard_lock(root, key):
        sweep(root, key)
        try:
            res = load_result(final, key, cfg)
            remove(ckpt)  # a kill between saving the shard and removing its checkpoint
            return res
        except CacheError as err:
            if final.exists():
                warnings.warn(f"rebuilding cached shard: {err}", stacklevel=2)
            remove(final)
        state = _resume(ckpt, key, cfg)
        res = train.train_shard(cfg, state, lambda st: save_checkpoint(ckpt, key, st, cfg),
                                checkpoint_every, progress, device)
        save_result(final, key, res)
        remove(ckpt)
    return load_result(final, key, cfg)  # the stored arrays, whichever process trained them


def _resume(ckpt: Path, key: str, cfg: ShardConfig) -> train.TrainState | None:
    if not ckpt.exists():
        return None
    try:
        return load_checkpoint(ckpt, key, cfg)
    except CacheError as err:
        warnings.warn(f"ignoring checkpoint: {err}", stacklevel=3)
        remove(ckpt)
        return None
