"""hand25d export: TFLite, TensorFlow Lite Micro, firmware arrays and the SHAVE kernel."""

import hand25d  # noqa: F401  (puts TF_USE_LEGACY_KERAS=1 in effect first)
