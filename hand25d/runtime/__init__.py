"""The 2.5D runtime: phase frames -> amplitude || depth -> keypoints -> 2.5D."""
