# Memory recovery: what the door does when the model cannot be loaded for lack of memory.
#
# ml.Model() copies the model file into one heap block and puts its arena on the heap too; after an
# inference error the reload can fail from fragmentation, and only a reset gives back one clean heap.
# From 4.6.0 an arena that no longer fits is not a MemoryError: ml_backend_init_model runs
# AllocateTensors() in the largest free heap run and raises ValueError("Failed to allocate tensors")
# (openmv/openmv src/lib/tflm/tflm_backend.cc at v4.6.0, lib/tflm/tflm_backend.cc at v4.8.1), the same
# error as a model the interpreter refuses. A model that already loaded in this boot is known good, so
# for it that error is memory too.
# On firmware 4.5.6 to 4.5.9 a failed ml.Model() also leaks the whole fb_alloc area until a reset,
# so retrying in place can never succeed and breaks img.save too (openmv-platform.md item 11).
# So: log, then reset the board; a counter on the storage guards against a reset loop.

MAX_RESETS = 3  # consecutive memory resets before the door gives up and waits for a person
CLEAR_AFTER_FRAMES = 1000  # frames served with a loaded model that prove the last reset helped
COUNTER_FILE = "tinymask_resets.txt"

RETRY = "retry"  # try ml.Model() again after recover_ms (cannot leak, no memory problem)
RESET = "reset"  # log, flush, machine.reset()
STOP = "stop"  # no more loads until a person resets the board: the door stays closed


def version_tuple(text):
    text = str(text)
    if text[:1] in ("v", "V"):
        text = text[1:]
    parts = []
    for part in text.split("-")[0].split("."):
        digits = ""
        for ch in part:
            if "0" <= ch <= "9":
                digits += ch
            else:
                break
        parts.append(int(digits) if digits else 0)
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts[:3])


def leaks_on_failed_load(version):
    """4.5.6-4.5.9: ml_backend_init_model calls fb_alloc_all and raises without freeing."""
    return (4, 5, 6) <= version <= (4, 5, 9)


def decide(version, memory_error, resets_so_far, in_interpreter=True, loaded_before=False):
    """What to do after a failed model load (pure, tested on the host and under MicroPython).
    in_interpreter: the failure came from ml.Model() itself (only then can 4.5.6-4.5.9 have leaked;
    a missing file or a sha256 mismatch is found before it is called). loaded_before: the same model
    loaded in this boot, so an interpreter failure now is the heap's, not the model's."""
    leaks = in_interpreter and leaks_on_failed_load(version)
    if not memory_error and not leaks and not (in_interpreter and loaded_before):
        return RETRY
    if resets_so_far < MAX_RESETS:
        return RESET
    return STOP


class Recovery:
    def __init__(self, version_text, path=COUNTER_FILE):
        self.version = version_tuple(version_text)
        self.path = path
        self.resets = self._read()
        self.frames = 0

    def _read(self):
        try:
            with open(self.path) as f:
                return int(f.read().strip() or "0")
        except (OSError, ValueError):
            return 0

    def _write(self, n):
        with open(self.path, "w") as f:
            f.write(str(n) + "\n")

    def after_failed_load(self, exc, in_interpreter=True, loaded_before=False):
        """RETRY, RESET (the counter is already written) or STOP."""
        action = decide(self.version, isinstance(exc, MemoryError), self.resets, in_interpreter, loaded_before)
        if action == RESET:
            try:
                self._write(self.resets + 1)
            except OSError:  # no guard without storage: never risk a reset loop
                return STOP
        return action

    def frame_ok(self):
        """A frame served with the model loaded; after enough of them the guard starts over."""
        if self.resets and self.frames < CLEAR_AFTER_FRAMES:
            self.frames += 1
            if self.frames == CLEAR_AFTER_FRAMES:
                try:
                    self._write(0)
                    self.resets = 0
                except OSError:
                    pass
