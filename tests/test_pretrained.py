"""hqdm.models.pretrained: the folder's config, errors, `sample --pretrained` (the save/load round trip of
every registered model is a contract in test_contracts.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from hqdm.cli import main
from hqdm.models import build_model
from hqdm.models.pretrained import FORMAT, PretrainedError, load_pretrained, save_pretrained

PAPER_DIFFUSION = {"schedule": "cosine", "num_timesteps": 1000}


def _saved(tmp_path: Path) -> Path:
    return save_pretrained(build_model("unet"), tmp_path / "unet", diffusion=PAPER_DIFFUSION, card="# unet\n")


def test_config_names_the_model_and_the_format(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    assert config["format"] == FORMAT and config["name"] == "unet" and config["semantics"] == "paper"
    assert config["diffusion"] == PAPER_DIFFUSION
    assert (folder / "README.md").read_text() == "# unet\n"


def test_newer_format_missing_weights_and_foreign_weights_are_named_errors(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "format": FORMAT + 1}))
    with pytest.raises(PretrainedError, match="upgrade hqdm"):
        load_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**config, "name": "qvunet-1hq"}))
    with pytest.raises(PretrainedError, match="does not fit the model 'qvunet-1hq'"):
        load_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**config, "name": "no-such-model"}))
    with pytest.raises(PretrainedError, match="does not describe a model"):
        load_pretrained(folder)
    (folder / "config.json").write_text(json.dumps(config))
    tensors = load_file(folder / "model.safetensors")
    tensors["init_conv.weight"] = tensors["init_conv.weight"][:5]
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(PretrainedError, match="does not fit"):
        load_pretrained(folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(PretrainedError, match="does not fit"):
        load_pretrained(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(PretrainedError, match="is missing"):
        load_pretrained(folder)
    with pytest.raises(PretrainedError, match="shipped model's name"):
        load_pretrained("no-such-pretrained-model")
    with pytest.raises(PretrainedError, match=r"build it with hqdm\.models\.build_model"):
        save_pretrained(torch.nn.Linear(2, 2), tmp_path / "linear", diffusion=PAPER_DIFFUSION)


def test_sample_command_draws_from_a_pretrained_folder(tmp_path: Path, capsys) -> None:
    folder = _saved(tmp_path)
    args = ["sample", "--pretrained", str(folder), "-n", "3", "--steps", "2", "--precision", "fp32"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    first, second = (np.load(tmp_path / d / "samples.npz")["images"] for d in "ab")
    assert first.shape == (3, 1, 28, 28) and np.array_equal(first, second)  # seeded
    assert (tmp_path / "a" / "samples.png").is_file()
    assert main(["sample", "--out", str(tmp_path / "c")]) == 2
    assert "give a CHECKPOINT or --pretrained" in capsys.readouterr().err
    assert main(["sample", "--pretrained", "no-such-model", "--out", str(tmp_path / "d")]) == 2
