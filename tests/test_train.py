"""host.train's learning-rate schedules: the paper's plateau rule and the half cosine."""

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
