"""The one checksum of a file's bytes: inputs, checkpoints, records.

A checkpoint's SHA-256 names the weights wherever they are used (case records, the
out-of-distribution fit, training records, benchmark figures), so that figures and
weights can be matched exactly.
"""

from __future__ import annotations

import hashlib
import os

__all__ = ["bytes_sha256", "file_sha256"]

#: Read in blocks of this many bytes (a file is never held whole in memory for its checksum).
_BLOCK = 1 << 20


def file_sha256(path: os.PathLike | str) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def bytes_sha256(data: bytes) -> str:
    """SHA-256 of bytes in memory (hex): the same as :func:`file_sha256` of a file holding them."""
    return hashlib.sha256(data).hexdigest()
