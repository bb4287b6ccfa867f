"""The learning-rate schedule: warm-up, then linear decay to 0."""

from hand25d.training import schedule

import numpy as np
import pytest
import tf_keras as keras


def test_without_warmup_it_is_the_papers_linear_decay():
  mine = schedule.WarmupLinearDecay(1e-2, 100)
  keras_decay = keras.optimizers.schedules.PolynomialDecay(1e-2, 100, end_learning_rate=0.0)
  for step in (0, 1, 37, 99, 100, 150):
    np.testing.assert_allclose(float(mine(step)), float(keras_decay(step)), rtol=1e-6,
                               atol=1e-9)


def test_warmup_rises_to_the_peak_then_decays_to_zero():
  f = schedule.WarmupLinearDecay(1e-2, 110, warmup_steps=10)
  rates = [float(f(step)) for step in range(111)]
  assert rates[0] == pytest.approx(1e-3)
  assert rates[9] == pytest.approx(1e-2)
  assert max(rates) == pytest.approx(1e-2)
  assert all(a < b for a, b in zip(rates[:9], rates[1:10]))  # Rising.
  assert all(a > b for a, b in zip(rates[10:110], rates[11:111]))  # Falling.
  assert rates[110] == 0.0
  assert rates[60] == pytest.approx(5e-3)  # Halfway through the decay.


def test_bad_warmup():
  with pytest.raises(ValueError, match="warmup_steps=100"):
    schedule.WarmupLinearDecay(1e-2, 100, warmup_steps=100)
