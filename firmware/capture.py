# Capture mode: save the 200x200 camera window as JPEG into captures/<label>/, so the camera
# collects its own on-device test set (every Nth frame, or only the frames the model is unsure of).

import storage
import tmlog

OFF = "off"
EVERY_N = "every_n"
LOW_CONFIDENCE = "low_confidence"


def wanted(mode, frame_index, score, every_n, low_confidence):
    """Pure decision: save this frame? score is P(positive)."""
    if mode == EVERY_N:
        return frame_index % every_n == 0
    if mode == LOW_CONFIDENCE:
        confidence = score if score >= 0.5 else 1.0 - score
        return confidence < low_confidence
    return False


class Capture:
    def __init__(self, cfg, root, boot):
        self.mode = cfg["capture_mode"] if root is not None else OFF
        self.every_n = cfg["capture_every_n"]
        self.low_confidence = cfg["capture_low_confidence"]
        self.quality = cfg["capture_quality"]
        self.dir = cfg["capture_dir"]
        self.root = root
        self.boot = boot
        self.ready = {}  # label -> folder exists
        self.saved = 0

    def active(self):
        return self.mode != OFF

    def want(self, frame_index, score):
        return wanted(self.mode, frame_index, score, self.every_n, self.low_confidence)

    def save(self, img, label, seq):
        """Save the frame; returns its path relative to the storage root. Raises OSError."""
        if label not in self.ready:
            storage.make_dirs(storage.join(self.root, self.dir + "/" + label))
            self.ready[label] = True
        name = tmlog.capture_name(self.dir, label, self.boot, seq)
        img.save(storage.join(self.root, name), quality=self.quality)
        self.saved += 1
        return name

    def stop(self):
        self.mode = OFF
