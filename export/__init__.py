"""hand25d export: TFLite, TensorFlow Lite Micro, firmware arrays and the SHAVE kernel."""
