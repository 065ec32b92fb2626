"""The model card of a bundle (host.build and every host.compare row): what the model is, what it
fits, how it was trained and on what, and the door figures measured on it."""

from __future__ import annotations

import platform
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from host import mcu
from host.make import bundle, evaluate, ood, publish
from host.make import data as data_mod


def build_card(name, board, facts, macs, params, results, config, dataset, seconds) -> dict:
    size = int(facts.input["shape"][1])  # the square input the checks passed
    inference_ms = board.inference_ms(macs)
    frame_ms = board.frame_ms(macs, size)
    names = bundle.file_names(name)
    return {
        "format": bundle.CARD_FORMAT,
        "name": name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model_file": names["model"],
        "labels_file": names["labels"],
        "labels": dataset.labels,
        "positive_label": data_mod.POSITIVE,
        "output_kind": "sigmoid" if len(dataset.labels) == 2 else "softmax",
        **({"none_label": data_mod.NONE} if data_mod.NONE in dataset.labels else {}),
        "threshold": evaluate.THRESHOLD,
        "sha256": None,  # filled in by the caller from the exact bytes written
        "model_bytes": facts.model_bytes,
        "arena_bytes": facts.arena_bytes,
        "macs": macs,
        "params": params,
        "ops": facts.ops,
        "board": board.name,
        "budgets": {"model_bytes": board.model_budget_bytes, "arena_bytes": board.arena_budget_bytes},
        "input": facts.input,
        "input_size": size,
        "output": facts.output,
        "preprocessing": {
            "camera": "QVGA RGB565, centred 200x200 window",
            "resize": f"bilinear 200x200 -> {size}x{size} (ml.Model.predict / net.classify), host.preprocess.board_downscale",
            "int8_input": "pixel - 128",
        },
        "estimate": {
            "inference_ms": round(inference_ms, 2),
            "frame_ms": round(frame_ms, 2),
            "fps": round(1000.0 / frame_ms, 1),
            "macs_per_cycle": board["macs_per_cycle"],
            "source": board["macs_per_cycle_source"],
            # issue 15: the board's library counted on an emulated Cortex-M7, shown beside the MAC
            # figure until a timing on a camera confirms its calibration (filled in by the caller)
            "counted": None,
        },
        "metrics": {
            "split": "test",
            "float32": results["float32"],
            "int8": results["int8"],
            "agreement": results["agreement"],
            "max_score_difference": results["max_score_difference"],
        },
        "training": {**asdict(config), "seconds": round(seconds, 1),
                     "tensorflow": _version("tensorflow"), "python": platform.python_version(),
                     "packages": package_versions(), "machine": machine_facts()},
        "data": {
            "sets": [r.name for r in dataset.roots] or [dataset.root.name],
            "layout": dataset.layout,
            "fingerprint": dataset.fingerprint,
            "counts": dataset.counts(),
            "trained_on": dataset.sets,  # per set and source: images, synthetic count, licence as stated
            "near_duplicates_of_test_dropped": len(dataset.dropped_near_duplicates),
            "near_duplicates_dropped": [asdict(d) for d in dataset.dropped_near_duplicates],
            "skipped": [{"path": dataset.relative(s.path), "reason": s.reason} for s in dataset.skipped],
        },
    }


def bundle_card(name, board, facts, macs, params, results, config, dataset, seconds, door: dict, payload: bytes) -> dict:
    """The card of a deployable bundle (host.build, and every host.compare row): build_card, the door
    threshold and out-of-domain figures, the counted estimate, and the exact bytes' sha256."""
    card = build_card(name, board, facts, macs, params, results, config, dataset, seconds)
    card.update(ood.card_fields(door))
    card["estimate"]["counted"] = mcu.card_fields(payload, board["clock_hz"])
    card["sha256"] = bundle.sha256_hex(payload)
    card["data"]["test_fingerprint"] = publish.split_fingerprint(dataset.test.paths, dataset.test.labels)
    return card


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package + "-cpu") if package == "tensorflow" else version(package)


# Every package whose version can change a build's bytes for the same seed: training kernels and
# random streams (tensorflow, keras, numpy), image decoding and resizing (pillow), quantization and
# the interpreters that score the model (ai-edge-litert, tflite-micro). README "Same seed, same bundle".
BUILD_PACKAGES = ("tensorflow-cpu", "keras", "numpy", "pillow", "ai-edge-litert", "tflite-micro")


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in BUILD_PACKAGES:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_tile")  # what TensorFlow's kernels choose by


def machine_facts(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """The CPU a build ran on: TensorFlow's CPU kernels pick their code path (and so their rounding)
    by these instruction sets, so the same seed and packages can still give other bytes elsewhere."""
    facts = {"arch": platform.machine(), "cpu": platform.processor() or "unknown", "simd": []}
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return facts
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and facts["cpu"] in ("unknown", platform.machine()):
            facts["cpu"] = value.strip()
        elif key.strip() == "flags":
            present = set(value.split())
            facts["simd"] = [f for f in SIMD_FLAGS if f in present]
            break
    return facts
