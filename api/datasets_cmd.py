"""``mar datasets upload|list|show|delete``: datasets on the API (``MAR_API_URL`` / ``MAR_API_KEY``).

``upload`` takes an archive as it is, or a folder, which it packs into a temporary ``.tar.gz``
first (symbolic links inside it are refused by the server, not followed).
"""

from __future__ import annotations

import argparse
import gzip
import tarfile
import tempfile
from pathlib import Path

from tqdm import tqdm

from api.client_cmd import client_flags, make_client
from api.schemas import DatasetPublic
from api.sdk import MarClient
from api.services.archives import ARCHIVE_SUFFIXES
from mar_core import names
from mar_core.errors import DatasetError


def pack_folder(folder: Path, out_dir: Path) -> Path:
    """``folder`` as ``out_dir/<name>.tar.gz`` (one top folder named like ``folder``). The same
    files give the same bytes (entries in name order, no time in the gzip header), so an upload
    of an unchanged folder is recognised by its sha256 and not sent again."""
    archive = out_dir / f"{folder.resolve().name}.tar.gz"
    with open(archive, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w") as tf:
            tf.add(folder, arcname=folder.resolve().name)
    return archive


def archive_of(source: Path, tmp: Path, param: str = "source") -> Path:
    """``source`` itself when it is an archive, else the folder packed into ``tmp``; a
    ``DatasetError`` naming ``param`` for anything else."""
    if source.is_dir():
        return pack_folder(source, tmp)
    if source.is_file() and source.name.lower().endswith(ARCHIVE_SUFFIXES):
        return source
    raise DatasetError(f"{source}: not a folder or an archive ({', '.join(ARCHIVE_SUFFIXES)})", param=param)


def _line(d: DatasetPublic) -> str:
    images = sum(s.get("images", 0) for s in d.report.get("splits", {}).values())
    created = d.created_at.isoformat()[:19].replace("T", " ")
    return f"{d.id:<34}{d.format:<7}{','.join(d.splits):<22}{images:>8}  {created:<21}{d.name}"


def upload_with_bar(
    client: MarClient, archive: Path, name: str | None, fmt: str | None, on_bad_image: str | None
) -> DatasetPublic:
    """``client.upload_dataset`` with a progress bar of the bytes sent."""
    with tqdm(total=archive.stat().st_size, unit="B", unit_scale=True, desc="upload", disable=None) as bar:
        return client.upload_dataset(
            archive, name=name, fmt=fmt, on_bad_image=on_bad_image, on_read=bar.update
        )


def cmd_upload(args: argparse.Namespace) -> int:
    with make_client(args) as client, tempfile.TemporaryDirectory(prefix="mar-upload-") as tmp:
        archive = archive_of(Path(args.source), Path(tmp))
        dataset = upload_with_bar(
            client, archive, name=args.name, fmt=args.format, on_bad_image=args.on_bad_image
        )
    print(dataset.id)
    for warning in dataset.report.get("warnings", []):
        print(f"warning: {warning}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        page = client.list_datasets(limit=args.limit)
    print(f"{'ID':<34}{'FORMAT':<7}{'SPLITS':<22}{'IMAGES':>8}  {'CREATED':<21}NAME")
    for d in page.data:
        print(_line(d))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        print(client.get_dataset(args.id).model_dump_json(indent=2))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        client.delete_dataset(args.id)
    print(f"deleted {args.id}")
    return 0


def register(add) -> None:
    """Add ``datasets`` with its actions; ``add(name)`` returns a command's parser."""
    p = add("datasets")
    sub = p.add_subparsers(dest="datasets_command", required=True, metavar="ACTION")
    u = sub.add_parser("upload", help="upload a dataset folder or archive; prints its id")
    u.add_argument("source", help=f"a dataset folder, or an archive ({', '.join(ARCHIVE_SUFFIXES)})")
    u.add_argument("--format", choices=names.DATASET_FORMATS, default=None, help="default: detected")
    u.add_argument("--name", default=None, help="default: the file or folder name")
    u.add_argument(
        "--on-bad-image",
        choices=names.ON_BAD_IMAGE,
        default=None,
        help="an image file that cannot be decoded: refuse the upload (default), or skip it (counted)",
    )
    u.set_defaults(handler=cmd_upload)
    ls = sub.add_parser("list", help="uploaded datasets, newest first")
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(handler=cmd_list)
    show = sub.add_parser("show", help="one dataset: splits, counts, warnings (JSON)")
    show.add_argument("id")
    show.set_defaults(handler=cmd_show)
    rm = sub.add_parser("delete", help="delete a dataset no unfinished job reads")
    rm.add_argument("id")
    rm.set_defaults(handler=cmd_delete)
    for action in (u, ls, show, rm):
        client_flags(action)
