"""The loadable segments of a 32-bit little-endian ARM ELF (no dependency beyond struct)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from host.errors import UserError


@dataclass(frozen=True)
class Segment:
    address: int
    data: bytes
    mem_size: int


@dataclass(frozen=True)
class Image:
    entry: int
    segments: tuple[Segment, ...]


def load(path: Path) -> Image:
    blob = Path(path).read_bytes()
    if blob[:4] != b"\x7fELF" or blob[4] != 1 or blob[5] != 1:
        raise UserError(f"{path}: not a 32-bit little-endian ELF")
    (e_type, e_machine, _v, entry, phoff, _shoff, _flags, _ehsize, phentsize, phnum) = struct.unpack_from(
        "<HHIIIIIHHH", blob, 16)
    if e_machine != 40:  # EM_ARM
        raise UserError(f"{path}: not an ARM ELF (machine {e_machine})")
    segments = []
    for i in range(phnum):
        p_type, offset, vaddr, paddr, filesz, memsz, _flags, _align = struct.unpack_from(
            "<8I", blob, phoff + i * phentsize)
        if p_type == 1 and memsz:  # PT_LOAD
            segments.append(Segment(paddr, blob[offset:offset + filesz], memsz))
    return Image(entry, tuple(segments))
