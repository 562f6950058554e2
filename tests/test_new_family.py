"""Adding a model family is one module and one preset, and nothing else.

The test copies the installed package, adds a toy family's module to its models and a
preset for it, and nothing more; then the copy's command line trains the toy family,
resumes it bit for bit, shows its own setting as a flag, refuses it out of range, and
makes faces with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import facegan
from facegan import checkpoint
from tests.test_train import assert_same_training_state

TOY_FAMILY = '''"""A toy family: a linear generator and a linear discriminator at 16 px."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from facegan.config import ModelConfig, setting
from facegan.models.family import Family


@dataclass
class Settings:
    """[model.toy]"""

    toy_hidden: int = setting(32, "units of the toy networks' hidden layer", (1, 256))


class ToyGenerator(nn.Module):
    output_range = (-1.0, 1.0)

    def __init__(self, m: ModelConfig):
        super().__init__()
        self.z_dim, self.side = m.z_dim, m.resolution
        hidden = m.family_settings.toy_hidden
        self.body = nn.Sequential(nn.Linear(m.z_dim, hidden), nn.ReLU(), nn.Linear(hidden, 3 * m.resolution**2), nn.Tanh())

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(z).view(-1, 3, self.side, self.side)


class ToyDiscriminator(nn.Module):
    def __init__(self, m: ModelConfig):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(3 * m.resolution**2, m.family_settings.toy_hidden),
                                  nn.LeakyReLU(0.2), nn.Dropout(0.1), nn.Linear(m.family_settings.toy_hidden, 1))

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(images).view(-1)


FAMILY = Family("toy", "a linear toy", lambda m, head=False: (ToyGenerator(m), ToyDiscriminator(m)), ToyGenerator,
                min_resolution=16, max_resolution=16, settings=Settings)
'''

TOY_PRESET = '''[model]
family = "toy"
resolution = 16
z_dim = 8

[model.toy]
toy_hidden = 24

[data]
synthetic_count = 32

[train]
epochs = 4
batch_size = 8
step = "alternating"
'''


@pytest.fixture(scope="module")
def package_with_a_toy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("package")
    shutil.copytree(Path(facegan.__file__).parent, root / "facegan", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "facegan" / "models" / "toy.py").write_text(TOY_FAMILY)
    (root / "facegan" / "presets" / "toy.toml").write_text(TOY_PRESET)
    return root


def facegan_command(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-m", "facegan", *args], capture_output=True, text=True, env=env,
                          cwd=root, timeout=300)


@pytest.mark.slow
def test_a_family_added_as_one_module_and_one_preset_trains_resumes_and_generates(package_with_a_toy, tmp_path):
    root = package_with_a_toy
    found = facegan_command(root, "train", "--help")
    assert "--toy-hidden" in found.stdout and "family toy:" in found.stdout
    assert "toy" in found.stdout.split("\n  --family STR")[1].split("--resolution")[0]  # among the families listed
    refused = facegan_command(root, "train", "--preset", "toy", "--toy-hidden", "0", "--dry-run")
    assert refused.returncode == 2 and "model.toy.toy_hidden must be between 1 and 256, not 0" in refused.stderr

    common = ["--threads", "1", "--checkpoint-minutes", "0"]
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    assert facegan_command(root, "train", "--preset", "toy", "--run", str(straight), *common).returncode == 0
    assert facegan_command(root, "train", "--preset", "toy", "--run", str(cut), "--epochs", "2", *common).returncode == 0
    resumed = facegan_command(root, "train", "--preset", "toy", "--run", str(cut), "--epochs", "4", *common)
    assert resumed.returncode == 0 and "resuming" in resumed.stderr
    ends = [checkpoint.load(checkpoint.latest(run / "checkpoints")) for run in (straight, cut)]
    assert ends[0]["step"] == 16
    assert_same_training_state(*ends)
    assert "[model.toy]\ntoy_hidden = 24" in (cut / "config.toml").read_text()

    made = facegan_command(root, "generate", "--run", str(cut), "-n", "4", "--out", str(tmp_path / "faces.png"))
    assert made.returncode == 0 and (tmp_path / "faces.png").is_file(), made.stderr
