"""The 2.5D runtime: phase frames -> amplitude || depth -> keypoints -> 2.5D.

The deployable part needs numpy, ai-edge-litert and tflite-micro only: no
TensorFlow, nothing of the training side or of export (docs/design.md). The
demo (synthetic sequences, evaluation, reports) is hand25d.runtime.demo.
"""
