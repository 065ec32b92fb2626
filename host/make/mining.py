"""Online hard-negative mining (`--hard-negatives STRENGTH`, issues 13 and 16).

The door's admitted no-face pictures are a few real scenes the model takes for a masked face
(docs/presence.md), and a bare face framed in front of such a scene is what sets the door threshold
(docs/model.md). After every epoch `HardNegatives` scores the training split's no-face pictures with
the model as it stands, and the next epoch draws them, both as `none` examples and as door-framing
backgrounds, with probability

    (1 - STRENGTH) / n + STRENGTH * P(with_mask | picture) / sum of P(with_mask)

so the scenes it confuses come back more often while every scene keeps a share. The `none` class's
share of the epoch does not change (`--none-share`); inside it, the uniform part is uniform per picture,
so with `--balance source` (the door recipes) it also replaces the square-root balance of the
no-face sources (measured as one change, docs/presence.md).

Same seed, same bundle: the batch generator runs ahead of training in a tf.data thread, so it waits
(`weights_for`) until the epoch before has ended and been scored; what it draws then depends on the
weights at that epoch's end only, never on how far ahead it had run.
"""

from __future__ import annotations

import threading

import keras
import numpy as np

from host import preprocess

SCORE_BATCH = 512


class HardNegatives(keras.callbacks.Callback):
    def __init__(self, scenes: np.ndarray, strength: float):
        super().__init__()
        if not len(scenes):
            raise ValueError("hard-negative mining needs no-face training pictures")
        self.inputs = preprocess.to_float_input(scenes)
        self.strength = strength
        self.weights = np.full(len(scenes), 1.0 / len(scenes))
        self._scored_epochs = 0
        self._closed = False
        self._ready = threading.Condition()

    def scores(self) -> np.ndarray:
        out = np.concatenate([keras.ops.convert_to_numpy(self.model(self.inputs[i:i + SCORE_BATCH], training=False))
                              for i in range(0, len(self.inputs), SCORE_BATCH)])
        return out[:, 1] if out.shape[1] > 1 else out[:, 0]

    def on_epoch_end(self, epoch, logs=None):
        weights = draw_weights(self.scores(), self.strength)
        with self._ready:
            self.weights = weights
            self._scored_epochs = epoch + 1
            self._ready.notify_all()

    def on_train_end(self, logs=None):
        self.close()

    def close(self) -> None:
        """Release a waiting generator for good (the end of training, or fit raising)."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def weights_for(self, epoch: int) -> np.ndarray | None:
        """The scenes' draw probabilities for `epoch` (0-based), once the epochs before it are scored;
        None when training ended first (the generator then stops)."""
        with self._ready:
            self._ready.wait_for(lambda: self._scored_epochs >= epoch or self._closed)
            return self.weights if self._scored_epochs >= epoch else None


def draw_weights(scores: np.ndarray, strength: float) -> np.ndarray:
    """Draw probabilities: a uniform share plus `strength` in proportion to the scores."""
    scores = np.clip(np.asarray(scores, np.float64), 0.0, None)
    uniform = np.full(len(scores), 1.0 / len(scores))
    total = scores.sum()
    hard = scores / total if total > 0 else uniform
    weights = (1.0 - strength) * uniform + strength * hard
    return weights / weights.sum()


def reweighted(weights: np.ndarray, no_face: np.ndarray, scene_weights: np.ndarray) -> np.ndarray:
    """Per-image draw probabilities with the no-face pictures' total kept and spread as `scene_weights`
    (in the order of the no-face pictures in the split)."""
    out = np.array(weights, np.float64)
    out[no_face] = out[no_face].sum() * scene_weights
    return out / out.sum()
