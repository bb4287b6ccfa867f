#!/bin/sh
# Copies a training run's resumable state into the repository:
#   training_state/save.sh RUN_DIR STATE_DIR
# (the newest checkpoint, the best one, the config, the TensorBoard logs, and
# the test evaluation and the run's summary if there are).
set -eu
R=$1 S=$2
latest=$(sed -n 's/^model_checkpoint_path: "\(.*\)"$/\1/p' "$R/checkpoints/checkpoint")
rm -rf "$S" && mkdir -p "$S/checkpoints"
cp -r "$R/config.json" "$R/train" "$R/eval" "$S/"
for f in "$R"/events.*; do [ -e "$f" ] && cp "$f" "$S/"; done
cp "$R/checkpoints/$latest".* "$S/checkpoints/"
[ -d "$R/checkpoints/best" ] && cp -r "$R/checkpoints/best" "$S/checkpoints/"
[ -d "$R/test" ] && cp -r "$R/test" "$S/"
[ -f "$R/summary.json" ] && cp "$R/summary.json" "$S/"
printf 'model_checkpoint_path: "%s"\nall_model_checkpoint_paths: "%s"\n' "$latest" "$latest" \
    > "$S/checkpoints/checkpoint"
