"""Core images: every configuration memory of one neurocore in one checksummed file.

An image file (format version 5, docs/image_format.md) is, in this order:

=========  ==================  ===========================================================
offset     size (bytes)        content
=========  ==================  ===========================================================
0          8                   magic ``b"NCIMAGE\\x00"``
8          4                   format version, uint32 little-endian (:data:`FORMAT_VERSION`)
12         4                   metadata length ``M`` in bytes, uint32 little-endian
16         M                   metadata, UTF-8 JSON (below)
16 + M     P                   payload: each memory's words as little-endian uint64
16 + M + P 32                  SHA-256 of bytes ``0 … 16 + M + P − 1``
=========  ==================  ===========================================================

The metadata is a JSON object with keys ``geometry`` (every :class:`CoreGeometry` field),
``memories`` (one entry per memory of :data:`~neurocore.golden.network.CONFIG_MEMORIES`, in
:func:`~neurocore.spec.words.memories` order: ``name``, ``depth`` in words, ``word_bits``,
``offset`` and ``length`` in bytes from the payload start; memories are contiguous) and,
for images written by :func:`save_program`, ``program``: the host-side fields of a
:class:`~neurocore.sw.compiler.QuartzProgram` (arrays as lists, layer reports as objects).
Not stored: the fields that :func:`~neurocore.sw.convert.from_model` fills in
(``normalized_model``, ``fold_report``, ``lambdas``) and ``integers`` (per-layer integer
matrices, which the memories hold); a loaded program has their defaults.

Version 2 came with conv descriptors (docs/spec.md §3.5): the geometry has the fields
``n_conv``, ``conv_channel_bits`` and ``conv_side_bits``, and a geometry with ``n_conv > 0``
has a ``conv`` memory and wider ``synapse_map`` words.  Version 1 images (written before) are
still read: their geometry lacks those three fields and is read with ``n_conv = 0``, whose
memories and words are exactly version 1's.

Version 3 came with chips (docs/spec.md §10): the geometry has the field ``n_cores`` (1 for
every image of one core: its words are version 2's), and a program spread over a chip has the
metadata key ``chip`` (:data:`CHIP_PROGRAM_FIELDS`): the chip geometry, the core of every
compartment and the load estimate.  Version 1 and 2 images are read with ``n_cores = 1``.

Version 4 came with the periodic reset (docs/spec.md §11): the geometry has the field
``reset_bits`` (0 for a core without periodic reset: its words are version 3's), and with
``reset_bits > 0`` the ``profiles`` words have the fields ``reset_interval`` and
``reset_offset``.  A pipelined program stores the program fields ``stream_period`` (steps
between images) and ``stream_readout`` (first step of an image's output window), both 0 when
unpipelined.  Version 1–3 images are read with ``reset_bits = 0``; a hex manifest that lacks
``n_cores`` or ``reset_bits`` is read the same way.

Version 5 came with the read registers (docs/rtl.md §2.1): the geometry has the field
``read_regs`` (its words are version 4's; it changes the core's schedule, not a result).
Version 1–4 images, and hex manifests without the field, are read with ``read_regs = 0``, the
pipeline the cores had when they were written.

:func:`load_config` and :func:`load_program` reject any file they cannot read exactly with an
:class:`ImageFormatError` that names the file and the bad value; nothing is repaired or guessed.

:func:`write_hex` writes one ``$readmemh`` file per memory (one word per line, MSB first,
``ceil(bits/4)`` lower-case hex digits) and a ``manifest.json``; :func:`read_hex` reads them back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import struct
from pathlib import Path

import numpy as np

from ..golden.network import CONFIG_MEMORIES, ConfigError, CoreConfig
from ..spec.geometry import CoreGeometry
from ..spec.words import Memory, memories
from .compiler import QuartzProgram
from .program_fields import ProgramFieldError, decode_program

__all__ = ["ImageFormatError", "save_config", "load_config", "save_program", "load_program",
           "program_metadata", "chip_metadata", "write_hex", "read_hex", "MAGIC",
           "FORMAT_VERSION", "READ_VERSIONS", "UNSTORED_PROGRAM_ATTRIBUTES",
           "UNSTORED_PROGRAM_FIELDS", "CHIP_PROGRAM_FIELDS"]

#: First 8 bytes of every image file.
MAGIC = b"NCIMAGE\x00"
#: The image format version this build writes.
FORMAT_VERSION = 5
#: The format versions this build reads (:data:`V1_GEOMETRY_DEFAULTS`,
#: :data:`V2_GEOMETRY_DEFAULTS`, :data:`V3_GEOMETRY_DEFAULTS`, :data:`V4_GEOMETRY_DEFAULTS`).
READ_VERSIONS = (1, 2, 3, 4, 5)
#: Geometry fields that a version-1 image does not have (it predates conv descriptors, spec
#: §3.5), and the values it is read with: no conv memory, version 1's memories and words.
V1_GEOMETRY_DEFAULTS = {f.name: f.default for f in dataclasses.fields(CoreGeometry)
                        if f.name in ("n_conv", "conv_channel_bits", "conv_side_bits")}
#: Geometry fields that version 1 and 2 images do not have (they predate chips, spec §10), and
#: the values they are read with: a single core, whose route words have no core field.
V2_GEOMETRY_DEFAULTS = {f.name: f.default for f in dataclasses.fields(CoreGeometry)
                        if f.name == "n_cores"}
#: Geometry fields that version 1–3 images do not have (they predate the periodic reset, spec
#: §11), and the values they are read with: profile words without reset fields.
V3_GEOMETRY_DEFAULTS = {f.name: f.default for f in dataclasses.fields(CoreGeometry)
                        if f.name == "reset_bits"}
#: Geometry fields that version 1–4 images do not have (they predate the read registers,
#: docs/rtl.md §2.1), and the values they are read with: the pipeline without them.
V4_GEOMETRY_DEFAULTS = {f.name: f.default for f in dataclasses.fields(CoreGeometry)
                        if f.name == "read_regs"}
#: Fixed header: magic, format version (uint32 LE), metadata length in bytes (uint32 LE).
HEADER = struct.Struct("<8sII")
#: Storage type of one memory word in the payload.
WORD_DTYPE = np.dtype("<u8")
#: Largest metadata length (bytes) the loader reads; a larger header value is rejected unread.
MAX_METADATA_BYTES = 64 << 20
#: Size of the trailing SHA-256 digest.
CHECKSUM_BYTES = hashlib.sha256().digest_size
#: Keys of one entry of the metadata's ``memories`` list.
MEMORY_ENTRY_KEYS = ("name", "depth", "word_bits", "offset", "length")
#: Top-level metadata keys: required, then optional.
REQUIRED_METADATA_KEYS = ("geometry", "memories")
OPTIONAL_METADATA_KEYS = ("program", "chip")
#: QuartzProgram fields stored in the metadata's ``chip`` section rather than ``program``.
CHIP_PROGRAM_FIELDS = ("partition", "chip_load")
#: Attributes attached to a QuartzProgram after construction: none any more (every one is a
#: declared field; the unstored ones are in :data:`UNSTORED_PROGRAM_FIELDS`).
UNSTORED_PROGRAM_ATTRIBUTES = ()
#: QuartzProgram fields an image does not hold (the integer matrices, which the memories hold,
#: and what from_model keeps of the torch side); a loaded program gets their defaults.
UNSTORED_PROGRAM_FIELDS = ("integers", "normalized_model", "fold_report", "lambdas")

#: Hex export: manifest file name, its format tag and version, hex file suffix.
HEX_MANIFEST = "manifest.json"
HEX_FORMAT = "neurocore-readmemh"
HEX_FORMAT_VERSION = 1
HEX_SUFFIX = ".hex"
BITS_PER_HEX_DIGIT = 4


class ImageFormatError(ValueError):
    """A file that is not a readable core image; the message names the file and the value."""


# ---- helpers ---------------------------------------------------------------------------
def _config_memories(g: CoreGeometry) -> list[Memory]:
    """The configuration memories, in :func:`memories` order."""
    return [m for name, m in memories(g).items() if name in CONFIG_MEMORIES]


def _fail(where, message: str) -> ImageFormatError:
    return ImageFormatError(f"{where}: {message}")


def _jsonable(value, what: str):
    """Convert numpy arrays/scalars, tuples and dataclasses to plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value), what)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{what}[{k!r}]") for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{what}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"{what} is a {type(value).__name__}, which an image cannot store")


def _geometry_from_metadata(where, raw, version: int = FORMAT_VERSION) -> CoreGeometry:
    names = [f.name for f in dataclasses.fields(CoreGeometry)]
    if version == 1 and isinstance(raw, dict) and not set(V1_GEOMETRY_DEFAULTS) & set(raw):
        raw = {**raw, **V1_GEOMETRY_DEFAULTS}      # a geometry from before conv descriptors
    if version <= 2 and isinstance(raw, dict) and not set(V2_GEOMETRY_DEFAULTS) & set(raw):
        raw = {**raw, **V2_GEOMETRY_DEFAULTS}      # a geometry from before chips
    if version <= 3 and isinstance(raw, dict) and not set(V3_GEOMETRY_DEFAULTS) & set(raw):
        raw = {**raw, **V3_GEOMETRY_DEFAULTS}      # a geometry from before periodic reset
    if version <= 4 and isinstance(raw, dict) and not set(V4_GEOMETRY_DEFAULTS) & set(raw):
        raw = {**raw, **V4_GEOMETRY_DEFAULTS}      # a geometry from before read registers
    if not isinstance(raw, dict) or sorted(raw) != sorted(names):
        keys = sorted(raw) if isinstance(raw, dict) else raw
        raise _fail(where, f"metadata geometry {keys!r} does not have exactly the fields "
                           f"{names}")
    try:
        return CoreGeometry(**raw)
    except (TypeError, ValueError) as e:
        raise _fail(where, f"metadata geometry is invalid: {e}") from None


def _check_hex_geometry(where, recorded, geometry: CoreGeometry) -> None:
    wanted = dataclasses.asdict(geometry)
    for defaults in (V2_GEOMETRY_DEFAULTS, V3_GEOMETRY_DEFAULTS, V4_GEOMETRY_DEFAULTS):
        if isinstance(recorded, dict) and not set(defaults) & set(recorded):
            recorded = {**recorded, **defaults}   # a manifest from before n_cores / reset_bits
    if recorded != wanted:
        diff = {k: (recorded.get(k) if isinstance(recorded, dict) else None, v)
                for k, v in wanted.items()
                if not isinstance(recorded, dict) or recorded.get(k) != v}
        raise _fail(where, f"geometry differs from the requested one (field: (recorded, "
                           f"requested)): {diff}")


def _check_word_widths(where, name: str, words: np.ndarray, bits: int) -> None:
    """Reject words with bits set above the memory's width (they would be dropped silently)."""
    if bits >= 64:
        return
    over = (words >> np.uint64(bits)) != 0
    if over.any():
        i = int(np.flatnonzero(over)[0])
        raise _fail(where, f"memory {name!r} word {i} = {int(words[i]):#x} has bits set above "
                           f"its {bits}-bit width")


def _build_config(where, geometry: CoreGeometry, words: dict[str, np.ndarray]) -> CoreConfig:
    try:
        return CoreConfig.from_words(geometry, words)
    except ConfigError as e:
        raise _fail(where, f"invalid configuration: {e}") from None


# ---- image files -----------------------------------------------------------------------
def save_config(path: str | os.PathLike, config: CoreConfig, program_meta: dict | None = None,
                chip: dict | None = None) -> Path:
    """Write ``config`` (validated first) as an image file; return its path.

    ``program_meta``, if given, must be JSON-able after numpy arrays become lists; it is
    stored under the metadata key ``program``.
    """
    config.validate()
    words = config.to_words()
    table, chunks, offset = [], [], 0
    for mem in _config_memories(config.geometry):
        raw = np.asarray(words[mem.name], dtype=WORD_DTYPE).tobytes()
        table.append(dict(name=mem.name, depth=mem.depth, word_bits=mem.layout.size,
                          offset=offset, length=len(raw)))
        chunks.append(raw)
        offset += len(raw)
    meta = {"geometry": dataclasses.asdict(config.geometry), "memories": table}
    if program_meta is not None:
        meta["program"] = _jsonable(program_meta, "program metadata")
    if chip is not None:
        meta["chip"] = _jsonable(chip, "chip metadata")
    meta_bytes = json.dumps(meta, allow_nan=False).encode("utf-8")
    body = HEADER.pack(MAGIC, FORMAT_VERSION, len(meta_bytes)) + meta_bytes + b"".join(chunks)
    path = Path(path)
    path.write_bytes(body + hashlib.sha256(body).digest())
    return path


def _described_size(data: bytes, meta_end: int) -> int | None:
    """Total file size that the metadata describes, or None if it does not parse."""
    try:
        meta = json.loads(data[HEADER.size:meta_end].decode("utf-8"))
        return meta_end + sum(int(m["length"]) for m in meta["memories"]) + CHECKSUM_BYTES
    except Exception:  # noqa: BLE001 - only a diagnosis; the checksum error follows
        return None


def _size_error(where, actual: int, expected: int) -> ImageFormatError:
    if actual < expected:
        return _fail(where, f"truncated: the file has {actual} bytes, expected {expected}")
    return _fail(where, f"the file has {actual} bytes, expected {expected}: "
                        f"{actual - expected} trailing bytes")


def _parse_metadata(where, raw: bytes) -> dict:
    try:
        meta = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise _fail(where, "metadata JSON invalid: nested too deeply") from None
    except UnicodeDecodeError as e:
        raise _fail(where, f"metadata JSON invalid: byte {raw[e.start]:#04x} at metadata offset "
                           f"{e.start} is not UTF-8") from None
    except json.JSONDecodeError as e:
        near = raw[max(0, e.pos - 20):e.pos + 20]
        raise _fail(where, f"metadata JSON invalid: {e.msg} at metadata offset {e.pos} "
                           f"(near {near!r})") from None
    except ValueError as e:  # e.g. an integer literal of more than 4,300 digits
        raise _fail(where, f"metadata JSON invalid: {e}") from None
    if not isinstance(meta, dict):
        raise _fail(where, f"metadata JSON is a {type(meta).__name__}, expected an object")
    missing = [k for k in REQUIRED_METADATA_KEYS if k not in meta]
    unknown = sorted(set(meta) - set(REQUIRED_METADATA_KEYS) - set(OPTIONAL_METADATA_KEYS))
    if missing or unknown:
        raise _fail(where, f"metadata keys: missing {missing}, unknown {unknown}")
    return meta


def _payload_layout(where, entries, g: CoreGeometry) -> list[tuple[Memory, int]]:
    """Check the metadata's memory table against ``g``; return (memory, payload offset)."""
    expected = _config_memories(g)
    if not isinstance(entries, list):
        raise _fail(where, f"metadata memories {entries!r} is not a list")
    names = [e.get("name") if isinstance(e, dict) else e for e in entries]
    if names != [m.name for m in expected]:
        raise _fail(where, f"memories {names} do not match this build's configuration memories "
                           f"{[m.name for m in expected]}")
    layout, offset = [], 0
    for entry, mem in zip(entries, expected):
        if sorted(entry) != sorted(MEMORY_ENTRY_KEYS) or not all(
                isinstance(entry[k], int) for k in MEMORY_ENTRY_KEYS if k != "name"):
            raise _fail(where, f"memory entry {entry!r} must have exactly the integer fields "
                               f"{list(MEMORY_ENTRY_KEYS[1:])} besides its name")
        length = mem.depth * WORD_DTYPE.itemsize
        checks = (("depth", mem.depth, f"geometry {g.name!r} needs"),
                  ("word_bits", mem.layout.size, "this build's word layout has"),
                  ("offset", offset, "memories are contiguous, so it must be"),
                  ("length", length, "its depth needs"))
        for key, want, why in checks:
            if entry[key] != want:
                raise _fail(where, f"memory {mem.name!r} has {key} {entry[key]} in the image; "
                                   f"{why} {want}")
        layout.append((mem, offset))
        offset += length
    return layout


def _open_image(where: str, path):
    """Open a regular file for reading, or raise :class:`ImageFormatError` saying why not."""
    p = Path(path)
    if p.is_dir():
        raise _fail(where, "is a directory, not an image file")
    if p.exists() and not p.is_file():
        raise _fail(where, "is not a regular file (a device or a pipe), not an image file")
    try:
        return p.open("rb")
    except OSError as e:
        raise _fail(where, f"cannot be read: {e.strerror or e}") from None


def _checksum_ok(head: bytes, f, stored_at: int) -> tuple[bool, bytes, bytes]:
    """Hash ``head`` and the file from its position up to ``stored_at`` in chunks; return
    (match, stored digest, computed digest)."""
    h = hashlib.sha256(head)
    left = stored_at - len(head)
    while left > 0:
        chunk = f.read(min(left, 1 << 20))
        h.update(chunk)
        left -= len(chunk)
    stored = f.read(CHECKSUM_BYTES)
    return stored == h.digest(), stored, h.digest()


def _read_header(where, f, size: int) -> tuple[bytes, int, int]:
    """Read and check the fixed header and the metadata (bounded); return (bytes read, M,
    format version)."""
    head = f.read(HEADER.size)
    if len(head) < HEADER.size:
        raise _fail(where, f"truncated: the file has {size} bytes, expected at least "
                           f"{HEADER.size} (the fixed header)")
    magic, version, meta_len = HEADER.unpack(head)
    if magic != MAGIC:
        raise _fail(where, f"not a neurocore image: magic {magic!r}, expected {MAGIC!r}")
    if version not in READ_VERSIONS:
        raise _fail(where, f"format version {version}; this build reads versions "
                           f"{', '.join(map(str, READ_VERSIONS))}")
    if meta_len > MAX_METADATA_BYTES:
        raise _fail(where, f"metadata length {meta_len} bytes exceeds the limit of "
                           f"{MAX_METADATA_BYTES}")
    meta_end = HEADER.size + meta_len
    if size < meta_end + CHECKSUM_BYTES:
        raise _fail(where, f"truncated: the file has {size} bytes, expected at least "
                           f"{meta_end + CHECKSUM_BYTES} (header, {meta_len} bytes of "
                           f"metadata, checksum)")
    return head + f.read(meta_len), meta_len, version


def _read_image(path: str | os.PathLike) -> tuple[dict, CoreConfig, int]:
    """Read and check an image file; return (metadata, validated config, format version).

    The header is read first and the metadata length is bounded, so no file is read whole
    before it is known to be an image of a plausible size.
    """
    where = str(path)
    with _open_image(where, path) as f:
        size = os.fstat(f.fileno()).st_size
        head, meta_len, version = _read_header(where, f, size)
        meta_end = HEADER.size + meta_len
        ok, stored, computed = _checksum_ok(head, f, size - CHECKSUM_BYTES)
        if not ok:
            described = _described_size(head, meta_end)
            if described is not None and described != size:
                raise _size_error(where, size, described)
            raise _fail(where, f"checksum mismatch, the file is corrupt: stored SHA-256 "
                               f"{stored.hex()}, computed {computed.hex()}")
        f.seek(meta_end)
        payload = f.read(size - meta_end - CHECKSUM_BYTES)
    meta = _parse_metadata(where, head[HEADER.size:meta_end])
    geometry = _geometry_from_metadata(where, meta["geometry"], version)
    layout = _payload_layout(where, meta["memories"], geometry)
    expected_size = meta_end + sum(m.depth for m, _ in layout) * WORD_DTYPE.itemsize \
        + CHECKSUM_BYTES
    if size != expected_size:
        raise _size_error(where, size, expected_size)
    words = {}
    for mem, offset in layout:
        w = np.frombuffer(payload, dtype=WORD_DTYPE, count=mem.depth,
                          offset=offset).astype(np.uint64)
        _check_word_widths(where, mem.name, w, mem.layout.size)
        words[mem.name] = w
    return meta, _build_config(where, geometry, words), version


def load_config(path: str | os.PathLike) -> CoreConfig:
    """Read an image file (from :func:`save_config` or :func:`save_program`); return its
    validated :class:`CoreConfig`.  Raises :class:`ImageFormatError` for any bad file."""
    return _read_image(path)[1]


# ---- programs --------------------------------------------------------------------------
def _program_fields() -> list[dataclasses.Field]:
    """QuartzProgram fields that an image stores: all but ``config`` and the unstored ones."""
    return [f for f in dataclasses.fields(QuartzProgram)
            if f.name != "config" and f.name not in UNSTORED_PROGRAM_FIELDS
            and f.name not in CHIP_PROGRAM_FIELDS]


def program_metadata(program: QuartzProgram) -> dict:
    """Return ``program``'s host-side fields (all but ``config``) as JSON-able values."""
    return {f.name: _jsonable(getattr(program, f.name), f"program.{f.name}")
            for f in _program_fields()}


def save_program(path: str | os.PathLike, program: QuartzProgram) -> Path:
    """Write ``program``'s config and host metadata as an image file; return its path.

    Not stored: the fields in :data:`UNSTORED_PROGRAM_FIELDS` (the per-layer integer matrices,
    which the memories hold, the normalised torch model, the BatchNorm fold report and the
    normalisation factors).
    """
    return save_config(path, program.config, program_meta=program_metadata(program),
                       chip=chip_metadata(program))


def load_program(path: str | os.PathLike) -> QuartzProgram:
    """Read an image written by :func:`save_program`; return the :class:`QuartzProgram`
    (layer reports as :class:`LayerReport`, id arrays as int64 arrays; the fields in
    :data:`UNSTORED_PROGRAM_FIELDS` take their defaults).  Every program field is checked
    against the configuration and geometry (:func:`~neurocore.sw.program_fields.decode_program`)."""
    where = str(path)
    meta, config, version = _read_image(path)
    stored = meta.get("program")
    if not isinstance(stored, dict):
        raise _fail(where, f"image holds no program metadata (program = {stored!r}); it was "
                           "written by save_config, not save_program")
    names = {f.name for f in _program_fields()}
    required = {f.name for f in _program_fields()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing, unknown = sorted(required - set(stored)), sorted(set(stored) - names)
    if missing or unknown:
        raise _fail(where, f"program metadata fields: missing {missing}, unknown {unknown}")
    try:
        values = decode_program(stored, config)
    except ProgramFieldError as e:
        raise _fail(where, str(e)) from None
    if "chip" in meta:
        values.update(_chip_from_metadata(where, meta["chip"], config, version))
    return QuartzProgram(config=config, **values)


def chip_metadata(program: QuartzProgram) -> dict | None:
    """The ``chip`` section of a program spread over a chip (None on one core): the chip
    geometry, each compartment's core (-1: not placed) and the load estimate."""
    part = program.partition
    if part is None:
        return None
    chip = part.chip
    return {"geometry": {"name": chip.name, "n_cores": chip.n_cores, "mesh": list(chip.mesh),
                         "core": dataclasses.asdict(chip.core)},
            "core_of": part.core_of, "load": program.chip_load}


def _chip_from_metadata(where, raw, config: CoreConfig, version: int = FORMAT_VERSION) -> dict:
    """``partition`` and ``chip_load`` from a ``chip`` section, checked by building every core
    (:func:`~neurocore.golden.chip.build_chip`)."""
    from ..golden.chip import Partition, build_chip
    from ..spec.geometry import ChipGeometry
    keys = ("geometry", "core_of", "load")
    if not isinstance(raw, dict) or sorted(raw) != sorted(keys):
        raise _fail(where, f"chip section {sorted(raw) if isinstance(raw, dict) else raw!r} "
                           f"does not have exactly the keys {sorted(keys)}")
    geo = raw["geometry"]
    if not isinstance(geo, dict) or sorted(geo) != ["core", "mesh", "n_cores", "name"]:
        raise _fail(where, f"chip geometry {geo!r:.80} does not have exactly the keys "
                           "['core', 'mesh', 'n_cores', 'name']")
    core = _geometry_from_metadata(where, geo["core"], version)
    core_of = raw["core_of"]
    if (not isinstance(core_of, list) or len(core_of) != config.geometry.n_compartments
            or not all(isinstance(c, int) and not isinstance(c, bool) for c in core_of)):
        raise _fail(where, f"chip core_of must be {config.geometry.n_compartments} integers "
                           "(one core per compartment, -1 for none)")
    try:
        chip = ChipGeometry(name=geo["name"], core=core, n_cores=geo["n_cores"],
                            mesh=tuple(geo["mesh"]))
        part = Partition(chip=chip, core_of=np.asarray(core_of, dtype=np.int64))
        build_chip(config, part)
    except (TypeError, ValueError, KeyError) as e:
        raise _fail(where, f"chip section is invalid: {e}") from None
    _check_chip_load(where, raw["load"], chip.n_cores)
    return {"partition": part, "chip_load": raw["load"]}


#: Keys of a chip section's ``load`` (:func:`~neurocore.sw.place.chip_load`): all or none.
CHIP_LOAD_KEYS = ("flits", "hops", "images", "sops")


def _check_chip_load(where, load, n_cores: int) -> None:
    """A chip ``load``: empty (no calibration run), or ``images`` (a count) and ``sops``,
    ``flits`` and ``hops``, each ``n_cores`` numbers."""
    if not isinstance(load, dict):
        raise _fail(where, f"chip load {load!r:.60} is not an object")
    if not load:
        return
    if sorted(load) != list(CHIP_LOAD_KEYS):
        raise _fail(where, f"chip load has the keys {sorted(load)}, not {list(CHIP_LOAD_KEYS)}")
    images = load["images"]
    if not isinstance(images, int) or isinstance(images, bool) or images < 1:
        raise _fail(where, f"chip load images {images!r:.40} is not a positive integer")
    for key in ("sops", "flits", "hops"):
        v = load[key]
        if (not isinstance(v, list) or len(v) != n_cores
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                           and math.isfinite(x) and x >= 0 for x in v)):
            raise _fail(where, f"chip load {key} {v!r:.60} is not {n_cores} non-negative "
                               f"numbers (one per core of the chip)")


# ---- $readmemh export ------------------------------------------------------------------
def _hex_digits(bits: int) -> int:
    return -(-bits // BITS_PER_HEX_DIGIT)


def write_hex(directory: str | os.PathLike, config: CoreConfig) -> Path:
    """Write ``<memory>.hex`` per configuration memory and ``manifest.json``; return the
    manifest's path.

    Each hex file has one word per line, word 0 first, as ``ceil(bits/4)`` zero-padded
    lower-case hex digits (MSB first), for Verilog ``$readmemh``.  The manifest lists per
    memory its file, depth (words), width (bits) and the file's SHA-256, plus the geometry.
    """
    config.validate()
    words = config.to_words()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for mem in _config_memories(config.geometry):
        digits = _hex_digits(mem.layout.size)
        text = "".join(f"{w:0{digits}x}\n" for w in words[mem.name].tolist())
        data = text.encode("ascii")
        file = mem.name + HEX_SUFFIX
        (out / file).write_bytes(data)
        entries.append(dict(name=mem.name, file=file, depth=mem.depth, width=mem.layout.size,
                            sha256=hashlib.sha256(data).hexdigest()))
    manifest = {"format": HEX_FORMAT, "version": HEX_FORMAT_VERSION,
                "geometry": dataclasses.asdict(config.geometry), "memories": entries}
    path = out / HEX_MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def _read_bytes(where: Path) -> bytes:
    """The bytes of a hex export file, or :class:`ImageFormatError` saying why not."""
    try:
        return where.read_bytes()
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the name
        raise _fail(where, f"cannot be read: {e.strerror or e}") from None


def _read_hex_words(where: Path, entry: dict, mem: Memory) -> np.ndarray:
    data = _read_bytes(where)
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.get("sha256"):
        raise _fail(where, f"SHA-256 {digest} does not match the manifest's "
                           f"{entry.get('sha256')}")
    digits = _hex_digits(mem.layout.size)
    text = data.decode("ascii", errors="replace")
    if not re.fullmatch(rf"(?:[0-9a-fA-F]{{{digits}}}\n)*", text):
        lines = text.split("\n")
        bad = next((i for i, line in enumerate(lines[:-1])
                    if not re.fullmatch(rf"[0-9a-fA-F]{{{digits}}}", line)), len(lines) - 1)
        raise _fail(where, f"line {bad + 1} {lines[bad]!r} is not {digits} hex digits "
                           "followed by a newline")
    lines = text.split("\n")[:-1]
    if len(lines) != mem.depth:
        raise _fail(where, f"{len(lines)} words, memory {mem.name!r} needs {mem.depth}")
    return np.array([int(line, 16) for line in lines], dtype=np.uint64)


def read_hex(directory: str | os.PathLike, geometry: CoreGeometry) -> CoreConfig:
    """Read hex files written by :func:`write_hex` for ``geometry``; return the validated
    :class:`CoreConfig`.  Checks the manifest (geometry, depth, width) and every SHA-256."""
    directory = Path(directory)
    where = directory / HEX_MANIFEST
    try:
        manifest = json.loads(_read_bytes(where).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _fail(where, f"manifest JSON invalid: {e}") from None
    if not isinstance(manifest, dict) or (manifest.get("format"), manifest.get("version")) != (
            HEX_FORMAT, HEX_FORMAT_VERSION):
        tag = (manifest.get("format"), manifest.get("version")) if isinstance(manifest, dict) \
            else manifest
        raise _fail(where, f"manifest format {tag!r}; this build reads "
                           f"{(HEX_FORMAT, HEX_FORMAT_VERSION)!r}")
    _check_hex_geometry(where, manifest.get("geometry"), geometry)
    listed = manifest.get("memories")
    if not isinstance(listed, list):
        raise _fail(where, f"manifest memories {listed!r:.60} is not a list")
    entries = {e.get("name"): e for e in listed if isinstance(e, dict)}
    words = {}
    for mem in _config_memories(geometry):
        entry = entries.get(mem.name)
        if entry is None:
            raise _fail(where, f"manifest lists no memory {mem.name!r}")
        for key, want in (("depth", mem.depth), ("width", mem.layout.size)):
            if entry.get(key) != want:
                raise _fail(where, f"memory {mem.name!r} has {key} {entry.get(key)!r}; geometry "
                                   f"{geometry.name!r} needs {want}")
        file = entry.get("file")
        if not isinstance(file, str) or Path(file).name != file:
            raise _fail(where, f"memory {mem.name!r} has file {file!r}, expected a file name")
        w = _read_hex_words(directory / file, entry, mem)
        _check_word_widths(directory / file, mem.name, w, mem.layout.size)
        words[mem.name] = w
    return _build_config(where, geometry, words)
