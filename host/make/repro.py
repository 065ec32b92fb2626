"""Same seed, same machine, same bundle: seeded weights, data order and augmentation (host.train
seeds them) plus TensorFlow's deterministic kernels, which fix the order of floating-point
reductions that its thread pool would otherwise vary from run to run."""

from __future__ import annotations


def make_deterministic(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)  # Python, NumPy and TensorFlow generators
    tf.config.experimental.enable_op_determinism()
