"""Per-shard completion callbacks and the training workers' environment (lib.scale, tools/train.py)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib.config import population_config
from lib.population import TRAINING_WORKER_ENV, load_or_train, missing_shards
from lib.scale import run_all

ROOT = Path(__file__).resolve().parents[1]
VAR = "RNNBOOK_TEST_WORKER_VAR"


@pytest.mark.parametrize("executor", ["inprocess", "processes"])
def test_on_done_reports_every_item_once(executor):
    seen = []
    out = run_all(abs, [-3, -1, -2, 5], executor, workers=2, progress=False, on_done=seen.append)
    assert out == [3, 1, 2, 5] and sorted(seen) == [0, 1, 2, 3]


def test_env_reaches_worker_processes_only():
    assert VAR not in os.environ
    out = run_all(os.getenv, [VAR, VAR], "processes", workers=2, progress=False,
                  env={VAR: "set"})
    assert out == ["set", "set"]
    assert VAR not in os.environ  # restored in this process


def test_training_workers_start_with_the_allocator_settings():
    got = run_all(os.getenv, list(TRAINING_WORKER_ENV), "processes", workers=2, progress=False,
                  env=TRAINING_WORKER_ENV)
    assert got == list(TRAINING_WORKER_ENV.values())


def test_load_or_train_calls_on_shard_for_each_missing_shard(tmp_path):
    cfg = population_config("smoke", "flipflop", archs=("vanilla",), n_steps=3)
    assert len(cfg.shards()) == 2
    shards = []
    load_or_train(cfg, "processes", workers=2, root=tmp_path, progress=False,
                  on_shard=shards.append)
    assert sorted(s.to_json() for s in shards) == sorted(s.to_json() for s in cfg.shards())
    assert missing_shards(cfg, tmp_path) == []


def test_train_script_fills_the_cache_the_chapters_read(tmp_path):
    env = {**os.environ, "RNNBOOK_CACHE": str(tmp_path)}
    cmd = [sys.executable, str(ROOT / "tools" / "train.py"), "--profile", "smoke",
           "--tasks", "sine", "--workers", "2"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert "shards" in first.stderr and "networks" in first.stderr
    assert missing_shards(population_config("smoke", "sine"), tmp_path) == []
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert "all 8 shards in the cache" in again.stderr


def test_dask_reports_every_item_once():
    distributed = pytest.importorskip("dask.distributed")
    seen = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        out = run_all(abs, [-3, -1, -2], client, progress=False, on_done=seen.append)
    assert out == [3, 1, 2] and sorted(seen) == [0, 1, 2]
