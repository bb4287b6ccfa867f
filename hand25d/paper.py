"""The paper's numbers, in one place.

"Efficient 2.5D Hand Pose Estimation via Auxiliary Multi-Task Training for
Embedded Devices" (README.md). hand25d reproduces its method; these are the
figures it reports, which the reproduction (hand25d/experiments), the model
card (hand25d/model/card.py), the loss defaults (hand25d/losses.py), the
export budget (export/config.py) and the tests compare against or start
from. Nothing here is measured by hand25d. Standard library only: every layer
may import it (docs/design.md).

Errors are the paper's metric: the mean 2D Euclidean error, in pixels of the
120x160 network input, over the visible primary keypoints of the test users.
"""

# --- Data and training ----------------------------------------------------
# The in-house TOF data set: 225,733 frames of 40 users, split by user.
NUM_FRAMES = 225_733
NUM_USERS = 40
USERS_PER_SPLIT = (28, 4, 8)  # train, val, test.
EPOCHS = 20
# Adam's starting rate, decaying linearly to 0 over the run (§5).
LEARNING_RATE = 1e-3

# --- The loss (Eq. 1) -------------------------------------------------------
# Weight of each term: primary keypoints, auxiliary (17) keypoints, keypoint
# visibility and hand presence, categorical hand orientation, discrete hand
# pose, segmentation, deep supervision.
EQ1_WEIGHTS = {"kp": 1.0, "akp": 1.0, "kphv": 20.0, "cho": 20.0, "dhp": 10.0, "seg": 50.0,
               "ds": 1.0}
# Fingertip keypoint terms count this many times (§4; Table 1's "Wk").
FINGERTIP_WEIGHT = 2.0

# --- Table 1: ablation of the supervision -----------------------------------
# Error (px) of each row, by the row names of hand25d/experiments/plan.py.
TABLE1_PX = {
    "depth_no_aux": 6.226,
    "amplitude_no_aux": 6.054,
    "no_orientation": 5.941,
    "no_fingertip_weighting": 5.730,
    "no_deep_supervision": 5.994,
    "no_segmentation": 5.690,
    "no_pose": 5.655,
    "depth_all": 5.898,
    "all_supervision": 5.556,  # Ours: amplitude input, all supervision.
}

# --- Table 2: backbones with the same decoder, heads and training -----------
# Parameters (count) and GFLOPs of the inference network of each backbone.
TABLE2 = {
    "ours": {"params": 0.041e6, "gflops": 0.035},
    "mobilenet_v2": {"params": 1.893e6, "gflops": 1.209},
    "densenet121": {"params": 7.017e6, "gflops": 4.866},
}
# Error (px) of each backbone ("ours" is Table 1's all-supervision row).
TABLE2_PX = {
    "ours": TABLE1_PX["all_supervision"],
    "mobilenet_v2": 5.306,
    "densenet121": 4.457,
}
# How the paper names the backbones.
BACKBONE_NAMES = {"ours": "Ours", "mobilenet_v2": "MobileNetV2", "densenet121": "DenseNet-121"}

# --- Table 3 and §3: the embedded implementation ----------------------------
# One SHAVE vector core of a Myriad2: the network in 16 ms per frame, 12x
# faster than the vendor library.
SHAVE_MS = 16.0
SHAVE_SPEEDUP = 12.0

# --- Size ---------------------------------------------------------------------
# The float32 model is "under 300 KB" (1 KB = 1000 B).
FLOAT32_BUDGET_BYTES = 300_000
