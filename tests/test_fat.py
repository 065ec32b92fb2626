"""host/sim/fat.py: the FAT volume OpenMV makes on the H7's flash, and the room files take there."""

import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.sim import fat
from host.sim.storage import Storage


def test_the_h7_flash_is_222_clusters_of_512_bytes():
    """128 KB = 256 sectors; f_mkfs: 1 reserved + 1 FAT sector ((256 x 3 + 1) // 2 + 3 = 387 bytes)
    + 32 root-folder sectors (512 entries x 32 bytes) leave 222 one-sector clusters."""
    vol = fat.volume(128 * 1024)
    assert (vol.cluster_bytes, vol.clusters, vol.total_bytes) == (512, 222, 113_664)


@pytest.mark.parametrize("region, cluster, clusters", [
    (4 << 20, 2048, 2038),  # a FAT16 guess with too few clusters retries as FAT12 with clusters twice as big
    (32 << 20, 4096, 8183),  # FAT16: 16,388 FAT bytes = 33 sectors
])
def test_bigger_volumes_follow_f_mkfs_cluster_choice(region, cluster, clusters):
    vol = fat.volume(region)
    assert (vol.cluster_bytes, vol.clusters) == (cluster, clusters)


@pytest.mark.parametrize("name, count", [("main.py", 1), ("000001", 1), ("README.txt", 1), ("Main.py", 2),
                                         ("config.json", 2), ("tinymask.tflite", 3), (".openmv_disk", 2),
                                         ("a_very_long_file_name.mpy", 3)])
def test_a_name_takes_one_entry_if_short_else_one_more_per_13_characters(name, count):
    assert fat.entries(name) == count


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 3000), min_size=1, max_size=20))
def test_files_take_whole_clusters_and_a_folder_its_entries(tmp_path_factory, sizes):
    root = tmp_path_factory.mktemp("vol")
    vol = fat.volume(128 * 1024)
    folder = root / "tmset"
    folder.mkdir()
    for i, size in enumerate(sizes):
        (folder / f"f{i}.bin").write_bytes(b"x" * size)
    folder_clusters = -(-(2 + len(sizes)) * 32 // 512)
    assert fat.used_clusters(root, vol) == folder_clusters + sum(-(-s // 512) for s in sizes)
    assert fat.free_bytes(root, vol) == (222 - fat.used_clusters(root, vol)) * 512


def test_the_simulated_flash_reports_clusters_and_fills_them(tmp_path):
    storage = Storage(None, tmp_path / "flash", flash_bytes=128 * 1024)
    assert storage.statvfs("/flash")[:4] == (512, 512, 222, 222)
    with storage.open("/flash/a.bin", "wb") as f:
        f.write(b"x" * 100)  # one cluster, 412 bytes of slack
    assert storage.statvfs("/flash")[3] == 221
    with pytest.raises(OSError) as e, storage.open("/flash/b.bin", "wb") as f:
        f.write(b"y" * (221 * 512 + 1))
    assert e.value.args[0] == errno.ENOSPC
    assert (tmp_path / "flash" / "b.bin").stat().st_size == 221 * 512  # what fitted is kept, as FatFs does
    with storage.open("/flash/a.bin", "ab") as f:  # the volume is full, but a.bin's last cluster is not
        f.write(b"x" * 412)
    with pytest.raises(OSError), storage.open("/flash/a.bin", "ab") as f:
        f.write(b"x")
