"""Synthetic TOF hand data, TFRecord storage and the tf.data input pipeline.

See docs/data.md (how the engine works) and docs/data_format.md (the stored
format and the pipeline contract).
"""
