"""Shared fixtures: a temporary training cache, so tests never touch the book's cache."""
import os

import pytest


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
