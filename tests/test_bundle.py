"""The bundle swap: a failure at any point leaves a complete bundle under the real name."""

import os

import pytest

from host.make import bundle


def make_bundle(models, name, payload):
    staging = bundle.stage(models, name)
    bundle.write_core(staging, name, payload, ["without_mask", "with_mask"], {"sha256": bundle.sha256_hex(payload)})
    return staging


def test_commit_replaces_the_previous_bundle(tmp_path):
    bundle.commit(make_bundle(tmp_path, "m", b"old"), tmp_path, "m")
    bundle.commit(make_bundle(tmp_path, "m", b"new"), tmp_path, "m")
    assert (tmp_path / "m" / "m.tflite").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_failed_swap_puts_the_old_bundle_back(tmp_path, monkeypatch):
    bundle.commit(make_bundle(tmp_path, "m", b"old"), tmp_path, "m")
    staging = make_bundle(tmp_path, "m", b"new")
    real_replace = os.replace

    def interrupted(src, dst):
        if str(src) == str(staging):
            raise KeyboardInterrupt  # Ctrl-C between the two renames
        return real_replace(src, dst)

    monkeypatch.setattr(bundle.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bundle.commit(staging, tmp_path, "m")
    assert (tmp_path / "m" / "m.tflite").read_bytes() == b"old"


def test_leftovers_of_a_killed_build_are_recovered(tmp_path):
    bundle.commit(make_bundle(tmp_path, "m", b"old"), tmp_path, "m")
    os.replace(tmp_path / "m", tmp_path / ".previous-m-999")  # killed after the first rename
    (tmp_path / ".staging-m-998").mkdir()
    bundle.remove_leftovers(tmp_path, "m")
    assert (tmp_path / "m" / "m.tflite").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
