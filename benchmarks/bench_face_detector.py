"""Issue 16 option (a): does OpenMV's built-in FOMO face detector find masked faces at a door?

    python benchmarks/bench_face_detector.py FOMO.tflite [--limit N] [--fractions 0.4 0.55 0.7]

FOMO.tflite is `fomo_face_detection.tflite` from github:openmv/openmv (byte-identical at every
tag that ships it: `src/lib/tflm/models/` at v4.5.6 to v4.6.x, `lib/models/` from v4.7.0; sha256
fc3aec94b4b0...; labels background, face). It is not committed here: take it with
`git -C <openmv> show v4.7.0:lib/models/fomo_face_detection.tflite > fomo.tflite`.

Each test face of facemask-v1 and facemask-extra is pasted into a real scene of scenes-negative's
test split at 40-70% of the 200x200 window (`host.framing.door_frame`), and as the close-up the
classifier is trained on (the whole window). The window then goes the board's way: bilinear to
96x96 (`preprocess.board_downscale_rgb565`, imlib's integer path), pixel - 128, TensorFlow Lite
Micro. A face counts as detected when any of the 12x12 cells scores face >= 0.4, the default of
OpenMV's `Fomo` postprocess (scripts/libraries/ml/ml-edgeimpulse/ml/postprocessing/edgeimpulse.py,
v4.8.0). Scenes alone give the false detection rate. The cost is MACs counted from the model's
operators, turned into H7 milliseconds with the board profile's MAC/cycle figure (the estimate the
build uses). Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host import preprocess  # noqa: E402
from host.boards import load_board  # noqa: E402
from host.errors import positive_int, run_script  # noqa: E402
from host.framing import door_frame, manifest_paths  # noqa: E402
from host.tflm import Int8Model  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
REAL_SCENES = ("rwmfd", "rxkt", "openmv")


def tflite_macs(model_bytes: bytes) -> int:
    """Multiply-accumulates of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED, from tensor shapes."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=model_bytes,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    shapes = {t["index"]: tuple(int(d) for d in t["shape"]) for t in it.get_tensor_details()}
    total = 0
    for op in it._get_ops_details():
        name = op["op_name"]
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        out = shapes[op["outputs"][0]]
        weights = shapes[op["inputs"][1]]
        if name == "CONV_2D":  # weights (out_c, kh, kw, in_c)
            total += int(np.prod(out)) * weights[1] * weights[2] * weights[3]
        elif name == "DEPTHWISE_CONV_2D":  # weights (1, kh, kw, out_c)
            total += int(np.prod(out)) * weights[1] * weights[2]
        else:  # weights (out, in)
            total += int(np.prod(out)) * weights[1]
    return total


class Detector:
    def __init__(self, path: Path, threshold: float):
        self.model = Int8Model(path)
        _, self.h, self.w, _ = (int(d) for d in self.model.input["shape"])
        self.grid = tuple(int(d) for d in self.model.output["shape"])[1:]
        self.threshold = threshold

    def face_score(self, window_rgb565: np.ndarray) -> float:
        """The highest face probability of any cell for this window."""
        pixels = preprocess.window_pixels(window_rgb565, self.h)
        out = self.model.dequantized(preprocess.to_int8_input(pixels)).reshape(self.grid)
        return float(out[..., 1].max())

    def detects(self, window_rgb565: np.ndarray) -> bool:
        return self.face_score(window_rgb565) >= self.threshold


def open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def rate(hits: list[bool]) -> str:
    return f"{100.0 * sum(hits) / len(hits):5.1f}% ({sum(hits)}/{len(hits)})" if hits else "-"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="fomo_face_detection.tflite from the OpenMV source")
    parser.add_argument("--data", type=Path, default=DATA, help="folder with facemask-v1, facemask-extra, scenes-negative")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.4, 0.55, 0.7])
    parser.add_argument("--threshold", type=float, default=0.4)
    parser.add_argument("--limit", type=positive_int, default=None, help="at most N faces per set and label")
    parser.add_argument("--board", default="openmv_h7")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args(argv)
    if not args.model.is_file():
        print(f"{args.model}: no such file; extract it from github:openmv/openmv (see --help)", file=sys.stderr)
        return 2
    data = args.model.read_bytes()
    detector = Detector(args.model, args.threshold)
    board = load_board(args.board)
    macs = tflite_macs(data)
    print(f"model {args.model} sha256 {hashlib.sha256(data).hexdigest()[:12]} {len(data)} bytes, "
          f"input {detector.h}x{detector.w}, grid {detector.grid}")
    print(f"MACs {macs:,}; estimated H7 inference {board.inference_ms(macs):.1f} ms at "
          f"{board.data['macs_per_cycle']} MAC/cycle (+ {board.data['scale_ms']} ms for the 200->96 scale)")

    scenes = [open_rgb(p) for p in manifest_paths(args.data / "scenes-negative", "test", sources=REAL_SCENES)]
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    n = 0
    rows = []
    for set_name in ("facemask-v1", "facemask-extra"):
        for label in ("with_mask", "without_mask"):
            paths = manifest_paths(args.data / set_name, "test", label)[: args.limit]
            hits = {"close-up": []} | {f"{f:.0%} of window": [] for f in args.fractions}
            for path in paths:
                face = open_rgb(path)
                hits["close-up"].append(detector.detects(preprocess.camera_window_rgb565(face)))
                for fraction in args.fractions:
                    scene = scenes[int(rng.integers(len(scenes)))]
                    hits[f"{fraction:.0%} of window"].append(detector.detects(door_frame(face, scene, fraction, rng)))
                n += 1 + len(args.fractions)
            door = [h for key, value in hits.items() if key != "close-up" for h in value]
            rows.append((set_name, label, hits, door))
    negatives = manifest_paths(args.data / "scenes-negative", "test")
    false_hits = [detector.detects(preprocess.camera_window_rgb565(open_rgb(p))) for p in negatives]
    seconds = time.perf_counter() - started

    print(f"\ndetected (any cell face >= {args.threshold}); door framing = faces at "
          f"{', '.join(f'{f:.0%}' for f in args.fractions)} of the window in real scenes")
    keys = list(rows[0][2])
    print(f"{'set':<15} {'label':<13} " + " ".join(f"{k:>22}" for k in keys) + f" {'door framing, all':>22}")
    for set_name, label, hits, door in rows:
        print(f"{set_name:<15} {label:<13} " + " ".join(f"{rate(hits[k]):>22}" for k in keys) + f" {rate(door):>22}")
    for label in ("with_mask", "without_mask"):
        both = [h for _, lab, _, door in rows if lab == label for h in door]
        print(f"{'both sets':<15} {label:<13} door framing {rate(both)}")
    print(f"scenes-negative test (no face, whole window): false detections {rate(false_hits)}")
    print(f"{n + len(negatives)} detector runs in {seconds:.0f} s on this host")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
