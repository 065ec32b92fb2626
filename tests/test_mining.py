"""--hard-negatives (host.make.mining): draw probabilities, the hand-over between the batch
generator and the epoch's end, and the same bundle from the same seed."""

from __future__ import annotations

import threading

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from host.errors import UserError
from host.make import augment, mining, train

scores_lists = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=50)


@given(scores_lists, st.floats(0.0, 1.0))
def test_draw_weights_keep_every_scene_and_favour_the_confusing_ones(scores, strength):
    w = mining.draw_weights(np.array(scores), strength)
    assert w.shape == (len(scores),) and np.isclose(w.sum(), 1.0)
    assert (w >= (1.0 - strength) / len(scores) - 1e-12).all()  # no scene is ever dropped (below 1)
    order = np.argsort(scores, kind="stable")
    assert (np.diff(w[order]) >= -1e-12).all()  # a scene scored more masked is drawn at least as often


def test_draw_weights_are_uniform_when_off_or_when_nothing_looks_masked():
    assert np.allclose(mining.draw_weights(np.array([0.9, 0.0, 0.1]), 0.0), 1 / 3)
    assert np.allclose(mining.draw_weights(np.zeros(4), 1.0), 0.25)


@given(st.lists(st.floats(0.01, 1.0), min_size=4, max_size=30), st.data())
def test_reweighting_keeps_the_none_share_and_the_faces_as_they_were(base, data):
    base = np.array(base) / np.sum(base)
    no_face = np.array(data.draw(st.lists(st.booleans(), min_size=len(base), max_size=len(base))))
    if not no_face.any() or no_face.all():
        return
    scene_w = mining.draw_weights(np.array(data.draw(st.lists(st.floats(0, 1), min_size=int(no_face.sum()),
                                                               max_size=int(no_face.sum())))), 0.5)
    out = mining.reweighted(base, no_face, scene_w)
    assert np.isclose(out.sum(), 1.0) and np.isclose(out[no_face].sum(), base[no_face].sum())
    assert np.allclose(out[~no_face], base[~no_face])
    assert np.allclose(out[no_face] / out[no_face].sum(), scene_w)


def test_weighted_scene_picks_follow_the_weights_and_uniform_picks_are_one_integer_draw():
    rng = np.random.default_rng(0)
    picks = [augment.pick_scene(rng, 4, np.array([0.0, 0.0, 1.0, 0.0])) for _ in range(20)]
    assert picks == [2] * 20
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    assert augment.pick_scene(a, 9, None) == int(b.integers(9))  # bundles without mining draw as before


def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, strides=4, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    return model


def test_the_generator_waits_for_the_epoch_before_and_stops_when_training_ends():
    model = tiny_model()
    m = mining.HardNegatives(np.zeros((5, 32, 32, 3), np.uint8), 0.5)
    m.set_model(model)
    assert m.weights_for(0) is not None  # the first epoch draws uniformly, at once
    got = []
    waiter = threading.Thread(target=lambda: got.append(m.weights_for(1)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and not got  # epoch 1 waits for epoch 0 to be scored
    m.on_epoch_end(0)
    waiter.join(5)
    assert len(got) == 1 and got[0] is not None and np.isclose(got[0].sum(), 1.0)
    late = []
    waiter = threading.Thread(target=lambda: late.append(m.weights_for(5)))
    waiter.start()
    m.on_train_end()
    waiter.join(5)
    assert late == [None]  # training is over: the generator stops instead of hanging


def fit_with_mining(pixels, labels) -> tuple[list[np.ndarray], list[np.ndarray]]:
    model = tiny_model()
    m = mining.HardNegatives(train.scene_pixels(pixels, labels), 0.9)
    seen: list[np.ndarray] = []
    original = m.on_epoch_end

    def record(epoch, logs=None):
        original(epoch, logs)
        seen.append(m.weights.copy())

    m.on_epoch_end = record
    rng = np.random.default_rng(11)
    model.fit(train.batches(pixels, labels, 8, "jitter", rng, classes=3, mining=m), steps_per_epoch=len(labels) // 8,
              epochs=4, callbacks=[m], shuffle=False, verbose=0)
    return model.get_weights(), seen


def test_a_mined_fit_is_the_same_every_time_and_weights_the_scenes_it_confuses():
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (48, 32, 32, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2] * 16)
    pixels[labels == 1] = 230  # "masked" faces are bright
    pixels[np.nonzero(labels == 2)[0][:3]] = 230  # three scenes look just like them
    first, seen = fit_with_mining(pixels, labels)
    second, _ = fit_with_mining(pixels, labels)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert len(seen) == 4
    last = seen[-1]
    assert last[:3].min() > np.delete(last, range(3)).max()  # the look-alike scenes come back most often


def test_hard_negatives_need_no_face_pictures_and_a_strength_from_0_to_1():
    with pytest.raises(UserError, match="no no-face pictures"):
        train.hard_negatives(np.zeros((4, 32, 32, 3), np.uint8), np.array([0, 1, 0, 1]),
                             train.TrainConfig(hard_negatives=0.5), 2)
    assert train.hard_negatives(np.zeros((4, 32, 32, 3), np.uint8), np.array([0, 1, 2, 2]), train.TrainConfig(), 2) is None
    # Keras reads two batches before the first epoch: with one batch per epoch the second would wait forever
    with pytest.raises(UserError, match="at least two batches per epoch"):
        train.hard_negatives(np.zeros((12, 32, 32, 3), np.uint8), np.array([0, 1, 2] * 4),
                             train.TrainConfig(hard_negatives=0.5), 8)
    assert train.hard_negatives(np.zeros((16, 32, 32, 3), np.uint8), np.array([0, 1, 2, 2] * 4),
                                train.TrainConfig(hard_negatives=0.5), 8) is not None
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(UserError, match="--hard-negatives"):
            train.TrainConfig(hard_negatives=bad)


def test_build_refuses_pruning_a_mined_model(tmp_path):
    from host.make import build

    with pytest.raises(UserError, match="--prune with --hard-negatives"):
        build.main(["--prune", "0.5", "--hard-negatives", "0.5", "--limit", "4", "--out", str(tmp_path)])


def test_a_fit_that_fails_lets_the_waiting_generator_go():
    """Keras calls on_train_end only when fit succeeds; `released` frees the generator either way."""
    m = mining.HardNegatives(np.zeros((3, 32, 32, 3), np.uint8), 0.5)
    got = []
    waiter = threading.Thread(target=lambda: got.append(m.weights_for(4)))
    waiter.start()
    with pytest.raises(RuntimeError):
        with train.released(m):
            raise RuntimeError("fit failed")
    waiter.join(5)
    assert got == [None]
