"""Train the float32 model on board-faithful pixels (`python -m host.train`).

The paper's recipe (`--schedule plateau`): binary cross-entropy, Adam 1e-3, ReduceLROnPlateau (factor
0.2, patience 5) on validation accuracy, and the best checkpoint (by validation accuracy) is the one
kept. `--schedule cosine` (the default, with 120 epochs, dropout 0.1 and the refit on train +
validation; measured in the README) lowers the learning rate along a half cosine over `--epochs`.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from host import preprocess
from host.errors import UserError, output_folder, run_cli
from host.make import augment, bundle, distill, plots
from host.make import data as data_mod
from host.make import mining as mining_mod
from host.make import model as model_mod

AUGMENTATIONS = augment.MODES  # named modes; `+`-joined DOOR_PARTS lists are accepted too
SCHEDULES = ("plateau", "cosine")
BALANCES = ("none", "class", "source")
NONE_SHARE = 0.2  # share of every balanced epoch given to the `none` class when the data has it
MIN_LEARNING_RATE = 1e-6
DOORFRAME = augment.DOOR_PARTS["doorframe"][0]  # share of a door-augmented epoch's images door-framed


# What `host.build` and `host.train` do without flags (--recipe door-small, the issue 13 default: 62 KB,
# sized for the H7's /flash, 4.8 ms counted), the paper's CNN trained the same way (--recipe door, 135 KB,
# needs a card), or the paper itself (--recipe paper, the issue 2 model: 2 classes from facemask-v1).
# Any flag given overrides its recipe's value. Measured in docs/model.md (issue 13): door framing moves
# the door-framed figures; with faces framed from their camera window (doorframe_shrink "window")
# and a peak rate of 2e-3 (1e-3 left it 5.3 points behind, 3e-3 unsettled the none class), door_cnn_w
# admits 2.1 points fewer door-framed masked faces than the paper's CNN at 1e-3 over nine seeds (5.6 fewer
# than the paper's CNN at 2e-3, six seeds) and opens the door for nobody a third less often, in half the bytes.
RECIPES = {
    "door": {"arch": "tiny_cnn", "epochs": 30, "learning_rate": 2e-3, "augment": "door", "balance": "source", "refit": False,
             "doorframe": DOORFRAME, "doorframe_shrink": "window", "shared_sets": True, "data": "shared sets (facemask-v1, facemask-extra, scenes-negative), or $TINYMASK_DATA"},
    "door-small": {"arch": "door_cnn_w", "epochs": 60, "learning_rate": 2e-3, "augment": "door", "balance": "source", "refit": False,
                   "doorframe": DOORFRAME, "doorframe_shrink": "window", "shared_sets": True, "data": "as door"},
    "paper": {"arch": "tiny_cnn", "epochs": 120, "learning_rate": 1e-3, "augment": "jitter", "balance": "none", "refit": True,
              "doorframe": DOORFRAME, "doorframe_shrink": "window", "shared_sets": False, "data": "facemask-v1, or $TINYMASK_DATA"},
}
DEFAULT_RECIPE = "door-small"


def recipe_data(recipe: str) -> list[Path]:
    """The folders a recipe trains on without --data ($TINYMASK_DATA, when set, is the one folder)."""
    if RECIPES[recipe]["shared_sets"] and "TINYMASK_DATA" not in os.environ:
        return data_mod.shared_sets()
    return data_mod.default_data_dirs()


@dataclass
class TrainConfig:
    arch: str = "tiny_cnn"
    epochs: int = 120
    batch_size: int = 32
    learning_rate: float = 1e-3
    dropout: float = 0.1
    augment: str = "jitter"  # see host.make.augment.MODES
    seed: int = 1337
    refit: bool = True  # retrain on train+validation replaying the learning-rate schedule found
    schedule: str = "cosine"  # see SCHEDULES; "plateau" with 60 epochs, dropout 0.2 and no refit is the paper's schedule
    balance: str = "none"  # see BALANCES and sample_weights; "source" is for combined sets (issue 13, unmeasured)
    none_share: float = NONE_SHARE  # the `none` class's share of a balanced epoch (docs/presence.md measures 0.2-0.5)
    distill: str | list[str] | None = None  # teacher .tflite(s) (host.make.distill); 3-class students only
    distill_alpha: float = 0.5  # targets: alpha * teacher (softened) + (1 - alpha) * one-hot
    distill_temperature: float = 2.0
    distill_sha256: str | None = None  # the teacher's, filled in from the file
    mixup: float = 0.0  # Beta(mixup, mixup) blend of image pairs and their targets (Zhang et al. 2018); 0 is off
    ema: float = 0.0  # momentum of an exponential moving average of the weights (Polyak averaging); 0 is off
    doorframe: float = DOORFRAME  # share of images door-framed, when augment has doorframe
    doorframe_shrink: str = "box"  # how door framing shrinks the face: augment.SHRINKS
    none_zoom: float = 0.0  # share of no-face pictures replaced by a closer view of their window (augment.none_zoom)
    none_jigsaw: float = 0.0  # share of no-face pictures replaced by a tile-shuffled face (augment.none_jigsaw)
    hard_negatives: float = 0.0  # share of no-face draws led by the model's own confusion (host.make.mining)
    focal: float = 0.0  # focal loss gamma (Lin et al. 2017): easy examples count less; 0 is cross-entropy

    @property
    def soft_targets(self) -> bool:
        """Targets are probabilities, not class indices (a teacher's, or mixup's blends)."""
        return self.distill is not None or self.mixup > 0

    def __post_init__(self):
        if self.distill is not None:
            paths = [str(p) for p in ([self.distill] if isinstance(self.distill, (str, Path)) else self.distill)]
            if not paths:
                raise UserError("--distill: name at least one teacher .tflite")
            self.distill = paths[0] if len(paths) == 1 else paths
            for path in paths:
                if not Path(path).is_file():
                    raise UserError(f"--distill {path}: no such teacher .tflite")
            if not 0.0 <= self.distill_alpha <= 1.0:
                raise UserError(f"--distill-alpha {self.distill_alpha}: a weight from 0 to 1 for the teacher, e.g. 0.5")
            if self.distill_temperature <= 0:
                raise UserError(f"--distill-temperature {self.distill_temperature}: above 0, e.g. 2")
            self.distill_sha256 = self.distill_sha256 or ",".join(bundle.sha256_hex(Path(p).read_bytes()) for p in paths)
        if not augment.valid_mode(self.augment):
            raise UserError(f"--augment {self.augment!r}: choose one of {', '.join(AUGMENTATIONS)},"
                            f" or a +-joined list of jitter and {', '.join(augment.DOOR_PARTS)}")
        if not (math.isfinite(self.mixup) and self.mixup >= 0):
            raise UserError(f"--mixup {self.mixup}: a Beta parameter of 0 (off) or above, e.g. 0.2")
        if self.mixup > 0 and self.distill is not None:
            raise UserError("--mixup with --distill: the teacher scores the unblended images, not the blend the"
                            " student sees; use one of them")
        if not (self.ema == 0.0 or 0.0 < self.ema < 1.0):
            raise UserError(f"--ema {self.ema}: a momentum above 0 and below 1, e.g. 0.99, or 0 for off")
        if not (math.isfinite(self.doorframe) and 0.0 <= self.doorframe <= 1.0):
            raise UserError(f"--doorframe {self.doorframe}: a probability per image from 0 to 1, e.g. 0.5")
        if self.doorframe_shrink not in augment.SHRINKS:
            raise UserError(f"--doorframe-shrink {self.doorframe_shrink!r}: choose one of {', '.join(augment.SHRINKS)}")
        if not (math.isfinite(self.none_zoom) and 0.0 <= self.none_zoom <= 1.0):
            raise UserError(f"--none-zoom {self.none_zoom}: a probability per no-face picture from 0 to 1, e.g. 0.5")
        if self.none_zoom > 0 and self.doorframe_shrink != "window":
            raise UserError("--none-zoom needs the camera-window copies of --doorframe-shrink window")
        if not (math.isfinite(self.none_jigsaw) and 0.0 <= self.none_jigsaw <= 1.0):
            raise UserError(f"--none-jigsaw {self.none_jigsaw}: a probability per no-face picture from 0 to 1, e.g. 0.3")
        if not (math.isfinite(self.hard_negatives) and 0.0 <= self.hard_negatives <= 1.0):
            raise UserError(f"--hard-negatives {self.hard_negatives}: a strength from 0 (off) to 1, e.g. 0.5")
        if not (math.isfinite(self.focal) and 0.0 <= self.focal <= 10.0):
            raise UserError(f"--focal {self.focal}: a focusing exponent from 0 (off) to 10, e.g. 2")
        if not 0.0 < self.none_share < 1.0:
            raise UserError(f"--none-share {self.none_share}: a share of the epoch above 0 and below 1, e.g. 0.2")
        if self.balance not in BALANCES:
            raise UserError(f"--balance {self.balance!r}: choose one of {', '.join(BALANCES)}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"--schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise UserError("--epochs and --batch-size must be at least 1")
        if not (math.isfinite(self.dropout) and 0.0 <= self.dropout < 1.0):
            raise UserError(f"--dropout {self.dropout}: a rate from 0 to below 1, e.g. 0.1")
        if not (math.isfinite(self.learning_rate) and 0.0 < self.learning_rate <= 1.0):
            raise UserError(f"--learning-rate {self.learning_rate}: above 0 and at most 1, e.g. 0.001")


@dataclass
class TrainResult:
    model: keras.Model
    history: dict
    best_epoch: int
    best_val_accuracy: float
    seconds: float


class BestWeights(keras.callbacks.Callback):
    """Keep the weights of the epoch with the best validation accuracy; among equal accuracies the
    lower validation loss wins (a small validation set ties often, and loss separates the ties)."""

    def __init__(self):
        super().__init__()
        self.best, self.best_loss, self.epoch, self.weights = -1.0, float("inf"), 0, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        score, loss = float(logs.get("val_accuracy", -1.0)), float(logs.get("val_loss", float("inf")))
        if score > self.best or (score == self.best and loss < self.best_loss):
            self.best, self.best_loss, self.epoch, self.weights = score, loss, epoch + 1, self.model.get_weights()


class EpochLine(keras.callbacks.Callback):
    """One line per epoch: CI logs and terminals both stay readable."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs, self.start = epochs, time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        val = (f"  val_loss {logs['val_loss']:.4f}  val_acc {logs['val_accuracy']:.4f}"
               if "val_loss" in logs else "")
        print(
            f"epoch {epoch + 1:3d}/{self.epochs}  loss {logs.get('loss', 0):.4f}  acc {logs.get('accuracy', 0):.4f}"
            f"{val}  lr {lr:.1e}  {time.time() - self.start:5.0f}s",
            flush=True,
        )


def training_arrays(split: data_mod.Split, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 pixels and labels to train on; `interp` adds 5 resized copies of every image."""
    if mode != "interp":
        return split.pixels, split.labels
    extra, extra_labels = [], []
    for path, label in zip(split.paths, split.labels):
        variants = preprocess.interpolation_variants(data_mod.load_image(path), split.size)
        extra.extend(variants)
        extra_labels.extend([label] * len(variants))
    return np.concatenate([split.pixels, np.stack(extra)]), np.concatenate([split.labels, extra_labels])


def sample_weights(labels: np.ndarray, sources: list[str], balance: str, none_share: float = NONE_SHARE) -> np.ndarray | None:
    """Probability of drawing each image in a balanced epoch (None: every image once, shuffled).

    class: the face classes get equal shares (`none`, when present, `none_share` of the epoch);
    source: the same, and inside a class each source gets a share proportional to the square root
    of its size, so a large uniform source (facemask-extra's 4,227 aligned CelebA faces) cannot
    define a class, and a small one is not repeated to exhaustion."""
    if balance == "none":
        return None
    labels = np.asarray(labels)
    present = sorted(set(labels.tolist()))
    face_classes = [c for c in present if c != 2]
    share = {c: (1.0 - none_share) / len(face_classes) if 2 in present else 1.0 / len(face_classes)
             for c in face_classes}
    if 2 in present:
        share[2] = none_share
    keys = [s if balance == "source" else "" for s in sources]
    weights = np.zeros(len(labels))
    for c in present:
        members = np.nonzero(labels == c)[0]
        sizes: dict[str, int] = {}
        for i in members:
            sizes[keys[i]] = sizes.get(keys[i], 0) + 1
        total = sum(np.sqrt(n) for n in sizes.values())
        for i in members:
            weights[i] = share[c] * (np.sqrt(sizes[keys[i]]) / total) / sizes[keys[i]]
    return weights / weights.sum()


def uses_window_copies(config: TrainConfig) -> bool:
    """Door framing from the window (--doorframe-shrink window) or --none-zoom: camera-window copies."""
    framing_from_window = config.doorframe_shrink == "window" and "doorframe" in augment.parts_of(config.augment)
    return framing_from_window or config.none_zoom > 0


def check_input_size(config: TrainConfig, size: int) -> None:
    """Refused in one line, before any data is decoded, when the design's input is larger than the
    camera-window copies its augmentation samples from (augment.WINDOW_COPY)."""
    if uses_window_copies(config):
        augment.check_window_copy(size)


def window_copies(split: data_mod.Split, config: TrainConfig, verbose: bool) -> np.ndarray | None:
    """The camera windows door framing shrinks from, with --doorframe-shrink window, and --none-zoom
    zooms into (else None)."""
    if not uses_window_copies(config):
        return None
    check_input_size(config, split.size)  # before decoding a window
    return augment.window_copies(split.paths, progress=verbose)


def scene_pixels(pixels: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
    """The training split's no-face pictures, the backgrounds of the `doorframe` augmentation."""
    scenes = pixels[np.asarray(labels) == 2]
    return scenes if len(scenes) else None


def batches(pixels, labels, batch_size, mode, rng, weights=None, teacher=None, mixup=0.0, classes=2, doorframe=None,
            shrink="box", windows=None, none_zoom=0.0, none_jigsaw=0.0, mining=None):
    """Augmented batches; with a `teacher` (host.make.distill.Teacher) the targets are its mixed soft
    targets for exactly the augmented images yielded, instead of the labels. With `mixup` > 0 every
    image is blended with another of its batch, and its target with that image's (one-hot for
    more than two classes, P(with_mask) for two). With `mining` (host.make.mining.HardNegatives)
    each epoch draws the no-face pictures, and the door-framing backgrounds, as it last scored them."""
    scenes = scene_pixels(pixels, labels)
    no_face = np.asarray(labels) == 2
    scene_weights = None
    for epoch in itertools.count():
        draw = weights
        if mining is not None:
            scene_weights = mining.weights_for(epoch)
            if scene_weights is None:
                return
            base = np.full(len(labels), 1.0 / len(labels)) if weights is None else weights
            draw = mining_mod.reweighted(base, no_face, scene_weights)
        order = rng.permutation(len(labels)) if draw is None else rng.choice(len(labels), len(labels), p=draw)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            picked = pixels[idx]
            picked_windows = None if windows is None else windows[idx]
            if none_zoom > 0:
                picked = augment.none_zoom(picked, labels[idx] == 2, picked_windows, rng, none_zoom)
            if none_jigsaw > 0:
                picked, picked_windows = augment.none_jigsaw(picked, labels[idx] == 2, picked_windows, rng, none_jigsaw)
            x = augment.augment_batch(preprocess.to_float_input(picked), mode, rng, scenes, doorframe, shrink,
                                      picked_windows, scene_weights)
            if teacher is not None:
                y = teacher.targets(x, labels[idx])
            elif mixup > 0:
                y = targets(labels[idx], classes, one_hot=True)
            else:
                y = labels[idx].astype(np.float32)
            if mixup > 0:
                x, y = mix(x, y, rng, mixup)
            yield x, y


def mix(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """mixup: x * lam + x[pair] * (1 - lam), and the targets alike, lam ~ Beta(alpha, alpha) per image."""
    lam = rng.beta(alpha, alpha, size=len(x)).astype(np.float32)
    pair = rng.permutation(len(x))

    def blend(a: np.ndarray) -> np.ndarray:
        w = lam.reshape((-1,) + (1,) * (a.ndim - 1))
        return (w * a + (1 - w) * a[pair]).astype(np.float32)

    return blend(x), blend(y)


class LearningRates(keras.callbacks.Callback):
    """Record the learning rate of every epoch, so the refit can replay the schedule."""

    def __init__(self):
        super().__init__()
        self.rates: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def cosine_rates(peak: float, epochs: int) -> list[float]:
    """Half a cosine from `peak` at the first epoch down towards MIN_LEARNING_RATE at the last."""
    return [MIN_LEARNING_RATE + 0.5 * (peak - MIN_LEARNING_RATE) * (1 + math.cos(math.pi * e / epochs))
            for e in range(epochs)]


def ema_callbacks(config: TrainConfig) -> list[keras.callbacks.Callback]:
    """With --ema, validation and the epoch's end see the averaged weights, so BestWeights (after
    this in the list) keeps the averaged weights it measured, and the last epoch ends with them."""
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if config.ema > 0 else []


def schedule_callback(config: TrainConfig) -> keras.callbacks.Callback:
    if config.schedule == "cosine":
        rates = cosine_rates(config.learning_rate, config.epochs)
        return keras.callbacks.LearningRateScheduler(lambda epoch: rates[epoch])
    return keras.callbacks.ReduceLROnPlateau(monitor="val_accuracy", mode="max", factor=0.2, patience=5,
                                             min_lr=MIN_LEARNING_RATE)


def _fresh_model(config: TrainConfig, classes: int = 2, size: int | None = None) -> keras.Model:
    """`config.arch`, compiled; with `size` (the pixels' side), refused unless that is its input's."""
    keras.utils.set_random_seed(config.seed)
    model = model_mod.build(config.arch, dropout=config.dropout, seed=config.seed, classes=classes)
    if size is not None and tuple(model.input_shape[1:3]) != (size, size):
        raise UserError(f"{config.arch} takes {model.input_shape[1]}x{model.input_shape[2]} pictures, the data was"
                        f" decoded at {size}x{size}: load it with size=host.make.model.input_size({config.arch!r})")
    metric = "accuracy"
    if config.soft_targets and classes == 2:  # blended P(with_mask): binary_accuracy would count every blend a miss
        metric = keras.metrics.MeanMetricWrapper(soft_binary_accuracy, name="accuracy")
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, use_ema=config.ema > 0, ema_momentum=config.ema or 0.99),
        loss=loss_for(config, classes),
        metrics=[metric],
    )
    return model


def loss_for(config: TrainConfig, classes: int):
    """Cross-entropy, or with --focal its focal form, scaled by (1 - p_true) ** gamma. alpha is 1:
    class balance is the sampler's job (--balance), so focal loss only moves weight to hard images."""
    if config.focal == 0:
        if classes == 2:
            return "binary_crossentropy"
        return "categorical_crossentropy" if config.soft_targets else "sparse_categorical_crossentropy"
    if classes == 2:
        return keras.losses.BinaryFocalCrossentropy(gamma=config.focal, name="focal")
    if config.soft_targets:  # soft targets (host.make.distill, mixup)
        return keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=config.focal, name="focal")
    return SparseFocal(classes, config.focal)


@keras.saving.register_keras_serializable(package="tinymask")
class SparseFocal(keras.losses.Loss):
    """Categorical focal loss on class-index targets, as the batches yield them."""

    def __init__(self, classes: int, gamma: float, name: str = "focal", **kwargs):
        super().__init__(name=name, **kwargs)
        self.classes, self.gamma = classes, gamma

    def call(self, y_true, y_pred):
        one_hot = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"), self.classes)
        return keras.losses.categorical_focal_crossentropy(one_hot, y_pred, alpha=1.0, gamma=self.gamma)

    def get_config(self):
        return {**super().get_config(), "classes": self.classes, "gamma": self.gamma}


def soft_binary_accuracy(y_true, y_pred):
    """Both sides thresholded at 0.5: a blended target counts as the class it leans to."""
    ops = keras.ops
    return ops.cast(ops.equal(ops.reshape(y_true, (-1,)) > 0.5, ops.reshape(y_pred, (-1,)) > 0.5), "float32")


def targets(labels: np.ndarray, classes: int, one_hot: bool = False) -> np.ndarray:
    """Targets for the loss: one-hot for a student with soft targets (categorical cross-entropy)."""
    if one_hot and classes > 2:
        return np.eye(classes, dtype=np.float32)[labels.astype(int)]
    return labels.astype(np.float32) if classes == 2 else labels.astype(np.int32)


def teacher_of(config: TrainConfig, labels: list[str], size: int | None = None):
    """The distillation teacher for this student (whose input is size x size, the design's when not
    given), or None; refused when it cannot teach it."""
    if not config.distill:
        return None
    size = model_mod.input_size(config.arch) if size is None else size
    return distill.teacher_for(config.distill, labels, config.distill_alpha, config.distill_temperature,
                               (size, size, 3))


def train(dataset: data_mod.Dataset, config: TrainConfig, verbose: bool = True) -> TrainResult:
    """Train on train with `config.schedule`, validated on validation; then, with `refit`, the same model
    trained again from the same initial weights on train + validation, replaying the learning rates
    of the first run, and its last epoch kept. The first run's best epoch and validation accuracy
    are reported; the refit adds the validation images (15% more data) to what the model learns."""
    classes = len(dataset.labels)
    teacher = teacher_of(config, dataset.labels, dataset.size)
    model = _fresh_model(config, classes, dataset.size)
    pixels, labels = training_arrays(dataset.train, config.augment)
    weights = sample_weights(labels, _sources(dataset.train, len(labels)), config.balance, config.none_share)
    batch_size = min(config.batch_size, len(labels))
    rng = np.random.default_rng(config.seed)
    best, rates = BestWeights(), LearningRates()
    mining = hard_negatives(pixels, labels, config, batch_size)
    callbacks = [schedule_callback(config), *ema_callbacks(config), best, rates, *([mining] if mining else [])]
    if verbose:
        callbacks.append(EpochLine(config.epochs))
    start = time.time()
    with released(mining):
        history = model.fit(
            batches(pixels, labels, batch_size, config.augment, rng, weights, teacher, config.mixup, classes,
                    config.doorframe, config.doorframe_shrink, window_copies(dataset.train, config, verbose),
                    config.none_zoom, config.none_jigsaw, mining),
            steps_per_epoch=max(1, len(labels) // batch_size),
            epochs=config.epochs,
            validation_data=(preprocess.to_float_input(dataset.val.pixels),
                             targets(dataset.val.labels, classes, one_hot=config.soft_targets)),
            callbacks=callbacks,
            shuffle=False,  # the generator shuffles, seeded
            verbose=0,
        )
    if best.weights is not None:
        model.set_weights(best.weights)
    clean = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    if config.refit:
        model, clean["refit_accuracy"] = refit(dataset, config, rates.rates, verbose)
    return TrainResult(model, clean, best.epoch, best.best, time.time() - start)


def refit(dataset: data_mod.Dataset, config: TrainConfig, rates: list[float], verbose: bool):
    if verbose:
        print(f"refit on train + validation ({len(rates)} epochs, the learning rates of the first run)", flush=True)
    classes = len(dataset.labels)
    teacher = teacher_of(config, dataset.labels, dataset.size)
    model = _fresh_model(config, classes, dataset.size)
    both = data_mod.Split.concat(dataset.train, dataset.val)
    pixels, labels = training_arrays(both, config.augment)
    weights = sample_weights(labels, _sources(both, len(labels)), config.balance, config.none_share)
    batch_size = min(config.batch_size, len(labels))
    mining = hard_negatives(pixels, labels, config, batch_size)
    callbacks = [keras.callbacks.LearningRateScheduler(lambda epoch: rates[epoch]), *ema_callbacks(config),
                 *([mining] if mining else [])]
    if verbose:
        callbacks.append(EpochLine(len(rates)))
    with released(mining):
        history = model.fit(
            batches(pixels, labels, batch_size, config.augment, np.random.default_rng(config.seed), weights, teacher,
                    config.mixup, classes, config.doorframe, config.doorframe_shrink, window_copies(both, config, verbose),
                    config.none_zoom, config.none_jigsaw, mining),
            steps_per_epoch=max(1, len(labels) // batch_size),
            epochs=len(rates),
            callbacks=callbacks,
            shuffle=False,
            verbose=0,
        )
    return model, [float(v) for v in history.history["accuracy"]]


def hard_negatives(pixels: np.ndarray, labels: np.ndarray, config: TrainConfig,
                   batch_size: int) -> mining_mod.HardNegatives | None:
    """The mining callback for --hard-negatives, refused in one line when there is nothing to mine.
    Keras reads the generator's first two batches before training starts, so an epoch of one batch
    would have the generator wait for an epoch's scores that can never come."""
    if config.hard_negatives == 0:
        return None
    scenes = scene_pixels(pixels, labels)
    if scenes is None:
        raise UserError(f"--hard-negatives {config.hard_negatives:g}: the training data has no no-face pictures to"
                        " mine; add a folder of them (e.g. ../shared/datasets/scenes-negative) or leave it off")
    if len(labels) // batch_size < 2:
        raise UserError(f"--hard-negatives {config.hard_negatives:g}: needs at least two batches per epoch"
                        f" ({2 * batch_size} training images at --batch-size {batch_size}), the split has {len(labels)};"
                        " add images, lower --batch-size, or leave it off")
    return mining_mod.HardNegatives(scenes, config.hard_negatives)


@contextlib.contextmanager
def released(mining: mining_mod.HardNegatives | None):
    """Let a waiting batch generator go however fit ends (Keras calls on_train_end only on success)."""
    try:
        yield
    finally:
        if mining is not None:
            mining.close()


def _sources(split: data_mod.Split, count: int) -> list[str]:
    """Per training image its source; `interp` copies (appended after the originals) repeat them."""
    sources = split.source_list()
    copies = (count - len(sources)) // max(1, len(sources))
    return sources + [s for s in sources for _ in range(copies)]


def save(result: TrainResult, config: TrainConfig, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    result.model.save(out / "model.keras")
    (out / "history.json").write_text(
        json.dumps(
            {"config": asdict(config), "history": result.history, "best_epoch": result.best_epoch,
             "best_val_accuracy": result.best_val_accuracy, "seconds": result.seconds},
            indent=2,
        )
    )
    plots.training_curves(result.history, result.best_epoch, out / "training_curves.png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    parser.add_argument("--recipe", default=DEFAULT_RECIPE, choices=sorted(RECIPES),
                        help="defaults for data, --arch, --epochs, --learning-rate, --augment, --balance and --refit: "
                             + "; ".join(f"{n}: {r['arch']}, {r['epochs']} epochs at {r['learning_rate']:g}, augment {r['augment']}, balance"
                                         f" {r['balance']}, {'refit' if r['refit'] else 'no refit'}, on {r['data']}"
                                         for n, r in RECIPES.items()) + " (default: %(default)s)")
    parser.add_argument("--data", type=Path, nargs="+", default=None, metavar="DIR",
                        help="image folder(s), combined; the first one's test split is the test split (default:"
                             " the recipe's)")
    parser.add_argument("--hold-out-source", dest="hold_out_sources", nargs="*", default=[], metavar="SOURCE",
                        help="train without these sources (a manifest's source column): their images join their set's"
                             " test split, a leave-one-source-out measure")
    parser.add_argument("--arch", default=None, choices=sorted(model_mod.ARCHITECTURES), help="model design (default: the recipe's)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the recipe's)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="batch size (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="peak Adam learning rate of the schedule (default: the recipe's)")
    parser.add_argument("--dropout", type=float, default=d.dropout, help="dropout after every layer (default: %(default)s)")
    parser.add_argument("--augment", default=None, metavar="MODE",
                        help=f"training augmentation: {', '.join(AUGMENTATIONS)}, or parts joined by + from jitter,"
                             f" {', '.join(augment.DOOR_PARTS)} (default: the recipe's)")
    parser.add_argument("--balance", default=None, choices=BALANCES,
                        help="what each epoch draws: every image once (none), classes equal (class), and sources"
                             " inside a class by square root of size (source) (default: the recipe's)")
    parser.add_argument("--none-share", type=float, default=NONE_SHARE, metavar="SHARE",
                        help="with --balance class or source: the share of every epoch drawn from the none class when"
                             " the data has one (default: %(default)s; docs/presence.md measures 0.33 and 0.5)")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed for splits, weights and batches (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per split and class (quick runs)")
    parser.add_argument("--refit", action=argparse.BooleanOptionalAction, default=None,
                        help="--no-refit keeps the best validation checkpoint instead of refitting on train +"
                             " validation (default: the recipe's)")
    parser.add_argument("--schedule", default=d.schedule, choices=SCHEDULES,
                        help="learning rate: plateau (the paper's ReduceLROnPlateau) or cosine (a half cosine over"
                             " --epochs) (default: %(default)s)")
    parser.add_argument("--distill", default=None, nargs="+", metavar="TEACHER.tflite",
                        help="knowledge distillation: train a 3-class student on alpha * the int8 teacher's softened"
                             " softmax + (1 - alpha) * the one-hot label, e.g. runs/door/tinymask/tinymask.tflite;"
                             " several teachers teach by their mean softmax (an ensemble)")
    parser.add_argument("--distill-alpha", type=float, default=d.distill_alpha,
                        help="with --distill: the teacher's share of the targets (default: %(default)s)")
    parser.add_argument("--distill-temperature", type=float, default=d.distill_temperature,
                        help="with --distill: softmax temperature for the teacher's outputs (default: %(default)s)")
    parser.add_argument("--mixup", type=float, default=d.mixup, metavar="ALPHA",
                        help="mixup: blend training image pairs and their targets, Beta(ALPHA, ALPHA) weights, e.g."
                             " 0.2 (default: %(default)s, off)")
    parser.add_argument("--ema", type=float, default=d.ema, metavar="MOMENTUM",
                        help="keep an exponential moving average of the weights (Polyak averaging) and validate,"
                             " keep and ship it, e.g. 0.99 (default: %(default)s, off)")
    parser.add_argument("--doorframe", type=float, default=None, metavar="P",
                        help="share of training images door-framed (the face shrunk into a scene), when the"
                             " augmentation has doorframe (default: the recipe's)")
    parser.add_argument("--doorframe-shrink", default=None, choices=augment.SHRINKS,
                        help="how door framing makes the face smaller: box (area average of the model-size picture),"
                             " board (the camera's bilinear sampling of it) or window (sampled from a 64 px copy of"
                             " the face's camera window, so it keeps the detail a door camera sees) (default: the"
                             " recipe's)")
    parser.add_argument("--none-zoom", type=float, default=d.none_zoom, metavar="P",
                        help="share of no-face training pictures replaced by a random closer view (50-100%% of the"
                             " side) of their camera window, so the none class sees scenes at more scales"
                             " (default: %(default)s, off; docs/presence.md)")
    parser.add_argument("--hard-negatives", type=float, default=d.hard_negatives, metavar="STRENGTH",
                        help="online hard-negative mining: after each epoch the model scores the no-face training"
                             " pictures, and this share of the next epoch's no-face draws (and door-framing"
                             " backgrounds) follows how masked each looked (default: %(default)s, off;"
                             " host/make/mining.py)")
    parser.add_argument("--focal", type=float, default=d.focal, metavar="GAMMA",
                        help="focal loss: each image's cross-entropy scaled by (1 - P(its class)) ** GAMMA, so"
                             " training dwells on the images it still gets wrong, e.g. 2 (default: %(default)s,"
                             " cross-entropy; docs/model.md)")
    parser.add_argument("--none-jigsaw", type=float, default=d.none_jigsaw, metavar="P",
                        help="share of no-face training pictures replaced by a training face cut into 4x4 tiles"
                             " shuffled: a face's colours and textures without its layout, as a hard no-face example"
                             " (default: %(default)s, off; docs/presence.md)")


def config_from_args(args) -> TrainConfig:
    recipe = RECIPES[args.recipe]

    def pick(name):
        value = getattr(args, name)
        return recipe[name] if value is None else value

    return TrainConfig(
        arch=pick("arch"), epochs=pick("epochs"), batch_size=args.batch_size, learning_rate=pick("learning_rate"),
        dropout=args.dropout, augment=pick("augment"), seed=args.seed, refit=pick("refit"),
        schedule=args.schedule, balance=pick("balance"), none_share=args.none_share, distill=args.distill, distill_alpha=args.distill_alpha,
        distill_temperature=args.distill_temperature, mixup=args.mixup, ema=args.ema,
        doorframe=pick("doorframe"), doorframe_shrink=pick("doorframe_shrink"), none_zoom=args.none_zoom,
        none_jigsaw=args.none_jigsaw, hard_negatives=args.hard_negatives, focal=args.focal,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m host.train", description=__doc__)
    add_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/train"), help="folder for model.keras, history.json, curves (default: %(default)s)")
    args = parser.parse_args(argv)
    config = config_from_args(args)
    output_folder(args.out)
    size = model_mod.input_size(config.arch)
    check_input_size(config, size)
    dataset = data_mod.load_dataset(args.data or recipe_data(args.recipe), seed=args.seed, limit=args.limit,
                                    hold_out_sources=tuple(args.hold_out_sources), size=size)
    result = train(dataset, config)
    save(result, config, args.out)
    print(f"best epoch {result.best_epoch}: val_accuracy {result.best_val_accuracy:.4f}; wrote {args.out}/model.keras")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
