"""The report's pictures (matplotlib, headless): each function takes report data and returns PNG bytes."""

from __future__ import annotations

import functools
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MAX_DEVICE_PANELS = 6
COLORS = {"with_mask": "#2e8b57", "without_mask": "#c0392b"}
OTHER_COLORS = ["#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


PLAIN_TEXT = {"text.parse_math": False}  # device names and labels are plain text: a '$' is not mathtext


def plain_text(function):
    """Draw (and save) the figure with mathtext off, so a camera named 'cam$1' is printed as it is."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(PLAIN_TEXT):
            return function(*args, **kwargs)
    return wrapper


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=96)
    plt.close(fig)
    return buffer.getvalue()


def _color(label: str, i: int) -> str:
    return COLORS.get(label, OTHER_COLORS[i % len(OTHER_COLORS)])


def _devices(rows: list[dict]) -> list[str]:
    return sorted({r["device_id"] for r in rows})[:MAX_DEVICE_PANELS]


@plain_text
def per_hour(rows: list[dict], labels: list[str], boots: list[dict]) -> bytes:
    """Frames per hour, stacked by the decision taken, with door openings and reboots marked."""
    devices = _devices(rows)
    fig, axes = plt.subplots(len(devices), 1, figsize=(10, 2.8 * len(devices)), squeeze=False)
    for ax, device in zip(axes[:, 0], devices):
        mine = [r for r in rows if r["device_id"] == device]
        x = np.array([r["timeline_hour"] for r in mine], dtype=float)
        bottom = np.zeros(len(mine))
        for i, label in enumerate(labels):
            counts = np.array([r["decisions"].get(label, 0) for r in mine], dtype=float)
            ax.bar(x + 0.5, counts, width=0.9, bottom=bottom, color=_color(label, i), label=label)
            bottom += counts
        for boot in (b for b in boots if b["device_id"] == device):
            ax.axvline(boot["timeline_start_h"], color="grey", ls=":", lw=1)
        ax.set_ylabel("frames / hour")
        ax.set_title(f"{device}: decisions per hour (dotted lines: reboots)", fontsize=10)
        doors = ax.twinx()
        doors.plot(x + 0.5, [r["door_openings"] for r in mine], "k.-", lw=1, label="door openings")
        doors.set_ylabel("door openings / hour")
        handles = ax.get_legend_handles_labels()[0] + doors.get_legend_handles_labels()[0]
        ax.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="upper right")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("hours on the timeline (boots back to back, hours since each boot)")
    return _png(fig)


@plain_text
def over_time(series: list[dict]) -> bytes:
    """Board loop FPS and inference time along the timeline."""
    fig, (ax_fps, ax_inf) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    for i, device in enumerate(_devices(series)):
        mine = [r for r in series if r["device_id"] == device]
        x = [r["timeline_hour"] for r in mine]
        color = OTHER_COLORS[i % len(OTHER_COLORS)]
        ax_fps.plot(x, [r["loop_fps"] for r in mine], ".", ms=3, color=color, label=f"{device} loop FPS")
        ax_inf.plot(x, [r["infer_ms_mean"] for r in mine], ".", ms=3, color=color, label=f"{device} mean")
        ax_inf.plot(x, [r["infer_ms_p95"] for r in mine], "_", ms=4, color=color, alpha=0.6, label=f"{device} p95")
    ax_fps.set_ylabel("FPS (1000 / frame_ms)")
    ax_inf.set_ylabel("inference ms")
    ax_inf.set_xlabel("hours on the timeline")
    for ax in (ax_fps, ax_inf):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # no series (no frames logged): no empty legend
            ax.legend(fontsize=8, loc="upper right")
    ax_fps.set_title("frame rate and inference time over time", fontsize=10)
    return _png(fig)


@plain_text
def distributions(dist: dict) -> bytes:
    fig, (ax_fps, ax_inf) = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, key, xlabel, color in ((ax_fps, "fps", "FPS per frame (1000 / frame_ms)", "#1f77b4"),
                                   (ax_inf, "infer_ms", "inference time (ms)", "#ff7f0e")):
        bins = dist[key]
        ax.bar([b["lower"] for b in bins], [b["count"] for b in bins],
               width=[b["width"] * 0.95 for b in bins], align="edge", color=color)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("frames")
        ax.grid(alpha=0.3)
    ax_fps.set_title("distribution of frame rate", fontsize=10)
    ax_inf.set_title("distribution of inference time", fontsize=10)
    return _png(fig)


@plain_text
def score_histograms(hists: dict, threshold: float, door_thresholds: list[float] = ()) -> bytes:
    """Score histograms per predicted class, with the door threshold (dashed, one line per value the
    cameras ran at) and the label cut-off (dotted) when it differs."""
    fig, ax = plt.subplots(figsize=(10, 3.4))
    for i, (label, counts) in enumerate(hists.items()):
        edges = np.linspace(0, 1, len(counts) + 1)
        ax.stairs(counts, edges, fill=True, alpha=0.45, color=_color(label, i), label=f"predicted {label}")
    for door in door_thresholds:
        ax.axvline(door, color="k", ls="--", lw=1.4, label=f"door threshold {door:g}")
    if threshold not in door_thresholds:
        ax.axvline(threshold, color="grey", ls=":", lw=1, label=f"label cut-off {threshold:g}")
    ax.set_yscale("symlog", linthresh=10)
    ax.set_xlabel("score (probability of the positive class)")
    ax.set_ylabel("frames")
    ax.set_title("score histograms per predicted class", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


@plain_text
def door_reasons(reasons: list[dict]) -> bytes:
    fig, ax = plt.subplots(figsize=(10, 2.2 + 0.25 * len(reasons)))
    names = [f"{r['event']}: {r['reason']}" for r in reasons]
    ax.barh(names[::-1], [r["count"] for r in reasons][::-1],
            color=["#2e8b57" if r["event"] == "door_open" else "#7f7f7f" for r in reasons][::-1])
    ax.set_xlabel("count")
    ax.set_title("door openings and closings by trigger", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


@plain_text
def coverage(boots: list[dict], silent: list[dict]) -> bytes:
    """Each boot as a bar on its device's timeline; red marks where no record was logged for 10 s or more."""
    devices = sorted({b["device_id"] for b in boots})
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.45 * len(devices)))
    for y, device in enumerate(devices):
        for boot in (b for b in boots if b["device_id"] == device):
            start = boot["timeline_start_h"] + boot["start_ms"] / 3.6e6
            length = max((boot["end_ms"] - boot["start_ms"]) / 3.6e6, 0.01)
            ax.broken_barh([(start, length)], (y - 0.35, 0.7), color="#4c72b0")
            started = boot.get("started_utc")  # wall clock when the camera's RTC was set
            label = f"b{boot['boot']}" + (f" {started[:10]} {started[11:16]} UTC" if started else "")
            ax.text(start, y + 0.38, label, fontsize=7, va="bottom")
            for gap in (g for g in silent if g["device_id"] == device and g["boot"] == boot["boot"]):
                ax.broken_barh([(boot["timeline_start_h"] + gap["from_ms"] / 3.6e6, gap["seconds"] / 3600)],
                               (y - 0.35, 0.7), color="#d62728")
    ax.set_yticks(range(len(devices)), devices)
    ax.set_ylim(-0.7, len(devices) - 0.1)
    ax.set_xlabel("hours on the timeline (blue: logging, red: silent 10 s or more)")
    ax.set_title("data coverage per camera and boot", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


@plain_text
def confusion(metrics: dict, title: str) -> bytes:
    labels, matrix = metrics["labels"], np.array(metrics["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center",
                color="white" if value > matrix.max() / 2 else "black", fontsize=11)
    ax.set_xticks(range(len(labels)), labels, rotation=20)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("camera decided")
    ax.set_ylabel("person labelled")
    ax.set_title(title, fontsize=10)
    return _png(fig)
