"""The distributed multi-task train step, with non-finite steps skipped.

A step computes every replica's gradients, decides in cross-replica context
whether the whole step is finite (loss and every gradient on every replica),
and only then applies the gradients. A non-finite step changes nothing: not
the trainable weights, and not the BatchNorm statistics (they are restored),
so a NaN never reaches the weights or a checkpoint.

The decision is taken outside `strategy.run` because a `tf.cond` around
`optimizer.apply_gradients` inside a replica function is not supported by
tf.distribute (the optimizer synchronises replicas).
"""

from typing import Callable

import tensorflow as tf
import tf_keras as keras

from hand25d import losses

Batch = tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]


def make_train_step(model: keras.Model, optimizer: keras.optimizers.Optimizer,
                    strategy: tf.distribute.Strategy, weights: losses.LossWeights,
                    global_batch_size: int) -> Callable[[object], dict[str, tf.Tensor]]:
  """Returns a `tf.function` taking one distributed batch.

  Args:
    model: the training model (dict of named outputs), built in `strategy`'s scope.
    optimizer: built in `strategy`'s scope.
    strategy: the distribution strategy.
    weights: loss weights of Eq. 1.
    global_batch_size: examples per step over all replicas.

  Returns:
    step(batch) -> {term: loss summed over replicas, ..., 'total', 'applied'},
    where 'applied' is False for a skipped non-finite step.
  """
  variables = model.trainable_variables
  statistics = model.non_trainable_variables

  def replica_grads(batch: Batch):
    features, targets = batch
    with tf.GradientTape() as tape:
      outputs = model(features["image"], training=True)
      terms = losses.compute_losses(outputs, targets, weights, global_batch_size)
    grads = tape.gradient(terms["total"], variables)
    grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
    return terms, 1.0 - tf.cast(finite, tf.float32), grads

  def apply(grads):
    optimizer.apply_gradients(zip(grads, variables))

  @tf.function
  def step(batch) -> dict[str, tf.Tensor]:
    saved = [tf.identity(v) for v in statistics]
    terms, bad, grads = strategy.run(replica_grads, (batch,))
    reduced = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
               for k, v in terms.items()}
    num_bad = strategy.reduce(tf.distribute.ReduceOp.SUM, bad, axis=None)
    finite = tf.logical_and(tf.math.is_finite(reduced["total"]), tf.equal(num_bad, 0.0))

    def do_apply():
      strategy.run(apply, (grads,))
      return tf.constant(True)

    def do_not_apply():
      for v, value in zip(statistics, saved):
        v.assign(value)
      return tf.constant(False)

    reduced["applied"] = tf.cond(finite, do_apply, do_not_apply)
    return reduced

  return step
