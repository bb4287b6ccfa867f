"""The hand25d network: a ~41K-parameter multi-task keypoint model (docs/model_card.md).

See docs/model_card.md. Entry points: `network.build_training_model`,
`network.inference_model`, `card.model_card`.
"""
