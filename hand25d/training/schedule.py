"""The learning-rate schedule: linear warm-up, then linear decay to 0 (paper §5)."""

import tensorflow as tf
import tf_keras as keras


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
  """peak * step / warmup_steps for the first warmup_steps, then linear decay to 0.

  With warmup_steps = 0 this is the paper's schedule: linear decay from the
  peak at step 0 to 0 at total_steps.
  """

  def __init__(self, peak: float, total_steps: int, warmup_steps: int = 0):
    super().__init__()
    if not 0 <= warmup_steps < total_steps:
      raise ValueError(f"warmup_steps={warmup_steps} must be in [0, total_steps="
                       f"{total_steps})")
    self.peak = peak
    self.total_steps = total_steps
    self.warmup_steps = warmup_steps

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    warm = float(max(self.warmup_steps, 1))
    up = self.peak * tf.minimum(1.0, (step + 1.0) / warm) if self.warmup_steps else self.peak
    down = self.peak * tf.maximum(
        0.0, (self.total_steps - step) / float(self.total_steps - self.warmup_steps))
    return tf.where(step < self.warmup_steps, up, tf.minimum(down, self.peak))

  def get_config(self):
    return {"peak": self.peak, "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps}
