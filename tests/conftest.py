"""Shared fixtures: a temporary training cache, so tests never touch the book's cache, and one
smoke build of the whole book shared by every test that reads it."""
import fcntl
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("RNNBOOK_CACHE", str(root))
    return root


@pytest.fixture(scope="session")
def smoke_env(tmp_path_factory):
    """Environment for running chapters under the smoke profile with a session cache."""
    root = tmp_path_factory.mktemp("smoke_cache")
    return {**os.environ, "RNNBOOK_PROFILE": "smoke", "RNNBOOK_CACHE": str(root)}


@dataclass(frozen=True)
class BookBuild:
    """Result of ``jupyter-book build -W -n --keep-going`` under the smoke profile."""

    returncode: int
    log: str
    html: Path


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory) -> BookBuild:
    """The whole book built once per test run under the smoke profile.

    pytest-xdist workers share the parent of their base temp folder, so the first worker to
    take the lock builds and the others read its result: the book is built once, not per file.
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out, done = shared / "smoke_book", shared / "smoke_book.json"
    with open(shared / "smoke_book.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            env = {**os.environ, "RNNBOOK_PROFILE": "smoke", "RNNBOOK_CACHE": str(out / "cache")}
            jb = Path(sys.executable).parent / "jupyter-book"
            res = subprocess.run([str(jb), "build", str(ROOT), "--path-output", str(out), "-W",
                                  "-n", "--keep-going"], env=env, capture_output=True, text=True)
            done.write_text(json.dumps({"returncode": res.returncode,
                                        "log": (res.stdout + res.stderr)[-6000:]}))
    result = json.loads(done.read_text())
    return BookBuild(result["returncode"], result["log"], out / "_build" / "html")
