"""A flash filesystem as OpenMV formats it: a FAT volume made by ooFatFs's f_mkfs, and the room
its files take. The fakes (host/sim/storage.py, tests/fakedevice.py) report `statvfs` and fill up
by it, so a set that fits them fits a camera.

Sources (github:openmv/openmv; its MicroPython fork's ooFatFs R0.13c, unchanged up to v1.27):
- The H7's internal flash filesystem is 128 KB at 0x08020000 (boards/OPENMV4/omv_boardconfig.h),
  256 sectors of 512 bytes (FLASH_BLOCK_SIZE, FF_MAX_SS).
- It is formatted, when it does not mount, by `vfs.VfsFat.mkfs(pyb.Flash(start=0))` in the frozen
  scripts/libraries/_boot.py (v4.6.0, v4.8.1): extmod/vfs_fat.c calls f_mkfs(FM_FAT | FM_SFD,
  au 0); at v4.5.9 by src/omv/common/mp_utils.c, f_mkfs(FM_FAT, au 0) in a partition of the same
  256 sectors.
- lib/oofatfs/ff.c f_mkfs, FAT12/16: 1 reserved sector, 1 FAT, 512 root entries, the cluster size
  chosen from the volume size (cst[]), the FAT 1.5 (FAT12) or 2 (FAT16) bytes per cluster + 3 or 4.
  For the H7: 1 + 1 + 32 sectors of metadata, 222 clusters of 512 bytes, so `statvfs` reports
  113,664 bytes (extmod/vfs_fat.c: f_blocks = clusters, f_bsize = cluster bytes), not 131,072.
- A file takes whole clusters (none when empty); a folder takes whole clusters for its entries
  (32 bytes each: ".", "..", and per name one short entry plus, for a name that is not 8.3 in one
  case per part, one long-name entry per 13 characters: ff.c create_name / dir_register). The root
  folder has its own fixed 32 sectors.
Not modelled: the 512-entry limit of the root folder, and the starter files OpenMV writes to a new
volume (main.py and README.txt, one cluster each; main.py is the set loader once deployed).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512
ROOT_ENTRIES = 512
ENTRY = 32
MAX_FAT12, MAX_FAT16 = 0xFF5, 0xFFF5
CLUSTER_STEPS = (1, 4, 16, 64, 256, 512)  # ff.c cst[]: volume sizes, in 4K sectors, that double the cluster
SHORT_NAME_CHARS = set(string.ascii_letters + string.digits + "!#$%&'()-@^_`{}~")


@dataclass(frozen=True)
class Volume:
    cluster_bytes: int
    clusters: int

    @property
    def total_bytes(self) -> int:
        return self.cluster_bytes * self.clusters

    def clusters_of(self, nbytes: int) -> int:
        return -(-nbytes // self.cluster_bytes)


def volume(region_bytes: int) -> Volume:
    """The FAT12/16 volume f_mkfs(FM_FAT, au 0) makes on `region_bytes` of 512-byte sectors."""
    sectors = region_bytes // SECTOR
    per_cluster = 1
    for step in CLUSTER_STEPS:
        if step > sectors // 0x1000:
            break
        per_cluster <<= 1
    retried = False
    while True:
        guess = sectors // per_cluster  # clusters before the metadata: they size the FAT
        fat16 = guess > MAX_FAT12
        fat_bytes = guess * 2 + 4 if fat16 else (guess * 3 + 1) // 2 + 3
        metadata = 1 + -(-fat_bytes // SECTOR) + ROOT_ENTRIES * ENTRY // SECTOR
        clusters = (sectors - metadata) // per_cluster
        # ff.c: a FAT16 guess left with too few (or too many) clusters tries once with clusters twice as big
        if fat16 and (clusters <= MAX_FAT12 or clusters > MAX_FAT16) and not retried:
            per_cluster, retried = per_cluster * 2, True
            continue
        break
    if clusters < 16 or clusters > (MAX_FAT16 if fat16 else MAX_FAT12) or (fat16 and clusters <= MAX_FAT12):
        raise ValueError(f"{region_bytes} bytes is not a FAT12/16 volume f_mkfs would make")
    return Volume(per_cluster * SECTOR, clusters)


def entries(name: str) -> int:
    """Directory entries a name takes: 1 for an 8.3 name in one case per part, else 1 + its long name."""
    body, dot, ext = name.rpartition(".")
    if not dot:
        body, ext = name, ""
    short = (0 < len(body) <= 8 and len(ext) <= 3 and all(c in SHORT_NAME_CHARS for c in body + ext)
             and all(part in (part.lower(), part.upper()) for part in (body, ext)))
    return 1 if short else 1 + -(-len(name) // 13)


def used_clusters(root: Path, vol: Volume) -> int:
    """Clusters the files and folders under `root` (the volume's root folder) take."""
    used = 0
    for folder in [Path(root), *(p for p in Path(root).rglob("*") if p.is_dir())]:
        names = list(folder.iterdir())
        if folder != Path(root):
            used += vol.clusters_of(ENTRY * (2 + sum(entries(p.name) for p in names)))
        used += sum(vol.clusters_of(p.stat().st_size) for p in names if p.is_file())
    return used


def free_bytes(root: Path, vol: Volume) -> int:
    return max(0, vol.clusters - used_clusters(root, vol)) * vol.cluster_bytes
