# The camera: RGB565, QVGA, a centred square window (200x200 by default), optional fixed
# gain / exposure / white balance. Uses the csi.CSI class (firmware 4.8+) when present, else the
# sensor module (every firmware). Any failure raises; main.py keeps the door closed and retries.
# A window the camera refuses (a hand-edited config.json: the H7's DMA cannot capture a side that
# is 2 or 3 more than a multiple of 4) falls back to the default window, and window_error says why.

import time

import tmconfig

SLICE_MS = 200  # settle the sensor in slices so the watchdog is fed during camera start-up
DEFAULT_WINDOW = tmconfig.SCHEMA["camera_window"][0]


def _csi_class():
    try:
        import csi
    except ImportError:
        return None
    return getattr(csi, "CSI", None)


class Camera:
    def __init__(self, cfg, feed):
        self.window = cfg["camera_window"]
        self.window_error = ""
        try:
            self._open(cfg, feed, self.window)
        except Exception as exc:
            if self.window == DEFAULT_WINDOW:
                raise
            # A camera that fails at the default window too is broken: that error is raised. One
            # that works there refused the configured window: run with the default and say so.
            self._open(cfg, feed, DEFAULT_WINDOW)
            # one log detail (tmlog.DETAIL_MAX characters): the key, the camera's words, the fix
            self.window_error = ("camera_window " + str(self.window) + " refused by the camera (" + str(exc)[:60]
                                 + ") so running with " + str(DEFAULT_WINDOW) + "; on the H7 use 4k or 4k+1"
                                 + " (tools.deploy --set camera_window=N)")
            self.window = DEFAULT_WINDOW

    def _open(self, cfg, feed, window):
        cls = _csi_class()
        if cls is not None:
            import csi
            self.api = "csi"
            cam = cls()
            cam.reset()
            cam.pixformat(csi.RGB565)
            cam.framesize(csi.QVGA)
            cam.window((window, window))
            self._settle(cfg["camera_skip_ms"], feed, lambda ms: cam.snapshot(time=ms))
            _lock(cfg, cam.auto_gain, cam.auto_exposure, cam.auto_whitebal)
            self.snapshot = cam.snapshot
        else:
            import sensor
            self.api = "sensor"
            sensor.reset()
            sensor.set_pixformat(sensor.RGB565)
            sensor.set_framesize(sensor.QVGA)
            sensor.set_windowing((window, window))
            self._settle(cfg["camera_skip_ms"], feed, lambda ms: sensor.skip_frames(time=ms))
            _lock(cfg, sensor.set_auto_gain, sensor.set_auto_exposure, sensor.set_auto_whitebal)
            self.snapshot = sensor.snapshot

    def _settle(self, total_ms, feed, skip):
        # at least one capture even with camera_skip_ms 0: every capture checks that the window fits
        start = time.ticks_ms()
        left = total_ms
        while True:
            feed()
            skip(SLICE_MS if left > SLICE_MS else (left if left > 1 else 1))
            left = total_ms - time.ticks_diff(time.ticks_ms(), start)
            if left <= 0:
                break


def _lock(cfg, auto_gain, auto_exposure, auto_whitebal):
    # Fixed settings lock what auto-exposure settled on, or the configured value. Both camera APIs
    # take the same arguments, only the method names differ.
    if cfg["camera_fixed_gain"]:
        if cfg["camera_gain_db"] >= 0:
            auto_gain(False, gain_db=cfg["camera_gain_db"])
        else:
            auto_gain(False)
    if cfg["camera_fixed_exposure"]:
        if cfg["camera_exposure_us"] >= 0:
            auto_exposure(False, exposure_us=cfg["camera_exposure_us"])
        else:
            auto_exposure(False)
    if cfg["camera_fixed_whitebal"]:
        auto_whitebal(False)
