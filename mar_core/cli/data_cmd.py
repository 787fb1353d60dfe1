"""``mar data synth`` (write the synthetic shapes dataset) and ``mar data check`` (check a
dataset as the service does before it queues a job, and print the report)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from mar_core import names
from mar_core.annotations import detect_format, inspect_dataset
from mar_core.cli.argtypes import int_in
from mar_core.errors import DatasetError, SpecError
from mar_core.spec import DatasetSpec, parse_spec
from mar_core.synth import generate_synthetic


def register(add) -> None:
    """Add ``mar data synth`` and ``mar data check``; ``add(name)`` returns a command's parser."""
    p = add("data")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    s = data_sub.add_parser("synth", help="write the deterministic synthetic shapes dataset (COCO layout)")
    s.add_argument("--out", required=True, type=Path, help="output folder")
    s.add_argument("--seed", type=int_in(0), default=0)
    s.add_argument("--num-train", type=int_in(1), default=400)
    s.add_argument("--num-val", type=int_in(1), default=100)
    s.add_argument("--image-size", type=int_in(32, 2048), default=128, help="side in pixels")
    s.add_argument("--num-classes", type=int_in(1, 7), default=6, help="shape classes (1..7)")
    s.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    s.set_defaults(handler=_synth)

    c = data_sub.add_parser(
        "check", help="check both splits (files, ids, boxes) and print the counts, repairs and warnings"
    )
    c.add_argument("target", help="a job spec JSON file, or a dataset folder")
    c.add_argument(
        "--format",
        choices=names.DATASET_FORMATS,
        default=None,
        help="format of a dataset folder (default: detected; a spec names its own)",
    )
    c.add_argument("--train-split", default=None, help="default: the spec's, else 'train'")
    c.add_argument("--val-split", default=None, help="default: the spec's, else 'val'")
    c.add_argument(
        "--check-images",
        type=int_in(0),
        default=None,
        metavar="N",
        help="decode N image files per split, evenly spaced (0: none; default: all)",
    )
    c.add_argument(
        "--on-bad-image",
        choices=names.ON_BAD_IMAGE,
        default=None,
        help="an image file that cannot be decoded: refuse (exit 2, the default) or skip it (counted); "
        "default: the spec's",
    )
    c.set_defaults(handler=_check)


def _synth(args: argparse.Namespace) -> int:
    try:
        summary = generate_synthetic(
            args.out,
            seed=args.seed,
            num_train=args.num_train,
            num_val=args.num_val,
            image_size=args.image_size,
            num_classes=args.num_classes,
            overwrite=args.overwrite,
        )
    except ValueError as e:
        if isinstance(e, DatasetError):
            raise
        raise SpecError(str(e)) from None
    print(json.dumps(summary, indent=2))
    return 0


def _dataset_spec(args: argparse.Namespace) -> DatasetSpec:
    target = Path(args.target)
    if target.is_file():
        dataset = parse_spec(target).dataset
        if args.format and args.format != dataset.format:
            raise SpecError(
                f"--format {args.format} contradicts the spec's dataset.format {dataset.format}",
                param="dataset.format",
            )
    elif target.is_dir():
        dataset = DatasetSpec(format=args.format or detect_format(target), path=str(target))
    else:
        raise DatasetError(f"not a spec file or dataset folder: {target}", param="dataset.path")
    fields = (
        ("train_split", args.train_split),
        ("val_split", args.val_split),
        ("on_bad_image", args.on_bad_image),
    )
    updates = {k: v for k, v in fields if v}
    return dataset.model_copy(update=updates) if updates else dataset


class _SplitBars:
    """A progress bar per split on stderr (none when stderr is not a terminal)."""

    def __init__(self) -> None:
        self.bars: list[tqdm] = []

    def __call__(self, split: str) -> Callable[[int, int], None]:
        bar: list[tqdm] = []  # made at the first image, when the total is known

        def update(done: int, total: int) -> None:
            if not bar:
                bar.append(tqdm(total=total, desc=f"decoding {split}", unit="img", disable=None))
                self.bars.append(bar[0])
            bar[0].update(1)

        return update

    def close(self) -> None:
        for bar in self.bars:
            bar.close()


def _check(args: argparse.Namespace) -> int:
    check = True if args.check_images is None else args.check_images
    bars = _SplitBars()
    try:
        report = inspect_dataset(_dataset_spec(args), check_images=check, progress=bars)
    finally:
        bars.close()
    print(json.dumps(report.to_dict(), indent=2))
    return 0
