"""host.train's learning-rate schedules: the paper's plateau rule and the half cosine."""

import argparse
from pathlib import Path

import keras
import pytest
from hypothesis import given
from hypothesis import strategies as st

from host.errors import UserError
from host.make import data as data_mod
from host.make import train


@given(st.floats(1e-5, 1e-1), st.integers(1, 400))
def test_cosine_starts_at_the_peak_and_only_goes_down(peak, epochs):
    rates = train.cosine_rates(peak, epochs)
    assert len(rates) == epochs
    assert rates[0] == pytest.approx(peak)
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert all(train.MIN_LEARNING_RATE <= r <= peak for r in rates)
    if epochs % 2 == 0:  # half way down the cosine: half way between the peak and the floor
        assert rates[epochs // 2] == pytest.approx((peak + train.MIN_LEARNING_RATE) / 2)


def test_unknown_schedule_is_a_user_error():
    with pytest.raises(UserError, match="--schedule 'linear'"):
        train.TrainConfig(schedule="linear")


def test_cosine_training_follows_the_cosine_and_the_refit_replays_it(data_dir, monkeypatch):
    dataset = data_mod.load_dataset(data_dir, limit=10, progress=False)
    config = train.TrainConfig(epochs=3, schedule="cosine", refit=True)
    replayed = []
    real_refit = train.refit

    def spy(dataset, config, rates, verbose):
        replayed.append(list(rates))
        return real_refit(dataset, config, rates, verbose)

    monkeypatch.setattr(train, "refit", spy)
    result = train.train(dataset, config, verbose=False)
    expected = train.cosine_rates(config.learning_rate, 3)
    assert result.history["learning_rate"] == pytest.approx(expected, rel=1e-5)
    assert replayed == [pytest.approx(expected, rel=1e-5)]
    assert len(result.history["refit_accuracy"]) == 3


def test_plateau_is_the_papers_rule():
    callback = train.schedule_callback(train.TrainConfig(schedule="plateau"))
    assert isinstance(callback, keras.callbacks.ReduceLROnPlateau)
    assert (callback.monitor, callback.factor, callback.patience) == ("val_accuracy", 0.2, 5)


@given(st.integers(1, 30), st.integers(1, 30), st.integers(1, 30), st.floats(0.05, 0.95),
       st.sampled_from(["class", "source"]))
def test_balanced_epochs_give_the_none_class_its_share(unmasked, masked, none, share, balance):
    """--none-share: whatever the class sizes and sources, the none class draws `share` of the epoch
    and the two face classes split the rest equally."""
    import numpy as np

    labels = np.array([0] * unmasked + [1] * masked + [2] * none)
    sources = [f"s{i % 3}" for i in range(len(labels))]
    weights = train.sample_weights(labels, sources, balance, share)
    assert weights.sum() == pytest.approx(1.0) and (weights > 0).all()
    assert weights[labels == 2].sum() == pytest.approx(share)
    assert weights[labels == 0].sum() == pytest.approx(weights[labels == 1].sum())


def test_none_share_outside_zero_and_one_is_a_user_error():
    with pytest.raises(UserError, match="--none-share 1.0"):
        train.TrainConfig(none_share=1.0)


@given(st.integers(2, 16), st.sampled_from([2, 3]), st.floats(0.05, 4.0), st.integers(0, 2**32 - 1))
def test_mixup_blends_each_image_and_its_target_with_the_same_weight(n, classes, alpha, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 4, 4, 3)).astype(np.float32)
    labels = rng.integers(0, classes, n)
    y = train.targets(labels, classes, one_hot=True) if classes > 2 else labels.astype(np.float32)
    mixed_x, mixed_y = train.mix(x, y, np.random.default_rng(seed), alpha)
    assert mixed_x.shape == x.shape and mixed_y.shape == y.shape and mixed_y.dtype == np.float32
    assert mixed_x.min() >= x.min() - 1e-6 and mixed_x.max() <= x.max() + 1e-6
    if classes > 2:
        assert np.allclose(mixed_y.sum(axis=1), 1.0, atol=1e-6)
    assert np.all((mixed_y >= -1e-6) & (mixed_y <= 1 + 1e-6))
    # the weight that made each image made its target: replay the draw
    again = np.random.default_rng(seed)
    lam, pair = again.beta(alpha, alpha, size=n).astype(np.float32), again.permutation(n)
    assert np.allclose(mixed_x, lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[pair], atol=1e-6)
    weight = lam[:, None] if classes > 2 else lam
    assert np.allclose(mixed_y, weight * y + (1 - weight) * y[pair], atol=1e-6)


def test_negative_mixup_is_a_user_error_and_mixup_makes_targets_soft():
    with pytest.raises(UserError, match="--mixup -0.1"):
        train.TrainConfig(mixup=-0.1)
    assert train.TrainConfig(mixup=0.2).soft_targets and not train.TrainConfig().soft_targets


@pytest.mark.parametrize("classes", [2, 3])
def test_mixup_batches_blend_targets_and_without_mixup_they_are_the_labels(classes):
    import numpy as np

    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(40) % classes
    plain = next(train.batches(pixels, labels, 16, "jitter", np.random.default_rng(1)))
    assert plain[1].shape == (16,) and set(np.unique(plain[1])) <= set(range(classes))
    x, y = next(train.batches(pixels, labels, 16, "jitter", np.random.default_rng(1), mixup=0.4, classes=classes))
    assert x.shape == (16, 32, 32, 3)
    if classes == 3:
        assert y.shape == (16, 3) and np.allclose(y.sum(axis=1), 1.0)
    else:
        assert y.shape == (16,) and np.all((y >= 0) & (y <= 1))
    assert not np.all(np.isin(y, [0.0, 1.0])), "mixup blended no target"


def test_mixup_with_a_teacher_or_not_a_finite_number_is_a_user_error():
    for bad in (float("inf"), float("nan")):
        with pytest.raises(UserError, match="--mixup"):
            train.TrainConfig(mixup=bad)
    teacher = Path(__file__).resolve().parents[1] / "models" / "tinymask" / "tinymask.tflite"
    with pytest.raises(UserError, match="--mixup with --distill"):
        train.TrainConfig(mixup=0.2, distill=str(teacher))


def test_soft_binary_accuracy_counts_a_blend_as_the_class_it_leans_to():
    import numpy as np

    score = train.soft_binary_accuracy(np.array([0.9, 0.8, 0.1, 0.2], "float32"), np.array([0.7, 0.3, 0.2, 0.6], "float32"))
    assert np.asarray(score).tolist() == [1.0, 0.0, 1.0, 0.0]


def test_three_class_mixup_training_and_refit_train_on_blends(data_dir):
    scenes = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scenes-negative"
    if not scenes.is_dir():
        pytest.fail(f"scenes-negative not found at {scenes}")
    dataset = data_mod.load_dataset([data_dir, scenes], limit=6, progress=False)
    assert len(dataset.labels) == 3
    config = train.TrainConfig(epochs=2, mixup=0.2, refit=True, balance="source")
    result = train.train(dataset, config, verbose=False)
    assert result.model.loss == "categorical_crossentropy"
    assert len(result.history["refit_accuracy"]) == 2 and 0.0 < max(result.history["refit_accuracy"]) <= 1.0


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_a_doorframe_share_outside_0_to_1_is_a_user_error(share):
    with pytest.raises(UserError, match="--doorframe"):
        train.TrainConfig(doorframe=share)


def test_the_doorframe_flag_overrides_the_recipe_and_reaches_the_config():
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    assert train.config_from_args(parser.parse_args(["--recipe", "door-small"])).doorframe == train.DOORFRAME
    assert train.config_from_args(parser.parse_args(["--recipe", "door-small", "--doorframe", "0.75"])).doorframe == 0.75


@pytest.mark.parametrize("refit", [False, True])
def test_ema_ships_the_averaged_weights(data_dir, refit):
    """--ema: with a momentum near 1 the average stays at the first step's weights (Keras starts it
    there), one Adam step (at most the learning rate) from the fresh ones, so that is what is kept
    (the best epoch's, or the refit's last); without it training moves them several steps."""
    import numpy as np

    dataset = data_mod.load_dataset(data_dir, limit=10, progress=False)
    fresh = train._fresh_model(train.TrainConfig(seed=5), len(dataset.labels)).get_weights()

    def moved(ema):
        config = train.TrainConfig(epochs=6, seed=5, ema=ema, refit=refit, learning_rate=1e-2)
        kept = train.train(dataset, config, verbose=False).model.get_weights()
        return max(float(np.max(np.abs(a - b))) for a, b in zip(kept, fresh) if a.dtype.kind == "f")

    assert moved(0.0) > 2e-2
    assert moved(1 - 1e-7) <= 1.01e-2


@pytest.mark.parametrize("momentum", [-0.5, 1.0, float("nan")])
def test_an_ema_momentum_outside_0_to_1_is_a_user_error(momentum):
    with pytest.raises(UserError, match="--ema"):
        train.TrainConfig(ema=momentum)


def test_an_unknown_doorframe_shrink_is_a_user_error():
    with pytest.raises(UserError, match="--doorframe-shrink 'lanczos'"):
        train.TrainConfig(doorframe_shrink="lanczos")


def test_training_frames_faces_from_their_window_copies(data_dir, monkeypatch):
    """--doorframe-shrink window: train makes one window copy per training image and trains."""
    from host.make import augment

    dataset = data_mod.load_dataset(data_dir, limit=6, progress=False)
    made = []
    real = augment.window_copies

    def spy(paths, progress=True):
        made.append(len(paths))
        return real(paths, progress)

    monkeypatch.setattr(augment, "window_copies", spy)
    config = train.TrainConfig(epochs=1, augment="door", doorframe=1.0, doorframe_shrink="window", refit=False)
    result = train.train(dataset, config, verbose=False)
    assert made == [len(dataset.train)] and len(result.history["loss"]) == 1


@given(st.lists(st.tuples(st.floats(0.01, 1.0), st.floats(0.01, 1.0), st.floats(0.01, 1.0), st.integers(0, 2)),
                min_size=1, max_size=8),
       st.floats(0.0, 4.0))
def test_sparse_focal_loss_is_cross_entropy_scaled_by_one_minus_p_true_to_gamma(rows, gamma):
    import numpy as np

    p = np.array([r[:3] for r in rows], np.float32)
    p /= p.sum(axis=1, keepdims=True)
    y = np.array([r[3] for r in rows], np.float32)
    p_true = p[np.arange(len(y)), y.astype(int)]
    expected = float(np.mean(-((1 - p_true) ** gamma) * np.log(p_true)))
    got = float(train.SparseFocal(3, gamma)(y, p))
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-6)
    if gamma > 0:  # every image counts less than under cross-entropy, a sure one least
        assert got <= float(keras.losses.SparseCategoricalCrossentropy()(y, p)) + 1e-6


@pytest.mark.parametrize("gamma", [-1.0, 11.0, float("nan"), float("inf")])
def test_a_focal_gamma_outside_0_to_10_is_a_user_error(gamma):
    with pytest.raises(UserError, match="--focal"):
        train.TrainConfig(focal=gamma)


def test_the_focal_flag_picks_the_loss_for_each_head_and_off_keeps_cross_entropy():
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    assert train.config_from_args(parser.parse_args([])).focal == 0.0
    config = train.config_from_args(parser.parse_args(["--focal", "2"]))
    assert config.focal == 2.0
    assert isinstance(train.loss_for(config, 3), train.SparseFocal)
    assert isinstance(train.loss_for(config, 2), keras.losses.BinaryFocalCrossentropy)
    assert isinstance(train.loss_for(train.TrainConfig(focal=2, mixup=0.2), 3), keras.losses.CategoricalFocalCrossentropy)
    assert train.loss_for(train.TrainConfig(), 3) == "sparse_categorical_crossentropy"
    assert train.loss_for(train.TrainConfig(), 2) == "binary_crossentropy"


def test_three_class_focal_training_trains_and_its_keras_file_loads_again(data_dir, tmp_path):
    scenes = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scenes-negative"
    if not scenes.is_dir():
        pytest.fail(f"scenes-negative not found at {scenes}")
    dataset = data_mod.load_dataset([data_dir, scenes], limit=6, progress=False)
    result = train.train(dataset, train.TrainConfig(epochs=2, focal=2.0, refit=False, balance="source"), verbose=False)
    assert isinstance(result.model.loss, train.SparseFocal) and result.model.loss.gamma == 2.0
    assert all(v == v and v >= 0 for v in result.history["loss"])
    result.model.save(tmp_path / "model.keras")
    again = keras.models.load_model(tmp_path / "model.keras")
    assert again.loss.gamma == 2.0


@pytest.mark.parametrize("flag, value", [("dropout", 1.5), ("dropout", float("nan")), ("learning_rate", float("nan")),
                                         ("learning_rate", -1.0), ("learning_rate", 0.0)])
def test_a_dropout_or_learning_rate_that_cannot_train_is_one_line(flag, value):
    """Found in review: --dropout 1.5 was a Keras traceback, --learning-rate nan trained to a nan loss and exit 0."""
    with pytest.raises(UserError, match=f"--{flag.replace('_', '-')}"):
        train.TrainConfig(**{flag: value})
