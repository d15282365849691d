"""Helpers of the image tests: a small converted program, and the byte layout of
docs/image_format.md written out independently of sw/image.py (split a file, reseal one)."""

from __future__ import annotations

import hashlib
import json
import struct

import torch
from torch import nn

from neurocore.sw.convert import from_model

DOC_HEADER = "<8sII"          # magic, version, metadata length
DOC_HEADER_BYTES = 16
DOC_MAGIC = b"NCIMAGE\x00"
DOC_DIGEST_BYTES = 32


def small_mlp_program(seed: int, n_in: int = 16, t_max: int = 8, weight_scale: float = 0.5,
                      data_scale: float = 1.0):
    """A two-layer MLP (n_in → 8 → 3) converted at ``t_max``."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(n_in, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(weight_scale)
    return from_model(model, t_max, torch.rand(32, n_in) * data_scale)


def split(data: bytes):
    """(magic, version, metadata dict, payload, digest) per the documented layout."""
    magic, version, meta_len = struct.unpack_from(DOC_HEADER, data)
    meta = json.loads(data[DOC_HEADER_BYTES:DOC_HEADER_BYTES + meta_len])
    return (magic, version, meta, data[DOC_HEADER_BYTES + meta_len:-DOC_DIGEST_BYTES],
            data[-DOC_DIGEST_BYTES:])


def reseal(meta_bytes: bytes, payload: bytes, version: int = 5) -> bytes:
    """An image with a correct checksum around arbitrary metadata and payload."""
    body = struct.pack(DOC_HEADER, DOC_MAGIC, version, len(meta_bytes)) + meta_bytes + payload
    return body + hashlib.sha256(body).digest()
