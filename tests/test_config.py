"""Config composition: every group option composes, the schema rejects bad keys and types, validate() ranges."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from bertcmp.app import CONFIG_DIR
from bertcmp.config import (Choice, DataConfig, LoggerConfig, ModelConfig, ModelName, Pooling, ScratchConfig,
                            TrainerConfig,
                            register_configs, validate)
from bertcmp.errors import ConfigError
from conftest import compose_config

register_configs()


make_cfg = compose_config


def test_config_dir_is_the_repo_conf_folder():
    assert Path(CONFIG_DIR).resolve() == (Path(__file__).parent.parent / "conf").resolve()


def test_defaults_are_the_reference_recipe():
    cfg = make_cfg()
    assert cfg.model.name == ModelName.bert and cfg.model.pretrained == "bert-base-uncased"
    assert cfg.model.pooling.value == "cls"
    assert cfg.data.source == "stanfordnlp/imdb" and cfg.data.split.value == "pooled"
    assert (cfg.data.valid_size, cfg.data.test_size, cfg.data.split_seed) == (0.05, 0.05, 42)
    assert (cfg.data.max_length, cfg.data.batch_size, cfg.data.dedup) == (128, 32, False)
    assert cfg.data.padding.value == "max_length"
    t = cfg.trainer
    assert (t.epochs, t.lr, t.optimizer.value, t.scheduler.value, t.weight_decay) == (5, 5e-5, "adam", "constant", 0)
    assert cfg.seed == 42 and cfg.logger.mode.value == "auto"
    validate(cfg)


@pytest.mark.parametrize("overrides", [
    ["model=bert"], ["model=modernbert"], ["data=imdb"], ["data=synthetic"], ["trainer=default"],
    ["logger=wandb"], ["experiment=smoke"], ["experiment=smoke", "model=modernbert"],
])
def test_every_group_option_composes_and_validates(overrides):
    validate(make_cfg(*overrides))


PRESETS = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))


def test_the_presets_are_found():
    assert {"smoke", "lr_sweep", "modern_recipe"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("model", ["bert", "modernbert"])
def test_every_experiment_preset_composes_and_validates(preset, model):
    """Every file in conf/experiment/, so a new preset is covered without editing this test."""
    cfg = make_cfg(f"experiment={preset}", f"model={model}", hydra=True)
    validate(cfg)
    assert cfg.hydra.runtime.choices.experiment == preset


SCHEMAS = {"model": ModelConfig, "data": DataConfig, "trainer": TrainerConfig, "logger": LoggerConfig,
           "model/scratch": ScratchConfig}
GROUP_FILES = sorted(p for group in SCHEMAS for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def _own_keys(path: Path):
    """A group file's keys and the option it inherits from (its defaults list), if any."""
    own = OmegaConf.load(path)
    parents = [d for d in own.pop("defaults", []) if d != "_self_"]
    return own, parents


def _leaves(node, prefix=""):
    for key in node:
        value = OmegaConf.to_container(node, resolve=False)[key] if OmegaConf.is_missing(node, key) else node[key]
        if OmegaConf.is_dict(value):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@pytest.mark.parametrize("path", GROUP_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_group_files_hold_only_what_differs_from_the_defaults(path):
    """Each default is written once, in bertcmp/config.py; a YAML says only how its option differs (from the
    schema, or from the option it inherits, as model/modernbert.yaml does from model/bert.yaml)."""
    own, parents = _own_keys(path)
    base = OmegaConf.structured(SCHEMAS[str(path.parent.relative_to(CONFIG_DIR))])
    for parent in parents:
        base = OmegaConf.merge(base, _own_keys(path.parent / f"{parent}.yaml")[0])
    repeated = [key for key, value in _leaves(own) if OmegaConf.select(base, key) == value]
    assert not repeated, f"{path} repeats defaults: {repeated}"


def test_choices_are_their_strings():
    assert isinstance(Pooling.cls, Choice) and Pooling.cls == "cls"
    assert str(Pooling.cls) == f"{Pooling.cls}" == "cls" and f"{ModelName.bert:>6}" == "  bert"


def test_modernbert_points_at_its_hub_id():
    cfg = make_cfg("model=modernbert")
    assert cfg.model.name == ModelName.modernbert and cfg.model.pretrained == "answerdotai/ModernBERT-base"


def test_smoke_preset_is_offline_and_tiny():
    cfg = make_cfg("experiment=smoke", "model=modernbert")
    assert cfg.model.pretrained is None and cfg.data.name == "synthetic"
    assert cfg.model.scratch.num_layers <= 2 and cfg.model.scratch.hidden_size <= 64


def test_hydra_layout():
    cfg = make_cfg(hydra=True)
    assert cfg.hydra.job.name == "bertcmp"
    assert cfg.hydra.run.dir.startswith("outputs/runs/")
    assert cfg.hydra.sweep.dir.startswith("outputs/multirun/")
    assert OmegaConf.to_yaml(cfg.hydra.sweep).count("${hydra.job.num}_") == 1


def test_slug_keeps_paths_in_one_directory():
    slug = OmegaConf.create({"x": "${bertcmp.slug:'model.pretrained=/models/minilm,seed=1'}"}).x
    assert "/" not in slug and slug == "model.pretrained=-models-minilm,seed=1"


@pytest.mark.parametrize("override, error", [
    ("model=roberta", ConfigCompositionException),
    ("trainer.lrr=1e-4", ConfigCompositionException),
    ("trainer.lr=fast", ConfigCompositionException),
    ("trainer.epochs=2.5", ConfigCompositionException),
    ("model.pooling=max", ConfigCompositionException),
    ("trainer.precision=fp8", ConfigCompositionException),
])
def test_schema_rejects_bad_options_keys_and_types(override, error):
    with pytest.raises(error):
        make_cfg(override)


def test_schema_rejects_a_misspelt_key_inside_a_yaml_file():
    cfg = make_cfg()
    with pytest.raises((ConfigKeyError, ValidationError)):
        OmegaConf.merge(cfg, {"data": {"batchsize": 3}})


@pytest.mark.parametrize("override, names", [
    ("trainer.lr=0", "trainer.lr"),
    ("trainer.lr=-1e-5", "trainer.lr"),
    ("trainer.epochs=0", "trainer.epochs"),
    ("trainer.grad_accum_steps=0", r"trainer.grad_accum_steps=0 must be >= 1"),
    ("data.batch_size=0", "data.batch_size"),
    ("data.valid_size=0.96", "data.valid_size + data.test_size"),
    ("data.valid_size=1.5", "data.valid_size"),
    ("data.test_size=100", "both be fractions or both be counts"),
    ("trainer.device=gpu", "trainer.device"),
    ("trainer.warmup_ratio=1.0", "trainer.warmup_ratio"),
    ("model.dropout=1.0", "model.dropout"),
    ("model.pretrained=null model.scratch.num_heads=0", "model.scratch.num_heads=0 must be >= 1"),
    ("model=auto", "model=auto needs model.pretrained"),
    ("data.text_pair_column=hypothesis data.truncation=tail", "data.truncation=tail works on single texts"),
    ("data=synthetic data.source=reviews.csv", "data.source=reviews.csv is not read by data=synthetic"),
])
def test_validate_names_the_bad_key(override, names):
    with pytest.raises(ConfigError, match=names.replace("+", r"\+")):
        validate(make_cfg(*override.split()))


def test_counts_are_accepted_for_split_sizes():
    validate(make_cfg("data.valid_size=2500", "data.test_size=2500"))


def test_official_split_checks_only_the_sizes_it_uses():
    validate(make_cfg("data.split=official", "data.valid_size=200"))  # data.test_size (0.05) is not read
    with pytest.raises(ConfigError, match="data.valid_size=1.5"):
        validate(make_cfg("data.split=official", "data.valid_size=1.5"))


def test_base_shapes_from_the_command_line_win_over_a_preset():
    """experiment=smoke builds tiny scratch models; model/scratch=base leaves every size to the family's base model
    (test_model checks the shapes built)."""
    assert make_cfg("experiment=smoke").model.scratch.hidden_size == 64
    for family in ("bert", "modernbert"):
        scratch = make_cfg("experiment=smoke", f"model={family}", "model/scratch=base").model.scratch
        assert set(OmegaConf.to_container(scratch).values()) == {None}
        validate(make_cfg("experiment=smoke", f"model={family}", "model/scratch=base"))
