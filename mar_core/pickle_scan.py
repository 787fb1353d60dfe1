"""Read a checkpoint's pickles without running them: does ``torch.load(weights_only=True)`` accept
them? Torch-free, so the API refuses a code-running pickle at upload (the worker loads it with
``weights_only=True`` anyway; this says so at once, naming what it calls).

``scan_checkpoint(path)`` walks the opcodes (``pickletools.genops``, which never imports or calls
anything) of every pickle torch would read: each ``*.pkl`` of a zip checkpoint (``torch.save``'s
format since 1.6), or the five pickles at the head of a legacy one (magic number, protocol,
system info, the object, its storage keys). It raises ``UnsafePickle`` at the first opcode or
global that torch's weights-only unpickler (``torch/_weights_only_unpickler.py``) does not
allow. The allow-lists below are that unpickler's, written out; a test compares them with the
installed torch's.

Hand-written rather than with ``fickling``: fickling judges a pickle by heuristics (a list of
known-bad calls and patterns), while the question here is the exact allow-list of one loader.
"""

from __future__ import annotations

import _compat_pickle
import pickletools
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# A state_dict's pickle is kilobytes (its tensors are stored beside it); a longer one is refused
# rather than walked opcode by opcode.
MAX_PICKLE_BYTES = 64 * 1024**2
LEGACY_PICKLES = 5  # magic number, protocol version, system info, the object, the storage keys
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# The opcodes torch's weights-only unpickler implements (any other: "Unsupported operand").
WEIGHTS_ONLY_OPCODES = frozenset(
    """APPEND APPENDS BINFLOAT BINGET BININT BININT1 BININT2 BINPERSID BINPUT BINUNICODE BUILD
    EMPTY_DICT EMPTY_LIST EMPTY_SET EMPTY_TUPLE GLOBAL LONG1 LONG_BINGET LONG_BINPUT MARK NEWFALSE
    NEWOBJ NEWTRUE NONE PROTO REDUCE SETITEM SETITEMS SHORT_BINSTRING STOP TUPLE TUPLE1 TUPLE2
    TUPLE3""".split()
)

_SCALARS = ("BFloat16", "Bool", "Byte", "Char", "Double", "Float", "Half", "Int", "Long", "Short")
_SPARSE = tuple(s for s in _SCALARS if s != "Bool")
_COMPLEX = ("ComplexDouble", "ComplexFloat")
_QUANTISED = ("QInt32", "QInt8", "QUInt2x4", "QUInt4x2", "QUInt8")
_DTYPES = (
    "bcomplex32 bfloat16 bits16 bits1x8 bits2x4 bits4x2 bits8 bool complex128 complex32 complex64 "
    "float16 float32 float4_e2m1fn_x2 float64 float8_e4m3fn float8_e4m3fnuz float8_e5m2 "
    "float8_e5m2fnuz float8_e8m0fnu qint32 qint8 quint2x4 quint4x2 quint8 "
    + " ".join(f"int{n} uint{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64))
).split()
_REBUILDS = (
    "device_tensor_from_cpu_tensor device_tensor_from_numpy meta_tensor_no_storage nested_tensor "
    "parameter parameter_with_state qtensor sparse_tensor tensor tensor_v2 tensor_v3 wrapper_subclass"
).split()
_QSCHEMES = (
    "per_channel_affine per_channel_affine_float_qparams per_channel_symmetric per_tensor_affine per_tensor_symmetric"
).split()

# The globals torch's weights-only unpickler allows by default (``_get_allowed_globals``).
WEIGHTS_ONLY_GLOBALS = frozenset(
    {
        "_codecs.encode",
        "builtins.bytearray",
        "builtins.complex",
        "builtins.set",
        "collections.Counter",
        "collections.OrderedDict",
        "torch.Size",
        "torch.Tensor",
        "torch.device",
        "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout",
        "torch.storage.TypedStorage",
        "torch.storage.UntypedStorage",
        "torch._tensor._rebuild_from_type_v2",
        *(f"torch.{d}" for d in _DTYPES),
        *(f"torch.{q}" for q in _QSCHEMES),
        *(f"torch._utils._rebuild_{r}" for r in _REBUILDS),
        *(f"torch.{s}Tensor" for s in _SCALARS),
        *(f"torch.cuda.{s}Tensor" for s in _SCALARS),
        *(f"torch.sparse.{s}Tensor" for s in _SPARSE),
        *(f"torch.cuda.sparse.{s}Tensor" for s in _SPARSE),
        *(f"torch.{s}Storage" for s in (*_SCALARS, *_COMPLEX, *_QUANTISED)),
        *(f"torch.cuda.{s}Storage" for s in (*_SCALARS, *_COMPLEX)),
    }
)


class UnsafePickle(ValueError):
    """A checkpoint ``torch.load(weights_only=True)`` would refuse; the message says what it calls."""


class ForbiddenPickle(UnsafePickle):
    """A readable pickle with a global or opcode outside the allow-lists (one that may run code)."""


class _Limited:
    """A read-only view of ``src`` that raises once more than ``limit`` bytes were read."""

    def __init__(self, src: BinaryIO, limit: int):
        self.src, self.left = src, limit

    def _take(self, data: bytes) -> bytes:
        self.left -= len(data)
        if self.left < 0:
            raise UnsafePickle(
                f"its pickle is longer than {MAX_PICKLE_BYTES} bytes (a state_dict's is kilobytes)"
            )
        return data

    def read(self, n: int = -1) -> bytes:
        return self._take(self.src.read(n))

    def readline(self) -> bytes:
        return self._take(self.src.readline())


def _global_name(arg: str) -> str:
    """``module.name`` of a GLOBAL argument, after the Python 2 renames the unpickler applies."""
    module, _, name = arg.partition(" ")
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def scan_pickle(src: BinaryIO, where: str) -> list[tuple[str, object]]:
    """Check one pickle read from ``src`` (left just after its STOP); returns its ``(opcode, arg)``
    pairs. ``UnsafePickle`` naming the first global outside the allow-list, else the first opcode
    outside it (the whole pickle is walked, so a global is named even after such an opcode)."""
    ops: list[tuple[str, object]] = []
    bad_opcode = None
    try:
        for opcode, arg, _pos in pickletools.genops(_Limited(src, MAX_PICKLE_BYTES)):
            name = None
            if opcode.name == "GLOBAL":
                name = _global_name(str(arg))
            elif opcode.name == "STACK_GLOBAL":  # protocol 4+: the global is the two strings before it
                strings = [a for _, a in ops if isinstance(a, str)][-2:]
                name = ".".join(strings) + " (by STACK_GLOBAL)" if len(strings) == 2 else None
            if name is not None and name not in WEIGHTS_ONLY_GLOBALS:
                raise ForbiddenPickle(
                    f"{where} calls {name}, which torch.load(weights_only=True) refuses "
                    "(a pickle that runs code; save a state_dict of tensors)"
                )
            if opcode.name not in WEIGHTS_ONLY_OPCODES and bad_opcode is None:
                bad_opcode = opcode.name
            ops.append((opcode.name, arg))
    except UnsafePickle:
        raise
    except (ValueError, EOFError, OSError) as e:
        raise UnsafePickle(f"{where} is not a readable pickle ({e})") from None
    if bad_opcode is not None:
        raise UnsafePickle(
            f"{where} uses the pickle opcode {bad_opcode}, which torch.load(weights_only=True) refuses"
        )
    return ops


def _zip_pickles(path: Path) -> Iterator[tuple[str, BinaryIO]]:
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.endswith(".pkl")]
        if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            raise UnsafePickle("the zip file is not a torch checkpoint (no data.pkl)")
        for name in names:
            with zf.open(name) as member:
                yield f"{name} of the checkpoint", member  # type: ignore[misc]


def scan_checkpoint(path: Path) -> None:
    """Raise ``UnsafePickle`` when ``torch.load(path, weights_only=True)`` would refuse one of
    the file's pickles; a file torch would read without a pickle (safetensors) is not passed here."""
    if zipfile.is_zipfile(path):
        try:
            for where, member in _zip_pickles(path):
                scan_pickle(member, where)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as e:
            raise UnsafePickle(f"the zip file is not a readable torch checkpoint ({e})") from None
        return
    with open(path, "rb") as f:
        first = scan_pickle(f, "the checkpoint")
        if ("LONG1", LEGACY_MAGIC) not in first:  # torch reads it (safely) and stops there
            raise UnsafePickle("the file is neither a zip nor a legacy torch checkpoint (no magic number)")
        for n in range(1, LEGACY_PICKLES):
            scan_pickle(f, f"pickle {n + 1} of the legacy checkpoint")
