"""Population configurations and profiles."""
import pytest

from lib.config import population_config


def test_profiles_build_valid_populations():
    for profile in ("smoke", "default", "paper"):
        for task in ("flipflop", "sine", "cdi"):
            cfg = population_config(profile, task)
            shards = cfg.shards()
            assert sum(len(s.nets) for s in shards) == cfg.n_networks


def test_default_has_at_least_8_networks_per_cell():
    cfg = population_config("default", "flipflop")
    for s in cfg.shards():
        assert len(s.nets) >= 8


def test_paper_profile_is_the_96_configuration_grid():
    cfg = population_config("paper", "flipflop")
    assert len(cfg.archs) * len(cfg.activations) * len(cfg.hidden_sizes) * len(cfg.l2s) == 96


def test_seeds_do_not_depend_on_sharding():
    a = population_config("default", "cdi", shard_size=3)
    b = population_config("default", "cdi", shard_size=16)
    assert [n for s in a.shards() for n in s.nets] == [n for s in b.shards() for n in s.nets]
    assert len({n.seed for s in a.shards() for n in s.nets}) == a.n_networks


@pytest.mark.parametrize("kwargs, match", [
    (dict(profile="huge"), "profile='huge'.*'smoke', 'default', 'paper'"),
    (dict(task="xor"), "task='xor'"),
    (dict(archs=("vanilla", "transformer")), "archs contains 'transformer'"),
    (dict(hidden_sizes=(-4,)), r"hidden_sizes\[0\]=-4 must be an integer in \[1, 4096\]"),
    (dict(hidden_sizes=()), r"hidden_sizes=\(\) must be a non-empty list"),
    (dict(hidden_sizes=(8, 8)), "must not repeat"),
    (dict(hidden_sizes=(8.0,)), r"hidden_sizes\[0\]=8.0 must be an integer"),
    (dict(n_steps=0), "n_steps=0"),
    (dict(n_seeds=100_000), r"n_seeds=100000 must be an integer in \[1, 10000\]"),
    (dict(lrs=(float("nan"),)), r"lrs\[0\]=nan must be a finite number"),
    (dict(lrs=0.01), "lrs=0.01 must be a non-empty list"),
    (dict(max_nmse=float("nan")), "max_nmse=nan must be a finite number"),
    (dict(max_nmse=float("inf")), "max_nmse=inf"),
    (dict(l2s=(-1e-4,)), r"l2s\[0\]"),
    (dict(seed=-1), "seed=-1"),
    (dict(batch_size=True), "batch_size=True must be an integer"),
    (dict(task_overrides=(("n_time", float("nan")),)), "n_time=nan"),
    (dict(learning_rate=1.0), "learning_rate"),
    (dict(cell_lrs=(("lstm", "relu"),)), "cell_lrs=.* must be a list of .*triples"),
    (dict(cell_lrs=(("lstm", "sigmoid", 1e-3),)), "cell_lrs activation='sigmoid'"),
    (dict(cell_lrs=(("lstm", "relu", 0.0),)), r"cell_lrs value for lstm-relu=0.0 must be"),
    (dict(cell_steps=(("gru", "tanh", 5), ("gru", "tanh", 6))), "names a cell twice"),
    (dict(cell_steps=(("rnn", "tanh", 5),)), "cell_steps architecture='rnn'"),
])
def test_bad_population_parameters(kwargs, match):
    args = dict(profile="smoke", task="flipflop") | kwargs
    with pytest.raises(ValueError, match=match):
        population_config(args.pop("profile"), args.pop("task"), **args)


def test_per_cell_settings_change_only_their_cell():
    base = population_config("smoke", "flipflop")
    cfg = population_config("smoke", "flipflop", cell_lrs=(("lstm", "relu", 1e-3),),
                            cell_steps=(("gru", "tanh", 45),))
    for a, b in zip(base.shards(), cfg.shards()):
        cell = (b.arch, b.activation)
        assert {n.lr for n in b.nets} == ({1e-3} if cell == ("lstm", "relu") else {base.lrs[0]})
        assert b.n_steps == (45 if cell == ("gru", "tanh") else base.n_steps)
        assert (a == b) == (cell not in (("lstm", "relu"), ("gru", "tanh")))
    assert cfg.max_steps == 45 and base.max_steps == base.n_steps


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(ValueError, match="2 bad parameters") as err:
        population_config("smoke", "flipflop", n_steps=0, max_nmse=float("nan"))
    assert "n_steps=0" in str(err.value) and "max_nmse=nan" in str(err.value)


def test_population_size_is_bounded():
    with pytest.raises(ValueError, match="networks; at most"):
        population_config("paper", "flipflop", n_seeds=10_000, lrs=(1e-3, 3e-3))  # 1.92 million


def test_lists_come_back_as_tuples():
    cfg = population_config("smoke", "flipflop", lrs=[1e-2, 1e-3])
    assert cfg.lrs == (1e-2, 1e-3) and hash(cfg)


@pytest.mark.parametrize("kwargs, match", [
    (dict(tol_keep=float("nan")), r"tol_keep=nan must be a finite number in \(0, 1\]"),
    (dict(n_init=0), "n_init=0"),
    (dict(n_init=10**6), r"n_init=1000000 must be an integer in \[1, 100000\]"),
    (dict(adam_iters=-1), "adam_iters=-1"),
    (dict(lr=float("inf")), "lr=inf"),
    (dict(tol_unstable=1.5), "tol_unstable=1.5"),
])
def test_bad_fixed_point_settings(kwargs, match):
    from lib.fixed_points import FixedPointConfig
    with pytest.raises(ValueError, match=match):
        FixedPointConfig(**kwargs)
    assert FixedPointConfig(adam_iters=0, newton_iters=0).adam_iters == 0  # 0 is a valid budget


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=float("nan")), "eps=nan"), (dict(n_steps=0), "n_steps=0"),
    (dict(land_ratio=2.0), r"land_ratio=2.0 must be a finite number in \(0, 1\]"),
])
def test_bad_orbit_settings(kwargs, match):
    from lib.topology import OrbitConfig
    with pytest.raises(ValueError, match=match):
        OrbitConfig(**kwargs)
