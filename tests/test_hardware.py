"""``hqdm hardware measure`` end to end on a tiny hybrid with a 4-feature stand-in for the FID network;
``hqdm sample --shots`` and ``hqdm hardware qasm`` on a real (untrained) lightweight hybrid checkpoint."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from conftest import PixelStats, write_checkpoint
from hqdm.cli import EXIT_USER_ERROR, main
from hqdm.config import ConfigError, ModelConfig
from hqdm.experiments.hardware import run_hardware_study
from hqdm.experiments.hardware_settings import HardwareSettings
from hqdm.models import build_model
from hqdm.quantum.layers import PatchCircuit


class TinyHybrid(nn.Module):
    """A conv, a 4-qubit BasicEntangler circuit on the image pooled to 2x2, a conv: cheap but quantum."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv2d(1, 1, 3, padding=1)
        self.circuit = PatchCircuit("basic", 1)
        self.out = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        h = self.inp(x) + t.float()[:, None, None, None] / 10
        q = self.circuit(F.adaptive_avg_pool2d(h, 2) * 3)
        return self.out(h + F.interpolate(q, size=x.shape[-2:]))


class CountingPixelStats(PixelStats):
    """4-feature stand-in for the FID network that counts the images it scores."""

    cache_key = "test-hardware-pixel-stats-v1"

    def __init__(self) -> None:
        super().__init__()
        self.images = 0

    def forward(self, images: Tensor) -> Tensor:
        self.images += images.shape[0]
        return super().forward(images)


def _tiny_factory(model: ModelConfig) -> nn.Module:
    torch.manual_seed(0)
    return TinyHybrid()


SETTINGS = HardwareSettings(
    shots=(8, None), noise_levels=("sycamore-2019",), seeds=(0, 1), num_samples=8, steps=2, batch_size=4,
    kid_subset_size=4,
)  # fmt: skip


def test_measure_scores_every_setting_and_seed_and_resumes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    checkpoint = write_checkpoint(tmp_path / "run", _tiny_factory(ModelConfig("unet")))
    real = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)
    features = CountingPixelStats()

    def measure(out: Path, settings: HardwareSettings = SETTINGS):
        return run_hardware_study(
            checkpoint, out, settings, device=torch.device("cpu"), cache_dir=tmp_path / "cache",
            log=lambda _: None, model_factory=_tiny_factory, feature_extractor=features, real_images=real,
        )  # fmt: skip

    out = tmp_path / "hardware"
    result = measure(out)
    cells = {(c["setting"]["label"], c["seed"]): c for c in result.cells}
    assert set(cells) == {(label, s) for label in ("exact", "shots-8", "sycamore-2019") for s in (0, 1)}
    fid = {key: cell["metrics"]["fid"] for key, cell in cells.items()}
    assert fid[("shots-8", 0)] != fid[("exact", 0)] and fid[("sycamore-2019", 0)] != fid[("exact", 0)]
    assert cells[("sycamore-2019", 1)]["measurement"]["depolarizing"] == 6.2e-3
    assert (
        cells[("shots-8", 1)]["measurement"]["shots"] == 8
        and cells[("exact", 0)]["measurement"]["shots"] is None
    )
    grids = sorted(p.name for p in (out / "grids").glob("*.png"))
    assert grids == ["exact.png", "shots-8.png", "sycamore-2019.png"]
    report = (out / "hardware.md").read_text()
    assert (
        "| shots-8 | 8 |" in report
        and "| sycamore-2019 | exact | sycamore-2019 (depolarizing=0.0062,damping=0.0015" in report
    )
    assert (out / "fid_vs_shots.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "hardware.json").read_text())
    assert [row["label"] for row in summary["rows"]] == ["exact", "shots-8", "sycamore-2019"]

    scored = features.images
    measure(out)  # everything on disk: nothing is sampled or scored again
    assert features.images == scored
    (out / "cells" / "shots-8-seed1.json").unlink()
    again = {(c["setting"]["label"], c["seed"]): c for c in measure(out).cells}
    assert again[("shots-8", 1)]["metrics"] == cells[("shots-8", 1)]["metrics"]  # seeded: the same draws
    # cells on disk scored with another sampler are a named error, not skipped into a mixed table
    with pytest.raises(ConfigError, match=r"eta 0.0 -> 1.0\); one --out folder holds one protocol"):
        measure(out, replace(SETTINGS, eta=1.0))
    eta1 = measure(tmp_path / "eta1", replace(SETTINGS, eta=1.0, shots=(None,), noise_levels=(), seeds=(0,)))
    assert [c["evaluation"]["eta"] for c in eta1.cells] == [1.0]
    assert "ddim2-eta1" in (tmp_path / "eta1" / "hardware.md").read_text()


class Stop(Exception):
    """Stands for the end of a session in the middle of a cell."""


def test_a_stopped_cell_resumes_after_its_last_batch_with_the_same_draws(tmp_path: Path) -> None:
    """A shot cell of two batches stopped while sampling the second resumes from the first (not from
    scratch) and scores exactly what an uninterrupted cell scores: the shot draws continue where they
    stood. Changing the batch size in between is a named error (the draws follow the batches)."""
    torch.manual_seed(0)
    checkpoint = write_checkpoint(tmp_path / "run", _tiny_factory(ModelConfig("unet")))
    real = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)
    settings = replace(SETTINGS, shots=(8,), noise_levels=(), seeds=(0,))
    forwards = []

    def stopping_factory(stop_at: int | None):
        def build(model: ModelConfig) -> nn.Module:
            tiny = _tiny_factory(model)
            inner = tiny.forward

            def forward(x: Tensor, t: Tensor) -> Tensor:
                forwards.append(1)
                if len(forwards) == stop_at:
                    raise Stop
                return inner(x, t)

            tiny.forward = forward
            return tiny

        return build

    def measure(out: Path, stop_at: int | None = None, run_settings: HardwareSettings = settings):
        return run_hardware_study(
            checkpoint, out, run_settings, device=torch.device("cpu"), cache_dir=tmp_path / "cache",
            log=lambda _: None, model_factory=stopping_factory(stop_at), feature_extractor=PixelStats(),
            real_images=real,
        )  # fmt: skip

    whole = measure(tmp_path / "whole").cells[0]
    out = tmp_path / "stopped"
    forwards.clear()
    with pytest.raises(Stop):
        measure(out, stop_at=3)  # 2 DDIM steps a batch: the first forward of the second batch
    partial = out / "cells" / "shots-8-seed0.partial.pt"
    assert torch.load(partial, weights_only=True)["images"].shape[0] == 4  # the first batch was kept
    with pytest.raises(ConfigError, match="batch size 4 -> 8"):
        measure(out, run_settings=replace(settings, batch_size=8))
    forwards.clear()
    resumed = measure(out).cells[0]
    assert len(forwards) == 2  # only the second batch was sampled again
    assert resumed["metrics"] == whole["metrics"]
    assert (out / "grids" / "shots-8.png").read_bytes() == (
        tmp_path / "whole" / "grids" / "shots-8.png"
    ).read_bytes()
    assert not partial.exists()


def test_the_verdict_names_the_smallest_shot_count_within_the_seed_spread() -> None:
    from hqdm.experiments.hardware_report import indistinguishable_from, summarize

    settings = HardwareSettings(shots=(16, 64, 256, None), noise_levels=(), seeds=(0, 1, 2))
    fids = {"exact": [10.0, 12.0, 14.0], "shots-16": [30.0, 31.0, 33.0], "shots-64": [11.0, 12.5, 15.0]}
    fids["shots-256"] = [10.5, 12.0, 13.0]
    cells = [
        {"setting": {"label": label}, "seed": s, "metrics": {"fid": v, "kid_mean": 0.01}}
        for label, values in fids.items()
        for s, v in enumerate(values)
    ]
    rows, spread = summarize(cells, settings)
    assert spread == 2.0
    assert [r.within_spread for r in rows] == [True, False, True, True]
    assert indistinguishable_from(rows) == 64


@pytest.mark.parametrize(("control_fids", "said"), [
    ([40.0, 45.0, 41.0], "outside the seed spread: the model depends on its circuits"),
    ([11.0, 12.5, 14.0], "within the seed spread: at this n the samples depend on the circuits less"),
])  # fmt: skip
def test_the_report_says_whether_the_circuits_matter(tmp_path: Path, control_fids, said: str) -> None:
    """The random-readout control (every <Z> = 0) beside the shot counts: a model whose FID moves less
    without its circuits than between seeds is said so, whatever the shot verdict."""
    from hqdm.experiments.hardware_report import write_hardware_report

    settings = HardwareSettings(shots=(64, None), noise_levels=("random-readout",), seeds=(0, 1, 2))
    fids = {"exact": [10.0, 12.0, 14.0], "shots-64": [10.2, 12.1, 14.3], "random-readout": control_fids}
    cells = [
        {"setting": {"label": label}, "seed": s, "metrics": {"fid": v, "kid_mean": 0.01}}
        for label, values in fids.items()
        for s, v in enumerate(values)
    ]
    report = write_hardware_report(tmp_path, cells, settings).read_text()
    assert "From 64 shots on" in report and said in report
    assert "| random-readout | exact | random-readout (depolarizing=0,damping=0,readout=0.5) |" in report


@pytest.fixture(scope="module")
def lite_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return write_checkpoint(
        tmp_path_factory.mktemp("lite"), build_model("lite-qunet-8q"), name="lite-qunet-8q"
    )


def test_sample_with_shots_changes_the_images_reproducibly(lite_checkpoint: Path, tmp_path: Path) -> None:
    def sample(out: str, *extra: str) -> np.ndarray:
        argv = ["sample", str(lite_checkpoint), "-n", "2", "--steps", "2", "--out", str(tmp_path / out)]
        assert main([*argv, *extra]) == 0
        with np.load(tmp_path / out / "samples.npz") as npz:
            return npz["images"]

    exact = sample("exact")
    shots = sample("shots", "--shots", "4")
    assert not np.array_equal(exact, shots)
    assert np.array_equal(shots, sample("again", "--shots", "4"))
    assert not np.array_equal(shots, sample("noisy", "--shots", "4", "--noise", "h2-2023"))


def test_hardware_qasm_writes_the_checkpoint_circuits(lite_checkpoint: Path, tmp_path: Path) -> None:
    assert main(["hardware", "qasm", str(lite_checkpoint), "--out", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "circuits.json").read_text())
    (entry,) = manifest["circuits"]
    assert entry["file"] == "quantum.circuit.0.qasm" and entry["n_wires"] == 8
    assert (tmp_path / entry["file"]).read_text().startswith("OPENQASM 3.0;")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["hardware", "measure", "nowhere", "--out", "x", "--shots", "0,64"],
            "--shots/--noise: shots must be",
        ),
        (["hardware", "measure", "nowhere", "--out", "x", "--shots", "many"], "--shots: expected whole"),
        (["hardware", "measure", "nowhere", "--out", "x", "--noise", "ibm"], "--noise: unknown level"),
        (["sample", "nowhere", "--out", "x", "--shots", "-3"], "--shots/--noise: shots must be"),
        (["sample", "nowhere", "--out", "x", "--noise", "depolarizing=3"], "must lie in [0, 1]"),
        (["sample", "--pretrained", "x", "--out", "x", "--shots", "8"], "not --pretrained"),
    ],
)
def test_bad_shots_and_noise_are_named_errors(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "ConfigError" in err and message in err and "Traceback" not in err
