"""Every chapter runs under the smoke profile through papermill; bad parameters stop it."""
import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest
from papermill.translators import PythonTranslator

from lib import chapter
from lib.fixed_points import FixedPointConfig

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


# ---- parameters: papermill sees them all; bad values stop the chapter at its first cell ----

def parameters_cell(path):
    nb = jupytext.read(path)
    return next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_papermill_parses_every_parameter(chapter):
    """papermill warns 'Passed unknown parameter' for a line it cannot parse (e.g. '=' in a
    comment), so its view of the cell must list every assignment."""
    cell = parameters_cell(chapter)
    assigned = [t.id for n in ast.parse(cell.source).body if isinstance(n, ast.Assign)
                for t in n.targets]
    assert [p.name for p in PythonTranslator.inspect(cell)] == assigned


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_the_parameter_class_takes_exactly_the_chapter_parameters(chapter):
    """Every parameter of the cell is validated, and the defaults are valid under every profile."""
    cell = parameters_cell(chapter)
    values = {}
    exec(cell.source, {}, values)  # noqa: S102 - the book's own cell
    values = {k: v for k, v in values.items() if k != "os"}
    cls = CLASSES[chapter.stem]
    assert {f.name for f in dataclasses.fields(cls)} == set(values)
    for profile in ("smoke", "default", "paper"):
        cls(**{**values, "profile": profile})


CLASSES = {"01_tasks": chapter.Tasks, "02_training": chapter.Training,
           "03_geometry": chapter.Geometry, "04_cca": chapter.CCA,
           "fixed_points_howto": chapter.FixedPointsHowto,
           "05_fixed_points": chapter.FixedPoints, "06_universality": chapter.Universality}


def _defaults(stem):
    values = {}
    exec(parameters_cell(ROOT / "book" / f"{stem}.md").source, {}, values)  # noqa: S102
    return {k: v for k, v in values.items() if k != "os"} | {"profile": "smoke"}


NAN, INF = float("nan"), float("inf")
BAD = [  # (chapter, overrides, text the message must contain), smoke profile
    ("01_tasks", dict(n_sine_examples=100000), "n_sine_examples=100000 must be an integer in [1, 11]"),
    ("01_tasks", dict(example_seed=-1), "example_seed=-1"),
    ("01_tasks", dict(example_seed=1.5), "example_seed=1.5 must be an integer"),
    ("02_training", dict(executor="threads"), "executor='threads' is not allowed"),
    ("02_training", dict(curve_window=0), "curve_window=0"),
    ("02_training", dict(n_cdi_examples=10**6), "n_cdi_examples=1000000 must be an integer in [1, 64]"),
    ("03_geometry", dict(n_lines=NAN), "n_lines=nan"),
    ("04_cca", dict(svcca_k=100), "svcca_k=100 must be an integer in [1, 8]"),
    ("04_cca", dict(svcca_k=0), "svcca_k=0"),
    ("04_cca", dict(variance_rules=[]), "variance_rules=[] must be a non-empty list"),
    ("04_cca", dict(variance_rules=[0.95, 1.0]), "variance_rules[1]=1.0"),
    ("04_cca", dict(variance_rules="0.99"), "variance_rules=0.99 must be a non-empty list"),
    ("04_cca", dict(variance_rules="two"), "variance_rules='two' must be a non-empty list such as"),
    ("04_cca", dict(k_max=0), "k_max=0"),
    ("04_cca", dict(n_perm=10**9), "n_perm=1000000000 must be an integer in [1, 100000]"),
    ("05_fixed_points", dict(tol_keep=NAN), "tol_keep=nan must be a finite number"),
    ("05_fixed_points", dict(tol_fixed=1e-6), "tol_fixed=1e-06 must be at most tol_keep=1e-08"),
    ("05_fixed_points", dict(cdi_tol_keep=INF), "cdi_tol_keep=inf"),
    ("05_fixed_points", dict(sine_freq_stride=12), "sine_freq_stride=12 must be an integer in [1, 11]"),
    ("06_universality", dict(adam_iters=0), "adam_iters=0 must be an integer in [1, 100000]"),
    ("06_universality", dict(cdi_tol_grid=1e-5), "cdi_tol_grid=1e-05 must be a non-empty list"),
    ("06_universality", dict(cdi_tol_grid=[]), "cdi_tol_grid=[] must be a non-empty list"),
    ("06_universality", dict(cdi_tol_grid=[1e-5, NAN]), "cdi_tol_grid[1]=nan"),
    ("06_universality", dict(orbit_eps=NAN), "orbit_eps=nan"),
    ("06_universality", dict(svcca_k=100), "svcca_k=100"),
    ("06_universality", dict(profile="huge"), "profile='huge' is not allowed"),
]


@pytest.mark.parametrize("stem, overrides, message", BAD, ids=[f"{b[0]}-{next(iter(b[1]))}" for b in BAD])
def test_bad_parameter_is_refused_with_its_name_value_and_bounds(stem, overrides, message):
    with pytest.raises(ValueError) as err:
        CLASSES[stem](**(_defaults(stem) | overrides))
    assert message in str(err.value)


def test_every_bad_parameter_is_reported_in_one_message():
    with pytest.raises(ValueError, match="3 bad parameters") as err:
        chapter.CCA(**(_defaults("04_cca") | dict(svcca_k=100, n_perm=0, seed=NAN)))
    for name in ("svcca_k=100", "n_perm=0", "seed=nan"):
        assert name in str(err.value)


def test_list_parameters_accept_papermill_text_and_none_means_derived():
    p = chapter.CCA(**(_defaults("04_cca") | dict(variance_rules="[0.9]")))  # -p variance_rules "[0.9]"
    assert p.variance_rules == (0.9,) and p.k == 4  # svcca_k=None: min(10, 8 // 2) under smoke
    assert p.svcca_rules == {"k = 4": 4, "90% of variance": 0.9}
    u = chapter.Universality(**_defaults("06_universality"))
    default = FixedPointConfig().adam_iters  # adam_iters=None: the search's own default
    assert u.search["flipflop"].adam_iters == default and u.orbit.n_steps == 500


PAPERMILL_BAD = [  # a handful through papermill; the rest are checked directly above
    ("01_tasks", "n_sine_examples", 100000, "n_sine_examples=100000"),
    ("04_cca", "svcca_k", 100, "svcca_k=100"),
    ("04_cca", "variance_rules", "[]", "variance_rules=[] must be a non-empty list"),
    ("05_fixed_points", "tol_keep", "nan", "tol_keep=nan"),
    ("06_universality", "cdi_tol_grid", 1e-5, "cdi_tol_grid=1e-05"),
]


@pytest.mark.parametrize("stem, name, value, message", PAPERMILL_BAD,
                         ids=[f"{b[0]}-{b[1]}" for b in PAPERMILL_BAD])
def test_bad_value_stops_the_chapter_in_its_first_cell(stem, name, value, message, tmp_path,
                                                       smoke_env):
    """Through papermill, before any population is loaded (an empty cache stays empty)."""
    env = {**smoke_env, "RNNBOOK_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "bad.ipynb"
    res = run_chapter(ROOT / "book" / f"{stem}.md", out, env, profile="smoke", **{name: value})
    assert res.returncode != 0 and message in res.stderr
    assert "Passed unknown parameter" not in res.stderr
    failed = [c for c in nbformat.read(out, as_version=4).cells
              if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert len(failed) == 1 and "chapter.start(" in failed[0].source
    assert not (tmp_path / "cache").exists()


# ---- a population with no included network ------------------------------------------------

def planted_population(nmse_by_shard):
    """Untrained shards whose test NMSE (inf: diverged) is set by hand."""
    from lib.config import population_config
    from lib.population import Population
    from lib.train import ShardResult, cell_spec, initial_state
    cfg = population_config("smoke", "flipflop", archs=("vanilla", "gru"), activations=("tanh",),
                            n_steps=5, max_nmse=0.1)
    shards = []
    for sh, nmse in zip(cfg.shards(), nmse_by_shard):
        nmse = np.asarray(nmse, float)
        shards.append(ShardResult(sh, cell_spec(sh), initial_state(sh).params,
                                  np.ones((5, len(nmse))), nmse, np.where(np.isinf(nmse), 2, -1)))
    return Population(cfg, shards)


def test_an_empty_population_stops_every_analysis_with_one_message():
    from lib import dynamics, geometry
    from lib.fixed_points import FixedPointConfig
    from lib.population import EmptyPopulationError
    pop = planted_population([[np.inf, 1.0], [2.0, 3.0]])  # one diverged, three above max_nmse
    want = r"no network of the flipflop population passed .* 4 trained, 1 diverged, 3 failed"
    with pytest.raises(EmptyPopulationError, match=want):
        pop.included()
    with pytest.raises(EmptyPopulationError, match=want):
        geometry.population_states(pop)
    task = pop.config.shards()[0].make_task()
    with pytest.raises(EmptyPopulationError, match=want):
        dynamics.run_flipflop(pop.included(), task, FixedPointConfig())
