"""Every chapter runs under the smoke profile through papermill; bad parameters stop it."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p for p in (ROOT / "book").glob("*.md") if "```{code-cell}" in p.read_text())


def run_chapter(path, out, env, **params):
    """Convert a jupytext chapter to a notebook and execute it with papermill."""
    args = [a for k, v in params.items() for a in ("-p", k, str(v))]
    ipynb = out.with_suffix(".in.ipynb")
    subprocess.run([sys.executable, "-m", "jupytext", "--to", "ipynb", "-o", str(ipynb), str(path)],
                   check=True, capture_output=True)
    return subprocess.run([sys.executable, "-m", "papermill", str(ipynb), str(out), "--cwd",
                           str(ROOT / "book"), "-k", "python3", *args],
                          env=env, capture_output=True, text=True)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_under_smoke(chapter, tmp_path, smoke_env):
    res = run_chapter(chapter, tmp_path / f"{chapter.stem}.ipynb", smoke_env, profile="smoke")
    assert res.returncode == 0, res.stderr[-3000:]


def test_unknown_profile_stops_the_chapter(tmp_path, smoke_env):
    res = run_chapter(ROOT / "book" / "01_tasks.md", tmp_path / "bad.ipynb", smoke_env, profile="huge")
    assert res.returncode != 0
    assert "profile='huge' is not allowed" in res.stderr and "'smoke', 'default', 'paper'" in res.stderr


def test_negative_parameter_stops_the_chapter(tmp_path, smoke_env):
    res = run_chapter(ROOT / "book" / "01_tasks.md", tmp_path / "bad.ipynb", smoke_env,
                      profile="smoke", n_sine_examples=-2)
    assert res.returncode != 0 and "n_sine_examples=-2" in res.stderr


def test_run_chapter_keeps_notebook_and_figures_outside_book(tmp_path, smoke_env):
    tool = [sys.executable, str(ROOT / "tools" / "run_chapter.py")]
    res = subprocess.run([*tool, "01_tasks", "-p", "profile", "smoke", "-p", "example_seed", "3",
                          "--out", str(tmp_path)], env=smoke_env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "01_tasks"
    assert (out / "01_tasks.ipynb").exists()
    assert sorted(p.name for p in out.glob("*.png")) == [
        "fig-tasks-cdi.png", "fig-tasks-flipflop.png", "fig-tasks-sine.png"]
    for args, message in ((["nochapter"], "chapter='nochapter' is not a chapter"),
                          (["01_tasks", "--out", str(ROOT / "book")], "is inside book/")):
        res = subprocess.run([*tool, *args], env=smoke_env, capture_output=True, text=True)
        assert res.returncode != 0 and message in res.stderr
