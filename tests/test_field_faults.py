"""Generated field faults (issue 12): a hypothesis state machine writes SD cards as cameras would,
with boots, log rotation, wiped and replaced cards, power cuts that truncate the last line, ticks_ms
wrapping, frame_ms of 0, long stalls, door events and damaged captures, and ingests them whenever it
likes. After every ingest, and after ingesting everything twice at the end and building the report:

- every complete record that was on a card at an ingest is in the database exactly once, and nothing
  else is (no record lost or doubled, whatever was wiped or rewritten since);
- per run, uptime_ms moves exactly as the camera's clock did (so it is monotone, with no phantom
  2**30 ms wrap), across rotated parts and the ticks_ms wrap;
- the time logged per run equals the sum of its frame intervals (within 1%);
- the report always renders (exit 0, strict JSON) and counts every frame.

CI cost: MAX_EXAMPLES generated cases of up to STEPS steps (about 30 s on the 2-core CI machine).
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from PIL import Image

from host.field.ingest import ingest
from host.field.logread import TICKS_PERIOD, boot_id_for, format_event, format_frame, format_header
from host.field.report.cli import build_report

MAX_EXAMPLES = 8
STEPS = 25
DEVICES = ("cam-a", "cam-b")
LABELS = ("without_mask", "with_mask")


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), (40, 160, 90)).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


GOOD_JPEG = _jpeg()
DAMAGED = {"truncated": GOOD_JPEG[: len(GOOD_JPEG) // 2], "not_an_image": b"power cut\n" * 20}


@dataclass
class Camera:
    device: str
    card: Path
    booted: bool = False
    boot: int = 0
    boot_id: str = ""
    run: int = 0  # which run this is, counted by the test: two runs never share it, whatever they log
    part: int = 0
    seq: int = 0
    ticks: int = 0  # as the camera's ticks_ms (wraps at 2**30)
    true_ms: int = 0  # ms since this boot, never wrapped: what uptime_ms must come out as
    last_frame_ms: int = 0  # true time of the last frame (frame intervals step from it)
    log: Path | None = None
    last_key: tuple | None = None  # the record on the file's last line (None: the header)
    last_len: int = 0


@dataclass
class Card:
    records: dict = field(default_factory=dict)  # (run, seq) -> (db key, true_ms, kind, frame_ms) of complete records


class FieldFaults(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.base = Path(tempfile.mkdtemp(prefix="tinymask-faults-"))
        self.db = self.base / "t.duckdb"
        self.cards: dict[Path, Card] = {}
        self.cameras = {d: self._camera(d, 0) for d in DEVICES}
        self.expected: dict[tuple, tuple] = {}  # (run, seq) -> ... of every record that was on a card at an ingest
        self.runs = 0  # global run counter: boot ids never repeat, as the firmware's random ones
        self.ingested = False

    def teardown(self):
        try:
            if any(c.records for c in self.cards.values()) or self.expected:
                self.ingest_everything()
                self.ingest_everything()  # twice: the second adds nothing
                if self.expected:
                    self.check_report()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    # -- the cameras ---------------------------------------------------------------------------

    def _camera(self, device: str, number: int) -> Camera:
        card = self.base / f"{device}-card{number}"
        card.mkdir(parents=True)
        self.cards[card] = Card()
        return Camera(device, card)

    def _append(self, cam: Camera, line: str, key: tuple | None, info: tuple | None) -> None:
        with open(cam.log, "a", encoding="ascii") as f:
            f.write(line)
        cam.last_key, cam.last_len = key, len(line)
        if key is not None:
            self.cards[cam.card].records[key] = (self._db_key(cam, key[1]), *info)

    def _key(self, cam: Camera, seq: int) -> tuple:
        return (cam.run, seq)

    def _db_key(self, cam: Camera, seq: int) -> tuple:
        return (cam.device, cam.boot_id, cam.boot, seq)

    @rule(device=st.sampled_from(DEVICES), start=st.one_of(st.just(0), st.integers(TICKS_PERIOD - 3000, TICKS_PERIOD - 1),
                                                           st.integers(0, TICKS_PERIOD - 1)))
    def boot(self, device, start):
        """The camera starts: next boot number from its card, a new boot id, ticks_ms from `start`."""
        cam = self.cameras[device]
        counter = cam.card / "tinymask_boot.txt"
        cam.boot = (int(counter.read_text()) if counter.is_file() else 0) + 1
        counter.write_text(str(cam.boot))
        self.runs += 1
        cam.run = self.runs
        cam.boot_id = boot_id_for(device, self.runs)
        cam.booted, cam.part, cam.seq, cam.ticks, cam.true_ms, cam.last_frame_ms = True, 0, 0, start, 0, 0
        self._new_part(cam)
        self._append(cam, format_event(0, cam.ticks, "boot", "reset=power_on"), self._key(cam, 0), (0, "E", None))
        cam.seq = 1

    def _new_part(self, cam: Camera) -> None:
        (cam.card / "logs").mkdir(exist_ok=True)
        cam.log = cam.card / "logs" / f"b{cam.boot:06d}-p{cam.part:03d}.log"
        cam.log.write_text("")  # a rewritten name (wiped or swapped card) starts empty
        self._append(cam, format_header(cam.device, cam.boot, cam.part, "ab" * 32, "0.2.0", "4.6.0", "openmv_h7",
                                        boot_id=cam.boot_id), None, None)

    @precondition(lambda self: any(c.booted for c in self.cameras.values()))
    @rule(data=st.data(), steps=st.lists(st.one_of(st.integers(0, 120), st.integers(0, 1 << 22)), min_size=1, max_size=40),
          door=st.booleans(), capture=st.sampled_from([None, "good", "truncated", "not_an_image"]))
    def frames(self, data, steps, door, capture):
        """Frames, each `step` ms after the previous one (frame_ms = step, 0 included, some long
        stalls), a door event right after the first, and maybe a capture of the last."""
        cam = self.cameras[data.draw(st.sampled_from([d for d in DEVICES if self.cameras[d].booted]))]
        for i, step in enumerate(steps):
            cam.last_frame_ms += step
            cam.ticks = (cam.ticks + (cam.last_frame_ms - cam.true_ms)) % TICKS_PERIOD
            cam.true_ms = cam.last_frame_ms
            label = LABELS[(cam.seq + i) % 2]
            image = None
            if capture and i == len(steps) - 1:
                image = f"captures/{label}/b{cam.boot:06d}-s{cam.seq:06d}.jpg"
                (cam.card / image).parent.mkdir(parents=True, exist_ok=True)
                (cam.card / image).write_bytes(GOOD_JPEG if capture == "good" else DAMAGED[capture])
            score = 0.3 + 0.4 * ((cam.seq * 37) % 100) / 100
            self._append(cam, format_frame(cam.seq, cam.ticks, label, score, 12, step, "closed", image),
                         self._key(cam, cam.seq), (cam.true_ms, "F", step))
            cam.seq += 1
            if door and i == 0:
                gap = 2 if len(steps) > 1 and steps[1] >= 2 else 0  # the event is stamped after its frame
                cam.true_ms += gap
                cam.ticks = (cam.ticks + gap) % TICKS_PERIOD
                self._append(cam, format_event(cam.seq, cam.ticks, "door_open", "mask"), self._key(cam, cam.seq),
                             (cam.true_ms, "E", None))
                cam.seq += 1

    @precondition(lambda self: any(c.booted for c in self.cameras.values()))
    @rule(data=st.data())
    def rotate(self, data):
        """The log reached log_max_bytes: the next part starts with its own header."""
        cam = self.cameras[data.draw(st.sampled_from([d for d in DEVICES if self.cameras[d].booted]))]
        cam.part += 1
        self._new_part(cam)

    @precondition(lambda self: any(c.booted and c.last_key is not None for c in self.cameras.values()))
    @rule(data=st.data(), fraction=st.floats(0.01, 0.99))
    def power_cut(self, data, fraction):
        """Power lost while writing: the last line is cut short (never kept), the camera is off."""
        cam = self.cameras[data.draw(st.sampled_from(
            [d for d in DEVICES if self.cameras[d].booted and self.cameras[d].last_key is not None]))]
        keep = max(1, min(cam.last_len - 1, int(cam.last_len * fraction)))
        size = cam.log.stat().st_size
        with open(cam.log, "r+b") as f:
            f.truncate(size - cam.last_len + keep)
        del self.cards[cam.card].records[cam.last_key]
        cam.booted, cam.last_key = False, None

    @rule(device=st.sampled_from(DEVICES))
    def wipe(self, device):
        """The card is formatted: logs, captures and the boot counter are gone (its next boot is 1 again)."""
        cam = self.cameras[device]
        for name in ("logs", "captures"):
            shutil.rmtree(cam.card / name, ignore_errors=True)
        (cam.card / "tinymask_boot.txt").unlink(missing_ok=True)
        self.cards[cam.card].records.clear()
        cam.booted = False

    @rule(device=st.sampled_from(DEVICES))
    def swap_card(self, device):
        """Another card goes in (boot counter from 1 again); the old card is kept and still ingested."""
        number = sum(1 for card in self.cards if card.name.startswith(device))
        self.cameras[device] = self._camera(device, number)

    @rule()
    def ingest_now(self):
        self.ingest_everything()

    # -- checks --------------------------------------------------------------------------------

    def ingest_everything(self) -> None:
        sources = [card for card in self.cards if (card / "logs").is_dir() and any((card / "logs").glob("*.log"))]
        for card in self.cards:
            self.expected.update(self.cards[card].records)
        if not sources:
            return
        ingest(sources, self.db, progress=False, echo=lambda line: None)
        self.ingested = True
        self.check_database()

    def check_database(self) -> None:
        with duckdb.connect(str(self.db), read_only=True) as con:
            rows = con.execute("SELECT device_id, boot_id, boot, seq, uptime_ms FROM records").fetchall()
        keys = Counter(row[:4] for row in rows)
        wanted = Counter(v[0] for v in self.expected.values())
        doubled = [k for k, n in keys.items() if n > wanted.get(k, 0) and wanted.get(k)]
        assert not doubled, f"records stored twice: {doubled[:5]}"
        lost = wanted - keys
        assert not lost, f"{sum(lost.values())} complete records lost, e.g. {sorted(lost)[:3]}"
        extra = keys - wanted
        assert not extra, f"records that were never written: {sorted(extra)[:3]}"
        true = {v[0]: v[1] for v in self.expected.values()}
        first: dict[tuple, tuple[int, int]] = {}
        for device, boot_id, boot, seq, uptime in rows:
            run = (device, boot_id, boot)
            if run not in first or seq < first[run][0]:
                first[run] = (seq, uptime - true[(device, boot_id, boot, seq)])
        for device, boot_id, boot, seq, uptime in rows:
            off = uptime - true[(device, boot_id, boot, seq)] - first[(device, boot_id, boot)][1]
            assert off == 0, f"{device} b{boot} s{seq}: uptime {uptime} ms is off the camera's clock by {off} ms"

    def check_report(self) -> None:
        out = self.base / "report"
        report = build_report(self.db, out, bundle_dir=None, host_check=False, echo=lambda line: None)
        saved = json.loads((out / "report.json").read_text(),
                           parse_constant=lambda name: (_ for _ in ()).throw(AssertionError(f"report.json: {name}")))
        frames = [v for v in self.expected.values() if v[2] == "F"]
        assert saved["summary"]["frames"] == len(frames)
        assert "<html" in (out / "report.html").read_text()
        intervals = sum(v[3] for v in frames)  # every run starts at its boot event: a prefix of the run
        logged = sum(b["end_ms"] - b["start_ms"] for b in report["gaps"]["boots"])
        door_gaps = 2 * sum(1 for k, v in self.expected.items() if v[2] == "E" and k[1] > 0)
        assert intervals <= logged <= intervals + door_gaps and abs(logged - intervals) <= max(0.01 * intervals, door_gaps)

    @invariant()
    def cameras_know_their_cards(self):
        for cam in self.cameras.values():
            assert cam.card in self.cards


FieldFaults.TestCase.settings = settings(max_examples=MAX_EXAMPLES, stateful_step_count=STEPS, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
test_field_faults = FieldFaults.TestCase
