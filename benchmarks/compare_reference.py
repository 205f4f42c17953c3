"""The framework's full training step against a plain hand-written SimCLR loop, interleaved A/B in one process.

Reference (B): per-image torchvision transforms v2 in a DataLoader, the same network, a textbook NT-Xent, Adam.
Framework (A): `simclr.trainer.Trainer` — its data stream (batched on-device views by default) and its step.
Both see the same random uint8 images, batch size, image size and model, and compute in the same precision and
(by default) memory format (the framework's: bf16 autocast and channels_last by default on CUDA, float32 and
channels_last on an x86-64 CPU), so the ratio measures the data path and the step, not the number format.
``--reference-layout contiguous`` runs the reference in the layout a textbook loop has (torch's default), so the
ratio also counts the framework's choice of memory format. Prints the median ratio of images/s.

    python benchmarks/compare_reference.py --image-size 32 --batch 128 --steps 4 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from simclr import config
from simclr.model import build_model
from simclr.runtime import Runtime
from simclr.trainer import Trainer


class TwoViews(Dataset):
    """The reference's data path: two independently transformed views of each image, one image at a time."""

    def __init__(self, images: torch.Tensor, size: int):
        self.images = images
        self.transform = v2.Compose(
            [
                v2.RandomResizedCrop(size, scale=(0.08, 1.0), antialias=True),
                v2.RandomHorizontalFlip(),
                v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                v2.RandomGrayscale(p=0.2),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            ]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]
        return self.transform(image), self.transform(image)


def textbook_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.t() / temperature
    n = z1.shape[0]
    sim.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, targets)


def experiment(args: argparse.Namespace) -> config.Experiment:
    return config.experiment_from_dict(
        {
            "data": {
                "dataset": {"name": "synthetic", "image_size": args.image_size, "count": args.batch * args.steps},
                "batch_size": args.batch,
                "num_workers": args.workers,
                "augment": {"backend": args.backend, "jitter_strength": 0.5, "blur": False},
            },
            "model": {"backbone": {"name": args.backbone}},
            "loss": {"name": "nt_xent", "temperature": 0.5},
            "optimizer": {"name": "adam", "lr": 1e-3},
            "schedule": {"warmup_epochs": 0, "decay": "constant"},
            "train": {"epochs": 10_000, "device": args.device, "precision": args.precision, "log_every": args.steps},
        }
    )


def time_framework(trainer: Trainer, epoch: int) -> float:
    start = time.perf_counter()
    steps = 0
    for views in trainer.stream.epoch(epoch):
        loss = trainer._step(*views)
        steps += 1
    loss.item()
    return steps * trainer.stream.batch / (time.perf_counter() - start)


def time_reference(loader: DataLoader, model, optimizer, runtime: Runtime, channels_last: bool) -> float:
    """The textbook step, in the framework's precision (autocast, and GradScaler for fp16), channels-last or not."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    scaler = runtime.grad_scaler()
    start = time.perf_counter()
    images = 0
    for view1, view2 in loader:
        views = torch.cat([view1, view2]).to(runtime.device).contiguous(memory_format=layout)
        with runtime.autocast():
            z1, z2 = model(views).chunk(2)
        loss = textbook_nt_xent(z1.float(), z2.float(), 0.5)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        images += view1.shape[0]
    loss.item()
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="A/B pairs; the median ratio is reported")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--backend", default="batched", help="the framework's augment backend")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers, both sides")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--precision", default="auto", help="both sides: auto (the framework's default), fp32, bf16, fp16"
    )
    parser.add_argument(
        "--reference-layout",
        choices=["framework", "contiguous"],
        default="framework",
        help="the reference's memory format: the framework's, or torch's default (a textbook loop's)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    exp = experiment(args)
    trainer = Trainer(exp, Path(tempfile.mkdtemp()) / "run", show_progress=False)
    runtime = trainer.runtime
    device = runtime.device
    torch.manual_seed(0)
    reference_model = build_model(exp, args.image_size).to(device)
    reference_channels_last = runtime.channels_last and args.reference_layout == "framework"
    if reference_channels_last:
        reference_model = reference_model.to(memory_format=torch.channels_last)
    reference_model.train()
    reference_optimizer = torch.optim.Adam(reference_model.parameters(), lr=1e-3)
    images = trainer.dataset.pretrain_tensor()
    loader = DataLoader(
        TwoViews(images, args.image_size), batch_size=args.batch, shuffle=True, drop_last=True, num_workers=args.workers
    )
    time_framework(trainer, 0)
    time_reference(loader, reference_model, reference_optimizer, runtime, reference_channels_last)
    framework, reference = [], []
    for round_index in range(args.rounds):
        framework.append(time_framework(trainer, round_index + 1))
        reference.append(time_reference(loader, reference_model, reference_optimizer, runtime, reference_channels_last))
    ratios = [a / b for a, b in zip(framework, reference, strict=True)]
    result = {
        "device": str(device),
        "backbone": args.backbone,
        "image_size": args.image_size,
        "batch": args.batch,
        "precision": runtime.precision,
        "channels_last": runtime.channels_last,
        "reference_channels_last": reference_channels_last,
        "framework_images_per_sec": statistics.median(framework),
        "reference_images_per_sec": statistics.median(reference),
        "median_ratio": statistics.median(ratios),
        "ratios": ratios,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
