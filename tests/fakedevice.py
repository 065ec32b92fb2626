"""A fake OpenMV camera at the serial boundary, for driving the real `mpremote` in tests.

The fake owns a pseudo-terminal: `device.port` is its slave end (`/dev/pts/N`), which mpremote and
pyserial open exactly like a real `/dev/ttyACM0`. On the master end the fake speaks MicroPython's
REPL byte protocol (friendly REPL, raw REPL, raw-paste with flow control, soft reset) and runs the
Python snippets mpremote sends with CPython `exec`, in a namespace whose `os`, `open`, `hashlib`,
`omv`, `machine` ... act like the board's, rooted in a host folder:

- firmware >= 4.6: `ROOT/flash` is `/flash` (128 KiB, like the H7's internal flash) and
  `ROOT/sdcard` is `/sdcard` when the card is inserted;
- legacy firmware (< 4.6): `ROOT` is the single filesystem `/` (the card if inserted, else flash).

Knobs for tests: no SD card, legacy layout, raw-paste refused, files corrupted after they are
written, the connection dropped after N file writes, after N files opened for reading, at the
first rename (an interrupted copy) or before the N+1th change to the filesystem (`drop_after_ops`),
rename refusing to replace an existing file, a read-only card, the card's size, no `machine.RTC`.

`door=True`: the board runs the card's main.py at every boot (tests/fakedoor.py: the set loader's
choice, then that set's real firmware main.py), its `machine.WDT` keeps running through Ctrl-C,
the raw REPL and soft resets, and when it is not fed in time, or on `machine.reset()`, the board
reboots: the connection drops and the port comes back under the same name (`device.port` is then a
symbolic link, like /dev/ttyACM0 after USB re-enumeration). `time_scale` makes the board's clock run
faster than the host's, so a 5 s watchdog passes in 2.5 s of a test at 2.
Every connection's baud rate is recorded. `board.rtc` is the tuple last given to
`machine.RTC().datetime(...)` (None until a tool sets the clock); it survives resets, as the
stm32 RTC does while the board has power.

Run as a script for manual trials:
    python tests/fakedevice.py --root /tmp/cam [--no-sdcard] [--legacy]
then `mpremote connect /dev/pts/N ls :` in another terminal.
"""

from __future__ import annotations

import argparse
import binascii
import builtins
import errno
import hashlib
import json
import os
import posixpath
import select
import struct
import termios
import threading
import time
import tty
import types
from pathlib import Path

from host.sim import fat
from host.sim.storage import FLASH_BYTES

SDCARD_BYTES = 8 * 1024 ** 3
BLOCK = 512
PASTE_WINDOW = 256
BANNER = b"MicroPython v1.24.0-fake OpenMV v4.6.0; OpenMV Cam H7 with STM32H743\r\nType \"help()\" for more information.\r\n"


class Dropped(Exception):
    """The fake pulled its USB cable: the serial connection is gone."""


class HardReset(Dropped):
    """The board resets (machine.reset() or the watchdog): the connection drops, the board boots again."""


WDT_RESET, SOFT_RESET = 3, 5  # machine.reset_cause() values of the stm32 port (NVIC reset: SOFT_RESET)


class FakeBoard:
    """The board's files and MicroPython runtime, without any serial I/O."""

    def __init__(self, root, sdcard=True, legacy=False, firmware="4.6.0", board_id="3A0028001551",
                 corrupt=(), drop_after_writes=None, drop_after_reads=None, drop_on_rename=False, rename_replaces=True,
                 flash_bytes=FLASH_BYTES, has_rtc=True, door=False, time_scale=1.0, drop_after_ops=None,
                 read_only=False, sdcard_bytes=SDCARD_BYTES):
        self.root = Path(root)
        self.sdcard = sdcard
        self.legacy = legacy
        self.firmware = firmware
        self.board_id = board_id
        self.corrupt = set(corrupt)
        self.drop_after_writes = drop_after_writes
        self.drop_after_reads = drop_after_reads
        self.drop_on_rename = drop_on_rename
        self.rename_replaces = rename_replaces
        self.flash_bytes = flash_bytes
        self.flash_fat = fat.volume(flash_bytes)  # the FAT OpenMV makes on the internal flash
        self.sdcard_bytes = sdcard_bytes
        self.has_rtc = has_rtc
        self.drop_after_ops = drop_after_ops  # the cable is pulled before the next change to the filesystem
        self.read_only = read_only  # the card's write-protect: every change is EROFS
        self.ops = 0  # changes to the filesystem: files opened for writing, renames, removes, mkdir, rmdir
        self.rtc = None  # the 8-tuple last set through machine.RTC().datetime(), as given
        self.writes = 0
        self.reads = 0  # files opened for reading
        self.events = []  # ("soft_reset",), ("reset",), ("rename", a, b), ("baud", n) ...
        self.open_files = []
        # the watchdog and the door program (tests/fakedoor.py). time_scale: board milliseconds per
        # host millisecond, so a 5 s watchdog passes in 0.5 s of a test at 10
        self.door = door
        self.time_scale = float(time_scale)
        self.HardReset = HardReset
        self._t0 = time.monotonic()
        self.wdt_timeout = None  # ms, once machine.WDT() has started the watchdog; only a reset stops it
        self.wdt_fed = 0.0
        self.wdt_feeds = 0
        self.reset_cause = 1  # PWRON_RESET
        self.reset_request = False
        self.boots = 1
        self.file_times = {}  # board path -> (ms opened, ms closed) of each file written, on the board clock
        self.root.mkdir(parents=True, exist_ok=True)
        if not legacy:
            (self.root / "flash").mkdir(exist_ok=True)
            if sdcard:
                (self.root / "sdcard").mkdir(exist_ok=True)
        self.soft_reset()

    # -- paths -------------------------------------------------------------------------------

    def mounts(self):
        if self.legacy:
            return {"": (self.root, self.sdcard_bytes if self.sdcard else self.flash_bytes)}
        found = {"flash": (self.root / "flash", self.flash_bytes)}
        if self.sdcard:
            found["sdcard"] = (self.root / "sdcard", self.sdcard_bytes)
        return found

    def resolve(self, path):
        """Board path -> (host path, mount name); the VFS root '/' itself maps to (None, None)."""
        path = posixpath.normpath(posixpath.join(self.cwd, path or "."))
        parts = [p for p in path.split("/") if p]
        mounts = self.mounts()
        if self.legacy:
            return mounts[""][0].joinpath(*parts), ""
        if not parts:
            return None, None
        if parts[0] not in mounts:
            raise OSError(errno.ENOENT, "ENOENT")
        return mounts[parts[0]][0].joinpath(*parts[1:]), parts[0]

    def host_path(self, path):
        host, _ = self.resolve(path)
        if host is None:
            raise OSError(errno.EPERM, "EPERM")
        return host

    def flash_volume(self, mount):
        """The FAT volume OpenMV makes on the internal flash (host/sim/fat.py), or None for the card."""
        on_flash = mount == "flash" or (mount == "" and not self.sdcard)
        return self.flash_fat if on_flash else None

    def used_bytes(self, mount):
        base = self.mounts()[mount][0]
        vol = self.flash_volume(mount)
        if vol is not None:
            return fat.used_clusters(base, vol) * vol.cluster_bytes
        total = 0
        for dirpath, _, files in os.walk(base):
            for name in files:
                total += -(-os.path.getsize(os.path.join(dirpath, name)) // BLOCK) * BLOCK
        return total

    def capacity(self, mount):
        """Bytes the volume holds: the card's size, or the flash volume's clusters."""
        vol = self.flash_volume(mount)
        return self.mounts()[mount][1] if vol is None else vol.total_bytes

    # -- the runtime -------------------------------------------------------------------------

    def soft_reset(self):
        self.cwd = "/" if self.legacy else ("/sdcard" if self.sdcard else "/flash")
        self.close_files()
        self.globals = {"__name__": "__main__", "__builtins__": self.make_builtins()}

    def now_ms(self):
        return (time.monotonic() - self._t0) * 1000.0 * self.time_scale

    def watchdog_expired(self):
        return self.wdt_timeout is not None and self.now_ms() - self.wdt_fed > self.wdt_timeout

    def check(self):
        """Called on every board call of a snippet: the board resets under it when the watchdog fires."""
        if self.door and self.watchdog_expired():
            raise HardReset("watchdog")

    def machine_reset(self):
        self.events.append(("reset",))
        if self.door:  # a board that reboots for real: the connection drops here
            self.reset_request = True
            raise HardReset("machine.reset")

    def hard_reset(self, cause):
        """What a reset does to the board: watchdog stopped, files closed, runtime new."""
        self.wdt_timeout = None
        self.reset_cause = cause
        self.reset_request = False
        self.boots += 1
        self.soft_reset()

    def change(self):
        """Before each change to the filesystem: count it, maybe pull the cable, refuse a locked card."""
        self.ops += 1
        if self.drop_after_ops is not None and self.ops > self.drop_after_ops:
            raise Dropped("dropped before change " + str(self.ops))
        if self.read_only:
            raise OSError(errno.EROFS, "EROFS")

    def close_files(self):
        for f in self.open_files:
            f.close()
        self.open_files = []

    def make_builtins(self):
        names = dict(vars(builtins))
        names["open"] = self.open
        names["print"] = self.print
        names["__import__"] = self.import_module
        self.modules = {
            "os": self.make_os(), "uos": None, "hashlib": self.make_hashlib(), "binascii": binascii,
            "json": json, "time": self.make_time(), "machine": self.make_machine(),
            "micropython": types.SimpleNamespace(kbd_intr=lambda c: None, const=lambda x: x),
            "omv": self.make_omv(), "pyb": self.make_pyb(), "gc": types.SimpleNamespace(collect=lambda: None, mem_free=lambda: 250000),
            "errno": errno, "sys": types.SimpleNamespace(stdout=_Stdout(self), implementation=self.implementation()),
        }
        self.modules["uos"] = self.modules["os"]
        return names

    def implementation(self):
        """sys.implementation as this firmware's MicroPython has it: `_mpy` from 1.19 (OpenMV 4.4.0),
        `mpy` in 1.18 (tools/mpy.py gives the sources)."""
        from tools.deploy import version_tuple
        from tools.mpy import firmware_mpy

        version = version_tuple(self.firmware)
        mpy = firmware_mpy(version)
        if mpy is not None and version >= (4, 4, 0):
            # a build with the native emitter also reports its arch (armv7emdp, bits 10-13; whether OpenMV's
            # builds have it is not checked): tools.deploy must read only the version bits
            mpy |= 8 << 10
        key = "_mpy" if version >= (4, 4, 0) else "mpy"
        return types.SimpleNamespace(name="micropython", **({key: mpy} if mpy is not None else {}))

    def import_module(self, name, globals=None, locals=None, fromlist=(), level=0):
        if name not in self.modules:
            raise ImportError("no module named '" + name + "'")
        return self.modules[name]

    def print(self, *args, sep=" ", end="\n", file=None):
        self.out.append((sep.join(str(a) for a in args) + end).replace("\n", "\r\n"))

    def open(self, path, mode="r"):
        self.check()
        host = self.host_path(path)
        if host.is_dir():
            raise OSError(errno.EISDIR, "EISDIR")
        if "r" in mode and "+" not in mode and not host.is_file():
            raise OSError(errno.ENOENT, "ENOENT")
        if not host.parent.is_dir():
            raise OSError(errno.ENOENT, "ENOENT")
        if "w" in mode or "a" in mode or "+" in mode:
            self.change()
        if "w" not in mode and "a" not in mode:
            self.reads += 1
            if self.drop_after_reads is not None and self.reads > self.drop_after_reads:
                raise Dropped("dropped after reads")
        f = _BoardFile(self, host, path, mode) if ("w" in mode or "a" in mode) else open(host, mode)  # noqa: SIM115
        self.open_files.append(f)
        return f

    def make_os(self):
        board = self

        def ilistdir(path=""):
            host, _ = board.resolve(path)
            if host is None:
                return iter([(name, 0x4000, 0, 0) for name in board.mounts()])
            if not host.is_dir():
                raise OSError(errno.ENOENT, "ENOENT")
            items = []
            for entry in sorted(host.iterdir()):
                if entry.is_dir():
                    items.append((entry.name, 0x4000, 0, 0))
                else:
                    items.append((entry.name, 0x8000, 0, entry.stat().st_size))
            return iter(items)

        def stat(path):
            host, _ = board.resolve(path)
            if host is None or host.is_dir():
                return (0x4000, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            if not host.is_file():
                raise OSError(errno.ENOENT, "ENOENT")
            size = host.stat().st_size
            return (0x8000, 0, 0, 0, 0, 0, size, 0, 0, 0)

        def statvfs(path):
            host, mount = board.resolve(path)
            if host is None:
                return (0,) * 10
            vol = board.flash_volume(mount)
            block = BLOCK if vol is None else vol.cluster_bytes  # extmod/vfs_fat.c: f_bsize is the cluster
            total = board.capacity(mount)
            free = max(0, total - board.used_bytes(mount)) // block
            return (block, block, total // block, free, free, 0, 0, 0, 0, 255)

        def mkdir(path):
            host = board.host_path(path)
            board.change()
            if host.exists():
                raise OSError(errno.EEXIST, "EEXIST")
            if not host.parent.is_dir():
                raise OSError(errno.ENOENT, "ENOENT")
            host.mkdir()

        def remove(path):
            host = board.host_path(path)
            board.change()
            if not host.is_file():
                raise OSError(errno.ENOENT, "ENOENT")
            host.unlink()

        def rmdir(path):
            host = board.host_path(path)
            board.change()
            if not host.is_dir():
                raise OSError(errno.ENOENT, "ENOENT")
            if any(host.iterdir()):
                raise OSError(errno.EACCES, "EACCES")
            host.rmdir()

        def rename(old, new):
            board.events.append(("rename", old, new))
            if board.drop_on_rename:
                raise Dropped("dropped at rename")
            board.change()
            a, b = board.host_path(old), board.host_path(new)
            if not a.exists():
                raise OSError(errno.ENOENT, "ENOENT")
            if b.exists() and not board.rename_replaces:
                raise OSError(errno.EEXIST, "EEXIST")
            os.replace(a, b)

        def chdir(path):
            host, _ = board.resolve(path)
            if host is not None and not host.is_dir():
                raise OSError(errno.ENOENT, "ENOENT")
            board.cwd = posixpath.normpath(posixpath.join(board.cwd, path))

        return types.SimpleNamespace(
            ilistdir=ilistdir, listdir=lambda path="": [e[0] for e in ilistdir(path)], stat=stat,
            statvfs=statvfs, mkdir=mkdir, remove=remove, unlink=remove, rmdir=rmdir, rename=rename,
            chdir=chdir, getcwd=lambda: board.cwd, sync=lambda: None,
            uname=lambda: types.SimpleNamespace(sysname="OpenMV", machine="OpenMV Cam H7 with STM32H743",
                                                release="1.24.0", version="v" + board.firmware),
        )

    def make_hashlib(self):
        class sha256:  # MicroPython's: update() and digest() only, no hexdigest()
            def __init__(self, data=b""):
                self._h = hashlib.sha256(bytes(data))

            def update(self, data):
                self._h.update(bytes(data))

            def digest(self):
                return self._h.digest()

        return types.SimpleNamespace(sha256=sha256)

    def make_time(self):
        return types.SimpleNamespace(
            sleep=lambda s: None, sleep_ms=lambda ms: None, ticks_ms=lambda: int(time.monotonic() * 1000) % (1 << 30),
            ticks_diff=lambda a, b: ((a - b + (1 << 29)) % (1 << 30)) - (1 << 29), time=time.time,
        )

    def make_machine(self):
        board = self
        reset = board.machine_reset

        class WDT:  # micropython ports/stm32/machine_wdt.c: one watchdog; the constructor reprograms it
            def __new__(cls, id=0, timeout=5000):
                if id != 0:
                    raise ValueError("WDT(%d) doesn't exist" % id)
                ticks, prescaler = int(timeout), 0
                while prescaler < 6 and ticks >= 512:
                    prescaler, ticks = prescaler + 1, ticks // 2
                if ticks * 8 <= 0:
                    raise ValueError("WDT timeout too short")
                if ticks * 8 > 0xFFF:
                    raise ValueError("WDT timeout too long")
                board.events.append(("wdt", int(timeout)))
                board.wdt_timeout = int(timeout)
                board.wdt_fed = board.now_ms()
                return _WDT

            @staticmethod
            def feed():
                board.check()
                board.wdt_fed = board.now_ms()
                board.wdt_feeds += 1

        _WDT = object.__new__(WDT)

        class RTC:  # micropython ports/stm32/rtc.c: datetime() gets, datetime(8-tuple) sets
            def datetime(self, when=None):
                if when is None:
                    return tuple(board.rtc) if board.rtc else (2015, 1, 1, 4, 0, 0, 0, 255)  # unset: 2015-01-01
                when = tuple(when)
                if len(when) != 8 or not all(isinstance(x, int) for x in when):
                    raise ValueError("requested length 8 but object has length " + str(len(when)))
                board.events.append(("rtc", when))
                board.rtc = when

        machine = types.SimpleNamespace(reset=reset, soft_reset=lambda: None, unique_id=lambda: bytes.fromhex(board.board_id),
                                        WDT=WDT, WDT_RESET=WDT_RESET, reset_cause=lambda: board.reset_cause)
        if board.has_rtc:
            machine.RTC = RTC
        return machine

    def make_pyb(self):
        board = self  # the card-detect pin (micropython ports/stm32/sdcard.c)
        return types.SimpleNamespace(SDCard=lambda: types.SimpleNamespace(present=lambda: board.sdcard))

    def make_omv(self):
        board = self
        return types.SimpleNamespace(
            version_string=lambda: board.firmware, board_id=lambda: board.board_id,
            board_type=lambda: "H7", arch=lambda: "OMV4 H7 1024",
        )

    def execute(self, source):
        """Run one snippet; returns (stdout, stderr) as the board would send them."""
        self.out = []
        try:
            code = compile(source, "<stdin>", "exec")
            exec(code, self.globals)  # noqa: S102 -- running the host's snippets is the point of the fake
            err = ""
        except Dropped:
            raise
        except SyntaxError:
            err = "Traceback (most recent call last):\r\n  File \"<stdin>\", line 1\r\nSyntaxError: invalid syntax\r\n"
        except Exception as exc:  # noqa: BLE001 -- the board prints a traceback on stderr and carries on
            if isinstance(exc, OSError) and exc.errno in errno.errorcode:
                text = "OSError: [Errno " + str(exc.errno) + "] " + errno.errorcode[exc.errno]
            else:
                text = type(exc).__name__ + ": " + str(exc)
            err = "Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\n" + text + "\r\n"
        return "".join(self.out).encode(), err.encode()


class _Stdout:
    def __init__(self, board):
        self.board = board
        self.buffer = self

    def write(self, data):
        self.board.out.append(data.decode() if isinstance(data, (bytes, bytearray)) else data)
        return len(data)


class _BoardFile:
    """A file opened for writing on the board: counts writes, fills the filesystem, may corrupt."""

    def __init__(self, board, host, board_path, mode):
        self.board, self.host, self.board_path = board, host, board_path
        self.mount = board.resolve(board_path)[1]
        self.f = open(host, mode if "b" in mode else mode + "b")  # noqa: SIM115
        self.text = "b" not in mode
        self.opened_ms = board.now_ms()

    def write(self, data):
        board = self.board
        board.check()
        board.writes += 1
        if board.drop_after_writes is not None and board.writes > board.drop_after_writes:
            raise Dropped("dropped after writes")
        if isinstance(data, str):
            data = data.encode()
        total = board.capacity(self.mount)
        self.f.flush()
        vol = board.flash_volume(self.mount)
        slack = 0 if vol is None else -self.f.tell() % vol.cluster_bytes  # the rest of the last cluster
        if board.used_bytes(self.mount) + len(data) - slack > total:
            raise OSError(errno.ENOSPC, "ENOSPC")
        return self.f.write(bytes(data))

    def flush(self):
        self.f.flush()

    def close(self):
        if self.f.closed:
            return
        self.f.close()
        self.board.file_times[self.board_path] = (self.opened_ms, self.board.now_ms())
        name = posixpath.basename(self.board_path)
        name = name.removesuffix(".tmp")
        if name in self.board.corrupt:
            data = bytearray(self.host.read_bytes())
            if data:
                data[len(data) // 2] ^= 0xFF
                self.host.write_bytes(bytes(data))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FakeDevice:
    """A FakeBoard behind a pseudo-terminal, served by a thread. Use as a context manager."""

    def __init__(self, root, raw_paste=True, **board_options):
        self.board = FakeBoard(root, **board_options)
        self.raw_paste = raw_paste
        self._open_pty()
        self.port = os.ttyname(self.slave)
        self.program = None  # the door program (tests/fakedoor.py) while main.py runs
        self.resets = []  # (cause, board ms) of every reboot: "watchdog" or "machine.reset"
        if self.board.door:
            # a board that reboots re-enumerates on USB; the port's name stays (like /dev/ttyACM0)
            import tempfile
            self._links = tempfile.mkdtemp(prefix="fakecam-")
            self.port = os.path.join(self._links, "ttyACM0")
            os.symlink(os.ttyname(self.slave), self.port)
        self.bauds = []
        self.received = 0  # bytes that came over the serial line
        self.dropped = False
        self.mode = "friendly"
        self.line = bytearray()
        self.paste_count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def events(self):
        return self.board.events

    def _open_pty(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)

    def __enter__(self):
        if self.board.door:
            self._boot()
        self._thread.start()
        return self

    # -- the door program and resets -----------------------------------------------------------

    def _boot(self):
        """Cold boot: main.py (when the storage root has one) runs until Ctrl-C or a reset."""
        from fakedoor import Door, write_frames

        self.mode = "friendly"
        host = self.board.host_path(self.board.cwd)
        if not (host / "main.py").is_file():
            return
        frames = getattr(self, "_frames", None) or write_frames(Path(self._links) / "frames")
        self._frames = frames
        self.program = Door(self.board, frames).start()
        self.mode = "running"

    def _reboot(self, cause):
        """The board resets: the door program dies, the USB port vanishes and comes back, main.py runs."""
        if self.program is not None:
            self.program.kill()
            self.program = None
        self.resets.append((cause, self.board.now_ms()))
        self.events.append(("watchdog_reset",) if cause == "watchdog" else ("rebooted",))
        self._close_port()
        self.board.hard_reset(WDT_RESET if cause == "watchdog" else SOFT_RESET)
        self._open_pty()
        os.remove(self.port)
        os.symlink(os.ttyname(self.slave), self.port)
        self._boot()

    def console(self):
        """What the door program printed in its current run."""
        return list(self.program.console) if self.program is not None else []

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self._close_port()

    def _close_port(self):
        if self.program is not None:
            self.program.kill()
            self.program = None
        self.board.close_files()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- serial I/O --------------------------------------------------------------------------

    def _send(self, data):
        view = memoryview(data)
        while view:
            n = os.write(self.master, view)
            view = view[n:]

    def _serve(self):
        while not self._stop.is_set():
            if self.board.door and (self.board.watchdog_expired() or self.board.reset_request):
                self._reboot("watchdog" if self.board.watchdog_expired() else "machine.reset")
                continue
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                continue
            self.received += len(chunk)
            try:
                for byte in chunk:
                    self._handle(byte)
            except HardReset as reset:
                if not self.board.door:
                    self._drop()
                    return
                self._reboot("watchdog" if str(reset) == "watchdog" else "machine.reset")
            except Dropped:
                self._drop()
                return

    def _drop(self):
        """Like pulling the USB cable: files stay as far as they were written, the port vanishes."""
        self.dropped = True
        self._close_port()
        self._stop.set()

    def _record_baud(self):
        speed = termios.tcgetattr(self.master)[5]
        names = {getattr(termios, n): int(n[1:]) for n in dir(termios) if n.startswith("B") and n[1:].isdigit()}
        self.bauds.append(names.get(speed, speed))

    def _handle(self, byte):
        if self.mode == "running" and not self.program.running:  # main.py ended (a crash): the REPL
            self.mode = "friendly"
        if self.mode == "running":  # main.py runs: only Ctrl-C reaches it (KeyboardInterrupt)
            if byte == 0x03:
                self.program.interrupt()
                self.mode = "friendly"
                self._send(b"Traceback (most recent call last):\r\nKeyboardInterrupt: \r\n" + BANNER + b">>> ")
            return
        if self.mode == "paste":
            return self._handle_paste(byte)
        if self.mode == "raw":
            return self._handle_raw(byte)
        # friendly REPL: only the control characters matter here
        if byte == 0x01:
            self.mode, self.line = "raw", bytearray()
            self._record_baud()
            self._send(b"\r\nraw REPL; CTRL-B to exit\r\n>")
        elif byte == 0x04:
            self._soft_reset()
            self._send(BANNER + b">>> ")
        elif byte in (0x03, 0x0D):
            self._send(b"\r\n>>> ")

    def _handle_raw(self, byte):
        if byte == 0x01:
            if bytes(self.line) == b"\x05A":
                self.line = bytearray()
                if self.raw_paste:
                    self._send(b"R\x01" + struct.pack("<H", PASTE_WINDOW))
                    self.mode, self.paste_count = "paste", 0
                else:
                    self._send(b"R\x00")
                return
            self.line = bytearray()
            self._record_baud()
            self._send(b"\r\nraw REPL; CTRL-B to exit\r\n>")
        elif byte == 0x02:
            self.mode = "friendly"
            self._send(b"\r\n" + BANNER + b">>> ")
        elif byte == 0x03:
            self.line = bytearray()
        elif byte == 0x04:
            if not self.line:
                self._soft_reset()
                self._send(b"MPY: soft reboot\r\nraw REPL; CTRL-B to exit\r\n>")
                return
            source, self.line = bytes(self.line), bytearray()
            self._send(b"OK")
            self._run(source)
        else:
            self.line.append(byte)

    def _handle_paste(self, byte):
        if byte == 0x04:
            source, self.line = bytes(self.line), bytearray()
            self.mode = "raw"
            self._send(b"\x04")
            self._run(source)
            return
        self.line.append(byte)
        self.paste_count += 1
        if self.paste_count % PASTE_WINDOW == 0:
            self._send(b"\x01")

    def _run(self, source):
        out, err = self.board.execute(source.decode("utf-8", "replace"))
        self._send(out + b"\x04" + err + b"\x04>")

    def _soft_reset(self):
        self.board.events.append(("soft_reset",))
        self.board.soft_reset()


def tree(root):
    """{relative path: bytes} of every file under root (to assert a device was left as it was)."""
    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path, help="host folder that holds the board's files")
    parser.add_argument("--no-sdcard", action="store_true", help="no SD card inserted")
    parser.add_argument("--legacy", action="store_true", help="firmware < 4.6: a single filesystem at /")
    parser.add_argument("--firmware", default="4.6.0")
    args = parser.parse_args(argv)
    firmware = args.firmware if not args.legacy or args.firmware != "4.6.0" else "4.5.5"
    with FakeDevice(args.root, sdcard=not args.no_sdcard, legacy=args.legacy, firmware=firmware) as device:
        print(f"fake OpenMV camera on {device.port} (files in {args.root}); Ctrl-C to stop", flush=True)
        try:
            while not device.dropped:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
