"""`simclr.load_pretrained`: a run's network in Python, giving the features the trainer's network gives."""

from __future__ import annotations

import pytest
import torch
from test_trainer import tiny

import simclr
from simclr.checkpoint import load_checkpoint, save_checkpoint
from simclr.trainer import Trainer
from simclr.views import normalize


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("pretrained") / "run"
    trainer = Trainer(tiny(["train.epochs=1"]), run, show_progress=False)
    trainer.fit()
    # in the layout load_pretrained builds (a CPU run may train channels-last), so features compare bit for bit
    trainer.model.eval().to(memory_format=torch.contiguous_format)
    return run, trainer


def test_features_are_those_of_the_trained_network(trained):
    run, trainer = trained
    pretrained = simclr.load_pretrained(run)
    images = trainer.dataset.pretrain_tensor()[:8]
    inputs = normalize(images, tuple(trainer.dataset.mean), tuple(trainer.dataset.std))
    with torch.no_grad():
        h = trainer.model.backbone(inputs)
        g = trainer.model.head(h)
    assert torch.equal(pretrained.features(images), h)
    assert torch.equal(pretrained.features(images, representation="projection"), g)
    assert torch.equal(pretrained.features(images.float() / 255), h)  # floats in [0, 1] are the same images
    assert (pretrained.epoch, pretrained.image_size) == (1, 16) and not pretrained.model.training
    assert pretrained.mean == pytest.approx(trainer.dataset.mean) and pretrained.std == pytest.approx(
        trainer.dataset.std
    )
    assert pretrained.experiment.model.backbone.name == "small_resnet"
    with pytest.raises(ValueError, match="'backbone' or 'projection'"):
        pretrained.features(images, representation="head")
    bigger = torch.nn.functional.interpolate(images.float(), size=24).to(torch.uint8)
    with pytest.raises(ValueError, match=r"shape \(8, 3, 24, 24\); the network was trained on \[B, 3, 16, 16\]"):
        pretrained.features(bigger)
    with torch.no_grad():  # another size on purpose, as the message says
        assert pretrained.model.backbone(pretrained.normalise(bigger)).shape == h.shape
    # other encodings of the same images would give other features without a word: refused
    with pytest.raises(ValueError, match=r"float images with values up to \d+; give floats scaled to"):
        pretrained.features(images.float())
    overshoot = torch.nn.functional.interpolate(images.float() / 255, size=16, mode="bicubic", antialias=True)
    overshoot[0, 0, 0, 0] = 1.06  # as a bicubic resize of [0, 1] images gives: accepted as it is
    assert torch.equal(pretrained.features(overshoot), pretrained.model.backbone(pretrained.normalise(overshoot)))
    with pytest.raises(ValueError, match="float images with values up to nan"):
        pretrained.features(torch.full((1, 3, 16, 16), float("nan")))
    with pytest.raises(ValueError, match="images of dtype torch.int64; give uint8"):
        pretrained.features(images.long())


def test_a_checkpoint_file_and_an_old_checkpoint_without_normalisation(trained, tmp_path):
    run, trainer = trained
    state = load_checkpoint(run)
    del state["normalisation"], state["image_size"]  # as written before they were stored: the dataset's are used
    old = save_checkpoint(state, tmp_path / "old.pt")
    pretrained = simclr.load_pretrained(old)
    assert pretrained.checkpoint == old and pretrained.image_size == 16
    assert pretrained.mean == pytest.approx(trainer.dataset.mean)
    images = trainer.dataset.pretrain_tensor()[:4]
    assert torch.equal(pretrained.features(images), simclr.load_pretrained(run).features(images))


@pytest.mark.skipif(torch.cuda.is_available(), reason="shows what a CPU-only machine says")
def test_a_device_that_is_not_here_is_named_as_the_caller_gave_it(trained):
    with pytest.raises(simclr.UserError, match=r"device='cuda': CUDA is not available here; use cpu or auto"):
        simclr.load_pretrained(trained[0], device="cuda")


def test_problems_are_user_errors_that_name_the_file(tmp_path):
    with pytest.raises(simclr.UserError, match=str(tmp_path / "nope")):
        simclr.load_pretrained(tmp_path / "nope")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(simclr.UserError, match="junk.pt"):
        simclr.load_pretrained(tmp_path / "junk.pt")
