"""SHAVE reference kernel: interleaved layout, comb dilation, slice simulator, cost model."""
