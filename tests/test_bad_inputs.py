"""Bad-input catalogue beyond configs (see test_config.py for those): command-line arguments, datasets,
checkpoints and plugins. Every row runs the `simclr` command in a subprocess, in a fresh working folder, and
checks the exit status, that stderr names the culprit, that no traceback is shown and that nothing was written."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from conftest import MINIMAL_RUN, run_simclr
from plugin_fixtures import PLUGIN_MISTAKES, WRONG_TYPE, make_distribution

from simclr import config
from simclr.checkpoint import load_checkpoint
from simclr.model import build_model
from simclr.trainer import Trainer

TINY = MINIMAL_RUN

MALICIOUS_MARKER = "pwned.txt"


class RunsCode:
    """Unpickling this calls os.system: a checkpoint carrying code."""

    def __reduce__(self):
        return (os.system, (f"touch {MALICIOUS_MARKER}",))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny trained run (1 step), shared by the rows that need a real checkpoint."""
    run = tmp_path_factory.mktemp("trained") / "run"
    Trainer(config.experiment_from_dict(TINY), run, show_progress=False).fit()
    return run


@dataclass
class Ctx:
    tmp: Path
    trained: Path

    def experiment(self, overrides: dict | None = None, name: str = "exp.yaml") -> str:
        data = yaml.safe_load(yaml.safe_dump(TINY))
        for dotted, value in (overrides or {}).items():
            *parents, last = dotted.split(".")
            target = data
            for part in parents:
                target = target.setdefault(part, {})
            target[last] = value
        (self.tmp / name).write_text(yaml.safe_dump(data))
        return name

    def dataset(self, section: dict) -> str:
        return self.experiment({"data.dataset": section})

    def run_copy(self, name: str = "run") -> Path:
        """A copy of the trained run inside the working folder."""
        copy = self.tmp / name
        shutil.copytree(self.trained, copy)
        return copy

    def checkpoint(self, state_or_bytes, name: str = "ckpt.pt") -> str:
        path = self.tmp / name
        if isinstance(state_or_bytes, bytes):
            path.write_bytes(state_or_bytes)
        else:
            torch.save(state_or_bytes, path)
        return name


def truncated(ctx: Ctx) -> bytes:
    data = (ctx.trained / "checkpoints" / "last.pt").read_bytes()
    return data[: len(data) // 2]


def other_architecture(ctx: Ctx) -> dict:
    """The trained run's checkpoint with the weights of a wider backbone: config and weights disagree."""
    state = load_checkpoint(ctx.trained)
    wider = config.experiment_from_dict(TINY, ["model.backbone.width=8"])
    state["model"] = build_model(wider, 16).state_dict()
    return state


def foreign_resume_dir(ctx: Ctx, last: dict | bytes) -> str:
    run = ctx.run_copy()
    path = run / "checkpoints" / "last.pt"
    if isinstance(last, bytes):
        path.write_bytes(last)
    else:
        torch.save(last, path)
    return str(run.name)


def text_last_pt(ctx: Ctx) -> str:
    run = ctx.tmp / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_text("this is not a checkpoint\n")
    return "run"


def without_checkpoint(ctx: Ctx) -> str:
    run = ctx.run_copy()
    (run / "checkpoints" / "last.pt").unlink()
    return run.name


def malicious(ctx: Ctx) -> dict:
    return {"format": "simclr-checkpoint", "version": 1, "model": {}, "config": RunsCode()}


def empty_image_folder(ctx: Ctx) -> str:
    (ctx.tmp / "images" / "nested").mkdir(parents=True)
    (ctx.tmp / "images" / "notes.txt").write_text("no images here")
    return ctx.dataset({"name": "image_folder", "train": "images", "image_size": 16})


def truncated_cifar(ctx: Ctx) -> str:
    folder = ctx.tmp / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        (folder / name).write_bytes(b"\x80\x02}q\x00(X")  # the start of a pickle, cut short
    (folder / "batches.meta").write_bytes(b"\x80\x02}q\x00")
    return ctx.dataset({"name": "cifar10", "root": "data"})


def factory_raises_plugin(ctx: Ctx) -> dict:
    make_distribution(ctx.tmp.parent / f"{ctx.tmp.name}-site", "acme-losses", {"acme": FACTORY_RAISES})
    return {"PYTHONPATH": str(ctx.tmp.parent / f"{ctx.tmp.name}-site")}


def wrong_type_plugin(ctx: Ctx) -> dict:
    make_distribution(ctx.tmp.parent / f"{ctx.tmp.name}-site", "acme-broken", {"broken": WRONG_TYPE})
    return {"PYTHONPATH": str(ctx.tmp.parent / f"{ctx.tmp.name}-site")}


def mistakes_plugin(ctx: Ctx) -> dict:
    make_distribution(ctx.tmp.parent / f"{ctx.tmp.name}-site", "acme-mistakes", {"mistakes": PLUGIN_MISTAKES})
    return {"PYTHONPATH": str(ctx.tmp.parent / f"{ctx.tmp.name}-site")}


def sweep_file(ctx: Ctx) -> str:
    (ctx.tmp / "sweep.yaml").write_text(f"base: {ctx.experiment()}\ngrid:\n  loss.temperature: [0.2, 0.5]\n")
    return "sweep.yaml"


EVAL_AFTER_TRAIN = {"eval.after_train": True, "eval.labels_per_class": [1], "eval.baseline": False}


FACTORY_RAISES = """
from pydantic import BaseModel, ConfigDict
import simclr

class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

def build(params):
    raise RuntimeError("the GPU kernel library is missing")

@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("exploding", build, Params, "a loss whose factory raises")
"""


@dataclass
class Case:
    id: str
    args: Callable[[Ctx], list[str]]
    words: list[str]
    code: int = 2
    env: Callable[[Ctx], dict] | None = None


CASES = [
    # ---- command-line arguments -----------------------------------------------------------------------------
    Case("unknown-subcommand", lambda c: ["frobnicate"], ["invalid choice", "frobnicate"]),
    Case("no-subcommand", lambda c: [], ["COMMAND"]),
    Case("train-without-exp", lambda c: ["train"], ["give an experiment file"]),
    Case("train-unknown-option", lambda c: ["train", c.experiment(), "--bogus"], ["usage: simclr train", "--bogus"]),
    Case("option-before-command", lambda c: ["--bogus", "train", c.experiment()], ["usage: simclr [-h]", "--bogus"]),
    Case("bench-without-exp-elsewhere", lambda c: ["bench"], ["no EXP.yaml given", "configs/quickstart.yaml"]),
    Case("train-missing-exp-file", lambda c: ["train", "nope.yaml"], ["nope.yaml"]),
    Case(
        "resume-plus-exp",
        lambda c: ["train", c.experiment(), "--resume", str(c.run_copy().name)],
        ["--resume", "no EXP.yaml"],
    ),
    Case("resume-missing-dir", lambda c: ["train", "--resume", "gone"], ["gone"]),
    Case("resume-dir-not-a-run", lambda c: ["train", "--resume", text_last_pt(c)], ["config.yaml"]),
    Case("resume-dir-without-checkpoint", lambda c: ["train", "--resume", without_checkpoint(c)], ["before its first"]),
    Case("set-without-equals", lambda c: ["train", c.experiment(), "--set", "loss.temperature"], ["KEY.PATH=VALUE"]),
    Case("set-unknown-key", lambda c: ["train", c.experiment(), "--set", "train.epochz=3"], ["epochz"]),
    Case("nproc-zero", lambda c: ["train", c.experiment(), "--nproc", "0"], ["--nproc"]),
    Case("bench-steps-zero", lambda c: ["bench", c.experiment(), "--steps", "0"], ["--steps"]),
    Case("train-unknown-device", lambda c: ["train", c.experiment(), "--device", "gpu"], ["--device 'gpu'"]),
    Case("bench-unknown-device", lambda c: ["bench", c.experiment(), "--device", "gpu"], ["--device 'gpu'"]),
    Case("sweep-unknown-device", lambda c: ["sweep", sweep_file(c), "--device", "gpu"], ["--device 'gpu'"]),
    Case("seed-too-large", lambda c: ["train", c.experiment({"train.seed": 2**47})], ["train.seed", "4294967296"]),
    Case("bench-steps-not-int", lambda c: ["bench", c.experiment(), "--steps", "many"], ["--steps", "many"]),
    Case("eval-labels-per-class-zero", lambda c: ["eval", "run", "--labels-per-class", "0"], ["labels-per-class"]),
    Case("eval-knn-k-text", lambda c: ["eval", "run", "--knn-k", "abc"], ["knn-k", "abc"]),
    Case("eval-folder-not-a-run", lambda c: ["eval", str((c.tmp / "empty").mkdir() or "empty")], ["empty"]),
    Case(
        "eval-unknown-device",
        lambda c: ["eval", c.run_copy().name, "--device", "tpu:9"],
        ["--device", "tpu:9"],
    ),
    Case(
        "eval-unknown-dataset",
        lambda c: ["eval", c.run_copy().name, "--dataset", "imagenet9000"],
        ["--dataset imagenet9000: unknown dataset 'imagenet9000'"],
    ),
    Case(
        "export-under-a-file",
        lambda c: ["export", c.run_copy().name, "--out", str((c.tmp / "afile").write_text("x") and "afile/b.pt")],
        ["afile"],
    ),
    Case("export-missing-target", lambda c: ["export", "nothing", "--out", "b.pt"], ["nothing"]),
    Case("export-unknown-suffix", lambda c: ["export", c.run_copy().name, "--out", "b.onnx"], ["b.onnx", ".pt"]),
    # ---- datasets -------------------------------------------------------------------------------------------
    Case("cifar10-root-missing", lambda c: ["train", c.dataset({"name": "cifar10", "root": "nodata"})], ["CIFAR-10"]),
    Case("stl10-root-missing", lambda c: ["train", c.dataset({"name": "stl10", "root": "nodata"})], ["STL"]),
    Case("cifar10-truncated-batches", lambda c: ["train", truncated_cifar(c)], ["CIFAR-10", "corrupted"]),
    Case("image-folder-zero-images", lambda c: ["train", empty_image_folder(c)], ["images"]),
    Case(
        "image-folder-is-a-file",
        lambda c: [
            "train",
            (c.tmp / "pic.png").write_text("x") and c.dataset({"name": "image_folder", "train": "pic.png"}),
        ],
        ["pic.png", "not a folder"],
    ),
    Case(  # rich markup in a path: [/2019] used to be a MarkupError traceback, [italy] to vanish
        "image-folder-path-with-brackets",
        lambda c: ["train", c.dataset({"name": "image_folder", "train": "photos [/2019] [italy]"})],
        ["photos [/2019] [italy]"],
    ),
    Case(  # Path("") is the current folder: it trained on every image below it
        "image-folder-empty-path",
        lambda c: ["train", c.dataset({"name": "image_folder", "train": ""})],
        ["data.dataset.train", "an empty path"],
    ),
    Case(
        "image-folder-missing",
        lambda c: ["train", c.dataset({"name": "image_folder", "train": "nowhere"})],
        ["nowhere"],
    ),
    # ---- checkpoints ----------------------------------------------------------------------------------------
    Case("eval-truncated", lambda c: ["eval", c.checkpoint(truncated(c))], ["ckpt.pt", "truncated"]),
    Case("export-truncated", lambda c: ["export", c.checkpoint(truncated(c)), "--out", "b.pt"], ["ckpt.pt"]),
    Case("eval-text-last-pt", lambda c: ["eval", text_last_pt(c)], ["last.pt"]),
    Case("eval-foreign-dict", lambda c: ["eval", c.checkpoint({"weights": torch.zeros(3)})], ["not a simclr"]),
    Case(
        "eval-newer-version",
        lambda c: ["eval", c.checkpoint({**load_checkpoint(c.trained), "version": 99})],
        ["newer simclr"],
    ),
    Case("eval-pickle-with-code", lambda c: ["eval", c.checkpoint(malicious(c))], ["ckpt.pt", "refused"]),
    Case(
        "resume-pickle-with-code",
        lambda c: ["train", "--resume", foreign_resume_dir(c, malicious(c))],
        ["last.pt", "refused"],
    ),
    Case(
        "export-pickle-with-code",
        lambda c: ["export", c.checkpoint(malicious(c)), "--out", "b.pt"],
        ["refused"],
    ),
    Case("resume-truncated", lambda c: ["train", "--resume", foreign_resume_dir(c, truncated(c))], ["last.pt"]),
    Case(
        "eval-other-architecture",
        lambda c: ["eval", c.checkpoint(other_architecture(c)), "--no-baseline", "--labels-per-class", "1"],
        ["ckpt.pt", "do not fit"],
    ),
    Case(
        "resume-other-architecture",
        lambda c: ["train", "--resume", foreign_resume_dir(c, other_architecture(c))],
        ["last.pt", "do not fit"],
    ),
    # ---- plugins --------------------------------------------------------------------------------------------
    Case(
        "plugin-factory-raises",
        lambda c: ["train", c.experiment({"loss": {"name": "exploding"}})],
        ["exploding", "acme", "acme-losses", "GPU kernel library"],
        env=factory_raises_plugin,
    ),
    Case(
        "plugin-backbone-wrong-feature-dim",
        lambda c: ["train", c.experiment({"model.backbone": {"name": "wrong_dim"}})],
        ["backbone 'wrong_dim'", "acme-mistakes", "declares feature_dim 16", "shape [2, 8]"],
        env=mistakes_plugin,
    ),
    Case(
        "plugin-backbone-not-pooled",
        lambda c: ["train", c.experiment({"model.backbone": {"name": "spatial"}})],
        ["backbone 'spatial'", "acme-mistakes", "shape [2, 8, 14, 14]", "features [B, feature_dim]"],
        env=mistakes_plugin,
    ),
    Case(
        "plugin-backbone-float64-features",
        lambda c: ["train", c.experiment({"model.backbone": {"name": "float64"}})],
        ["backbone 'float64'", "acme-mistakes", "torch.float64 features", "torch.float32"],
        env=mistakes_plugin,
    ),
    Case(
        "plugin-backbone-other-output-in-training-mode",
        lambda c: ["train", c.experiment({"model.backbone": {"name": "spatial_while_training"}})],
        ["backbone 'spatial_while_training'", "acme-mistakes", "in training mode", "shape [2, 8, 1, 1]"],
        env=mistakes_plugin,
    ),
    Case(
        "plugin-optimizer-without-lr",
        lambda c: ["train", c.experiment({"optimizer": {"name": "no_lr"}})],
        ["optimizer 'no_lr'", "acme-mistakes", "param group 0 has no numeric 'lr'"],
        env=mistakes_plugin,
    ),
    Case(
        "plugin-dataset-without-image-size",
        lambda c: ["train", c.experiment({"data.dataset": {"name": "sizeless"}})],
        ["dataset 'sizeless'", "acme-mistakes", "without an image_size", "positive int `image_size`"],
        env=mistakes_plugin,
    ),
    Case(
        "plugin-loss-raises-on-the-batch",
        lambda c: ["train", c.experiment({"loss": {"name": "batch_limit"}})],
        ["loss 'batch_limit'", "acme-mistakes", "ValueError: batch 32 > batch_limit 8"],
        env=mistakes_plugin,
    ),
    Case(
        "plugin-loss-nan",
        lambda c: ["train", c.experiment({"loss": {"name": "always_nan"}})],
        ["loss 'always_nan'", "acme-mistakes", "is nan", "must be finite"],
        env=mistakes_plugin,
    ),
    Case(
        "plugin-callback-wrong-hook-arguments",
        lambda c: ["train", c.experiment({"train.callbacks": [{"name": "wrong_arguments"}]})],
        ["callback 'wrong_arguments'", "acme-mistakes", "simclr_on_log(run, rec)", "{'rec'}"],
        env=mistakes_plugin,
    ),
    Case(
        "plugin-dataset-unlabelled-eval-splits",
        lambda c: ["train", c.experiment({"data.dataset": {"name": "unlabelled"}, **EVAL_AFTER_TRAIN})],
        ["dataset 'unlabelled'", "32 images of its labelled train split have labels outside 0..1", "e.g. -1"],
        env=mistakes_plugin,
    ),
    Case(
        "dataset-one-class-after-train",
        lambda c: ["train", c.experiment({"data.dataset": {"name": "one_class"}, **EVAL_AFTER_TRAIN})],
        ["dataset 'one_class'", "single class, 'a' (label 0)", "at least two classes"],
        env=mistakes_plugin,
    ),
    Case(
        "dataset-bad-test-split-found-before-training",
        lambda c: ["train", c.experiment({"data.dataset": {"name": "small_test"}, **EVAL_AFTER_TRAIN})],
        ["dataset 'small_test'", "labelled test split", "uint8 [3, 16, 16]"],
        env=mistakes_plugin,
    ),
    Case(
        "eval-after-train-k-above-the-smallest-class",
        lambda c: [
            "train",
            c.experiment({**EVAL_AFTER_TRAIN, "eval.labels_per_class": [500]}),
        ],
        ["labels per class [500]", "choose K <="],
    ),
    Case(
        "plugin-factory-wrong-type",
        lambda c: ["train", c.experiment({"loss": {"name": "not_a_module"}})],
        ["not_a_module", "broken", "acme-broken"],
        env=wrong_type_plugin,
    ),
]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(root.rglob("*"))}


@dataclass
class Outcome:
    result: subprocess.CompletedProcess
    before: dict
    after: dict
    work: Path


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, trained) -> dict[str, Outcome]:
    """Run every row, each in its own working folder; the subprocesses (mostly torch's import time) run a few at
    a time to keep the catalogue fast."""
    prepared = []
    for case in CASES:
        work = tmp_path_factory.mktemp(case.id) / "work"
        work.mkdir()
        ctx = Ctx(work, trained)
        args = case.args(ctx)
        env = case.env(ctx) if case.env else None
        prepared.append((case, work, args, env, snapshot(work)))
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        futures = {
            case.id: pool.submit(run_simclr, *args, cwd=work, env=env, timeout=120)
            for case, work, args, env, _ in prepared
        }
        return {
            case.id: Outcome(futures[case.id].result(), before, snapshot(work), work)
            for case, work, _, _, before in prepared
        }


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case, outcomes):
    outcome = outcomes[case.id]
    stderr = outcome.result.stderr
    assert outcome.result.returncode == case.code, stderr
    assert "Traceback" not in stderr, stderr
    for word in case.words:
        assert word.lower() in stderr.lower(), f"{word!r} not in stderr:\n{stderr}"
    assert outcome.after == outcome.before, "the command wrote or changed files"
    assert not (outcome.work / MALICIOUS_MARKER).exists(), "unpickling ran the code carried by the checkpoint"


def test_code_carrying_checkpoint_would_run_code_without_weights_only(tmp_path, monkeypatch):
    """The pickle rows are meaningful: a plain (unsafe) load of the same file does run its code."""
    monkeypatch.chdir(tmp_path)
    torch.save(malicious(Ctx(tmp_path, tmp_path)), tmp_path / "ckpt.pt")
    torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert (tmp_path / MALICIOUS_MARKER).exists()


def test_printed_paths_keep_their_brackets(tmp_path):
    (tmp_path / "exp [v1].yaml").write_text(yaml.safe_dump(TINY))
    result = run_simclr("config", "validate", "exp [v1].yaml", cwd=tmp_path)
    assert result.returncode == 0 and "exp [v1].yaml: valid" in result.stderr, result.stderr
