"""hand25d: efficient 2.5D hand pose estimation for embedded AR/VR devices.

Keras flavour: hand25d uses Keras 2 (the `tf_keras` package), because
tensorflow-model-optimization does not support Keras 3; hand25d code always
imports Keras as `import tf_keras as keras`. `hand25d.legacy_keras` makes
`tf.keras` the same Keras where that matters (its docstring says where it is
imported). Importing hand25d itself has no side effect: the deployable
runtime (hand25d/runtime) needs no TensorFlow at all (docs/design.md).

The public API, loaded on first use (so `import hand25d` stays free):
  hand25d.HandTracker    hand25d.runtime.tracker.HandTracker (docs/runtime.md)
  hand25d.SensorConfig   hand25d.sensor.SensorConfig
"""

import importlib

__version__ = "0.1.0"

_LAZY = {"HandTracker": "hand25d.runtime.tracker", "SensorConfig": "hand25d.sensor"}


def __getattr__(name: str):
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f"module 'hand25d' has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted(list(globals()) + list(_LAZY))
