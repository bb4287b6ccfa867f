"""hand25d: efficient 2.5D hand pose estimation for embedded AR/VR devices.

Keras flavour: hand25d uses Keras 2 (the `tf_keras` package), because
tensorflow-model-optimization does not support Keras 3. Importing this package
puts TF_USE_LEGACY_KERAS=1 in effect, so that `tf.keras` inside TensorFlow and
tensorflow-model-optimization also resolves to tf_keras. hand25d code itself
always imports Keras as `import tf_keras as keras`.
"""

import os
import sys

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
  raise ImportError(
      "hand25d needs TF_USE_LEGACY_KERAS=1 before TensorFlow is imported, but "
      "tensorflow was imported first without it. Import hand25d before "
      "tensorflow, or set TF_USE_LEGACY_KERAS=1 in the environment.")
os.environ["TF_USE_LEGACY_KERAS"] = "1"

__version__ = "0.1.0"
