"""The simulated board's filesystems, mapped onto host folders.

Firmware 4.6 and later: `/flash` (internal flash) and `/sdcard` (the card, when inserted) are
mounted side by side, `/` lists them, and the working directory is `/sdcard` if there is a card,
else `/flash`. Older firmware: one filesystem at `/`, the card when inserted, else the flash
(docs/platform.md item 5). The card can be made to fill up after a number of bytes: writes then
store what fits and raise OSError(ENOSPC), as MicroPython's FAT driver does.
"""

from __future__ import annotations

import errno
import posixpath
import types
from pathlib import Path
from typing import Callable

from host.sim import fat

FLASH_BYTES = 128 * 1024  # H7 internal flash filesystem (docs/platform.md item 5)
CARD_BYTES = 8 * 1024**3
BLOCK = 512
S_IFDIR = 0x4000
S_IFREG = 0x8000


def _oserror(code: int, path: str = "") -> OSError:
    """OSError as MicroPython raises it: args[0] is the errno, str() is '[Errno 2] ENOENT'."""
    return OSError(code, errno.errorcode.get(code, "EIO"))


class Storage:
    def __init__(
        self,
        sd_dir: Path | None,
        flash_dir: Path,
        mounts: bool = True,
        sd_free_bytes: int | None = None,
        on_write: Callable[[int], None] | None = None,
        check_alive: Callable[[], None] | None = None,
        has_rom: bool = False,
        flash_bytes: int | None = None,
    ):
        self.sd_dir = Path(sd_dir) if sd_dir is not None else None
        self.flash_dir = Path(flash_dir)
        self.mounts = mounts  # True: firmware 4.6+ layout (/flash, /sdcard); False: legacy single "/"
        self.has_rom = has_rom
        self.flash_bytes = FLASH_BYTES if flash_bytes is None else int(flash_bytes)
        self.flash_volume = fat.volume(self.flash_bytes)  # the FAT OpenMV makes there (host/sim/fat.py)
        self.on_write = on_write or (lambda n: None)
        self.check_alive = check_alive or (lambda: None)
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        if self.sd_dir is not None:
            self.sd_dir.mkdir(parents=True, exist_ok=True)
        self.sd_used = _tree_bytes(self.sd_dir) if self.sd_dir is not None else 0
        self.sd_capacity = CARD_BYTES if sd_free_bytes is None else self.sd_used + sd_free_bytes
        self.cwd = self.default_cwd()
        self.bytes_written = 0

    # --- paths -----------------------------------------------------------------------------------

    def default_cwd(self) -> str:
        if not self.mounts:
            return "/"
        return "/sdcard" if self.sd_dir is not None else "/flash"

    def normalize(self, path: str) -> str:
        path = str(path)
        if not path.startswith("/"):
            path = posixpath.join(self.cwd, path)
        path = posixpath.normpath(path)
        return "/" if path in ("/", "//") else path

    def resolve(self, path: str) -> tuple[Path | None, bool]:
        """(host path or None for the virtual mount root, on_card)."""
        board = self.normalize(path)
        if not self.mounts:
            base = self.sd_dir if self.sd_dir is not None else self.flash_dir
            return base / board.lstrip("/"), self.sd_dir is not None
        if board == "/":
            return None, False
        top, _, rest = board.lstrip("/").partition("/")
        if top == "sdcard" and self.sd_dir is not None:
            return self.sd_dir / rest, True
        if top == "flash":
            return self.flash_dir / rest, False
        raise _oserror(errno.ENOENT, board)

    def host_path(self, path: str) -> Path:
        host, _ = self.resolve(path)
        if host is None:
            raise _oserror(errno.EISDIR, path)
        return host

    # --- files -----------------------------------------------------------------------------------

    def open(self, path, mode="r", *args, **kwargs):
        self.check_alive()
        host, on_card = self.resolve(path)
        if host is None:
            raise _oserror(errno.EISDIR, str(path))
        writing = any(c in mode for c in "wax+")
        if writing and not host.parent.is_dir():
            raise _oserror(errno.ENOENT, str(path))
        try:
            f = open(host, mode, *args, **kwargs)
        except FileNotFoundError:
            raise _oserror(errno.ENOENT, str(path)) from None
        except IsADirectoryError:
            raise _oserror(errno.EISDIR, str(path)) from None
        return BoardFile(f, self, on_card) if writing else f

    def charge(self, nbytes: int, on_card: bool, at: int = 0) -> int:
        """How many of nbytes, written at offset `at` of a file, fit on the medium; accounts for them."""
        self.check_alive()
        fit = nbytes
        if on_card:
            fit = max(0, min(nbytes, self.sd_capacity - self.sd_used))
            self.sd_used += fit
        else:  # the H7's flash filesystem is small (113,664 bytes of FAT clusters): it fills up too
            slack = -at % self.flash_volume.cluster_bytes  # the rest of the file's last cluster
            fit = max(0, min(nbytes, slack + fat.free_bytes(self.flash_dir, self.flash_volume)))
        self.bytes_written += fit
        self.on_write(fit)
        return fit

    def write_bytes(self, path: str, data: bytes) -> None:
        """Whole-file write of the fake image.save. Its errors are OSError with a text message and no
        errno, as imlib's file_utils raises them (docs/platform.md item 11; src/omv/common/file_utils.c
        v4.6.0: FatFs result texts such as "Could not find the path", and "Failed to write requested
        bytes!")."""
        host, on_card = self.resolve(path)
        if host is None or not host.parent.is_dir():
            raise OSError("Could not find the path")
        fit = self.charge(len(data), on_card)
        host.write_bytes(data[:fit])
        if fit < len(data):
            raise OSError("Failed to write requested bytes!")

    def read_bytes(self, path: str) -> bytes:
        self.check_alive()
        host = self.host_path(path)
        if not host.is_file():
            raise _oserror(errno.ENOENT, str(path))
        return host.read_bytes()

    # --- the os module ---------------------------------------------------------------------------

    def listdir(self, path: str | None = None) -> list[str]:
        self.check_alive()
        host, _ = self.resolve(path if path is not None else self.cwd)
        if host is None:
            names = ["flash"] + (["sdcard"] if self.sd_dir is not None else [])
            return names + (["rom"] if self.has_rom else [])
        if not host.is_dir():
            raise _oserror(errno.ENOENT, str(path))
        return sorted(p.name for p in host.iterdir())

    def stat(self, path: str) -> tuple:
        self.check_alive()
        host, _ = self.resolve(path)
        if host is None:
            return (S_IFDIR, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        if not host.exists():
            raise _oserror(errno.ENOENT, str(path))
        st = host.stat()
        mode = S_IFDIR if host.is_dir() else S_IFREG
        size = 0 if host.is_dir() else st.st_size
        return (mode, 0, 0, 0, 0, 0, size, int(st.st_mtime), int(st.st_mtime), int(st.st_mtime))

    def mkdir(self, path: str) -> None:
        self.check_alive()
        host, _ = self.resolve(path)
        if host is None or host.exists():
            raise _oserror(errno.EEXIST, str(path))
        if not host.parent.is_dir():
            raise _oserror(errno.ENOENT, str(path))
        host.mkdir()

    def remove(self, path: str) -> None:
        host = self.host_path(path)
        if not host.is_file():
            raise _oserror(errno.ENOENT, str(path))
        if self.resolve(path)[1]:
            self.sd_used -= host.stat().st_size
        host.unlink()

    def rename(self, old: str, new: str) -> None:
        self.host_path(old).rename(self.host_path(new))

    def statvfs(self, path: str) -> tuple:
        host, on_card = self.resolve(path)
        if on_card:
            total, free = self.sd_capacity, self.sd_capacity - self.sd_used
        elif host is None:
            total, free = 0, 0
        else:  # extmod/vfs_fat.c: the cluster is the block, the volume's clusters its blocks
            vol = self.flash_volume
            free = fat.free_bytes(self.flash_dir, vol) // vol.cluster_bytes
            return (vol.cluster_bytes, vol.cluster_bytes, vol.clusters, free, free, 0, 0, 0, 0, 255)
        return (BLOCK, BLOCK, total // BLOCK, free // BLOCK, free // BLOCK, 0, 0, 0, 0, 255)

    def chdir(self, path: str) -> None:
        board = self.normalize(path)
        host, _ = self.resolve(board)
        if host is not None and not host.is_dir():
            raise _oserror(errno.ENOENT, path)
        self.cwd = board

    def os_module(self, version: str) -> types.ModuleType:
        mod = types.ModuleType("os")
        mod.listdir = self.listdir
        mod.stat = self.stat
        mod.mkdir = self.mkdir
        mod.remove = self.remove
        mod.rename = self.rename
        mod.rmdir = lambda path: self.host_path(path).rmdir()
        mod.statvfs = self.statvfs
        mod.getcwd = lambda: self.cwd
        mod.chdir = self.chdir
        mod.sync = lambda: None
        mod.sep = "/"
        mod.uname = lambda: types.SimpleNamespace(
            sysname="pyboard", nodename="pyboard", release=version, version=f"OpenMV {version}",
            machine="OPENMV4 with STM32H743")
        return mod


class BoardFile:
    """A file open for writing on the simulated medium: counts bytes, fills the card."""

    def __init__(self, f, storage: Storage, on_card: bool):
        self._f = f
        self._storage = storage
        self._on_card = on_card

    def write(self, data) -> int:
        data = data.encode() if isinstance(data, str) and "b" in self._f.mode else data
        n = len(data)
        fit = self._storage.charge(n, self._on_card, self._f.tell())
        self._f.write(data[:fit])
        if fit < n:
            self._f.flush()
            raise _oserror(errno.ENOSPC)
        return n

    def flush(self) -> None:
        self._storage.check_alive()
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getattr__(self, name):
        return getattr(self._f, name)


def _tree_bytes(root: Path | None) -> int:
    if root is None or not root.exists():
        return 0
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def host_listing(root: Path) -> list[str]:
    """Every file under root, relative, sorted (for summaries and tests)."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())


__all__ = ["Storage", "BoardFile", "host_listing"]
