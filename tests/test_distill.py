"""host.make.distill: the teacher's probabilities for a batch and the mixed targets host.train uses."""

import numpy as np
import pytest

from host import preprocess, tflm
from host.errors import UserError
from host.make import bundle, distill, train

THREE = ["without_mask", "with_mask", "none"]


@pytest.fixture(scope="module")
def teacher_path(reference_bundle):
    return reference_bundle / "tinymask.tflite"


def synthetic_batch(n=12, seed=0):
    """Float inputs x / 255: noise, flat colour fields and smooth gradients (not all on the uint8 grid)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 32, 32, 3)).astype(np.float32)
    x[: n // 3] = rng.random((n // 3, 1, 1, 3))
    ramp = np.linspace(0, 1, 32, dtype=np.float32)[None, :, None, None]
    x[n // 3: 2 * n // 3] = ramp * rng.random((n // 3, 1, 1, 3))
    return x


def test_the_batch_gives_the_probabilities_of_the_interpreter_image_by_image(teacher_path):
    teacher = distill.Teacher(teacher_path)
    x = synthetic_batch()
    probs = teacher.probabilities(x)
    assert probs.shape == (len(x), 3)
    one_by_one = tflm.LiteRTModel(teacher_path.read_bytes(), tflm.HOST_CANDIDATES[0])
    int8 = preprocess.to_int8_input(np.clip(np.rint(x * 255), 0, 255).astype(np.uint8))
    expected = (one_by_one.raw(int8).astype(np.float32) - teacher.zero_point) * teacher.scale
    np.testing.assert_array_equal(probs, expected)
    np.testing.assert_array_equal(teacher.probabilities(x[:5]), expected[:5])  # a shorter batch, the same numbers
    assert teacher.sha256 == bundle.sha256_hex(teacher_path.read_bytes())


def test_mixed_targets_sum_to_one_and_alpha_zero_is_the_one_hot(teacher_path):
    x, labels = synthetic_batch(), np.arange(12) % 3
    for alpha, temperature in ((0.5, 2.0), (0.8, 4.0), (1.0, 1.0)):
        y = distill.Teacher(teacher_path, alpha, temperature).targets(x, labels)
        assert y.shape == (12, 3) and (y >= 0).all()
        np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(distill.Teacher(teacher_path, 0.0).targets(x, labels), np.eye(3)[labels])


def test_temperature_softens_and_one_only_renormalizes():
    p = np.array([[0.98, 0.0, 0.02], [0.5, 0.25, 0.25]], np.float32)
    np.testing.assert_allclose(distill.soften(p, 1.0)[1], p[1], rtol=1e-6)
    hot, soft = distill.soften(p, 1.0), distill.soften(p, 4.0)
    assert soft[0].max() < hot[0].max() and soft[0].min() > hot[0].min()


def test_the_generator_gives_the_teacher_exactly_the_augmented_batch(teacher_path):
    seen = []
    real = distill.Teacher(teacher_path)

    class Spy:
        def targets(self, x, labels):
            seen.append(x.copy())
            return real.targets(x, labels)

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(16) % 3
    gen = train.batches(pixels, labels, 8, "door", np.random.default_rng(1), teacher=Spy())
    for _ in range(3):
        x, y = next(gen)
        np.testing.assert_array_equal(seen[-1], x)
        np.testing.assert_array_equal(y, real.targets(x, y.argmax(axis=1)))  # alpha 0.5: the label keeps the top


def test_a_two_class_student_is_refused_in_one_line(teacher_path):
    config = train.TrainConfig(distill=str(teacher_path))
    assert config.distill_sha256 == bundle.sha256_hex(teacher_path.read_bytes())
    with pytest.raises(UserError) as e:
        train.teacher_of(config, ["without_mask", "with_mask"])
    assert "2-class sigmoid" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="4 labels"):
        train.teacher_of(config, THREE + ["scarf"])
    assert train.teacher_of(train.TrainConfig(), THREE) is None
    assert train.teacher_of(config, THREE).classes == 3


def test_a_teacher_that_sees_another_input_is_refused_in_one_line(teacher_path):
    with pytest.raises(UserError, match=r"the teacher takes \(32, 32, 3\) images, the student \(48, 48, 3\)"):
        distill.Teacher(teacher_path).check_student(THREE, (48, 48, 3))


def test_a_48x48_student_is_refused_a_32x32_teacher_before_any_training(teacher_path):
    config = train.TrainConfig(arch="door_cnn_r20", distill=str(teacher_path))
    with pytest.raises(UserError, match=r"the teacher takes \(32, 32, 3\) images, the student \(48, 48, 3\)"):
        train.teacher_of(config, THREE)
    assert train.teacher_of(train.TrainConfig(arch="door_cnn_w", distill=str(teacher_path)), THREE).classes == 3


def test_several_teachers_teach_by_their_mean_softmax(teacher_path, tmp_path):
    """--distill A B: the ensemble's probabilities are the mean of each teacher's; its targets are one
    teacher's targets with those probabilities; the card keeps every teacher's sha256."""
    other = tmp_path / "other.tflite"  # a second, different int8 3-class teacher: an untrained door_cnn_g
    from host.make import quantize, zoo

    pixels = np.random.default_rng(1).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    other.write_bytes(quantize.quantize(zoo.door_cnn_g(seed=3, classes=3), quantize.with_extremes(pixels)))
    config = train.TrainConfig(distill=[str(teacher_path), str(other)], distill_alpha=0.7, distill_temperature=3.0)
    assert config.distill == [str(teacher_path), str(other)]
    assert config.distill_sha256.split(",") == [bundle.sha256_hex(p.read_bytes()) for p in (teacher_path, other)]
    ensemble = train.teacher_of(config, THREE)
    x, labels = synthetic_batch(), np.arange(12) % 3
    a, b = distill.Teacher(teacher_path).probabilities(x), distill.Teacher(other).probabilities(x)
    assert not np.array_equal(a, b)
    np.testing.assert_allclose(ensemble.probabilities(x), (a + b) / 2, rtol=1e-6)
    np.testing.assert_allclose(ensemble.targets(x, labels),
                               distill.mixed_targets(distill.soften((a + b) / 2, 3.0), labels, 0.7), rtol=1e-6)
    assert train.TrainConfig(distill=[str(teacher_path)]).distill == str(teacher_path)  # one teacher stays a path
    with pytest.raises(UserError, match="no such teacher"):
        train.TrainConfig(distill=[str(teacher_path), str(tmp_path / "missing.tflite")])
