"""Knowledge distillation from an int8 teacher bundle (`--distill TEACHER.tflite`, issue 13).

The teacher is an int8 bundle's .tflite (e.g. runs/door/tinymask/tinymask.tflite, the 135 KB tiny_cnn of `tinymask build --recipe door --out runs/door`) run
by LiteRT without default delegates (no XNNPACK, as host.tflm's fast host interpreter), fed the
board's int8 input (pixel - 128) of exactly the augmented float batch the student trains on. Its
dequantized softmax is softened by a temperature (log of the clipped probabilities / T, softmax
again) and mixed with the one-hot labels: alpha * teacher + (1 - alpha) * one_hot, trained with
categorical cross-entropy.

Several teachers (`--distill A.tflite B.tflite ...`) teach as one: the mean of their dequantized
softmax outputs, then softened and mixed as one teacher's (an ensemble's averaged prediction, the
usual stronger teacher for a small student).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from host import preprocess
from host.errors import UserError
from host.make import bundle


def float_to_int8(x: np.ndarray) -> np.ndarray:
    """A float training batch (x / 255, augmented) to the int8 tensor the board feeds: the nearest
    uint8 pixel, then pixel - 128 (what the model's input quantization, scale 1/255 and zero point
    -128, gives too)."""
    pixels = np.clip(np.rint(np.asarray(x, np.float32) * 255.0), 0, 255).astype(np.uint8)
    return preprocess.to_int8_input(pixels)


def soften(probs: np.ndarray, temperature: float, floor: float = 1e-3) -> np.ndarray:
    """Softmax outputs at temperature T: softmax(log(clip(p)) / T); T = 1 only renormalizes."""
    logits = np.log(np.clip(np.asarray(probs, np.float64), floor, 1.0)) / float(temperature)
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def mixed_targets(soft: np.ndarray, labels: np.ndarray, alpha: float) -> np.ndarray:
    """alpha * teacher + (1 - alpha) * one_hot(labels), rows summing to 1."""
    one_hot = np.eye(soft.shape[1], dtype=np.float32)[np.asarray(labels).astype(int)]
    return (alpha * soft + (1.0 - alpha) * one_hot).astype(np.float32)


class Teacher:
    """An int8 softmax .tflite giving dequantized probabilities for a float batch."""

    def __init__(self, path: Path | str, alpha: float = 0.5, temperature: float = 2.0):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"--distill {path}: no such teacher .tflite")
        payload = self.path.read_bytes()
        self.sha256 = bundle.sha256_hex(payload)
        self.alpha, self.temperature = float(alpha), float(temperature)
        try:
            self.interpreter = Interpreter(model_content=payload, num_threads=1,
                                           experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        except ValueError as e:
            raise UserError(f"--distill {path}: not a .tflite LiteRT can load ({e})") from e
        self.interpreter.allocate_tensors()
        inp, out = self.interpreter.get_input_details()[0], self.interpreter.get_output_details()[0]
        if inp["dtype"] != np.int8 or out["dtype"] != np.int8:
            raise UserError(f"--distill {path}: the teacher must be an int8 bundle model (int8 input and output)")
        self._in_index, self._out_index = inp["index"], out["index"]
        self._image_shape = tuple(int(d) for d in inp["shape"][1:])
        self.classes = int(out["shape"][-1])
        self.scale, self.zero_point = float(out["quantization"][0]), int(out["quantization"][1])
        self.labels = _bundle_labels(self.path)
        self._lock = threading.Lock()

    def raw(self, int8_inputs: np.ndarray) -> np.ndarray:
        """Raw int8 outputs, one invoke per image (a bundle's Reshape fixes the batch at 1, so the
        input tensor cannot be resized to the batch)."""
        batch = np.asarray(int8_inputs, np.int8).reshape((-1,) + self._image_shape)
        out = np.empty((len(batch), self.classes), np.int8)
        with self._lock:
            set_tensor, invoke, get = self.interpreter.set_tensor, self.interpreter.invoke, self.interpreter.get_tensor
            for i, image in enumerate(batch):
                set_tensor(self._in_index, image[None])
                invoke()
                out[i] = get(self._out_index).reshape(-1)
        return out

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Dequantized softmax outputs (n, classes) for a float batch x / 255."""
        return (self.raw(float_to_int8(x)).astype(np.float32) - self.zero_point) * self.scale

    def targets(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The distillation targets for a float batch and its integer labels."""
        return mixed_targets(soften(self.probabilities(x), self.temperature), labels, self.alpha)

    def check_student(self, student_labels: list[str], input_shape: tuple[int, ...] = (32, 32, 3)) -> None:
        """Refused (UserError) unless this teacher can teach a student of these labels and input
        (the student's design's: host.make.model.input_size)."""
        if self._image_shape != tuple(input_shape):
            raise UserError(f"--distill {self.path}: the teacher takes {self._image_shape} images, the student"
                            f" {tuple(input_shape)}; the teacher must see the student's input")
        if len(student_labels) == 2:
            raise UserError(f"--distill: the student is a 2-class sigmoid ({', '.join(student_labels)}); distillation"
                            " needs a 3-class softmax student (train on data with a none class, e.g. the door recipe)")
        if self.classes != len(student_labels):
            raise UserError(f"--distill {self.path}: the teacher has {self.classes} outputs, the student"
                            f" {len(student_labels)} labels ({', '.join(student_labels)})")
        if self.labels is not None and self.labels != list(student_labels):
            raise UserError(f"--distill {self.path}: teacher labels {', '.join(self.labels)} differ from the"
                            f" student's {', '.join(student_labels)}")


def _bundle_labels(path: Path) -> list[str] | None:
    """The labels file beside a bundle's .tflite (<name>.txt), when there is one."""
    txt = path.with_suffix(".txt")
    if not txt.is_file():
        return None
    return [line.strip() for line in txt.read_text().splitlines() if line.strip()]


class Ensemble:
    """Teachers whose mean softmax output teaches (the targets of one teacher with those outputs)."""

    def __init__(self, teachers: list[Teacher]):
        self.teachers = teachers
        self.alpha, self.temperature = teachers[0].alpha, teachers[0].temperature

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return np.mean([t.probabilities(x) for t in self.teachers], axis=0)

    def targets(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return mixed_targets(soften(self.probabilities(x), self.temperature), labels, self.alpha)


def teacher_for(path: Path | str | list, student_labels: list[str], alpha: float,
                temperature: float, input_shape: tuple[int, ...] = (32, 32, 3)) -> Teacher | Ensemble:
    """The teacher (several paths: their ensemble), refused (UserError) when one cannot teach this
    student (of `student_labels` and `input_shape`)."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    teachers = [Teacher(p, alpha, temperature) for p in paths]
    for teacher in teachers:
        teacher.check_student(student_labels, input_shape)
    return teachers[0] if len(teachers) == 1 else Ensemble(teachers)
