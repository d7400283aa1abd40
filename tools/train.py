"""Train the book's populations before the book is built, with a progress bar per task.

    python tools/train.py [--profile default] [--tasks flipflop sine cdi]
                          [--executor processes] [--workers N] [--device cpu]

The missing shards of all the tasks are trained in one pool of worker processes
(:func:`lib.population.train_missing`, costliest first) into the same cache the chapters read
(``$RNNBOOK_CACHE``, else ``.cache/populations``), so the book build that follows only loads.
Each task's bar counts its networks (rate and time left) and shows shards done out of the
task's total; shards already in the cache count as done. Since the tasks' shards interleave,
a bar ``all`` above them gives the rate and the time left of the whole run. ``make train``
runs this, and ``make book`` runs ``make train`` first.
"""
from __future__ import annotations

import argparse
import os
import sys

from tqdm import tqdm

from lib.chapter import TASK_NAMES
from lib.config import PROFILES, population_config
from lib.population import load_or_train, missing_shards, train_missing
from lib.scale import EXECUTORS

BAR = ("{desc} {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} networks "
       "[{elapsed}<{remaining}, {rate_noinv_fmt}]")


def train(tasks, profile: str, executor: str, workers, device: str) -> None:
    """Train the tasks' missing shards in one pool (costliest first, across tasks: no worker
    waits at the end of a task), a progress bar per task; print what each task holds."""
    cfgs = {task: population_config(profile, task) for task in tasks}
    missing = {task: missing_shards(cfg, device=device) for task, cfg in cfgs.items()}
    bars, done = {}, {}
    todo = [c for shards in missing.values() for c in shards]
    if len([t for t in missing if missing[t]]) > 1:  # the tasks' shards interleave: a total too
        bars["all"] = tqdm(total=sum(len(c.nets) for c in todo), unit="net", bar_format=BAR,
                           smoothing=0, position=0, desc=f"all: shards 0/{len(todo)}")
        done["all"] = 0
    for task, cfg in cfgs.items():
        n_shards = len(cfg.shards())
        if not missing[task]:
            print(f"{task}: all {n_shards} shards in the cache", file=sys.stderr)
            continue
        done[task] = n_shards - len(missing[task])
        # smoothing=0: the rate is averaged over the whole run, since shards finish in bursts
        bars[task] = tqdm(total=sum(len(c.nets) for c in missing[task]), unit="net",
                          bar_format=BAR, smoothing=0, position=len(bars),
                          desc=f"{task}: shards {done[task]}/{n_shards}")

    def on_shard(shard):
        for name, total in ((shard.task, len(cfgs[shard.task].shards())), ("all", len(todo))):
            if name in bars:
                done[name] += 1
                bars[name].set_description_str(f"{name}: shards {done[name]}/{total}",
                                               refresh=False)
                bars[name].update(len(shard.nets))

    train_missing(list(cfgs.values()), executor, workers, progress=False, device=device,
                  on_shard=on_shard if bars else None)
    for bar in bars.values():
        bar.close()
    for task, cfg in cfgs.items():
        counts = load_or_train(cfg, device=device, progress=False).counts().sum()
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
    train(a.tasks, a.profile, a.executor, a.workers, a.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
