"""The hand25d network: a ~41K-parameter multi-task keypoint model (DESIGN.md §3).

See docs/model_card.md. Entry points: `network.build_training_model`,
`network.inference_model`, `card.model_card`.
"""
