"""Full-int8 post-training quantization with a representative dataset (`python -m host.quantize`).

The representative data are board pixels / 255 plus one all-black and one all-white frame, so the
input range is exactly 0..1 and the converter picks scale 1/255, zero point -128: the only input
quantization the board feeds correctly (it sends `pixel - 128`, contract 1).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from host import preprocess, tflm
from host.errors import UserError, run_cli
from host.make import data as data_mod


def with_extremes(pixels: np.ndarray) -> np.ndarray:
    """Prepend an all-black and an all-white frame (of the pixels' own size), so calibration sees
    the full 0..255 range."""
    shape = pixels.shape[1:]
    extremes = np.stack([np.zeros(shape, np.uint8), np.full(shape, 255, np.uint8)])
    return np.concatenate([extremes, pixels])


def representative_pixels(split: data_mod.Split, count: int = 300, seed: int = 1337) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(split), size=min(count, len(split)), replace=False)
    return with_extremes(split.pixels[idx])


def quantize(model, pixels: np.ndarray, per_channel_dense: bool = False, float_io: bool = False) -> bytes:
    """Convert a Keras model to a full-int8 TFLite flatbuffer (int8 input and output).

    `per_channel_dense=True` gives the converter's default, one scale per dense output unit: a model
    the board's TFLM refuses (tests use it to show the refusal; nothing the project ships).
    `float_io=True` keeps a float32 interface (QUANTIZE and DEQUANTIZE ops), as some published
    models were converted (host.mcu.models rebuilds one); nothing the project ships."""
    import tensorflow as tf

    def representative():
        for p in pixels:
            yield [preprocess.to_float_input(p[None])]

    # A fixed batch of 1 keeps every shape static: no SHAPE/STRIDED_SLICE/PACK ops for the board.
    import keras

    fixed_input = keras.Input(shape=tuple(model.input_shape[1:]), batch_size=1)
    fixed = keras.Model(fixed_input, model(fixed_input))
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    # The board's TFLM (tflite-micro 7a0249686 / a57349f0b, firmware 4.5.6 to 4.8.1) refuses
    # per-channel FULLY_CONNECTED weights at prepare time, and legacy libtf computes them with
    # channel 0's scale (docs/platform.md). Dense layers therefore get one scale per tensor.
    converter._experimental_disable_per_channel_quantization_for_dense_layers = not per_channel_dense
    with contextlib.redirect_stdout(io.StringIO()), tflm.quiet_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bytes(converter.convert())


def write_atomic(path: Path, payload: bytes) -> None:
    """Write through a temporary file in the same folder, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m host.quantize", description=__doc__)
    parser.add_argument("--model", type=Path, default=Path("runs/train/model.keras"), help="trained Keras model (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=None, help="image folder for representative data (default: $TINYMASK_DATA or facemask-v1)")
    parser.add_argument("--samples", type=int, default=300, help="representative images (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per split and class")
    parser.add_argument("--out", type=Path, default=Path("runs/train/model_int8.tflite"), help="output .tflite (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        raise UserError(f"{args.model}: no trained model; run python -m host.train first or pass --model")
    if args.samples < 1:
        raise UserError(f"--samples {args.samples}: at least 1 representative image (the int8 ranges come from them)")
    if args.out.is_dir() or (args.out.parent.exists() and not args.out.parent.is_dir()):
        raise UserError(f"--out {args.out}: name a .tflite file in a folder, e.g. --out runs/train/model_int8.tflite")
    import keras

    try:
        model = keras.models.load_model(args.model)
    except Exception as exc:  # a file Keras cannot read: zip, h5 or config trouble all land here
        raise UserError(f"{args.model}: not a Keras model this version reads ({str(exc).splitlines()[0][:120]});"
                        " train one with python -m host.train") from None
    dataset = data_mod.load_dataset(args.data or data_mod.default_data_dir(), limit=args.limit,
                                    size=int(model.input_shape[1]))
    payload = quantize(model, representative_pixels(dataset.train, args.samples))
    write_atomic(args.out, payload)
    print(f"wrote {args.out} ({len(payload):,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
