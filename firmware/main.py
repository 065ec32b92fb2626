# tinymask smart door for the OpenMV Cam: camera -> int8 mask classifier -> door state machine ->
# relay, LEDs and SD log. Settings come only from config.json (tmconfig.py); docs/firmware.md.
#
# Fail-safe rule: every error path releases the relay first, then logs. The loop never exits on
# an error: a broken camera or model is retried every recover_ms while the door stays closed, and
# the watchdog resets the board if the loop itself stops.

import gc
import time

import camera
import capture
import door as doorlib
import hw
import infer
import presence
import recovery
import storage
import tmconfig
import tmlog

CONFIG_PATH = "config.json"


class Stats:
    """Frame rate and per-stage times, summed in integers between two console reports."""

    def __init__(self, now):
        self.reset(now)

    def reset(self, now):
        self.start = now
        self.frames = 0
        self.snap = 0
        self.infer = 0
        self.rest = 0

    def add(self, snap_ms, infer_ms, rest_ms):
        self.frames += 1
        self.snap += snap_ms
        self.infer += infer_ms
        self.rest += rest_ms

    def report(self, now, door_state, log_status):
        elapsed = time.ticks_diff(now, self.start)
        n = self.frames if self.frames else 1
        fps = 1000.0 * self.frames / elapsed if elapsed > 0 else 0.0
        print("tinymask: %.1f fps, snapshot %d ms, inference %d ms, door+log %d ms, door %s, log %s, free %d"
              % (fps, self.snap // n, self.infer // n, self.rest // n, door_state, log_status, gc.mem_free()))
        self.reset(now)


class SmartDoor:
    def __init__(self):
        cfg, config_errors = tmconfig.load(CONFIG_PATH)
        self.cfg = cfg
        self.relay = None
        try:
            self.relay = hw.Relay(cfg["relay_pin"], cfg["relay_active_high"])
        except Exception as exc:  # bad pin name: run, log, but never drive an unknown pin
            config_errors.append("relay_pin " + cfg["relay_pin"] + ": " + str(exc))
        self.leds = hw.Leds(cfg["use_leds"])
        self.door = doorlib.Door(cfg["threshold"], cfg["debounce_frames"], cfg["open_ms"])
        self.model = infer.Model(cfg)
        self.gate = presence.Gate(cfg)
        try:
            sha = infer.file_sha256(cfg["model_path"])
        except OSError:
            sha = "-"
        self.root = storage.sd_root()
        boot = 0
        if self.root is not None:
            try:
                boot = storage.next_boot(self.root, cfg["log_dir"])
            except OSError as exc:
                print("tinymask: boot counter not written: " + str(exc))
        device_id = cfg["device_id"] or hw.unique_id()
        header = (device_id, sha, cfg["firmware_version"], hw.omv_version(), cfg["board"], tmlog.new_boot_id())
        self.log = tmlog.Log(self.root, cfg, boot, header, print, self.on_log_fail)
        self.capture = capture.Capture(cfg, self.root, boot)
        now = time.ticks_ms()
        self.log.event(now, "boot", "reset=" + ("watchdog" if hw.reset_by_watchdog() else "normal")
                       + " root=" + str(self.root) + " log=" + self.log.status)
        if hw.reset_by_watchdog():
            self.log.event(now, "watchdog", "previous run was reset by the watchdog")
        for message in config_errors:
            self.log.event(now, "config_error", message)
        if cfg["log_enabled"] and self.root is None:
            self.log.event(now, "error", "no SD card: logging off" + (
                "; door held closed (require_log)" if cfg["require_log"] else ""))
        self.camera = None
        self.camera_retry = now
        self.model_ready = False
        self.model_retry = now
        self.recovery = recovery.Recovery(hw.omv_version())
        self.model_stopped = False  # memory recovery gave up: no more ml.Model() until a reset
        self.fault_until = now
        self.last_error = ""
        self.last_error_at = now
        self.frame_index = 0
        self.stats = Stats(now)
        # last: once the watchdog runs, a start-up that fails after this point would reset the board
        self.wdt = hw.Watchdog(cfg["wdt_enabled"], cfg["wdt_timeout_ms"])

    # --- faults: close first, then tell -------------------------------------------------------

    def close_door(self, now, reason):
        if self.relay is not None:
            self.relay.set(False)
        if self.door.force_closed(reason):
            self.log.event(now, "door_close", reason)

    def fault(self, now, event, detail):
        self.close_door(now, "fault")
        self.fault_until = time.ticks_add(now, self.cfg["recover_ms"])
        key = event + detail
        if key != self.last_error or time.ticks_diff(now, self.last_error_at) >= self.cfg["error_log_ms"]:
            self.log.event(now, event, detail)
            self.last_error = key
            self.last_error_at = now

    def on_log_fail(self):
        if self.cfg["require_log"]:
            self.close_door(time.ticks_ms(), "fault")

    def log_blocks_door(self):
        """require_log: no door opening that the log cannot record (no card, card full, I/O error)."""
        return self.cfg["require_log"] and self.log_problem()

    def faulty(self, now):
        return (self.camera is None or not self.model_ready or self.relay is None
                or self.log_blocks_door() or time.ticks_diff(self.fault_until, now) > 0)

    # --- recovery ------------------------------------------------------------------------------

    def ensure_camera(self, now):
        if self.camera is not None or time.ticks_diff(now, self.camera_retry) < 0:
            return
        self.camera_retry = time.ticks_add(now, self.cfg["recover_ms"])
        try:
            self.camera = camera.Camera(self.cfg, self.wdt.feed)
            if self.camera.window_error:
                self.log.event(time.ticks_ms(), "config_error", self.camera.window_error)
            self.stats.reset(time.ticks_ms())
        except Exception as exc:
            self.camera = None
            self.fault(time.ticks_ms(), "camera_error", "init: " + str(exc))

    def ensure_model(self, now):
        if self.model_ready or self.model_stopped or time.ticks_diff(now, self.model_retry) < 0:
            return
        self.model_retry = time.ticks_add(now, self.cfg["recover_ms"])
        try:
            self.model.load()
            self.model_ready = True
            self.stats.reset(time.ticks_ms())
        except Exception as exc:
            self.model.net = None
            gc.collect()
            self.fault(time.ticks_ms(), "model_error", self.cfg["model_path"] + ": " + str(exc))
            self.recover_memory(exc)

    def recover_memory(self, exc):
        """A load that failed for memory (or any failed load on firmware that leaks fb_alloc): reset
        the board for a clean heap, at most recovery.MAX_RESETS times in a row (recovery.py)."""
        action = self.recovery.after_failed_load(exc, self.model.interpreter_failed, self.model.loaded_once)
        if action == recovery.RESET:
            self.log.event(time.ticks_ms(), "reset", "model load failed (" + str(exc) + "): resetting for a clean heap, "
                           + str(self.recovery.resets + 1) + " of " + str(recovery.MAX_RESETS))
            if self.relay is not None:
                self.relay.release()
            self.log.close()
            hw.reset()
        elif action == recovery.STOP:
            self.model_stopped = True
            self.log.event(time.ticks_ms(), "model_error", "gave up after " + str(self.recovery.resets)
                           + " resets: door held closed until the board is reset by hand")

    # --- one frame ------------------------------------------------------------------------------

    def step(self):
        self.wdt.feed()
        now = time.ticks_ms()
        self.ensure_camera(now)
        self.ensure_model(now)
        if self.camera is None:
            self.close_door(now, "fault")
            self.idle(now)
            return
        t0 = time.ticks_ms()
        try:
            img = self.camera.snapshot()
        except Exception as exc:
            self.camera = None
            self.fault(time.ticks_ms(), "camera_error", "snapshot: " + str(exc))
            return
        t1 = time.ticks_ms()
        if not self.model_ready:
            self.close_door(t1, "fault")
            self.leds.show(t1, False, True, self.log_problem())
            return
        try:
            absent = self.gate.check(img)  # None, or why nobody can be there (dark, flat, plain)
            still = self.gate.still(t1)  # nothing moved for presence_still_ms: cannot open the door
        except Exception as exc:
            self.fault(time.ticks_ms(), "error", "presence: " + str(exc))
            return
        try:
            score = self.model.predict(img)
        except Exception as exc:
            self.model_ready = False
            self.model.net = None
            gc.collect()
            self.fault(time.ticks_ms(), "error", "inference: " + str(exc))
            return
        t2 = time.ticks_ms()
        present = self.model.judge_presence(absent)  # False: logged as none_label, never opens
        # capture before the door decision: a capture that fails for memory is a fault, and the door
        # must then stay closed, not open in this frame and be logged as opened after the close
        image = "-"
        if self.capture.active() and self.capture.want(self.frame_index, score):
            image = self.save_capture(img, t2)
        # a fault holds the door closed for recover_ms, even if the error came after the door update;
        # with no relay (bad pin) the door cannot open, so the log must not say it did
        if self.relay is None or self.log_blocks_door() or time.ticks_diff(self.fault_until, t2) > 0:
            event = self.door.force_closed("fault")
        else:
            event = self.door.update(score, t2, present and not still)
        if self.relay is not None:
            self.relay.set(self.door.relay_on())
        self.frame_index += 1
        t3 = time.ticks_ms()
        self.log.frame(t0, self.model.label, score, time.ticks_diff(t2, t1), time.ticks_diff(t3, t0),
                       self.door.state, image)
        if event is not None:  # after the frame (stamped t0) that caused it, so ticks only move forward
            self.log.event(t2, event, self.door.reason)
        self.leds.show(t3, self.door.relay_on(), self.faulty(t3), self.log_problem())
        self.stats.add(time.ticks_diff(t1, t0), time.ticks_diff(t2, t1), time.ticks_diff(t3, t2))
        self.recovery.frame_ok()
        self.maybe_report(t3)

    def save_capture(self, img, now):
        try:
            return self.capture.save(img, self.model.label, self.log.seq)
        except Exception as exc:  # any error stops capture; the door never depends on it
            self.capture.stop()
            if isinstance(exc, OSError) and tmlog.error_code(exc) == tmlog.ENOSPC:
                self.log.event(now, "sd_full", "capture stopped: " + str(exc))
            elif isinstance(exc, OSError):
                self.log.event(now, "capture_error", "capture stopped: " + str(exc))
            else:  # MemoryError and the like: the heap is in trouble, hold the door closed a while
                gc.collect()
                self.fault(now, "capture_error", "capture stopped: " + str(exc))
            return "-"

    def idle(self, now):
        self.leds.show(now, False, True, self.log_problem())
        time.sleep_ms(50)

    def log_problem(self):
        return self.log.status != "ok" and self.log.status != "off"

    def maybe_report(self, now):
        ms = self.cfg["report_ms"]
        if ms and time.ticks_diff(now, self.stats.start) >= ms:
            self.stats.report(now, self.door.state, self.log.status)
            gc.collect()

    # --- the loop --------------------------------------------------------------------------------

    def run(self):
        try:
            while True:
                try:
                    self.step()
                except Exception as exc:  # anything unforeseen: door closed, logged, loop goes on
                    try:
                        self.fault(time.ticks_ms(), "error", "loop: " + str(exc))
                    except Exception:
                        if self.relay is not None:
                            self.relay.release()
        finally:  # stopped from the IDE (KeyboardInterrupt): release the door, keep the log
            if self.relay is not None:
                self.relay.release()
            if self.door.force_closed("stop"):
                self.log.event(time.ticks_ms(), "door_close", "stop")
            self.leds.off()
            self.log.close()


def main():
    while True:
        try:
            app = SmartDoor()
            break
        except Exception as exc:  # nothing is driven yet: report and retry, never a reset loop
            print("tinymask: start-up failed, retrying: " + str(exc))
            time.sleep_ms(5000)
    app.run()


main()
