"""Data loading: layouts, label aliases, odd files, clear errors, group-preserving splits."""

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
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


# ---- combining sets (issue 13) and the `none` class (issue 16) ------------------------------------------


def manifest_set(root, rows, extra_columns=()):
    """rows: (path, label, split, group, source, image)"""
    for path, _, _, _, _, image in rows:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / path)
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split", "group", "source", *extra_columns])
        for path, label, split, group, source, _ in rows:
            writer.writerow([path, label, split, group, source, *(["0"] * len(extra_columns))])


def pattern(seed, size=48):
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((size, size), Image.Resampling.NEAREST)


@pytest.fixture
def two_sets(tmp_path):
    first, second = tmp_path / "facemask-v1", tmp_path / "mine"
    rows = []
    for i in range(12):
        label = ("with_mask", "without_mask")[i % 2]
        rows.append((f"{'test' if i < 4 else 'train'}/{label}/{i}.png", label, "test" if i < 4 else "train", str(i), "v1",
                     pattern(i)))
    manifest_set(first, rows)
    for split, shift in (("train", 0), ("test", 1000)):
        for k, label in enumerate(("with_mask", "without_mask", "no_face")):
            folder = second / split / label
            folder.mkdir(parents=True)
            for i in range(4):
                pattern(shift + 100 * k + i).save(folder / f"img{i}.png")
    copy = pattern(0).resize((60, 60))  # a near-duplicate of facemask-v1's test image 0
    copy.save(second / "train" / "with_mask" / "copy_of_test.png")
    return first, second


def test_combined_sets_drop_near_duplicates_of_any_test_image(two_sets):
    first, second = two_sets
    ds = data.load_dataset([first, second], progress=False)
    dropped = {d.path: d for d in ds.dropped_near_duplicates}
    assert "mine/train/with_mask/copy_of_test.png" in dropped
    assert dropped["mine/train/with_mask/copy_of_test.png"].test_image == "facemask-v1/test/with_mask/0.png"
    trained = {p.name for p in ds.train.paths + ds.val.paths}
    assert "copy_of_test.png" not in trained
    assert len(ds.test) == 4 and "mine" in ds.held_out
    assert ds.labels == data.LABELS_WITH_NONE and ((ds.train.labels == 2).any() or (ds.val.labels == 2).any())


def test_combined_sets_record_provenance_and_card_safe_paths(two_sets):
    first, second = two_sets
    ds = data.load_dataset([first, second], progress=False)
    sets = {s["name"]: s for s in ds.sets}
    assert sets["mine"]["provenance"] == data.UNKNOWN_PROVENANCE
    assert all(src["licence"] == data.UNKNOWN_PROVENANCE for src in sets["mine"]["trained_sources"].values())
    # a folder named like a shared set but not laid out as one is not trusted with its licence
    assert sets["facemask-v1"]["trained_sources"]["v1"]["licence"] == data.UNKNOWN_PROVENANCE
    assert ds.relative(second / "train" / "with_mask" / "img0.png") == "mine/train/with_mask/img0.png"
    assert all(not d.path.startswith("/") and not d.test_image.startswith("/") for d in ds.dropped_near_duplicates)


def test_single_set_is_loaded_as_before(two_sets):
    first, _ = two_sets
    ds = data.load_dataset(first, progress=False)
    assert ds.labels == data.LABELS and not ds.held_out and not ds.dropped_near_duplicates


def test_known_shared_sets_state_their_licences():
    assert set(data.PROVENANCE) == set(data.DEFAULT_SETS)
    assert "MIT" in data.PROVENANCE["facemask-v1"]["facemask-v1"]
    assert "CelebA" in data.PROVENANCE["facemask-extra"]["fm12k_train"]


def test_no_face_folder_names_are_the_none_class():
    for name in ("no_face", "none", "NoFace", "background"):
        assert data.canonical_label(name) == data.NONE


def flat(value, colour=None):
    grey = np.full(256, float(value), np.float32)
    return np.concatenate([grey, np.array(colour or (value, value, value), np.float32)])


def test_flat_pictures_are_duplicates_only_of_the_same_colour():
    refs = [flat(100), flat(100, (150, 80, 60))]
    hits = data.near_duplicates_of([flat(102), flat(180), flat(100, (40, 120, 140))], refs)
    assert [(c, r) for c, r, _ in hits] == [(0, 0)]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 20))
def test_hash_distance_counts_flipped_bits(seed, flips):
    rng = np.random.default_rng(seed)
    grey = rng.uniform(0, 255, 256).astype(np.float32)
    grey[grey > np.median(grey)] += 40  # a clear two-level picture, far from flat
    bits = grey > grey.mean()
    flipped = grey.copy()
    for i in rng.choice(256, flips, replace=False):
        flipped[i] = grey.mean() - 60 if bits[i] else grey.mean() + 60
    a = np.concatenate([grey, [0, 0, 0]]).astype(np.float32)
    b = np.concatenate([flipped, [0, 0, 0]]).astype(np.float32)
    hits = data.near_duplicates_of([b], [a])
    distance = int(((b[:-3] > b[:-3].mean()) != bits).sum())
    assert (hits and hits[0][2] == distance) if distance <= data.NEAR_DUPLICATE_DISTANCE else not hits


# ---- found in review: a maker's own folders lose nothing silently --------------------------------


def reasons(skipped):
    return {p.name: r for p, r in ((s.path, s.reason) for s in skipped)}


def test_a_picture_too_large_to_decode_safely_is_skipped_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # Pillow refuses above twice this: a "decompression bomb"
    fill(tmp_path / "with_mask", 6, (200, 10, 10))
    fill(tmp_path / "without_mask", 6, (10, 10, 200))
    Image.new("RGB", (60, 60)).save(tmp_path / "with_mask" / "huge.png")
    samples, skipped, _ = data.discover(tmp_path)
    kept, _ = data.decode(samples, skipped, progress=False)
    assert "too large to decode safely" in reasons(skipped)["huge.png"] and len(kept) == 0  # every one is over


def test_what_a_folder_layout_does_not_read_is_listed(tmp_path):
    fill(tmp_path / "train" / "with_mask", 3, (200, 10, 10))
    fill(tmp_path / "train" / "without_mask", 3, (10, 10, 200))
    fill(tmp_path / "with_mask", 2, (200, 10, 10))  # beside the split folders
    fill(tmp_path / "eval" / "with_mask", 2, (200, 10, 10))  # not a split name
    face((1, 2, 3)).save(tmp_path / "train" / "loose.jpg")
    fill(tmp_path / "train" / "with_mask" / ".thumbnails", 2, (10, 10, 200))  # would be mislabelled
    (tmp_path / "train" / "with_mask" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "train" / "without_mask" / "linked").symlink_to(tmp_path / "eval", target_is_directory=True)
    samples, skipped, layout = data.discover(tmp_path)
    why = reasons(skipped)
    assert layout == "split-folders" and len(samples) == 6
    assert "not a split" in why["with_mask"] and "not a split" in why["eval"]
    assert "outside a class folder" in why["loose.jpg"] and "hidden folder" in why[".thumbnails"]
    assert why["gone.jpg"] == "broken link" and "linked folder" in why["linked"]


def write_manifest(folder, text, encoding="utf-8"):
    (folder / "manifest.csv").write_bytes(text.encode(encoding))


def test_a_manifest_keeps_to_its_folder_and_says_what_it_leaves_out(tmp_path):
    fill(tmp_path / "with_mask", 4, (200, 10, 10))
    fill(tmp_path / "without_mask", 4, (10, 10, 200))
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    fill(outside, 1, (0, 0, 0))
    write_manifest(tmp_path, "\ufeffpath,label,split\n"  # Excel's BOM
                   "with_mask\\img0.jpg,with_mask,train\n"  # written on Windows
                   "with_mask/img1.jpg,with_mask,holdout\n"
                   "without_mask/img0.jpg,without_mask,train\n"
                   "without_mask/img0.jpg,without_mask,test\n"
                   f"../{outside.name}/img0.jpg,with_mask,train\n"
                   f"{outside / 'img0.jpg'},with_mask,train\n"
                   "without_mask/img1.jpg\n")
    samples, skipped, layout = data.discover(tmp_path)
    assert layout == "manifest"
    assert sorted(s.path.relative_to(tmp_path).as_posix() for s in samples) == ["with_mask/img0.jpg", "without_mask/img0.jpg"]
    text = " | ".join(f"{s.path.name}: {s.reason}" for s in skipped)
    assert "unknown split 'holdout'" in text and "listed again (first on line 4)" in text
    assert text.count("outside the data folder") == 2 and "line 8 has no path or no label" in text
    assert text.count("not listed in manifest.csv") == 5  # with_mask/img2-3, without_mask/img1-3 (img1's line is short)


def test_a_manifest_that_is_not_utf8_is_one_line(tmp_path):
    fill(tmp_path / "with_mask", 2, (200, 10, 10))
    write_manifest(tmp_path, "path,label\nwith_mask/caf\u00e9.jpg,with_mask\n", encoding="latin-1")
    with pytest.raises(UserError, match="manifest.csv: not UTF-8 text .*save it as CSV UTF-8"):
        data.discover(tmp_path)


def test_limit_below_one_and_an_unknown_held_out_source_are_one_line(tmp_path):
    fill(tmp_path / "with_mask", 6, (200, 10, 10))
    fill(tmp_path / "without_mask", 6, (10, 10, 200))
    with pytest.raises(UserError, match="--limit 0: at least 1"):
        data.load_dataset(tmp_path, limit=0, progress=False)
    with pytest.raises(UserError, match=f"--hold-out-source typo: no such source.*{tmp_path.name}"):
        data.load_dataset(tmp_path, progress=False, hold_out_sources=("typo",))


def test_a_set_one_folder_down_is_named_in_the_error(tmp_path):
    fill(tmp_path / "dataset" / "with_mask", 3, (200, 10, 10))
    with pytest.raises(UserError, match="dataset/ holds them one level down: pass --data .*dataset"):
        data.load_dataset(tmp_path, progress=False)


def test_a_skipped_name_with_a_newline_or_bad_bytes_stays_on_one_line(tmp_path):
    import os

    odd = [tmp_path / "a\nb.txt", Path(os.fsdecode(bytes(tmp_path) + b"/bad\xff.txt"))]
    report = data.skipped_report([data.Skipped(p, "not an image file (.txt)") for p in odd])
    assert report.count("\n") == 1 and "\\n" in report and "\\xff" in report
    report.encode("utf-8")  # printable on a strict UTF-8 terminal


def test_a_set_of_a_few_sessions_says_why_a_split_is_empty_or_lacks_a_class(tmp_path, capsys):
    """Found in review: near-identical frames of one session per class gave 'add more images' for an empty
    split, and a validation split without one class passed silently."""
    fill(tmp_path / "with_mask", 8, (200, 10, 10))  # each class one flat colour: one group per class
    fill(tmp_path / "without_mask", 8, (10, 10, 200))
    with pytest.raises(UserError, match=r"only \d+ group\(s\) of near-duplicates, and a group never straddles splits"):
        data.load_dataset(tmp_path, progress=False)


def test_pictures_are_decoded_at_the_models_input_size_and_32_is_the_fixed_size_codes(data_dir):
    import hashlib

    from host import preprocess

    at_32, _ = data.load_test_split(data_dir, limit=3, progress=False)
    # sha256[:16] computed by the code before the input size was a property of the design (6f547ff)
    assert hashlib.sha256(at_32.pixels.tobytes()).hexdigest()[:16] == "25628294fb1820ad" and at_32.size == 32
    at_48, _ = data.load_test_split(data_dir, limit=3, progress=False, size=48)
    assert at_48.pixels.shape == (6, 48, 48, 3) and at_48.paths == at_32.paths and at_48.size == 48
    assert np.array_equal(at_48.pixels[4], preprocess.board_pixels(data.load_image(at_48.paths[4]), 48))
    assert np.array_equal(at_32.at(48).pixels, at_48.pixels) and at_32.at(32) is at_32
    assert np.array_equal(at_48.at(32).pixels, at_32.pixels)
    both = data.Split.concat(at_32.subset([0, 1]), at_32.subset([5]))
    assert np.array_equal(both.at(48).pixels, at_48.pixels[[0, 1, 5]])
    assert data.decode([], [], size=48)[1].shape == (0, 48, 48, 3)


def test_a_dataset_is_split_the_same_at_every_input_size(tmp_path):
    fill(tmp_path / "with_mask", 8, (200, 0, 0))
    fill(tmp_path / "without_mask", 8, (0, 0, 200))
    a = data.load_dataset(tmp_path, progress=False)
    b = data.load_dataset(tmp_path, progress=False, size=48)
    assert (a.size, b.size) == (32, 48) and b.train.pixels.shape[1:] == (48, 48, 3)
    for name in ("train", "val", "test"):
        assert getattr(a, name).paths == getattr(b, name).paths
