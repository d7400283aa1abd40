"""Train the book's populations before the book is built, with a progress bar per task.

    python tools/train.py [--profile default] [--tasks flipflop sine cdi]
                          [--executor processes] [--workers N] [--device cpu]

Each task's missing shards are trained by :func:`lib.population.load_or_train` into the same
cache the chapters read (``$RNNBOOK_CACHE``, else ``.cache/populations``), so the book build that
follows only loads. The bar counts networks (rate and time left) and shows shards done out of
the task's total; shards already in the cache count as done. ``make train`` runs this, and
``make book`` runs ``make train`` first.
"""
from __future__ import annotations

import argparse
import os
import sys

from tqdm import tqdm

from lib.chapter import TASK_NAMES
from lib.config import PROFILES, population_config
from lib.population import load_or_train, missing_shards
from lib.scale import EXECUTORS

BAR = ("{desc} {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} networks "
       "[{elapsed}<{remaining}, {rate_noinv_fmt}]")


def train_task(task: str, profile: str, executor: str, workers, device: str) -> None:
    """Train one task's missing shards under a progress bar; print what was trained."""
    cfg = population_config(profile, task)
    n_shards, missing = len(cfg.shards()), missing_shards(cfg, device=device)
    if not missing:
        print(f"{task}: all {n_shards} shards in the cache", file=sys.stderr)
        pop = load_or_train(cfg, device=device, progress=False)
    else:
        done = [n_shards - len(missing)]
        # smoothing=0: the rate is averaged over the whole run, since shards finish in bursts
        with tqdm(total=sum(len(c.nets) for c in missing), unit="net", bar_format=BAR,
                  smoothing=0, desc=f"{task}: shards {done[0]}/{n_shards}") as bar:
            def on_shard(shard):
                done[0] += 1
                bar.set_description_str(f"{task}: shards {done[0]}/{n_shards}", refresh=False)
                bar.update(len(shard.nets))
            pop = load_or_train(cfg, executor, workers, progress=False, device=device,
                                on_shard=on_shard)
    counts = pop.counts().sum()
    print(f"{task}: {counts.trained} networks, {counts.included} included, "
          f"{counts.diverged} diverged", file=sys.stderr)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=os.environ.get("RNNBOOK_PROFILE", "default"),
                    choices=PROFILES)
    ap.add_argument("--tasks", nargs="+", default=list(TASK_NAMES), choices=TASK_NAMES)
    ap.add_argument("--executor", default="processes", choices=EXECUTORS)
    ap.add_argument("--workers", type=int, default=None, help="worker processes (default: cores)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    a = ap.parse_args(argv)
    for task in a.tasks:
        train_task(task, a.profile, a.executor, a.workers, a.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
