"""Training: the multi-task loop, tf.distribute plumbing and evaluation."""
