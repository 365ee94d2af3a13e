"""Config loading, overrides and the errors that name the offending key; every shipped config validates."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from hqdm.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_override,
)
from hqdm.train import plan_phases
from hqdm.train.demo import DEMO_CONFIG

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_follow_the_paper_recipe() -> None:
    cfg = config_from_dict({})
    assert (cfg.optim.lr, cfg.optim.betas, cfg.optim.eps) == (1e-3, (0.9, 0.99), 1e-8)
    assert (cfg.training.batch_size, cfg.training.epochs, cfg.training.seed) == (128, 20, 42)
    assert cfg.training.grid_epochs == [1, 10, 20]
    assert (cfg.ema.warmup_steps, cfg.ema.update_every, cfg.ema.max_decay) == (100, 10, 0.995)
    assert (cfg.diffusion.p2_gamma, cfg.diffusion.p2_k, cfg.diffusion.schedule) == (1.0, 1.0, "cosine")


def test_yaml_values_and_overrides_are_typed(tmp_path: Path) -> None:
    path = write(
        tmp_path, "model: {name: qvunet-1hq}\noptim: {lr: 2e-4}\ntraining: {epochs: 3, grid_epochs: [1, 3]}\n"
    )
    cfg = load_config(
        path,
        ["training.batch_size=16", "optim.betas=[0.5, 0.9]", "data.classes=[0, 1]", "data.subset=null"],
        values={"output_dir": "runs/2024"},
    )
    assert cfg.model.name == "qvunet-1hq"
    # "2e-4" is a float here, not YAML 1.1's string
    assert cfg.optim.lr == 2e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.betas == (0.5, 0.9)
    assert (cfg.training.batch_size, cfg.training.epochs) == (16, 3)
    assert cfg.data.classes == [0, 1] and cfg.data.subset is None
    assert cfg.output_dir == "runs/2024"  # a typed value, not re-parsed as the int 2024


def test_parse_override() -> None:
    assert parse_override("a.b=5") == (["a", "b"], 5)
    assert parse_override("a=x=y") == (["a"], "x=y")
    assert parse_override("a.b=") == (["a", "b"], None)
    with pytest.raises(ConfigError, match=re.escape("KEY.SUB=VALUE")):
        parse_override("training.epochs")
    with pytest.raises(ConfigError):
        parse_override("training..epochs=3")


def test_overrides_do_not_mutate_their_input() -> None:
    raw = {"training": {"epochs": 5}}
    out = apply_overrides(raw, ["training.epochs=7"])
    assert raw == {"training": {"epochs": 5}} and out == {"training": {"epochs": 7}}


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"training": {"epoch": 3}}, "training.epoch: unknown key"),
        ({"trainer": {}}, "trainer: unknown key"),
        ({"training": {"epochs": "ten"}}, "training.epochs: expected int"),
        ({"training": {"epochs": 2.5}}, "training.epochs: expected int"),
        ({"training": {"seed": True}}, "training.seed: expected int"),
        ({"optim": {"betas": [0.9]}}, "optim.betas: expected a list of 2"),
        ({"training": {"grid_epochs": [1, "x"]}}, "training.grid_epochs[1]: expected int"),
        ({"transfer": {"enabled": "yes please"}}, "transfer.enabled: expected bool"),
        ({"model": "unet"}, "model: expected a mapping"),
        ({"model": {"name": "vunet"}}, "model.name: unknown model 'vunet'"),
        ({"model": {"semantics": "mine"}}, "model.semantics: unknown value"),
        ({"diffusion": {"schedule": "sigmoid"}}, "diffusion.schedule: unknown schedule 'sigmoid'"),
        ({"diffusion": {"schedule_options": {"bogus": 1}}}, "diffusion.schedule_options"),
        ({"sampling": {"sampler": "euler"}}, "sampling.sampler: unknown sampler 'euler'"),
        ({"training": {"batch_size": 0}}, "training.batch_size: must be a finite number greater than 0"),
        ({"optim": {"lr": float("nan")}}, "optim.lr: must be a finite number greater than 0, got nan"),
        ({"optim": {"lr": float("inf")}}, "optim.lr: must be a finite number greater than 0"),
        ({"optim": {"eps": -1.0}}, "optim.eps: must be a finite number greater than 0"),
        ({"optim": {"betas": [2.0, 0.0]}}, "optim.betas: each must lie in [0, 1)"),
        ({"data": {"dataset": "cifar10"}}, "data.dataset: unknown dataset 'cifar10'"),
        (
            {"sampling": {"sampler": "ddim", "steps": 2000}},
            "sampling: DDIM steps must be an int in [1, 1000]",
        ),
        ({"sampling": {"eta": 1.5}}, "sampling.eta: must lie in [0, 1]"),
        ({"ema": {"max_decay": 1.0}}, "ema.max_decay/power"),
        ({"ema": {"update_every": 0}}, "ema.warmup_steps/update_every"),
        ({"training": {"grid_epochs": [30]}}, "training.grid_epochs"),
        ({"transfer": {"enabled": True}}, "transfer.target_model: required"),
        ({"transfer": {"enabled": True, "target_model": "qvunet-x"}}, "transfer.target_model: unknown model"),
        (
            {
                "transfer": {
                    "enabled": True,
                    "target_model": "qvunet-1fq",
                    "classical_epochs": 5,
                    "finetune_epochs": 1,
                }
            },
            "training.epochs: must equal",
        ),
    ],
)
def test_errors_name_the_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        config_from_dict(raw)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "model: [unclosed\n"))
    with pytest.raises(ConfigError, match="top level"):
        load_config(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match=re.escape("training.epochs: is a value")):
        load_config(write(tmp_path, "training: {epochs: 3}\n"), ["training.epochs.x=1"])


def test_resolved_config_round_trips_through_json() -> None:
    cfg = config_from_dict({"model": {"name": "qvunet-7hq"}, "data": {"classes": [3]}, "optim": {"lr": 3e-4}})
    raw = json.loads(json.dumps(config_to_dict(cfg)))
    assert raw["model"]["name"] == "qvunet-7hq" and raw["optim"]["betas"] == [0.9, 0.99]
    assert config_from_dict(raw) == cfg
    assert config_to_dict(cfg) == raw


SHIPPED = sorted(CONFIG_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_config_validates(path: Path) -> None:
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    assert cfg.output_dir != Config().output_dir  # every experiment writes to its own run dir


def test_shipped_configs_cover_the_papers_tables() -> None:
    by_key = {}
    for path in SHIPPED:
        cfg = load_config(path)
        phases = plan_phases(cfg)
        split = tuple(p.end_epoch - p.start_epoch for p in phases)
        by_key[(cfg.data.dataset, phases[-1].model_name, split)] = path.name
    models = [
        "unet",
        "qvunet-1hq",
        "qvunet-7hq",
        "qvunet-full-hq",
        "quanvunet",
        "qvunet-1fq",
        "qvunet-7fq",
        "qvunet-full-fq",
    ]
    for dataset in ("mnist", "fashion-mnist"):
        for model in models:
            assert (dataset, model, (20,)) in by_key, (dataset, model)
    assert ("mnist", "qvunet-1fq", (19, 1)) in by_key
    assert ("fashion-mnist", "qvunet-1fq", (18, 2)) in by_key


def test_demo_yaml_matches_the_built_in_demo_config() -> None:
    shipped = load_config(CONFIG_DIR / "demo.yaml")
    assert shipped == config_from_dict(DEMO_CONFIG)
    assert yaml.safe_load((CONFIG_DIR / "demo.yaml").read_text())["model"]["name"].startswith("qvunet")
