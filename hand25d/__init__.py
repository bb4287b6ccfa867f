"""hand25d: efficient 2.5D hand pose estimation for embedded AR/VR devices.

Keras flavour: hand25d uses Keras 2 (the `tf_keras` package), because
tensorflow-model-optimization does not support Keras 3; hand25d code always
imports Keras as `import tf_keras as keras`. `hand25d.legacy_keras` makes
`tf.keras` the same Keras where that matters (its docstring says where it is
imported). Importing hand25d itself has no side effect: the deployable
runtime (hand25d/runtime) needs no TensorFlow at all (docs/design.md).
"""

__version__ = "0.1.0"
