"""Refuse a batch the device cannot hold before the first step, and report an out-of-memory step
as a job error (never by exhausting the host).

``check_batch_fits`` runs two dry training steps (forward and backward, no optimizer step) on one
and on two images of the training set and counts the bytes of the tensors autograd saves for the
backward pass (``saved_tensors_hooks``; each storage once, parameters left out): what a step holds
at its peak and what grows with the batch. The extra memory a step at batch B needs is then
``fixed + B * per_image`` (``per_image`` = the difference of the two counts; ``fixed`` adds the
gradients and two optimizer states per trainable parameter); it must fit in 90 % of what the device
has free (``torch.cuda.mem_get_info``; ``MemAvailable`` of ``/proc/meminfo``). Counting tensors,
not the process's memory, makes the figure independent of what the allocator keeps cached. The
model, its buffers and every RNG are left exactly as they were. Where the free memory cannot be
read (not Linux), the check is skipped and says so in the log.
"""

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from mar_core.engine.precision import autocast_in
from mar_core.engine.rng import get_rng_state, set_rng_state
from mar_core.errors import InsufficientMemoryError

log = logging.getLogger(__name__)

HEADROOM = 0.9  # the share of the free memory a step may plan to use
OOM_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory")


def _proc_kib(path: str, field: str) -> int | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_bytes(device: torch.device) -> int | None:
    """Memory free for a new allocation on ``device``, or None when it cannot be read."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    kib = _proc_kib("/proc/meminfo", "MemAvailable")
    return None if kib is None else kib * 1024


def _saved_bytes_of_step(model: nn.Module, images: Sequence[torch.Tensor], targets: Sequence[dict]) -> int:
    """Bytes of the storages autograd saves in one forward (each once; parameters left out), then
    the backward that frees them."""
    skip = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in skip and ptr not in seen:
            seen.add(ptr)
            total += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        losses = model(list(images), list(targets))
    sum(losses.values()).backward()
    return total


def check_batch_fits(
    model: nn.Module,
    samples: Sequence[tuple[torch.Tensor, dict]],
    batch_size: int,
    device: torch.device,
    autocast: torch.dtype | None = None,
) -> dict[str, int] | None:
    """Raise ``InsufficientMemoryError`` when a step at ``batch_size`` would not fit; else the
    estimate ``{"fixed", "per_image", "needed", "available"}`` in bytes (None: not measurable).
    ``samples``: two ``(image, target)`` of the training set; ``autocast``: the step's dtype."""
    if batch_size <= 1 or len(samples) < 2:
        return None
    moved = [
        (img.to(device), {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in t.items()})
        for img, t in samples[:2]
    ]
    rng = get_rng_state()
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    was_training = model.training
    model.train()
    try:
        with autocast_in(device.type, autocast):
            one = _saved_bytes_of_step(model, [moved[0][0]], [moved[0][1]])
            model.zero_grad(set_to_none=True)
            two = _saved_bytes_of_step(model, [m[0] for m in moved], [m[1] for m in moved])
    except (torch.OutOfMemoryError, RuntimeError) as e:
        if not is_out_of_memory(e):
            raise
        raise out_of_memory_error(batch_size, "a dry step of one or two images") from None
    finally:
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        model.train(was_training)
        set_rng_state(rng)
    free = available_bytes(device)
    if free is None:
        log.info("memory check skipped: the free memory of %s cannot be read here", device)
        return None
    per_image = max(0, two - one)
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    fixed = max(0, one - per_image) + 3 * trainable  # + gradients and two optimizer states
    needed = fixed + batch_size * per_image
    estimate = {"fixed": fixed, "per_image": per_image, "needed": needed, "available": free}
    log.info(
        "memory check at batch %d: %s", batch_size, {k: f"{v / 2**20:.0f} MiB" for k, v in estimate.items()}
    )
    if needed > HEADROOM * free:
        raise InsufficientMemoryError(
            f"train.batch_size: a training step at batch {batch_size} needs about {needed / 2**30:.1f} GiB "
            f"more ({per_image / 2**20:.0f} MiB per image, measured by a dry step) and the {device.type} has "
            f"{free / 2**30:.1f} GiB free: lower train.batch_size or the image size (model.max_size)",
            param="train.batch_size",
        )
    return estimate


def is_out_of_memory(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or any(m in str(e) for m in OOM_MESSAGES)


def out_of_memory_error(batch_size: int, where: str) -> InsufficientMemoryError:
    return InsufficientMemoryError(
        f"train.batch_size: {where} ran out of memory at batch {batch_size}: lower train.batch_size "
        "or the image size (model.max_size)",
        param="train.batch_size",
    )
