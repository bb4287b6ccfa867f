"""The colours of every picture hand25d draws, in one place.

One colour per hand side in every picture (the data preview, the augmented
batch, Fig. 2, the runtime's annotated frames and animation), one depth
colour map, one colour for invalid depth. Standard library only, so that
every layer may import it (tests/layers_test.py); hand25d/drawing.py turns
these into matplotlib artists, legends and colour bars.

The sides are two of Okabe and Ito's colours ("Color Universal Design",
2008), vermilion and sky blue. Under the Machado et al. (2009) simulations
of protan, deutan and tritan vision they stay far apart (CIELAB distance
>= 88; >= 113 with normal vision), far from every grey of an amplitude
image (>= 31) and from every colour of the depth map (>= 12; Okabe-Ito's
orange and blue come to 10 and 5 there, so a keypoint would melt into the
depth under it). Vermilion is also the darker of the two in greyscale
(L* 54 against 70). Depth is matplotlib's viridis (perceptually uniform,
readable by colour-blind readers); invalid depth is black, which no viridis
colour comes near, with or without a deficiency (CIELAB distance >= 27).
"""

RGB = tuple[int, int, int]

LEFT: RGB = (213, 94, 0)  # Okabe-Ito vermilion.
RIGHT: RGB = (86, 180, 233)  # Okabe-Ito sky blue.
# Indexed like hand25d.spec.SIDES (0 = left, 1 = right).
SIDES: tuple[RGB, RGB] = (LEFT, RIGHT)

# Ground-truth keypoints (rings over an image).
TRUTH: RGB = (255, 255, 255)
# Text over an image (keypoint names, depths), outlined.
LABEL: RGB = (255, 255, 255)
# The edge around keypoint markers, bones, rings and labels, so that they read over
# light and dark pixels alike.
OUTLINE: RGB = (0, 0, 0)

# Depth: one colour map for every depth picture, and invalid pixels (depth 0:
# low amplitude, saturated, flying; NaN in a given float depth image).
DEPTH_COLORMAP = "viridis"
INVALID_DEPTH: RGB = (0, 0, 0)

# Segmentation classes, indexed like hand25d.spec.SEGMENTATION_CLASSES
# (background, left hand, right hand).
SEGMENTATION: tuple[RGB, RGB, RGB] = ((0, 0, 0), LEFT, RIGHT)


def unit(rgb: RGB) -> tuple[float, float, float]:
  """The colour as matplotlib takes it: (r, g, b) in [0, 1]."""
  return (rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0)
