"""Data loading: layouts, label aliases, odd files, clear errors, group-preserving splits."""

import csv
import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from host.errors import UserError
from host.make import data


def face(color, size=(40, 48)):
    img = Image.new("RGB", size, color)
    img.paste((255 - color[0], 90, 90), (8, 26, 32, 40))  # a "mask" band
    return img


def fill(folder, n, color, fmt="JPEG", suffix=".jpg"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        face((color[0], (color[1] + 37 * i) % 256, color[2]), (40 + i, 48)).save(folder / f"img{i}{suffix}", fmt)


def test_flat_layout_with_aliases_carves_val_and_test(tmp_path):
    fill(tmp_path / "Masked", 12, (200, 10, 10))
    fill(tmp_path / "no-mask", 12, (10, 10, 200))
    ds = data.load_dataset(tmp_path, progress=False)
    assert ds.layout == "class-folders"
    assert len(ds.train) + len(ds.val) + len(ds.test) == 24
    assert len(ds.val) > 0 and len(ds.test) > 0
    assert ds.train.pixels.shape[1:] == (32, 32, 3) and ds.train.pixels.dtype == np.uint8


def test_face_mask_12k_layout(tmp_path):
    for split in ("Train", "Validation", "Test"):
        fill(tmp_path / split / "WithMask", 4, (220, 20, 20))
        fill(tmp_path / split / "WithoutMask", 4, (20, 20, 220))
    ds = data.load_dataset(tmp_path, progress=False)
    assert ds.layout == "split-folders"
    assert ds.counts() == {s: {"without_mask": 4, "with_mask": 4} for s in ("train", "val", "test")}


def test_manifest_layout_uses_groups(tmp_path):
    rows = []
    for split in ("train", "test"):
        for label, color in (("with_mask", (200, 0, 0)), ("without_mask", (0, 0, 200))):
            fill(tmp_path / split / label, 6, color)
            rows += [
                {"path": f"{split}/{label}/img{i}.jpg", "label": label, "split": split, "group": f"{split}{label}{i // 2}"}
                for i in range(6)
            ]
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "split", "group"])
        writer.writeheader()
        writer.writerows(rows)
    ds = data.load_dataset(tmp_path, progress=False)
    assert ds.layout == "manifest"
    assert not set(ds.train.groups) & set(ds.val.groups)
    assert len(ds.test) == 12


def test_odd_files_decode_or_are_reported(tmp_path):
    mask, bare = tmp_path / "with_mask", tmp_path / "without_mask"
    fill(mask, 6, (200, 30, 30))
    fill(bare, 6, (30, 30, 200))
    face((1, 2, 3)).convert("CMYK").save(mask / "cmyk.jpg", "JPEG")
    Image.fromarray((np.arange(48 * 40).reshape(48, 40) * 30).astype(np.uint16)).save(mask / "deep16.png")
    pal = face((50, 60, 70)).convert("P")
    pal.info["transparency"] = 0
    pal.save(mask / "palette.png", transparency=0)
    face((90, 90, 90)).convert("L").save(bare / "gray.png")
    face((10, 120, 10)).save(bare / "photo.webp", "WEBP")
    rotated = face((5, 5, 5), (60, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    rotated.save(bare / "exif.jpg", "JPEG", exif=exif.tobytes())
    (mask / "empty.jpg").write_bytes(b"")
    (mask / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (bare / "notes.txt").write_text("hello")
    (bare / ".DS_Store").write_bytes(b"\0\0")
    ds = data.load_dataset(tmp_path, progress=False)
    reasons = {s.path.name: s.reason for s in ds.skipped}
    assert set(reasons) == {"empty.jpg", "broken.png", "notes.txt", ".DS_Store"}
    assert "0 bytes" in reasons["empty.jpg"] and "not an image" in reasons["notes.txt"]
    assert len(ds.train) + len(ds.val) + len(ds.test) == 12 + 6


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (60, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "r.jpg"
    img.save(path, "JPEG", exif=exif.tobytes())
    assert data.load_image(path).size == (20, 60)


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(path)
    assert abs(int(np.asarray(data.load_image(path))[0, 0, 0]) - 128) <= 1


def test_transparency_is_composited_on_white(tmp_path):
    path = tmp_path / "t.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path)
    assert np.asarray(data.load_image(path)).min() == 255


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "nope", "does not exist"),
        (lambda p: p, "no images found"),
    ],
)
def test_clear_errors(tmp_path, make, message):
    with pytest.raises(UserError, match=message):
        data.load_dataset(make(tmp_path), progress=False)


def test_one_class_only_is_refused(tmp_path):
    fill(tmp_path / "with_mask", 5, (200, 0, 0))
    (tmp_path / "without_mask").mkdir()
    (tmp_path / "without_mask" / "zero.jpg").write_bytes(b"")
    with pytest.raises(UserError, match="only one class"):
        data.load_dataset(tmp_path, progress=False)


def test_unknown_class_folder_is_reported(tmp_path):
    fill(tmp_path / "with_mask", 6, (200, 0, 0))
    fill(tmp_path / "without_mask", 6, (0, 0, 200))
    fill(tmp_path / "cats", 2, (0, 200, 0))
    ds = data.load_dataset(tmp_path, progress=False)
    assert any(s.path.name == "cats" and "not a known class" in s.reason for s in ds.skipped)


def test_near_duplicates_are_grouped(tmp_path):
    a = face((200, 10, 10), (64, 64))
    b = face((10, 200, 10), (64, 64)).transpose(Image.Transpose.ROTATE_90)
    buf = io.BytesIO()
    a.save(buf, "JPEG", quality=60)
    for name, img in (("a.png", a), ("a_small.png", a.resize((40, 40))), ("b.png", b)):
        img.save(tmp_path / name)
    (tmp_path / "a_q60.jpg").write_bytes(buf.getvalue())
    samples = [data.Sample(tmp_path / n, "with_mask", None) for n in ("a.png", "a_small.png", "a_q60.jpg", "b.png")]
    groups = data.near_duplicate_groups(samples)
    assert groups[0] == groups[1] == groups[2] != groups[3]


@given(st.lists(st.integers(0, 30), min_size=2, max_size=200), st.floats(0.05, 0.5), st.integers(0, 99))
def test_group_split_never_splits_a_group(group_ids, fraction, seed):
    groups = [f"g{g}" for g in group_ids]
    first, second = data.group_split(groups, fraction, seed)
    assert sorted(np.concatenate([first, second]).tolist()) == list(range(len(groups)))
    assert not {groups[i] for i in first} & {groups[i] for i in second}


def test_facemask_v1_is_read_through_its_manifest(data_dir):
    samples, skipped, layout = data.discover(data_dir)
    assert layout == "manifest" and len(samples) == 3990 and not skipped
    assert {s.split for s in samples} == {"train", "test"}


def test_test_split_alone_is_enough_to_evaluate(tmp_path):
    fill(tmp_path / "with_mask", 3, (200, 0, 0))
    fill(tmp_path / "without_mask", 2, (0, 0, 200))
    (tmp_path / "without_mask" / "bad.jpg").write_bytes(b"")
    split, skipped = data.load_test_split(tmp_path, progress=False)
    assert len(split) == 5 and sorted(split.labels.tolist()) == [0, 0, 1, 1, 1]
    assert [s.path.name for s in skipped] == ["bad.jpg"]


def test_test_split_prefers_the_test_folder(data_dir):
    split, _ = data.load_test_split(data_dir, limit=5, progress=False)
    assert len(split) == 10 and all("/test/" in str(p) for p in split.paths)
