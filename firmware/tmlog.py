# The SD log writer (contract 3, docs/log-format.md, format version 2).
# The line formatting functions at the top are pure (tested under a real MicroPython); the Log class
# adds buffering, periodic flushes, rotation by size and graceful degradation when the card is
# missing, full or failing: the door loop never stops because of the log.

import os

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # pure functions still import on CPython; Log needs MicroPython's time
    ticks_diff = ticks_ms = None
try:
    from time import localtime
except ImportError:
    localtime = None

import storage

FORMAT_VERSION = 2
# An unset RTC starts at 2015-01-01 on the STM32 port (openmv/micropython openmv-1.24,
# ports/stm32/rtc.c RTC_CalendarConfig) and 2013-01-01 on the mimxrt port (ports/mimxrt/machine_rtc.c);
# the H7 has no RTC battery, so a power cut brings that date back. Earlier years mean "not set".
RTC_SET_FROM_YEAR = 2024
EVENTS = ("boot", "door_open", "door_close", "error", "camera_error", "model_error", "config_error",
          "sd_full", "capture_error", "watchdog")
BUFFER_BYTES = 4096
# room a frame record without a capture takes at most: its fields are bounded (labels 40 characters,
# door states, integers), so it is written straight into the buffer with no string built per frame
RECORD_MAX = 160
DETAIL_MAX = 200  # event details are cut to this many characters (host/logread.py does the same)
ENOSPC = 28
_HEX = b"0123456789abcdef"


def clean(value):
    """A field as the format allows it: ASCII, no ',', '*' or line breaks (they become '_'), '-' if empty."""
    if value is None:
        return "-"
    text = str(value)
    if not text:
        return "-"
    out = []
    for ch in text:
        code = ord(ch)
        if code < 32 or code > 126 or ch == "," or ch == "*":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def checksum(data):
    """Sum of the bytes before '*', modulo 256. data: str (ASCII) or bytes."""
    if isinstance(data, str):
        data = data.encode()
    total = 0
    for b in data:
        total += b
    return total & 0xFF


def format_line(body):
    return body + "*" + "%02x" % checksum(body) + "\n"


def header_body(device_id, boot, part, model_sha256, firmware_version, omv_firmware, board,
                boot_id="-", rtc="-", rtc_ticks=None):
    return "H,%d,%s,%d,%d,%s,%s,%s,%s,%s,%s,%s" % (
        FORMAT_VERSION, clean(device_id), boot, part, clean(model_sha256), clean(firmware_version),
        clean(omv_firmware), clean(board), clean(boot_id), clean(rtc), _opt(rtc_ticks, "%d"))


def new_boot_id(urandom=None):
    """16 hex digits from the hardware RNG (os.urandom: MICROPY_PY_OS_URANDOM is on for the H7, H7
    Plus and RT1062 ports): a wiped or replaced card restarts the boot counter, never this."""
    if urandom is None:
        try:
            from os import urandom
        except ImportError:
            urandom = None
    if urandom is not None:
        data = urandom(8)
    else:  # no RNG: the free-running microsecond counter is the best entropy at hand
        from time import ticks_us
        n = ticks_us()
        data = bytes([(n >> (8 * i)) & 255 for i in range(8)])
    out = []
    for b in data:
        out.append(chr(_HEX[b >> 4]) + chr(_HEX[b & 15]))
    return "".join(out)


def rtc_text(t):
    """'2026-12-01T11:35:55Z' from a time.localtime() tuple, or '-' when the RTC was never set."""
    if t is None or t[0] < RTC_SET_FROM_YEAR:
        return "-"
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (t[0], t[1], t[2], t[3], t[4], t[5])


def wall_clock():
    """(RTC text or '-', ticks_ms read with it). tools.deploy sets the RTC to UTC from the host."""
    if localtime is None:
        return "-", None
    try:
        t = localtime()
    except Exception:
        return "-", None
    text = rtc_text(t)
    return text, (ticks_ms() if text != "-" else None)


def _opt(value, fmt):
    return "-" if value is None else fmt % value


def score_text(score):
    """4 decimals, half up, in integers: the board's single-precision '%.4f' and CPython's may
    round ties differently; int8 scores are multiples of 1/256, so score * 10000 is exact in both."""
    if score is None:
        return "-"
    n = _score_units(score)
    sign = "-" if n < 0 else ""
    n = -n if n < 0 else n
    return "%s%d.%04d" % (sign, n // 10000, n % 10000)


def _score_units(score):
    """score in units of 1e-4, rounded half away from zero (score_text and the in-place writer)."""
    return int(score * 10000 + 0.5) if score >= 0 else -int(0.5 - score * 10000)


def _put(buf, p, data):
    for i in range(len(data)):  # a range loop: no iterator object, unlike "for b in data"
        buf[p + i] = data[i]
    return p + len(data)


def _put_int(buf, p, n):
    """n in decimal, as "%d" writes it."""
    if n < 0:
        buf[p] = 45
        p += 1
        n = -n
    digits = 1
    rest = n
    while rest >= 10:
        rest //= 10
        digits += 1
    end = p + digits
    for i in range(digits):
        buf[end - 1 - i] = 48 + n % 10
        n //= 10
    return end


def _put_opt_int(buf, p, n):
    if n is None:
        buf[p] = 45
        return p + 1
    return _put_int(buf, p, n)


def _put_score(buf, p, score):
    """score_text's characters (4 decimals, half up, in integers)."""
    if score is None:
        buf[p] = 45
        return p + 1
    n = _score_units(score)
    if n < 0:
        buf[p] = 45
        p += 1
        n = -n
    p = _put_int(buf, p, n // 10000)
    buf[p] = 46  # '.'
    n %= 10000
    for i in range(4):
        buf[p + 4 - i] = 48 + n % 10
        n //= 10
    return p + 5


def frame_body(seq, ticks, label, score, infer_ms, frame_ms, door, image):
    """label, door and image must already be clean (they are checked once, not per frame)."""
    return "F,%d,%d,%s,%s,%s,%s,%s,%s" % (
        seq, ticks, label, score_text(score), _opt(infer_ms, "%d"), _opt(frame_ms, "%d"), door,
        image or "-")


def event_body(seq, ticks, event, detail):
    return "E,%d,%d,%s,%s" % (seq, ticks, clean(event), clean(detail)[:DETAIL_MAX])


def log_name(boot, part):
    return "b%06d-p%03d.log" % (boot, part)


def capture_name(capture_dir, label, boot, seq):
    return "%s/%s/b%06d-s%06d.jpg" % (capture_dir, label, boot, seq)


def error_code(exc):
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


class Log:
    """Append-only log in <root>/<log_dir>/b<boot>-p<part>.log.

    status: 'ok', 'off' (disabled in config), 'no_card', 'full' (ENOSPC) or 'error' (other I/O
    error). Once not 'ok' the log stays off for this boot and records are only counted as dropped;
    `seq` keeps counting so capture names and records stay unique.
    """

    def __init__(self, root, cfg, boot, header, console=print, on_fail=None):
        self.root = root
        self.on_fail = on_fail  # called once when the log stops working (main.py closes the door)
        self.boot = boot
        self.header = header  # (device_id, model_sha256, firmware_version, omv_firmware, board[, boot_id])
        self.console = console
        self.flush_records = cfg["log_flush_records"]
        self.flush_ms = cfg["log_flush_ms"]
        self.max_bytes = cfg["log_max_bytes"]
        self.dir = None
        self.seq = 0
        self.part = 0
        self.file = None
        self.file_bytes = 0
        self.buf = bytearray(BUFFER_BYTES)
        self.texts = {}  # label or door state -> its bytes (_ascii)
        self.mv = memoryview(self.buf)
        self.used = 0
        self.pending = 0
        self.dropped = 0
        self.last_flush = ticks_ms()
        self.last_ticks = None  # records never go back in time: a later record never gets an earlier tick
        self.problem = ""
        if not cfg["log_enabled"]:
            self.status = "off"
        elif root is None:
            self.status = "no_card"
        else:
            self.status = "ok"
            self.dir = storage.join(root, cfg["log_dir"])
            try:
                storage.make_dirs(self.dir)
                self._open_part()
            except OSError as exc:
                self._fail(exc)

    def ok(self):
        return self.status == "ok"

    def path(self):
        return storage.join(self.dir, log_name(self.boot, self.part))

    def forward(self, ticks):
        """The record's ticks, or the previous record's when it would step back (a caller that logs
        out of time order); so ticks_diff between consecutive records is never negative."""
        last = self.last_ticks
        if last is not None and ticks_diff(ticks, last) < 0:
            return last
        self.last_ticks = ticks
        return ticks

    def frame(self, ticks, label, score, infer_ms, frame_ms, door, image):
        seq = self.seq
        self.seq = seq + 1
        ticks = self.forward(ticks)
        if self.status != "ok":
            self.dropped += 1
            return seq
        if image is not None and image != "-":  # a captured frame (not every frame): formatted as a string
            self._add(frame_body(seq, ticks, label, score, infer_ms, frame_ms, door, image), ticks, False)
        else:
            self._add_frame(seq, ticks, label, score, infer_ms, frame_ms, door)
        return seq

    def _add_frame(self, seq, ticks, label, score, infer_ms, frame_ms, door):
        """frame_body's bytes written into the buffer in place: the frame loop builds no string."""
        if self.used + RECORD_MAX + 4 > BUFFER_BYTES:
            self.flush()
            if self.status != "ok":
                self.dropped += 1
                return
        buf = self.buf
        start = self.used
        buf[start] = 70  # 'F'
        buf[start + 1] = 44  # ','
        p = _put_int(buf, start + 2, seq)
        buf[p] = 44
        p = _put_int(buf, p + 1, ticks)
        buf[p] = 44
        p = _put(buf, p + 1, self._ascii(label))
        buf[p] = 44
        p = _put_score(buf, p + 1, score)
        buf[p] = 44
        p = _put_opt_int(buf, p + 1, infer_ms)
        buf[p] = 44
        p = _put_opt_int(buf, p + 1, frame_ms)
        buf[p] = 44
        p = _put(buf, p + 1, self._ascii(door))
        buf[p] = 44
        buf[p + 1] = 45  # '-': no image
        p += 2
        if self._part_full(p - start + 4):
            # the part is full: rotate as _add does (rare, so the string is fine here)
            self._add(frame_body(seq, ticks, label, score, infer_ms, frame_ms, door, "-"), ticks, False)
            return
        self._seal(start, p)
        self._counted(ticks, False)

    def _ascii(self, text):
        """The bytes of a label or door state, encoded once per distinct value."""
        data = self.texts.get(text)
        if data is None:
            data = clean(text).encode()
            self.texts[text] = data
        return data

    def event(self, ticks, event, detail):
        """Events also go to the console; they are flushed at once (rare and important)."""
        seq = self.seq
        self.seq = seq + 1
        ticks = self.forward(ticks)
        body = event_body(seq, ticks, event, detail)
        self.console("tinymask: " + body)
        if self.status != "ok":
            self.dropped += 1
            return seq
        self._add(body, ticks, True)
        return seq

    def _add(self, body, ticks, urgent):
        data = body.encode()
        n = len(data) + 4  # '*', two hex digits, '\n'
        if self._part_full(n):
            self._rotate()
            if self.status != "ok":
                self.dropped += 1
                return
        if self.used + n > BUFFER_BYTES:
            self.flush()
            if self.status != "ok":
                self.dropped += 1
                return
            if n > BUFFER_BYTES:  # longer than the whole buffer: straight to the file
                self._write_line(data, ticks)
                return
        self._append(data)
        self._counted(ticks, urgent)

    def _part_full(self, n):
        """A record of n bytes would take this part past log_max_bytes (an empty part takes any record)."""
        return self.file_bytes + self.used + n > self.max_bytes and self.file_bytes + self.used > 0

    def _counted(self, ticks, urgent):
        """One more record in the buffer: flushed when urgent, every flush_records records or flush_ms."""
        self.pending += 1
        if urgent or self.pending >= self.flush_records or ticks_diff(ticks, self.last_flush) >= self.flush_ms:
            self.flush()

    def _append(self, data):
        # copy into the preallocated buffer and add "*cs\n" without building another string
        start = self.used
        end = start + len(data)
        self.mv[start:end] = data
        self._seal(start, end)

    def _seal(self, start, end):
        """Close the record in buf[start:end] with "*cs\n" (its checksum, read from the buffer itself)."""
        buf = self.buf
        total = 0
        for i in range(start, end):
            total += buf[i]
        buf[end] = 42  # '*'
        buf[end + 1] = _HEX[(total >> 4) & 15]
        buf[end + 2] = _HEX[total & 15]
        buf[end + 3] = 10  # '\n'
        self.used = end + 4

    def _write_line(self, data, ticks):
        try:
            self.file.write(data)
            self.file.write(("*%02x\n" % checksum(data)).encode())
            self.file.flush()
        except OSError as exc:
            self.dropped += 1
            self._fail(exc)
            return
        self.file_bytes += len(data) + 4
        self.last_flush = ticks_ms()

    def flush(self):
        if self.status != "ok" or self.file is None:
            return
        self.last_flush = ticks_ms()
        if self.used == 0:
            return
        try:
            self.file.write(self.mv[:self.used])
            self.file.flush()  # FatFs f_sync: what is flushed survives a power cut
        except OSError as exc:
            self.dropped += self.pending
            self.used = 0
            self.pending = 0
            self._fail(exc)
            return
        self.file_bytes += self.used
        self.used = 0
        self.pending = 0

    def _open_part(self):
        while storage.exists(self.path()):  # never append to a file of another run
            self.part += 1
        self.file = open(self.path(), "ab")
        self.file_bytes = 0
        device_id, sha, fw, omv, board = self.header[:5]
        boot_id = self.header[5] if len(self.header) > 5 else "-"
        rtc, rtc_ticks = wall_clock()
        data = header_body(device_id, self.boot, self.part, sha, fw, omv, board, boot_id, rtc, rtc_ticks).encode()
        if len(data) + 4 > BUFFER_BYTES:  # config validation keeps it far shorter; never overrun the buffer
            self._write_line(data, ticks_ms())
        else:
            self._append(data)

    def _rotate(self):
        self.flush()
        if self.status != "ok":
            return
        self._close_file()
        self.part += 1
        try:
            self._open_part()
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc):
        code = error_code(exc)
        self.status = "full" if code == ENOSPC else "error"
        self.problem = str(exc)
        self.used = 0
        self.pending = 0
        self._close_file()
        # the card cannot take it: the event goes to the console only
        seq = self.seq
        self.seq = seq + 1
        event = "sd_full" if self.status == "full" else "error"
        self.console("tinymask: " + event_body(seq, ticks_ms(), event, "log off: " + self.problem))
        if self.on_fail is not None:
            self.on_fail()

    def _close_file(self):
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass
            self.file = None

    def close(self):
        self.flush()
        self._close_file()
        try:
            os.sync()
        except (AttributeError, OSError):
            pass
