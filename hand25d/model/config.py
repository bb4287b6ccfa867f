"""ModelConfig: the one frozen description of a hand25d network.

The training model, the inference (export) model, the baselines and the model
card are all built from a `ModelConfig`. Shapes and output names come from
`hand25d.spec`; this file holds only the choices (backbone, heads, widths).
"""

import dataclasses

from hand25d import spec

BACKBONES = ("ours", "mobilenet_v2", "densenet121")
GROUPED_FORMS = ("fast", "native")
POSE_FROM = ("features", "keypoints+features")
# Backbones whose network int8 QAT (export/qat.py) cannot export, and why.
# Found by running qat.fuse and qat.quantize on each backbone's inference
# model; the export refuses them before any work (export/config.py,
# check_config) and training warns at the start (hand25d/training/loop.py).
QAT_UNSUPPORTED_BACKBONES = {
    "mobilenet_v2": ("tensorflow-model-optimization has no quantization for the Resizing layer "
                     "that adapts its features to the decoder (adapter_resize)"),
    "densenet121": ("its pre-activation batch norms (e.g. conv2_block1_0_bn) follow a pooling "
                    "or concatenation, not a convolution, so they cannot be folded"),
}

# Resolution of the encoder output (Tier-3 / baseline features) relative to the
# input: the coarsest deep-supervision stride.
ENCODER_STRIDE = max(spec.DEEP_SUPERVISION_STRIDES)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """How to build the network.

  Attributes:
    backbone: "ours" (the three-tier encoder of paper §3) or a
      keras.applications baseline, "mobilenet_v2" or "densenet121".
    input_height, input_width: network input size; multiples of
      ENCODER_STRIDE.
    input_mode: "amplitude" or "depth"; both are one channel. Names the input.
    aux_keypoints: train the auxiliary (non-grouped) decoder for all 17
      keypoints per hand.
    visibility_presence: train keypoint-visibility and hand-presence heads.
    orientation: train the 8-bin hand-orientation head.
    pose: train the 9-class discrete-pose head.
    segmentation: train the BiSeNet-style spatial path + fusion + 3-class
      segmentation head.
    deep_supervision: train keypoint heads at strides 8, 4 and 2.
    hand_mask: a small head on the encoder output giving a coarse 3-class
      segmentation (background, left hand, right hand) at
      spec.HAND_MASK_STRIDE, trained by the segmentation term (Lseg) against
      the fraction of each class in each 8x8 block, and exported with the
      keypoints: decoding weights each side's score maps by the probability
      that a cell belongs to that side's hand (hand25d/decoding.py), which
      removes most left/right swaps and keypoints found off the hand
      (docs/training.md, "Decoding with the hand mask").
    hand_mask_channels: 0: the hand mask is one 1x1 convolution (195
      parameters); else a 1x1 Conv-ReLU to this many channels, then a 3x3
      convolution to the 3 classes (16: about 1.5K parameters, no better on
      the validation users, docs/training.md).
    inference_presence: the inference model also returns hand presence (a
      pooled dense layer on the encoder output, for the runtime's early out,
      docs/runtime.md), if visibility_presence trains it.
    grouped_form: "fast" (block-diagonal dense kernel, for training on CPU)
      or "native" (true grouped convolution). Exports are always native.
    tier1_channels: Tier-1 output channels.
    tier1_kernel_size: Tier-1 kernel; its stride is ENCODER_STRIDE // 2.
    tier2_channels: Tier-2 output channels (concatenation of its 2 units).
    tier2_bottleneck: inner width of a Tier-2 131-ConvBlock.
    tier2_groups: groups of the Tier-2 3x3 convolutions.
    tier3_channels: Tier-3 output channels (concatenation of its 2 units).
    tier3_bottleneck: inner width of a Tier-3 bottleneck ResNet block.
    tier3_groups: groups of the Tier-3 dilated 3x3 convolutions.
    tier3_dilations: dilation of each block in a Dilated-Ladder unit.
    aux_decoder_channels: width of the auxiliary keypoint decoder.
    spatial_path_channels: width of the segmentation spatial path.
    fusion_channels: width of the segmentation feature-fusion module.
    batchnorm_momentum: momentum of the moving statistics of every
      BatchNormalization (the baselines' included), which inference uses.
      Keras' default 0.99 (0.999 in keras.applications' MobileNetV2) leaves
      them far from the batch statistics for the first thousands of steps:
      a layer whose activations have a variance of 1e-3 still has a moving
      variance 10x too large after 450 steps at 0.99, and the model, good in
      training mode, is useless in inference mode. 0.9 converges within about
      100 steps, which short CPU runs need.
    decoder_shuffle: the number of channel blocks to interleave
      (ShuffleNet's channel shuffle) before the primary decoder; 0 or 1: none.
      The decoder's last layer gives each score map 4 consecutive Tier-3
      channels, so without a shuffle the 8 left-hand maps see only the first
      Dilated-Ladder unit and the right hand's the deeper second one; 2 (the
      default) gives every map 2 channels of each. No parameters or FLOPs;
      RESHAPE, TRANSPOSE, RESHAPE in TFLite, one channel_shuffle layer on the
      SHAVE (docs/embedded.md). Measured in docs/training.md ("What limits
      accuracy").
    decoder_channels: 0 (the default: the decoder runs on all
      tier3_channels) or the width of a dense 1x1 Conv-BN-ReLU at 1/8 that
      starts the primary decoder. Every channel after it mixes both
      Dilated-Ladder units, and the up-sampled maps are decoder_channels
      wide instead of tier3_channels; a multiple of the 16 score maps.
    score_stride: where the decoder's grouped 1x1 layer turns its channels
      into the 16 score maps: 4 (the default: after the first up-sampling
      stage; the second then up-samples the 16 maps alone, and its depthwise
      3x3 gives the logits) or 2 (the output stride: it is the last layer,
      and both up-sampling stages run on all the decoder's channels, as in
      runs before this option). At 4 the largest activations at 1/2
      resolution have 16 channels instead of 64, which sets the TFLite Micro
      arena (docs/export.md), at no cost in accuracy; measured in
      docs/training.md ("Where the decoder's channels drop").
    pose_from: what the pose and orientation heads read. "features" (the
      default; the paper does not say): one dense layer on the global
      average of the encoder output, shared by both hands.
      "keypoints+features": each hand's keypoint layout, the soft-argmax of
      its score maps (the auxiliary decoder's 17 per hand if it is trained,
      else the 8 primary) relative to the wrist and scaled to the hand's
      size (layers.HandKeypointGeometry), read without a gradient and
      joined to that global average, through a 2-layer MLP of its own per
      side; the losses still train the encoder through the pooled
      features only. Training only. Measured in docs/training.md ("Pose
      and orientation").
    hand_head_channels: width of each side's hidden layers under
      pose_from="keypoints+features".
  """
  backbone: str = "ours"
  input_height: int = spec.INPUT_HEIGHT
  input_width: int = spec.INPUT_WIDTH
  input_mode: str = "amplitude"
  aux_keypoints: bool = True
  visibility_presence: bool = True
  orientation: bool = True
  pose: bool = True
  segmentation: bool = True
  deep_supervision: bool = True
  hand_mask: bool = False
  hand_mask_channels: int = 0
  inference_presence: bool = True
  grouped_form: str = "fast"
  tier1_channels: int = 16
  tier1_kernel_size: int = 5
  tier2_channels: int = 32
  tier2_bottleneck: int = 16
  tier2_groups: int = 16
  tier3_channels: int = 64
  tier3_bottleneck: int = 56
  tier3_groups: int = 56
  tier3_dilations: tuple[int, ...] = (1, 2, 3, 4)
  aux_decoder_channels: int = 32
  spatial_path_channels: int = 32
  fusion_channels: int = 64
  batchnorm_momentum: float = 0.9
  decoder_shuffle: int = 2
  decoder_channels: int = 0
  score_stride: int = 4
  pose_from: str = "features"
  hand_head_channels: int = 64

  def __post_init__(self):
    if self.backbone not in BACKBONES:
      raise ValueError(f"unknown backbone {self.backbone!r}; expected one of {BACKBONES}")
    if self.input_mode not in spec.INPUT_MODES:
      raise ValueError(f"unknown input_mode {self.input_mode!r}; expected one of "
                       f"{spec.INPUT_MODES}")
    if self.grouped_form not in GROUPED_FORMS:
      raise ValueError(f"unknown grouped_form {self.grouped_form!r}; expected one of "
                       f"{GROUPED_FORMS}")
    if self.pose_from not in POSE_FROM:
      raise ValueError(f"unknown pose_from {self.pose_from!r}; expected one of {POSE_FROM}")
    if self.hand_mask_channels < 0:
      raise ValueError(f"hand_mask_channels={self.hand_mask_channels} must be >= 0")
    if self.hand_head_channels < 1:
      raise ValueError(f"hand_head_channels={self.hand_head_channels} must be positive")
    if self.input_height % ENCODER_STRIDE or self.input_width % ENCODER_STRIDE:
      raise ValueError(f"input {self.input_height}x{self.input_width} must be a multiple of "
                       f"{ENCODER_STRIDE} in both dimensions")
    width = self.decoder_channels or self.tier3_channels
    if self.decoder_shuffle < 0 or (self.decoder_shuffle > 1 and width % self.decoder_shuffle):
      raise ValueError(f"decoder_shuffle={self.decoder_shuffle} must be 0 or divide the "
                       f"decoder's {width} channels")
    if self.decoder_channels < 0 or self.decoder_channels % spec.NUM_PRIMARY_CHANNELS:
      raise ValueError(f"decoder_channels={self.decoder_channels} must be 0 or a multiple of "
                       f"the {spec.NUM_PRIMARY_CHANNELS} score maps")
    if self.score_stride not in spec.DEEP_SUPERVISION_STRIDES[1:]:
      raise ValueError(f"score_stride={self.score_stride} must be one of "
                       f"{spec.DEEP_SUPERVISION_STRIDES[1:]} (after an up-sampling stage)")
    if not 0.0 <= self.batchnorm_momentum < 1.0:
      raise ValueError(f"batchnorm_momentum={self.batchnorm_momentum} must be in [0, 1)")
    for tier, channels, inner, groups in (
        (2, self.tier2_channels, self.tier2_bottleneck, self.tier2_groups),
        (3, self.tier3_channels, self.tier3_bottleneck, self.tier3_groups)):
      if channels % 2:
        raise ValueError(f"tier{tier}_channels={channels} must be even (two units)")
      if inner % groups:
        raise ValueError(f"tier{tier}_bottleneck={inner} must be divisible by "
                         f"tier{tier}_groups={groups}")

  @property
  def input_shape(self) -> tuple[int, int, int]:
    return (self.input_height, self.input_width, spec.INPUT_CHANNELS)

  @property
  def exports_presence(self) -> bool:
    """Whether the inference model returns hand presence (trained and wanted)."""
    return self.inference_presence and self.visibility_presence

  def heads(self) -> dict[str, bool]:
    """Each switchable training head and whether it is on."""
    return {
        "aux_keypoints": self.aux_keypoints,
        "visibility_presence": self.visibility_presence,
        "orientation": self.orientation,
        "pose": self.pose,
        "segmentation": self.segmentation,
        "deep_supervision": self.deep_supervision,
        "hand_mask": self.hand_mask,
    }

  def output_names(self) -> tuple[str, ...]:
    """Names (spec) of the training model's outputs under this config."""
    names = [spec.KEYPOINTS]
    if self.aux_keypoints:
      names.append(spec.AUX_KEYPOINTS)
    if self.visibility_presence:
      names += [spec.VISIBILITY, spec.PRESENCE]
    if self.orientation:
      names.append(spec.ORIENTATION)
    if self.pose:
      names.append(spec.POSE)
    if self.segmentation:
      names.append(spec.SEGMENTATION)
    if self.deep_supervision:
      names += [spec.deep_supervision_output(s) for s in spec.DEEP_SUPERVISION_STRIDES]
    if self.hand_mask:
      names.append(spec.HAND_MASK)
    return tuple(names)
