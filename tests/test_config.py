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
    (dict(hidden_sizes=(-4,)), "hidden_sizes=-4"),
    (dict(n_steps=0), "n_steps=0"),
    (dict(learning_rate=1.0), "learning_rate"),
])
def test_bad_population_parameters(kwargs, match):
    args = dict(profile="smoke", task="flipflop") | kwargs
    with pytest.raises(ValueError, match=match):
        population_config(args.pop("profile"), args.pop("task"), **args)
