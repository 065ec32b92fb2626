"""host.train's learning-rate schedules: the paper's plateau rule and the half cosine."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from host import data as data_mod
from host import train
from host.errors import UserError


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


def test_cosine_training_follows_the_cosine(data_dir):
    dataset = data_mod.load_dataset(data_dir, limit=10, progress=False)
    config = train.TrainConfig(epochs=3, schedule="cosine", refit=False)
    result = train.train(dataset, config, verbose=False)
    assert result.history["learning_rate"] == pytest.approx(train.cosine_rates(config.learning_rate, 3), rel=1e-5)
    plateau = train.train(dataset, train.TrainConfig(epochs=3, refit=False, schedule="plateau"), verbose=False)
    assert plateau.history["learning_rate"] == pytest.approx([config.learning_rate] * 3, rel=1e-5)
