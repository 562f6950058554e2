"""Every command example in the README runs as written: each parses, and each `train`
example gets as far as its --dry-run (the config it would train with)."""

from __future__ import annotations

import os
import re
import shlex
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegan.cli import build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    """The facegan commands of the README's shell blocks (after && too), comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words and Path(words[0]).name == "facegan":
                    commands.append(shlex.join(words[1:]))
    return commands


def stand_in(path: Path) -> None:
    """What a user would have at ``path``, by its name: a .npy array, a .zip of photos, or a
    folder of photos."""
    photo = Image.fromarray(np.full((40, 40, 3), 128, np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, np.zeros((4, 64, 64, 3), np.uint8))
    elif path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as archive, archive.open("a.png", "w") as member:
            photo.save(member, format="PNG")
    else:
        path.mkdir(exist_ok=True)
        photo.save(path / "a.png")


def test_the_readme_has_command_examples():
    commands = readme_commands()
    assert len(commands) >= 15 and any(c.startswith("train ") for c in commands)


@pytest.mark.parametrize("command", readme_commands())
def test_a_readme_example_runs_as_written(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    argv = [os.path.expanduser(word) for word in shlex.split(command)]  # ~ as a shell expands it
    build_parser().parse_args(argv)  # exits (a failure here) on any unknown or malformed option
    if argv[0] == "train":
        (tmp_path / "my.toml").write_text("[train]\nepochs = 3\n")  # the config file an example names
        if "--data" in argv:
            stand_in(Path(argv[argv.index("--data") + 1]))
        code = main([*argv, "--dry-run"])
        assert code == 0, capsys.readouterr().err
