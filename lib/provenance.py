"""The provenance line at the end of every chapter: how, when and from what it was built.

A chapter's last, hidden cell calls :func:`line` and displays the result, so the profile, build
date, commit, execution time and package versions on the page are computed at build, not typed.
"""
from __future__ import annotations

import datetime as dt
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

import psutil

PACKAGES = ("torch", "numpy", "scipy", "scikit-learn", "networkx", "jupyter-book")
ROOT = Path(__file__).resolve().parents[1]


def commit(root: Path = ROOT) -> str:
    """Short hash of the checked-out commit, ``+dirty`` if tracked files differ from it."""
    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=10)
    head = git("rev-parse", "--short=10", "HEAD")
    if head.returncode:
        return "unknown (not a git checkout)"
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return head.stdout.strip() + ("+dirty" if dirty else "")


def elapsed_s() -> float:
    """Seconds since this kernel started: the chapter's execution time in a build.

    Jupyter Book and papermill run every chapter in a fresh kernel, so the kernel's age when the
    last cell runs is the time the whole chapter took, imports included (in an interactive
    session it is the session's age instead).
    """
    return time.time() - psutil.Process().create_time()


def versions(packages=PACKAGES) -> str:
    """``"python 3.11.7, torch 2.13.0, ..."`` for the packages that are installed."""
    found = [f"python {platform.python_version()}"]
    for name in packages:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(found)


def line(profile: str) -> str:
    """One Markdown line: profile, build date (UTC), commit, execution time, versions."""
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    minutes, seconds = divmod(round(elapsed_s()), 60)
    took = f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
    return (f"*Built with profile `{profile}` on {date} from commit `{commit()}`; this chapter "
            f"executed in {took}. Packages: {versions()}.*")


def show(profile: str):
    """Display :func:`line` as Markdown in a chapter's output (its last, input-hidden cell)."""
    from IPython.display import Markdown, display
    display(Markdown(line(profile)))
