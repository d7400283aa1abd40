"""Content-addressed disk cache of trained shards, with atomic writes and resumable training.

A shard is stored as one file ``<key>.npz``: plain arrays plus a JSON header that carries a
SHA-256 digest of the arrays, written with a single atomic rename and loaded with
``allow_pickle=False``. The key hashes the shard's canonical
configuration and the source of the modules that determine training, so editing an analysis
module keeps the cache while editing a model or the trainer retrains. A file whose checksum,
schema or key does not match is rebuilt, never used. Training writes ``<key>.ckpt.npz``
checkpoints and resumes from the last one.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from . import train
from .config import ShardConfig

SCHEMA = 1
TRAINING_SOURCES = ("tasks.py", "models.py", "train.py", "bptt.py", "streams.py")  # what determines the weights
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

    CPU and GPU arithmetic differ in the last bits, so their results are stored apart.
    """
    kind = train.resolve_device(device).type
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


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_arrays(path: Path, arrays: dict[str, np.ndarray], header: dict) -> None:
    """Write arrays and a JSON header (with their digest) to one file, atomically."""
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    meta = {"schema": SCHEMA, **header, "digest": digest(payload)}
    payload["__header__"] = np.array(json.dumps(meta, sort_keys=True))
    _atomic_write(path, lambda f: np.savez(f, **payload))


def load_arrays(path: Path, key: str) -> tuple[dict[str, np.ndarray], dict]:
    """Read arrays written by :func:`save_arrays`; raise CacheError unless intact and current."""
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
    return arrays, header


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)


# ---- shards -------------------------------------------------------------------------------

def _tensors(arrays: dict, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: torch.from_numpy(v.copy()) for k, v in arrays.items()
            if k.startswith(prefix)}


def _flat(prefix: str, tensors: dict) -> dict[str, np.ndarray]:
    return {prefix + k: v.detach().cpu().numpy() for k, v in tensors.items()}


def save_result(path: Path, key: str, res: train.ShardResult) -> None:
    arrays = {**_flat("params/", res.params), "losses": res.losses, "nmse": res.nmse,
              "diverged_at": res.diverged_at}
    save_arrays(path, arrays, {"key": key, "config": json.loads(res.config.to_json())})


def load_result(path: Path, key: str, cfg: ShardConfig) -> train.ShardResult:
    a, _ = load_arrays(path, key)
    return train.ShardResult(cfg, train.cell_spec(cfg), _tensors(a, "params/"), a["losses"],
                             a["nmse"], a["diverged_at"])


def save_checkpoint(path: Path, key: str, st: train.TrainState) -> None:
    arrays = {**_flat("params/", st.params), **_flat("m/", st.m), **_flat("v/", st.v),
              "losses": st.losses, "diverged_at": st.diverged_at, "step": np.array(st.step)}
    save_arrays(path, arrays, {"key": key})


def load_checkpoint(path: Path, key: str) -> train.TrainState:
    a, _ = load_arrays(path, key)
    return train.TrainState(_tensors(a, "params/"), _tensors(a, "m/"), _tensors(a, "v/"),
                            int(a["step"]), a["losses"].copy(), a["diverged_at"].copy())


def load_or_train_shard(cfg: ShardConfig, root: str | Path | None = None,
                        progress: bool = False, checkpoint_every: int = 100,
                        device: str = "cpu") -> train.ShardResult:
    """Load a trained shard from the cache, or train it (resuming a checkpoint) and store it."""
    root = Path(root) if root is not None else default_root()
    key = shard_key(cfg, device)
    final, ckpt = root / f"{key}.npz", root / f"{key}.ckpt.npz"
    try:
        return load_result(final, key, cfg)
    except CacheError as err:
        if final.exists():
            warnings.warn(f"rebuilding cached shard: {err}", stacklevel=2)
        remove(final)
    state = _resume(ckpt, key)
    res = train.train_shard(cfg, state, lambda st: save_checkpoint(ckpt, key, st),
                            checkpoint_every, progress, device)
    save_result(final, key, res)
    remove(ckpt)
    return res


def _resume(ckpt: Path, key: str) -> train.TrainState | None:
    if not ckpt.exists():
        return None
    try:
        return load_checkpoint(ckpt, key)
    except CacheError as err:
        warnings.warn(f"ignoring checkpoint: {err}", stacklevel=3)
        remove(ckpt)
        return None
