"""Captured frames named by log lines, opened safely.

A log line names its capture relative to the card (`captures/<label>/b000012-s000345.jpg`). The
report only opens a picture that resolves inside the card or archive folder the log came from: a
name that is absolute, holds `..`, or leads out through a link is refused, never read. A capture
that cannot be decoded (truncated by a power cut, not an image, too many pixels: a decompression
bomb) is "unreadable". Either way it is counted and shown as such; the report goes on.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from PIL import Image

MAX_CAPTURE_PIXELS = 2048 * 2048  # the camera saves 200x200 (at most 640x480): anything this big is not a capture
MAX_CAPTURE_BYTES = 16 << 20


class CaptureError(Exception):
    """Why a capture is not shown: status is 'refused' (path) or 'unreadable' (content)."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def capture_path(root: str | None, image: str) -> Path:
    """The file a log line's image name means, inside its storage root; CaptureError('refused') else."""
    if not root:
        raise CaptureError("refused", "the log's card or archive folder is not known")
    if "\\" in image or "\x00" in image:
        raise CaptureError("refused", "not a path on the card")
    name = PurePosixPath(image)
    if name.is_absolute() or ".." in name.parts or not name.parts or ":" in name.parts[0]:
        raise CaptureError("refused", "an absolute path or one with '..': outside the card")
    base = Path(root).resolve()
    path = base.joinpath(*name.parts)
    try:
        path.resolve().relative_to(base)
    except (ValueError, OSError, RuntimeError):
        raise CaptureError("refused", "leads outside the card through a link") from None
    return path


def open_capture(path: Path) -> Image.Image:
    """The decoded picture (RGB, fully loaded); CaptureError('unreadable') for anything else."""
    try:
        if not path.is_file():
            raise CaptureError("missing", "no such file")
        if path.stat().st_size > MAX_CAPTURE_BYTES:
            raise CaptureError("unreadable", f"{path.stat().st_size:,} bytes: too large for a capture")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_CAPTURE_PIXELS:
                    raise CaptureError("unreadable", f"{width}x{height} pixels: too large for a capture "
                                                     "(a decompression bomb?)")
                image.load()  # a truncated JPEG fails here, not at open
                return image.convert("RGB")
    except CaptureError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError ...
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise CaptureError("unreadable", reason) from None


@dataclass
class CaptureTally:
    """Every capture the report tried to show or re-run, by what happened to it."""
    refused: list[dict] = field(default_factory=list)
    unreadable: list[dict] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)
    seen: set = field(default_factory=set)

    def note(self, frame: dict, error: CaptureError) -> None:
        key = (frame.get("root"), frame.get("image"))
        if key in self.seen:
            return
        self.seen.add(key)
        getattr(self, error.status).append({"device_id": frame.get("device_id"), "boot": frame.get("boot"),
                                            "seq": frame.get("seq"), "image": frame.get("image"),
                                            "status": error.status, "reason": error.reason})

    def summary(self) -> dict:
        return {"refused": len(self.refused), "unreadable": len(self.unreadable), "missing": len(self.missing),
                "examples": (self.refused + self.unreadable + self.missing)[:50]}


def load(frame: dict, tally: CaptureTally) -> Image.Image | None:
    """The frame's captured picture, or None (counted in `tally` with the reason)."""
    if not frame.get("image"):
        return None
    try:
        return open_capture(capture_path(frame.get("root"), frame["image"]))
    except CaptureError as error:
        frame["capture_status"] = error.status
        tally.note(frame, error)
        return None
