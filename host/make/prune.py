"""L1-norm filter pruning (Li, Kadav, Durdanovic, Samet and Graf, "Pruning Filters for Efficient
ConvNets", ICLR 2017), then fine-tuning: a physically smaller Keras model, not a masked one.

For every Conv2D layer the filters are ranked by the L1 norm of their kernel weights and the lowest
`rate` fraction is removed. The model is rebuilt with fewer filters; whatever reads a pruned layer's
channels is sliced to match: the next convolution's input channels, a depthwise convolution or batch
normalisation in between (which keep the channel count), and, after a Flatten, the dense layer's
rows for the removed channels (Flatten of an HxWxC map lays channels fastest). Fewer filters mean
fewer parameters, bytes and MACs, so the board really runs faster.

- one-shot: prune every convolution to `rate` at once, then fine-tune;
- iterative: reach `rate` in `steps` equal steps, re-ranking the survivors and fine-tuning for the
  full `epochs` after each step (as Li et al. retrain after each pruning round): `steps` times the
  one-shot fine-tuning cost, for a gentler path to the same size.

Works on sequential chains of Conv2D, DepthwiseConv2D, BatchNormalization, pooling, Dropout,
activation, Flatten and Dense layers, which includes `host.make.model.tiny_cnn`. Dense layers are not
pruned (Li et al. prune convolutions); the output layer never is.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from host import preprocess
from host.errors import UserError
from host.make import data as data_mod

# Layers that pass channels through unchanged (their weights, if any, are per channel).
CHANNEL_WISE = (layers.MaxPooling2D, layers.AveragePooling2D, layers.Dropout, layers.Activation, layers.ReLU,
                layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)


def check_rate(rate: float) -> float:
    if not 0.0 <= rate < 1.0:
        raise UserError(f"prune rate {rate}: must be at least 0 and below 1 (e.g. 0.25, 0.5, 0.75)")
    return rate


def l1_norms(conv: layers.Conv2D) -> np.ndarray:
    """L1 norm of each filter's kernel: sum over (kh, kw, c_in) for every output channel."""
    kernel = conv.get_weights()[0]
    return np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)


def filters_to_keep(norms: np.ndarray, keep: int) -> np.ndarray:
    """Indices of the `keep` largest-norm filters, in their original order (ties: lower index first)."""
    keep = max(1, min(int(keep), len(norms)))
    order = np.argsort(-norms, kind="stable")[:keep]
    return np.sort(order)


def _sequential_layers(model: keras.Model) -> list:
    supported = (layers.Conv2D, layers.DepthwiseConv2D, layers.BatchNormalization, layers.Flatten,
                 layers.Dense) + CHANNEL_WISE
    chain = [layer for layer in model.layers if not isinstance(layer, layers.InputLayer)]
    for layer in chain:
        if not isinstance(layer, supported) or isinstance(layer, layers.SeparableConv2D):
            raise UserError(f"cannot prune {model.name}: layer {layer.name} ({type(layer).__name__}) is not supported;"
                            " pruning works on sequential conv/pool/dense models such as tiny_cnn")
    return chain


def prune_model(model: keras.Model, keep_counts: dict[str, int]) -> keras.Model:
    """A new, smaller model: each Conv2D named in keep_counts keeps that many largest-L1 filters."""
    chain = _sequential_layers(model)
    new_layers, weights = [], []
    kept_in: np.ndarray | None = None  # channels of the running feature map kept so far (None = all)
    spatial: tuple | None = None
    for layer in chain:
        config = layer.get_config()
        w = layer.get_weights()
        if isinstance(layer, layers.DepthwiseConv2D):
            if kept_in is not None:
                w = [w[0][:, :, kept_in, :]] + ([w[1][kept_in]] if len(w) > 1 else [])
        elif isinstance(layer, layers.Conv2D):
            if kept_in is not None:
                w[0] = w[0][:, :, kept_in, :]
            keep = filters_to_keep(l1_norms(layer), keep_counts.get(layer.name, layer.filters))
            w = [w[0][..., keep]] + ([w[1][keep]] if len(w) > 1 else [])
            config["filters"] = len(keep)
            kept_in = keep
        elif isinstance(layer, layers.BatchNormalization):
            if kept_in is not None:
                w = [v[kept_in] for v in w]
        elif isinstance(layer, layers.Flatten):
            spatial = tuple(int(d) for d in layer.input.shape[1:-1])
        elif isinstance(layer, layers.Dense):
            if kept_in is not None and spatial is not None:
                channels = int(layer.input.shape[-1]) // math.prod(spatial)
                rows = (np.arange(math.prod(spatial))[:, None] * channels + kept_in[None, :]).reshape(-1)
                w[0] = w[0][rows]
            elif kept_in is not None:  # dense right after global pooling
                w[0] = w[0][kept_in]
            kept_in, spatial = None, None
        new_layers.append(type(layer).from_config(config))
        weights.append(w)
    pruned = keras.Sequential([keras.Input(shape=model.input_shape[1:]), *new_layers], name=model.name)
    for layer, w in zip(pruned.layers, weights):
        layer.set_weights(w)
    return pruned


def conv_filters(model: keras.Model) -> dict[str, int]:
    return {layer.name: layer.filters for layer in model.layers
            if isinstance(layer, layers.Conv2D) and not isinstance(layer, layers.DepthwiseConv2D)}


def prune_by_rate(model: keras.Model, rate: float, original: dict[str, int] | None = None) -> keras.Model:
    """Prune every Conv2D to round((1 - rate) * its original filter count) (at least one)."""
    check_rate(rate)
    original = original or conv_filters(model)
    return prune_model(model, {name: max(1, round((1 - rate) * n)) for name, n in original.items()})


@dataclass
class FineTune:
    epochs: int = 10
    learning_rate: float = 3e-4
    batch_size: int = 32
    augment: str = "flip"
    seed: int = 1337
    verbose: bool = False  # one line per epoch (host.train's format)
    # Tune on train + validation and keep the last epoch, as host.train's refit does. A refit source
    # has already learnt the validation images, so choosing its best epoch on them would choose nothing.
    refit: bool = False
    balance: str = "none"  # host.train's --balance: what each fine-tuning epoch draws
    # and the rest of how the source model's training drew and framed its pictures (fine_tune_like)
    none_share: float | None = None  # None: host.train's default
    doorframe: float | None = None
    doorframe_shrink: str = "box"
    none_zoom: float = 0.0
    none_jigsaw: float = 0.0
    focal: float = 0.0  # host.train's --focal: the loss the source was trained with

    soft_targets = False  # fine-tuning draws class indices, never a teacher's or mixup's blends


def fine_tune_like(trained_with, epochs: int, verbose: bool) -> FineTune:
    """Fine-tuning that draws, frames and augments pictures as `trained_with` (a host.train
    TrainConfig) did, so a pruned row is tuned the way its source was trained."""
    return FineTune(epochs=epochs, augment=trained_with.augment, seed=trained_with.seed, verbose=verbose,
                    refit=trained_with.refit, balance=trained_with.balance, none_share=trained_with.none_share,
                    doorframe=trained_with.doorframe, doorframe_shrink=trained_with.doorframe_shrink,
                    none_zoom=trained_with.none_zoom, none_jigsaw=trained_with.none_jigsaw, focal=trained_with.focal)


def tune_split(dataset: data_mod.Dataset, config: FineTune) -> data_mod.Split:
    return data_mod.Split.concat(dataset.train, dataset.val) if config.refit else dataset.train


def fine_tune(model: keras.Model, dataset: data_mod.Dataset, config: FineTune,
              windows: np.ndarray | None = None) -> tuple[keras.Model, float]:
    """Retrain a pruned model in place, keeping the weights of the best validation epoch (or, with
    `config.refit`, of the last epoch on train + validation; the returned accuracy is then NaN).

    Same loss, optimiser family and best-checkpoint rule as host.train, at a lower learning rate:
    the surviving filters are already trained (Li et al. retrain at a reduced rate).
    """
    from host.make import train

    keras.utils.set_random_seed(config.seed)
    classes = int(model.output_shape[-1]) if int(model.output_shape[-1]) > 1 else 2
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=train.loss_for(config, classes),
                  metrics=["accuracy"])
    tune_on = tune_split(dataset, config)
    weights = train.sample_weights(tune_on.labels, tune_on.source_list(), config.balance,
                                   train.NONE_SHARE if config.none_share is None else config.none_share)
    batch_size = min(config.batch_size, len(tune_on))
    rng = np.random.default_rng(config.seed)
    callbacks = [train.EpochLine(config.epochs)] if config.verbose else []
    val, best = None, None
    if not config.refit:
        val = (preprocess.to_float_input(dataset.val.pixels), train.targets(dataset.val.labels, classes))
        best = train.BestWeights()
        # The pruned model before fine-tuning is a candidate too (epoch 0).
        start = model.evaluate(*val, verbose=0, return_dict=True)
        best.best, best.best_loss = float(start["accuracy"]), float(start["loss"])
        best.epoch, best.weights = 0, model.get_weights()
        callbacks.insert(0, best)
    if config.epochs > 0:
        if windows is None:  # iterative() makes them once for all its steps
            windows = train.window_copies(tune_on, config, config.verbose)
        model.fit(train.batches(tune_on.pixels, tune_on.labels, batch_size, config.augment, rng, weights,
                                doorframe=config.doorframe, shrink=config.doorframe_shrink, windows=windows,
                                none_zoom=config.none_zoom, none_jigsaw=config.none_jigsaw),
                  steps_per_epoch=max(1, len(tune_on) // batch_size), epochs=config.epochs,
                  validation_data=val, callbacks=callbacks, shuffle=False, verbose=0)
    if best is None:
        return model, float("nan")
    model.set_weights(best.weights)
    return model, best.best


@dataclass
class PruneResult:
    model: keras.Model
    method: str  # "one-shot" or "iterative"
    rate: float
    filters: dict[str, int]
    val_accuracy: float
    seconds: float


def one_shot(model: keras.Model, rate: float, dataset: data_mod.Dataset, config: FineTune) -> PruneResult:
    start = time.time()
    pruned = prune_by_rate(model, rate)
    pruned, val = fine_tune(pruned, dataset, config)
    return PruneResult(pruned, "one-shot", rate, conv_filters(pruned), val, time.time() - start)


def iterative(model: keras.Model, rate: float, dataset: data_mod.Dataset, config: FineTune,
              steps: int = 3) -> PruneResult:
    """Reach `rate` in `steps` equal increments, fine-tuning `config.epochs` after each."""
    check_rate(rate)
    start = time.time()
    original = conv_filters(model)
    current, val = model, float("nan")
    from host.make import train

    windows = train.window_copies(tune_split(dataset, config), config, config.verbose) if config.epochs > 0 else None
    for step in range(1, steps + 1):
        current = prune_by_rate(current, rate * step / steps, original)
        current, val = fine_tune(current, dataset, config, windows)
    return PruneResult(current, "iterative", rate, conv_filters(current), val, time.time() - start)
