# Where the SD card is, and the small files kept on it (boot counter, folders).
# Firmware 4.6+ mounts the card at /sdcard beside /flash; older firmware has one filesystem at "/",
# the card when one is inserted, else the 128 KB internal flash (docs/platform.md item 5).

import os

BOOT_FILE = "tinymask_boot.txt"
# anything bigger than this at "/" on old firmware is a card (the internal flash filesystem is ~128 KB).
# tools/deploy.py reads this same constant, so deploy and board agree on whether a card is there.
FLASH_FS_BYTES = 1 << 20


def join(root, name):
    if root.endswith("/"):
        return root + name
    return root + "/" + name


def sd_root():
    """'/sdcard' (4.6+), '/' (older firmware with a card) or None (no card)."""
    try:
        names = os.listdir("/")
    except OSError:
        return None
    if "sdcard" in names:
        return "/sdcard"
    if "flash" in names:
        return None  # 4.6+ without a card: only the internal flash is mounted
    present = card_present()
    if present is not None:
        return "/" if present else None
    try:
        st = os.statvfs("/")
    except OSError:
        return None
    if st[0] * st[2] > FLASH_FS_BYTES:  # last resort: right on the H7 only (its flash is 128 KB)
        return "/"
    return None


def card_present():
    """The card-detect pin: True/False, or None when this firmware cannot say. Up to 4.5.x "/" is
    the card or the flash, and the flash is 32 MB on the H7 Plus and 4 MB on the RT1062, so size
    cannot tell them apart there (docs/platform.md item 11). pyb.SDCard().present() on STM32
    (micropython ports/stm32/sdcard.c; OpenMV's own _boot.py uses it from v4.6.0), machine.SDCard(1)
    .present() on the mimxrt port, which has no pyb (ports/mimxrt/machine_sdcard.c)."""
    try:
        import pyb
        return bool(pyb.SDCard().present())
    except ImportError:
        pass
    except Exception:
        return None
    try:
        import machine
        return bool(machine.SDCard(1).present())
    except Exception:
        return None


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def make_dirs(path):
    """mkdir -p for an absolute path; existing folders are fine."""
    current = ""
    for part in path.split("/"):
        if not part:
            continue
        current = current + "/" + part
        if not exists(current):
            os.mkdir(current)


def free_bytes(root):
    st = os.statvfs(root)
    return st[0] * st[4]


def _boot_in_name(name):
    # b000012-p000.log -> 12
    if len(name) >= 8 and name[0] == "b" and name.endswith(".log"):
        try:
            return int(name[1:7])
        except ValueError:
            return -1
    return -1


def next_boot(root, log_dir):
    """Increment and store the boot number. It never goes back: if the counter file is lost or
    garbled, the highest boot number among existing log names is the floor, so (device, boot, seq)
    stays unique on the card."""
    path = join(root, BOOT_FILE)
    last = 0
    try:
        with open(path) as f:
            last = int(f.read().strip())
    except (OSError, ValueError):
        pass
    try:
        for name in os.listdir(join(root, log_dir)):
            n = _boot_in_name(name)
            if n > last:
                last = n
    except OSError:
        pass
    boot = last + 1
    with open(path, "w") as f:
        f.write(str(boot) + "\n")
    return boot
