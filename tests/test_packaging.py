"""Packaging: every package folder is packaged; a fresh install works; the example plugin installs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import tomllib
from conftest import ROOT


def test_every_package_folder_is_packaged():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    mapping = setuptools["package-dir"]
    listed = set(setuptools["packages"])
    on_disk = set()
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            on_disk.add(".".join([package, *relative.parts]))
    assert on_disk == listed, f"missing from pyproject: {on_disk - listed}; listed but absent: {listed - on_disk}"


def test_builtin_plugins_are_entry_points():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    entry_points = project["project"]["entry-points"]["simclr"]
    folders = {p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").exists()}
    assert set(entry_points) == folders
    assert all(value == f"simclr.plugins.{name}" for name, value in entry_points.items())


#: names of the built-in components, which the core must never spell out
CONCRETE = [
    "nt_xent",
    "nt_logistic",
    "margin_triplet",
    "semi_hard",
    "resnet18",
    "resnet50",
    "small_resnet",
    "lars",
    "adam",
    "sgd",
    "cifar10",
    "stl10",
    "digits",
    "image_folder",
    "synthetic",
    "metrics_jsonl",
    "tensorboard",
]  # ("plots" is both a callback and the run directory's folder for figures, so it is not checked)
#: `simclr export` writes torchvision's ResNet layout: there the names are torchvision's architectures
TORCHVISION_NAMES_ALLOWED = {"export.py": {"resnet18", "resnet50"}}


def test_core_never_names_a_concrete_plugin():
    for path in (ROOT / "core").rglob("*.py"):
        text = path.read_text()
        assert "simclr.plugins." not in text, f"{path.name} imports a built-in plugin"
        for name in set(CONCRETE) - TORCHVISION_NAMES_ALLOWED.get(path.name, set()):
            assert f'"{name}"' not in text and f"'{name}'" not in text, f"{path.name} names the plugin {name}"


def _pip(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_fresh_venv_install_runs_the_command(tmp_path):
    """The README's install command in a fresh virtual environment (reusing this machine's torch et al.)."""
    venv = tmp_path / "venv"
    # no pip of its own: this machine's pip installs into it, building with this machine's setuptools, offline
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-build-isolation", "-q", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    check = subprocess.run(["simclr", "--help"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert check.returncode == 0 and "train" in check.stdout
    listing = subprocess.run(
        ["simclr", "plugins", "list", "--json"], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert listing.returncode == 0, listing.stderr
    components = json.loads(listing.stdout)["components"]
    where = subprocess.run(
        [str(python), "-c", "import simclr, simclr.plugins.losses as l; print(l.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert str(venv) in where.stdout, "the venv must use its own installed copy (a wheel), not the source tree"
    assert any(c["name"] == "nt_xent" for c in components)


@pytest.mark.slow
def test_example_plugin_installs_lists_builds(tmp_path):
    target = tmp_path / "site"
    result = _pip(
        "install",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "--target",
        str(target),
        str(ROOT / "examples" / "simclr-plugin-example"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(target)}
    listing = subprocess.run(
        [sys.executable, "-m", "simclr", "plugins", "list", "--json", "--kind", "miner"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert listing.returncode == 0, listing.stderr
    miners = {c["name"]: c for c in json.loads(listing.stdout)["components"]}
    assert miners["random_subset"]["distribution"] == "simclr-plugin-example"
    code = (
        "import torch, simclr\n"
        "miner = simclr.create('miner', 'random_subset', fraction=1.0)\n"
        "pos = torch.zeros(4, 4, dtype=torch.bool); pos[0, 2] = pos[2, 0] = pos[1, 3] = pos[3, 1] = True\n"
        "sel = miner(torch.zeros(4, 4), pos, 0.5)\n"
        "assert sel.sum().item() == 16 - 4 - 4, sel\n"
        "loss = simclr.create('loss', 'margin_triplet', miner='random_subset')\n"
        "assert loss.miner.fraction == 0.5\n"
        "loss = simclr.create('loss', 'margin_triplet', miner={'name': 'random_subset', 'fraction': 0.25})\n"
        "assert loss.miner.fraction == 0.25\n"
        "try:\n"
        "    simclr.create('loss', 'margin_triplet', miner={'name': 'random_subset', 'fraction': 2})\n"
        "except simclr.ConfigError as exc:\n"
        "    assert 'loss.miner.fraction: Input should be less than or equal to 1' in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('fraction 2 was accepted')\n"
        "print('ok', type(loss).__name__)\n"
    )
    built = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert built.returncode == 0 and built.stdout.startswith("ok"), built.stderr
    # its callback runs when a config lists it, and only its own hooks are called (no warning)
    experiment = {
        "data": {"dataset": {"name": "synthetic", "image_size": 16, "count": 64}, "batch_size": 32},
        "model": {"backbone": {"name": "small_resnet"}},
        "loss": {"name": "nt_xent"},
        "optimizer": {"name": "adam"},
        "train": {"epochs": 2, "device": "cpu", "callbacks": [{"name": "step_counter", "every": 2}]},
        "eval": {"after_train": False},
    }
    (tmp_path / "exp.yaml").write_text(json.dumps(experiment))
    command = [sys.executable, "-m", "simclr", "train", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "run")]
    trained = subprocess.run([*command, "--no-progress"], env=env, capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert [line.split(":")[0] for line in trained.stdout.splitlines() if line.startswith("step ")] == [
        "step 2",
        "step 4",
    ]
    assert "step_counter" not in trained.stderr
    without = subprocess.run(
        [sys.executable, "-m", "simclr", "plugins", "list", "--json", "--kind", "miner"],
        capture_output=True,
        text=True,
    )
    assert "random_subset" not in without.stdout, "uninstalled (not on the path) means gone"


def test_a_plain_import_reaches_the_dataset_api_and_imports_torch_only_when_it_is_used():
    """A plugin module with only ``import simclr`` (as the README's recipe reads) subclasses
    ``simclr.data.InMemoryImageDataset`` in a fresh interpreter, where nothing imported simclr.data first."""
    script = (
        "import sys, simclr\n"
        "assert 'torch' not in sys.modules, 'import simclr imported torch'\n"
        "class Mine(simclr.data.InMemoryImageDataset):\n"
        "    image_size = 8\n"
        "print(Mine.__mro__[1].__module__, simclr.data.TensorSplit.__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["simclr.data", "TensorSplit"]
