"""`simclr export RUN_DIR|CHECKPOINT --out FILE`."""

from __future__ import annotations

import argparse
from pathlib import Path

from simclr.cli.output import err


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write the trained backbone alone (torchvision ResNet keys where they match)",
        description="Write the backbone's state_dict for fine-tuning elsewhere. A ResNet backbone gets the keys of "
        "the matching torchvision model (swap in the CIFAR stem where the run used it; only fc.* is missing). "
        "FILE's suffix sets the format: .safetensors, or .pt/.pth/.bin for a plain torch.save file.",
    )
    parser.add_argument("target", type=Path, metavar="RUN_DIR|CHECKPOINT", help="run directory or .pt checkpoint")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simclr.export import export_backbone

    result = export_backbone(args.target, args.out, args.overwrite)
    err.print(f"wrote {result.path} ({result.format}): {result.note}", highlight=False)
    return 0
