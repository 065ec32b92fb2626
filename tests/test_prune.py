"""L1-norm filter pruning: ranking, physically smaller models that compute the same thing."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from host.boards import load_board
from host.errors import UserError
from host.make import checks, prune, quantize
from host.make import data as data_mod
from host.make import model as model_mod


@given(arrays(np.float64, st.integers(1, 40), elements=st.floats(0, 100)), st.integers(1, 50))
def test_filters_to_keep_are_the_largest_norms_in_order(norms, keep):
    kept = prune.filters_to_keep(norms, keep)
    assert len(kept) == min(keep, len(norms))
    assert list(kept) == sorted(kept)
    dropped = np.setdiff1d(np.arange(len(norms)), kept)
    if len(dropped):
        assert norms[kept].min() >= norms[dropped].max()


def test_l1_norm_is_per_output_filter():
    model = model_mod.tiny_cnn()
    conv = model.layers[0]
    kernel = conv.get_weights()[0]
    assert np.allclose(prune.l1_norms(conv)[5], np.abs(kernel[..., 5]).sum())


@pytest.fixture(scope="module")
def tiny():
    return model_mod.tiny_cnn()


def test_rate_zero_is_the_same_model(tiny):
    x = np.random.default_rng(1).random((4, 32, 32, 3)).astype(np.float32)
    same = prune.prune_by_rate(tiny, 0.0)
    assert same.count_params() == tiny.count_params()
    assert np.allclose(tiny.predict(x, verbose=0), same.predict(x, verbose=0), atol=1e-6)


def test_removing_dead_filters_keeps_the_output(tiny):
    """Filters with zero weights and bias output zero after ReLU: pruning them changes nothing."""
    model = model_mod.tiny_cnn(seed=7)
    weights = model.get_weights()
    rng = np.random.default_rng(3)
    dead = {0: rng.choice(16, 4, replace=False), 2: rng.choice(32, 8, replace=False), 4: rng.choice(64, 16, replace=False)}
    for kernel_index, filters in dead.items():
        weights[kernel_index][..., filters] = 0.0
        weights[kernel_index + 1][filters] = 0.0
    model.set_weights(weights)
    pruned = prune.prune_by_rate(model, 0.25)
    assert list(prune.conv_filters(pruned).values()) == [12, 24, 48]
    x = rng.random((6, 32, 32, 3)).astype(np.float32)
    assert np.allclose(model.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("rate, filters", [(0.25, [12, 24, 48]), (0.5, [8, 16, 32]), (0.75, [4, 8, 16])])
def test_pruned_model_is_physically_smaller_and_runs_on_the_board(tiny, rate, filters):
    pruned = prune.prune_by_rate(tiny, rate)
    assert list(prune.conv_filters(pruned).values()) == filters
    assert pruned.count_params() < tiny.count_params()
    assert model_mod.count_macs(pruned) < model_mod.count_macs(tiny)
    assert pruned.layers[-3].get_weights()[0].shape == (4 * 4 * filters[-1], 100)  # dense rows sliced
    if rate == 0.5:
        pixels = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
        payload = quantize.quantize(pruned, pixels)
        facts = checks.inspect_model(payload)
        assert not checks.failures(checks.run_checks(facts, load_board("openmv_h7")))
        assert facts.model_bytes < 0.6 * len(quantize.quantize(tiny, pixels))


def test_unsupported_models_and_rates_are_user_errors():
    with pytest.raises(UserError, match="cannot prune"):
        prune.prune_by_rate(model_mod.build("squeezenet_mod"), 0.5)
    with pytest.raises(UserError, match="below 1"):
        prune.prune_by_rate(model_mod.tiny_cnn(), 1.0)


def test_one_shot_and_iterative_fine_tune_on_real_data(tiny, data_dir):
    dataset = data_mod.load_dataset(data_dir, limit=12, progress=False)
    tune = prune.FineTune(epochs=2)
    one = prune.one_shot(tiny, 0.5, dataset, tune)
    it = prune.iterative(tiny, 0.5, dataset, tune, steps=2)
    assert one.method == "one-shot" and it.method == "iterative"
    assert one.filters == it.filters == {name: n // 2 for name, n in prune.conv_filters(tiny).items()}
    assert 0.0 <= one.val_accuracy <= 1.0 and 0.0 <= it.val_accuracy <= 1.0


def test_depthwise_separable_chains_prune_too():
    model = model_mod.build("ds_cnn")
    x = np.random.default_rng(2).random((3, 32, 32, 3)).astype(np.float32)
    same = prune.prune_by_rate(model, 0.0)
    assert np.allclose(model.predict(x, verbose=0), same.predict(x, verbose=0), atol=1e-6)
    half = prune.prune_by_rate(model, 0.5)
    assert prune.conv_filters(half) == {"stem": 4, "block1_pw": 16, "block2_pw": 32, "block3_pw": 32}
    assert model_mod.count_macs(half) < model_mod.count_macs(model) / 2


def test_refit_fine_tune_learns_validation_images_and_keeps_last_epoch(tiny, data_dir, monkeypatch):
    from host.make import train

    dataset = data_mod.load_dataset(data_dir, limit=12, progress=False)
    seen = []
    real_batches = train.batches

    def spy(pixels, labels, *args, **kwargs):
        seen.append(len(labels))
        return real_batches(pixels, labels, *args, **kwargs)

    monkeypatch.setattr(train, "batches", spy)
    pruned = prune.prune_by_rate(tiny, 0.5)
    before = [w.copy() for w in pruned.get_weights()]
    tuned, accuracy = prune.fine_tune(pruned, dataset, prune.FineTune(epochs=1, refit=True))
    assert seen == [len(dataset.train) + len(dataset.val)]
    assert np.isnan(accuracy)  # no held-out images left to score on
    assert any(not np.array_equal(a, b) for a, b in zip(before, tuned.get_weights()))
    seen.clear()
    prune.fine_tune(prune.prune_by_rate(tiny, 0.5), dataset, prune.FineTune(epochs=1))
    assert seen == [len(dataset.train)]


def test_fine_tuning_draws_and_frames_pictures_as_the_source_was_trained(tiny, data_dir, monkeypatch):
    """A pruned row is tuned the way its source trained: balance, none share, door framing from the
    window and none zoom come from the source's TrainConfig, not from FineTune's defaults."""
    from host.make import train

    source = train.TrainConfig(augment="door", balance="source", none_share=0.33, doorframe=0.6,
                               doorframe_shrink="window", none_zoom=0.25, seed=9, refit=False)
    tune = prune.fine_tune_like(source, 7, False)
    assert (tune.epochs, tune.augment, tune.seed, tune.refit, tune.balance, tune.none_share, tune.doorframe,
            tune.doorframe_shrink, tune.none_zoom) == (7, "door", 9, False, "source", 0.33, 0.6, "window", 0.25)
    dataset = data_mod.load_dataset(data_dir, limit=6, progress=False)
    calls, real_batches = [], train.batches

    def spy(pixels, labels, *args, **kwargs):
        calls.append(kwargs)
        return real_batches(pixels, labels, *args, **kwargs)

    monkeypatch.setattr(train, "batches", spy)
    prune.fine_tune(prune.prune_by_rate(tiny, 0.5), dataset, prune.fine_tune_like(source, 1, False))
    (kwargs,) = calls
    assert kwargs["shrink"] == "window" and kwargs["doorframe"] == 0.6 and kwargs["none_zoom"] == 0.25
    assert kwargs["windows"].shape == (len(dataset.train), 64, 64)  # each picture's camera window


def test_a_pruned_focal_model_is_fine_tuned_with_the_focal_loss_it_was_trained_with(tiny, data_dir):
    from keras.losses import BinaryFocalCrossentropy

    from host.make import train

    tune = prune.fine_tune_like(train.TrainConfig(focal=2.0, refit=False), 1, False)
    assert tune.focal == 2.0
    dataset = data_mod.load_dataset(data_dir, limit=6, progress=False)
    tuned, _ = prune.fine_tune(prune.prune_by_rate(tiny, 0.5), dataset, tune)
    assert isinstance(tuned.loss, BinaryFocalCrossentropy) and tuned.loss.gamma == 2.0
    plain, _ = prune.fine_tune(prune.prune_by_rate(tiny, 0.5), dataset, prune.fine_tune_like(train.TrainConfig(refit=False), 0, False))
    assert plain.loss == "binary_crossentropy"


def test_iterative_pruning_makes_the_window_copies_once_for_all_its_steps(tiny, data_dir, monkeypatch):
    from host.make import train

    dataset = data_mod.load_dataset(data_dir, limit=6, progress=False)
    made, real = [], train.window_copies
    monkeypatch.setattr(train, "window_copies", lambda *a, **k: made.append(1) or real(*a, **k))
    source = train.TrainConfig(augment="door", doorframe_shrink="window", refit=False)
    prune.iterative(tiny, 0.5, dataset, prune.fine_tune_like(source, 1, False), steps=3)
    assert made == [1]
