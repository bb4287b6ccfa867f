"""The runtime's demo: synthetic and recorded sequences, evaluation against ground truth, reports.

Not part of the deployable runtime (hand25d/runtime): the synthetic frames
come from the data engine (hand25d/data), and the reports need matplotlib
and Pillow.
"""
