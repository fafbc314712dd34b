"""qrewrite.config: defaults, YAML + override precedence, type coercion, every shipped config, --help."""

import dataclasses
import re

import pytest
import yaml
from helpers import ROOT, run_cli, write

from qrewrite.config import BASE_KEY, FIELDS, QWEN2_TARGETS, TrainConfig, add_config_arguments, coerce, load_config
from qrewrite.errors import ConfigError

CONFIGS = sorted([*(ROOT / "configs").glob("*.yaml"), *(ROOT / "configs").glob("topic/*.yaml")])


def test_defaults():
    cfg = load_config()
    assert cfg == TrainConfig()
    assert cfg.model == "smollm2" and cfg.method == "full"
    assert cfg.lora_targets == QWEN2_TARGETS and cfg.lora_targets is not QWEN2_TARGETS
    assert cfg.trust_remote_code is False
    assert cfg.resolved_run_name() == "smollm2-full"
    assert load_config(overrides={"model": "Qwen/Qwen2-0.5B-Instruct", "method": "lora"}).resolved_run_name() \
        == "qwen2-0.5b-instruct-lora"


def test_yaml_then_overrides_precedence(tmp_path):
    cfg_file = write(tmp_path / "c.yaml", "learning_rate: 1.0e-3\nbatch_size: 4\nmethod: lora\nlora-r: 8\n")
    cfg = load_config(cfg_file)
    assert (cfg.learning_rate, cfg.batch_size, cfg.method, cfg.lora_r) == (1e-3, 4, "lora", 8)
    assert cfg.grad_accum == TrainConfig().grad_accum  # untouched fields keep their defaults
    cfg = load_config(cfg_file, {"batch-size": "2", "learning_rate": "5e-4"})
    assert (cfg.learning_rate, cfg.batch_size, cfg.lora_r) == (5e-4, 2, 8)


def test_types_coerced(tmp_path):
    cfg = load_config(overrides={"batch_size": "8", "learning_rate": "1e-4", "num_epochs": "2",
                                 "gradient_checkpointing": "yes", "group_by_length": "off",
                                 "lora_targets": "q_proj, v_proj", "seed": 3.0})
    assert cfg.batch_size == 8 and isinstance(cfg.batch_size, int)
    assert cfg.learning_rate == 1e-4 and isinstance(cfg.learning_rate, float)
    assert cfg.num_epochs == 2.0 and isinstance(cfg.num_epochs, float)
    assert cfg.gradient_checkpointing is True and cfg.group_by_length is False
    assert cfg.lora_targets == ["q_proj", "v_proj"] and cfg.seed == 3
    # YAML types: 1e-4 without a dot is a string for PyYAML, and a list stays a list
    cfg = load_config(write(tmp_path / "t.yaml", "learning_rate: 1e-4\nlora_targets: [q_proj]\nmax_steps: 7\n"))
    assert cfg.learning_rate == 1e-4 and cfg.lora_targets == ["q_proj"] and cfg.max_steps == 7
    for key, bad in (("batch_size", "abc"), ("batch_size", 2.5), ("batch_size", True), ("lora_targets", 3),
                     ("learning_rate", "fast"), ("gradient_checkpointing", "maybe"), ("model", ["a"])):
        with pytest.raises(ConfigError, match=re.escape(key) + r": expected"):
            load_config(overrides={key: bad})


def test_validation_errors_name_the_key():
    cases = {"learning_rate": 0, "max_steps": 0, "batch_size": 0, "method": "sgd", "precision": "fp8",
             "warmup_ratio": 1.5, "report_to": "wandb"}
    for key, value in cases.items():
        with pytest.raises(ConfigError, match=key):
            load_config(overrides={key: value})
    with pytest.raises(ConfigError, match="lora_r"):
        load_config(overrides={"method": "lora", "lora_r": 0})
    with pytest.raises(ConfigError, match="run_name"):
        load_config(overrides={"run_name": "../x"})
    # several problems are reported together
    with pytest.raises(ConfigError) as ei:
        load_config(overrides={"learning_rate": -1, "max_steps": -5})
    assert "learning_rate" in str(ei.value) and "max_steps" in str(ei.value)


def test_unknown_key_suggests_nearest(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'learning_rat' in .*typo\.yaml; did you mean "
                                          r"'learning_rate'"):
        load_config(write(tmp_path / "typo.yaml", "learning_rat: 1.0e-4\n"))
    with pytest.raises(ConfigError, match=r"'lora_rank'.*the command line; did you mean 'lora_r"):
        load_config(overrides={"lora_rank": 4})
    with pytest.raises(ConfigError, match=r"valid keys: model, method"):
        load_config(overrides={"zzzzzz": 1})


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path / "bad.yaml", "a: [1, 2\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path / "list.yaml", "- a\n- b\n"))
    assert load_config(write(tmp_path / "empty.yaml", "")) == TrainConfig()


def test_a_config_starts_from_its_base_and_changes_what_it_sets(tmp_path):
    (tmp_path / "recipes").mkdir()
    write(tmp_path / "recipes" / "ref.yaml", "run_name: ref\nmax_steps: 300\nlearning_rate: 2e-5\nseed: 3\n")
    write(tmp_path / "recipes" / "longer.yaml", "base: ref.yaml\nrun_name: longer\nmax_steps: 1000\n")
    write(tmp_path / "cycle2.yaml", "base: recipes/longer.yaml  # relative to this file\nrun_name: cycle2\nseed: 1\n")
    cfg = load_config(tmp_path / "cycle2.yaml", {"learning_rate": "1e-4"})
    assert (cfg.run_name, cfg.max_steps, cfg.seed, cfg.learning_rate) == ("cycle2", 1000, 1, 1e-4)
    assert load_config(tmp_path / "recipes" / "longer.yaml").learning_rate == 2e-5  # from ref.yaml
    assert load_config(tmp_path / "recipes" / "longer.yaml").batch_size == TrainConfig().batch_size


def test_bad_bases_name_the_file(tmp_path):
    write(tmp_path / "child.yaml", "base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match=r"not found: .*nowhere\.yaml \(the base of .*child\.yaml\)"):
        load_config(tmp_path / "child.yaml")
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    loop = r"b\.yaml: 'base: a\.yaml' makes a loop: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"
    with pytest.raises(ConfigError, match=loop):
        load_config(tmp_path / "a.yaml")
    for bad in ("base: 3\n", "base: ''\n", "base: [a.yaml]\n"):
        with pytest.raises(ConfigError, match=r"bad\.yaml: 'base' must name another config file"):
            load_config(write(tmp_path / "bad.yaml", bad))
    write(tmp_path / "a.yaml", "seed: 1\n")
    write(tmp_path / "typo.yaml", "base: a.yaml\nmax_step: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'max_step' in .*typo\.yaml"):
        load_config(tmp_path / "typo.yaml")


def test_each_committed_run_was_trained_with_what_its_recipe_resolves_to():
    """The run's saved config (outputs/<run>/config.yaml) equals its configs/ file, base chain resolved: a change
    to a base file that would change a committed run's recipe shows here."""
    checked = 0
    for path in CONFIGS:
        cfg = load_config(path)
        saved = ROOT / "outputs" / cfg.run_name / "config.yaml"
        if saved.is_file():
            assert dataclasses.asdict(load_config(saved)) == dataclasses.asdict(cfg), path.name
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=[p.relative_to(ROOT / "configs").as_posix() for p in CONFIGS])
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    for k, v in yaml.safe_load(path.read_text()).items():
        if k == BASE_KEY:
            continue
        assert getattr(cfg, k.replace("-", "_")) == coerce(k.replace("-", "_"), v), k
    if path.name.startswith("qwen2"):
        assert cfg.model == "Qwen/Qwen2-0.5B-Instruct"
        assert cfg.lora_targets == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert cfg.trust_remote_code is False
    # a path relative to the project root works from any working directory
    assert load_config(path.relative_to(ROOT)) == cfg


def test_add_config_arguments_covers_every_field():
    import argparse
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    options = {a.dest for a in parser._actions}
    assert {f"cfg_{name}" for name in FIELDS} <= options
    assert {"config", "resume"} <= options
    args = parser.parse_args(["--lora-targets", "q_proj", "v_proj", "--batch-size", "3"])
    assert args.cfg_lora_targets == ["q_proj", "v_proj"] and args.cfg_batch_size == "3"
    assert len(FIELDS) == len(dataclasses.fields(TrainConfig))


@pytest.mark.parametrize("cmd", [("finetune.py", "--help"), ("train", "--help")], ids=["finetune.py", "qrewrite"])
def test_help_lists_every_field(cmd):
    r = run_cli(*cmd, env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    for name in FIELDS:
        assert "--" + name.replace("_", "-") in r.stdout, name
    assert "--config" in r.stdout and "--resume" in r.stdout
