"""Fake `image`, `sensor` and `csi` modules.

A snapshot holds what the centred square window sees of the next frame file, as RGB565
(`preprocess.camera_window_rgb565`, contract 1). The simulator models the configuration the
firmware uses (RGB565, QVGA, a centred square window) and refuses others loudly rather than
inventing pixels.
"""

from __future__ import annotations

import io
import types

import numpy as np
from PIL import Image as PILImage

from host import gate, preprocess
from host.sim import heap
from host.sim.board import Board

RGB565, GRAYSCALE, BAYER, JPEG = 2, 1, 3, 4  # values only need to be distinct
# get_statistics on the H7, estimate UNVERIFIED on hardware: per pixel a LAB table lookup (98 KB
# in flash, so data-cache misses) and three float-rounded histogram increments, about 40 cycles at
# 480 MHz; per call the bin sums (101 + 256 + 256 bins, about 10 cycles each) and MicroPython's
# call and result object, about 40 us (docs/presence.md)
STATS_MS_PER_PIXEL = 40 / 480e3
STATS_MS_PER_CALL = 0.04
QQVGA, QVGA, VGA = 9, 10, 11
FRAMESIZES = {QQVGA: (160, 120), QVGA: (320, 240), VGA: (640, 480)}
AREA, BILINEAR, BICUBIC, CENTER = 1 << 0, 1 << 1, 1 << 2, 1 << 3


class SimImage:
    """image.Image over a uint16 RGB565 array (height, width)."""

    def __init__(self, board: Board, rgb565: np.ndarray, frame_index: int | None = None):
        self._board = board
        self.rgb565 = rgb565
        self.frame_index = frame_index

    def width(self) -> int:
        return int(self.rgb565.shape[1])

    def height(self) -> int:
        return int(self.rgb565.shape[0])

    def format(self) -> int:
        return RGB565

    def size(self) -> int:
        return int(self.rgb565.size * 2)

    def rgb888(self) -> np.ndarray:
        return preprocess.rgb565_to_rgb888(self.rgb565)

    def get_statistics(self, thresholds=None, invert=False, roi=None, bins=None, l_bins=None, a_bins=None,
                       b_bins=None, difference=None) -> gate.Statistics:
        """imlib's statistics of the (roi of the) image: host/gate.py computes them as the board does."""
        self._board.check_alive()
        if thresholds is not None or invert or difference is not None:
            _unsupported("get_statistics with thresholds, invert or difference")
        stats = gate.Statistics(gate.get_statistics(self.rgb565, roi, bins, l_bins, a_bins, b_bins))
        if self._board.memory is not None:  # the float bins go on the fb_alloc stack, above this frame's buffers
            self._board.memory.check_fb_room([4 * n for n in gate.bin_counts(bins, l_bins, a_bins, b_bins)],
                                             self.width())
        _, _, w, h = gate.clip_roi(self.width(), self.height(), roi)
        self._board.clock.advance(STATS_MS_PER_CALL + w * h * STATS_MS_PER_PIXEL)
        return stats

    get_stats = statistics = get_statistics  # imlib's other names for it

    def copy(self, *args, **kwargs) -> SimImage:
        return SimImage(self._board, self.rgb565.copy(), self.frame_index)

    def save(self, path: str, roi=None, quality: int = 50) -> SimImage:
        """img.save: a JPEG is compressed into the fb_alloc stack above this frame's buffers
        (BoardMemory.jpeg_save). Too little room raises the fb_alloc MemoryError and leaves the file
        created empty; a JPEG that does not fit the room left is written TRUNCATED, without an error,
        as jpeg_write() does on the board."""
        self._board.check_alive()
        capture_fault = self._board.faults.capture
        if capture_fault is not None and self.frame_index in capture_fault:
            raise MemoryError("memory allocation failed, allocating 40000 bytes")
        memory = self._board.memory
        if memory is not None:  # py_image_save's fb_alloc_mark(), before the file is opened
            memory.check_fb_mark(self.width())
        buffer = io.BytesIO()
        suffix = str(path).rsplit(".", 1)[-1].lower()
        fmt = {"jpg": "JPEG", "jpeg": "JPEG", "bmp": "BMP", "png": "PNG"}.get(suffix, "JPEG")
        options = {"quality": int(quality)} if fmt == "JPEG" else {}
        PILImage.fromarray(self.rgb888()).save(buffer, fmt, **options)
        data = buffer.getvalue()
        if memory is not None and fmt == "JPEG":
            try:
                written = memory.jpeg_save(self.width(), int(quality), self._encoder_stream(memory, int(quality)))
            except MemoryError:
                self._board.storage.write_bytes(path, b"")  # jpeg_write opened (created) it first
                raise
            if written is not None:
                data = written
        self._board.clock.advance(self._board.costs.jpeg_save_ms)
        self._board.storage.write_bytes(path, data)
        return self

    def _encoder_stream(self, memory, quality: int) -> bytes:
        """What the board's encoder emits for this frame, SOI to EOI, at the subsampling it picks
        (host.sim.heap.jpeg_subsampling); PIL stands in for the encoder, so its length is an estimate."""
        sampling = heap.jpeg_subsampling(memory.firmware, quality, memory.spec.jpeg_codec)
        out = io.BytesIO()
        PILImage.fromarray(self.rgb888()).save(out, "JPEG", quality=quality,
                                               subsampling={"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}[sampling])
        stream = out.getvalue()
        if stream[2:4] == b"\xff\xe0":  # PIL's JFIF APP0: the board's core writes none (the firmware adds its own)
            stream = stream[:2] + stream[4 + int.from_bytes(stream[4:6], "big"):]
        return stream


def make_image(board: Board) -> types.ModuleType:
    mod = types.ModuleType("image")
    mod.Image = lambda *a, **k: _unsupported("image.Image(...) construction")
    mod.RGB565, mod.GRAYSCALE, mod.BAYER, mod.JPEG = RGB565, GRAYSCALE, BAYER, JPEG
    mod.AREA, mod.BILINEAR, mod.BICUBIC, mod.CENTER = AREA, BILINEAR, BICUBIC, CENTER
    return mod


def _unsupported(what: str):
    raise NotImplementedError(f"the tinymask simulator does not model {what}")


class _Camera:
    """State shared by the sensor module and the csi.CSI class."""

    def __init__(self, board: Board):
        self.board = board
        self.ready = False
        self.pixformat = None
        self.framesize = None
        self.window = None
        self.auto_gain = self.auto_exposure = self.auto_whitebal = True
        self.gain_db = self.exposure_us = None

    def reset(self) -> None:
        self.board.check_alive()
        if self.board.faults.camera_init:
            raise RuntimeError("Sensor control failed.")  # what OpenMV raises for a dead sensor bus
        self.__init__(self.board)
        self.ready = True
        self.board.clock.advance(100)

    def set_window(self, roi) -> None:
        if self.framesize is None:
            raise RuntimeError("Invalid frame size.")
        fw, fh = FRAMESIZES[self.framesize]
        roi = tuple(int(v) for v in roi)
        if len(roi) == 2:  # centred as py_sensor.c / py_csi_ng.c do: (fw / 2) - (w / 2) in C ints
            w, h = roi
            roi = (fw // 2 - w // 2, fh // 2 - h // 2, w, h)
        x, y, w, h = roi
        if w != h or (x, y) != (fw // 2 - w // 2, fh // 2 - h // 2) or w > min(fw, fh):
            _unsupported(f"a window other than a centred square inside the frame ({roi})")
        self.window = w

    def check_dma(self) -> None:
        """Every capture (snapshot, skip_frames, CSI.snapshot(time=)) first checks the DMA size."""
        if self.framesize is not None and self.window is not None and self.board.camera_interface == "stm32_dcmi":
            if not centred_window_fits(FRAMESIZES[self.framesize][0], self.window):
                raise RuntimeError("Frame size is not supported or is not set.")

    def settle(self, ms: float) -> None:
        self.board.check_alive()
        self.check_dma()
        self.board.clock.advance(ms)

    def snapshot(self) -> SimImage:
        board = self.board
        if not self.ready:
            raise RuntimeError("Sensor timeout!")
        self.check_dma()
        index = board.next_frame()
        faults = board.faults
        if faults.hang_at is not None and index == faults.hang_at:
            board.clock.advance(board.costs.hang_ms)  # the watchdog (if any) fires in here
        board.clock.advance(board.costs.snapshot_ms)
        if faults.camera is not None and index in faults.camera:
            raise RuntimeError("Frame capture has timed out.")
        if self.pixformat != RGB565 or self.framesize is None or self.window is None:
            _unsupported("snapshots other than RGB565 with a centred square window")
        board.current_frame = index
        return SimImage(board, board.frames.window_rgb565(index, self.window), index)


def stm32_dcmi_fits(frame_width: int, x: int, w: int, h: int, bytes_per_pixel: int = 2) -> bool:
    """Whether the STM32 DCMI can capture this window (H7, H7 Plus; the RT1062's CSI always can).

    The DMA takes whole sensor lines; when the window's first byte is not word aligned it crops one
    word off the line (get_dcmi_hw_crop), and the transfer, line bytes x window height, must be a
    multiple of 16, else snapshot fails with SENSOR_ERROR_INVALID_FRAMESIZE (RuntimeError "Frame size
    is not supported or is not set."): openmv/openmv src/omv/ports/stm32/sensor.c v4.3.0-v4.5.9
    (v4.5.5: get_dcmi_hw_crop line 379, the check at 701-717, DMA_LENGTH_ALIGNMENT 16),
    src/omv/ports/stm32/omv_csi.c v4.6.0 (648-658), ports/stm32/omv_csi.c v4.7.0 and v4.8.1 (v4.8.1:
    385 and 588-602, OMV_CSI_LINE_ALIGNMENT 16). The RT1062 (ports/mimxrt) transfers whole 640-byte
    lines with 8-byte alignment, so any window fits. A centred square window of QVGA fails on the H7
    when its side is 2 or 3 mod 4 (x = 160 - w / 2 is then odd).
    """
    line = frame_width * bytes_per_pixel
    offset = (x * bytes_per_pixel) % 4
    if offset and (frame_width - (x + w)) * bytes_per_pixel >= 4 - offset:
        line -= 4
    return line > 0 and line % 4 == 0 and (line * h) % 16 == 0


def centred_window_fits(frame_width: int, side: int) -> bool:
    """stm32_dcmi_fits for the square window set_windowing((side, side)) centres on the frame."""
    return stm32_dcmi_fits(frame_width, frame_width // 2 - side // 2, side, side)


def make_sensor(board: Board, camera: _Camera) -> types.ModuleType:
    mod = types.ModuleType("sensor")
    mod.RGB565, mod.GRAYSCALE, mod.BAYER, mod.JPEG = RGB565, GRAYSCALE, BAYER, JPEG
    mod.QQVGA, mod.QVGA, mod.VGA = QQVGA, QVGA, VGA
    def reset():
        board.calls["sensor.reset"] += 1
        camera.reset()

    mod.reset = reset

    def set_pixformat(fmt):
        camera.pixformat = fmt

    def set_framesize(size):
        camera.framesize = size

    def skip_frames(n=None, time=None):
        if time is not None and time <= 0:
            # time=0 captures nothing, with or without n, so nothing is checked
            # (py_sensor_skip_frames, src/omv/modules/py_sensor.c v4.5.5)
            return
        camera.settle(time if time is not None else (n or 10) * board.costs.snapshot_ms)

    def set_auto_gain(enable, gain_db=-1, gain_db_ceiling=-1):
        camera.auto_gain, camera.gain_db = bool(enable), gain_db
        board.calls[f"auto_gain({bool(enable)}, {gain_db})"] += 1

    def set_auto_exposure(enable, exposure_us=-1):
        camera.auto_exposure, camera.exposure_us = bool(enable), exposure_us
        board.calls[f"auto_exposure({bool(enable)}, {exposure_us})"] += 1

    def set_auto_whitebal(enable, rgb_gain_db=None):
        camera.auto_whitebal = bool(enable)
        board.calls[f"auto_whitebal({bool(enable)})"] += 1

    mod.set_pixformat = set_pixformat
    mod.set_framesize = set_framesize
    mod.set_windowing = camera.set_window
    mod.skip_frames = skip_frames
    mod.snapshot = camera.snapshot
    mod.set_auto_gain = set_auto_gain
    mod.set_auto_exposure = set_auto_exposure
    mod.set_auto_whitebal = set_auto_whitebal
    mod.set_framebuffers = lambda n: None
    mod.width = lambda: camera.window or FRAMESIZES.get(camera.framesize, (0, 0))[0]
    mod.height = lambda: camera.window or FRAMESIZES.get(camera.framesize, (0, 0))[1]
    return mod


def make_csi(board: Board, camera: _Camera, with_class: bool, sensor_module: types.ModuleType) -> types.ModuleType:
    """4.6-4.7: `csi` is an alias of the sensor module; 4.8+: the csi.CSI class API."""
    if not with_class:
        return sensor_module
    mod = types.ModuleType("csi")
    mod.RGB565, mod.GRAYSCALE, mod.BAYER, mod.JPEG = RGB565, GRAYSCALE, BAYER, JPEG
    mod.QQVGA, mod.QVGA, mod.VGA = QQVGA, QVGA, VGA

    class CSI:
        def __init__(self, cid=-1, **kwargs):
            board.check_alive()
            board.calls["csi.CSI"] += 1

        def reset(self, hard=True):
            camera.reset()

        def pixformat(self, fmt=None):
            if fmt is None:
                return camera.pixformat
            camera.pixformat = fmt

        def framesize(self, size=None):
            if size is None:
                return camera.framesize
            camera.framesize = size

        def window(self, roi=None):
            camera.set_window(roi)

        def snapshot(self, time=-1, frames=-1, blocking=True, image=None):
            if time != -1 or frames != -1:  # settle mode: returns None (modules/py_csi_ng.c)
                camera.settle(time if time != -1 else frames * board.costs.snapshot_ms)
                return None
            return camera.snapshot()

        def auto_gain(self, enable, gain_db=-1, gain_db_ceiling=-1):
            sensor_module.set_auto_gain(enable, gain_db, gain_db_ceiling)

        def auto_exposure(self, enable, exposure_us=-1):
            sensor_module.set_auto_exposure(enable, exposure_us)

        def auto_whitebal(self, enable, rgb_gain_db=None):
            sensor_module.set_auto_whitebal(enable, rgb_gain_db)

    mod.CSI = CSI
    mod.devices = lambda: [0x77]
    return mod
