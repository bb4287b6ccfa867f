"""tf.distribute plumbing of the training loop: strategies, data, checkpoints.

The same loop runs on one device, under `MirroredStrategy` over the local
devices, and under `MultiWorkerMirroredStrategy` across processes described by
the `TF_CONFIG` environment variable (docs/training.md). Each input pipeline
(one per worker) reads its own share of the shards.
"""

import glob
import hashlib
import json
import os
import re
import shutil

from absl import logging
import tensorflow as tf

from hand25d.data import pipeline
from hand25d.data import records
from hand25d.training import config as config_lib


def configure_cpu_devices(count: int) -> None:
  """Splits the CPU into `count` logical devices (before TensorFlow starts).

  Lets `MirroredStrategy` run over several replicas on a CPU-only machine.
  """
  if count < 1:
    raise ValueError(f"CPU device count must be >= 1, got {count}")
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])


def _num_workers() -> int:
  cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
  return sum(len(cluster.get(role, [])) for role in ("chief", "worker"))


def make_strategy(name: str) -> tf.distribute.Strategy:
  """The strategy named by TrainConfig.distribution."""
  if name not in config_lib.DISTRIBUTIONS:
    raise ValueError(f"distribution {name!r} not in {config_lib.DISTRIBUTIONS}")
  if name == "auto":
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    name = ("multi_worker" if _num_workers() > 1 else
            "mirrored" if len(devices) > 1 else "one_device")
  if name == "multi_worker":
    if not os.environ.get("TF_CONFIG"):
      raise ValueError("distribution 'multi_worker' needs the TF_CONFIG environment "
                       "variable (see docs/training.md)")
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "mirrored":
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])
  return tf.distribute.OneDeviceStrategy(tf.config.list_logical_devices()[0].name)


def _task(strategy: tf.distribute.Strategy) -> tuple[str, int]:
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return "chief", 0
  return resolver.task_type, int(resolver.task_id)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True on the one process that writes configs, logs and checkpoints."""
  task_type, task_id = _task(strategy)
  if task_type == "chief":
    return True
  has_chief = "chief" in strategy.cluster_resolver.cluster_spec().as_dict()
  return task_type == "worker" and task_id == 0 and not has_chief


def _scratch_dir(strategy: tf.distribute.Strategy, workdir: str) -> str:
  task_type, task_id = _task(strategy)
  return os.path.join(workdir, f".scratch_{task_type}_{task_id}")


def checkpoint_dir(strategy: tf.distribute.Strategy, workdir: str, sub: str = "") -> str:
  """Where this process saves: the workdir on the chief, a scratch dir elsewhere.

  Every worker must take part in saving a multi-worker checkpoint; only the
  chief's copy is kept (`cleanup` removes the others).
  """
  root = (os.path.join(workdir, "checkpoints") if is_chief(strategy)
          else _scratch_dir(strategy, workdir))
  return os.path.join(root, sub)


def cleanup(strategy: tf.distribute.Strategy, workdir: str) -> None:
  """Removes a non-chief worker's scratch checkpoints."""
  if not is_chief(strategy):
    shutil.rmtree(_scratch_dir(strategy, workdir), ignore_errors=True)


class CorruptCheckpointError(RuntimeError):
  """A checkpoint's files are missing, truncated or corrupt."""


# What TensorFlow raises for a checkpoint whose files are damaged: a short
# data file (IndexError "Read less bytes than requested"), a bad index
# ("not an sstable", raised as a plain OpError), a bad CRC (DataLossError), a
# deleted file (NotFoundError).
_DAMAGE = (IndexError, tf.errors.DataLossError, tf.errors.NotFoundError)


def restore(ckpt: tf.train.Checkpoint, path: str) -> None:
  """Restores a training checkpoint, or says clearly why it does not fit.

  Raises:
    ValueError: the checkpoint was written by another architecture or config.
    CorruptCheckpointError: its files are missing, truncated or corrupt.
  """
  if not glob.glob(glob.escape(path) + ".data-*") or not os.path.exists(path + ".index"):
    raise CorruptCheckpointError(f"checkpoint {path}: its .index or .data files are missing")
  try:
    ckpt.restore(path).assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
    raise ValueError(
        f"checkpoint {path} does not fit this model (another architecture, heads or "
        f"config?): {str(e).splitlines()[0][:400]}") from e
  except tf.errors.OpError as e:
    if not isinstance(e, _DAMAGE) and type(e) is not tf.errors.OpError:
      raise
    raise CorruptCheckpointError(f"checkpoint {path} is damaged: "
                                 f"{e.message.splitlines()[0][:300]}") from e
  except IndexError as e:
    raise CorruptCheckpointError(f"checkpoint {path} is truncated: {e}") from e


def checkpoints(directory: str) -> list[str]:
  """The checkpoint prefixes in `directory`, newest (highest number) first.

  Both the ones the checkpoint state file lists (whose files may be gone)
  and any others with an .index file.
  """
  state = tf.train.get_checkpoint_state(directory)
  names = [os.path.basename(p) for p in (state.all_model_checkpoint_paths if state else [])]
  names += [os.path.basename(p)[:-len(".index")]
            for p in glob.glob(os.path.join(glob.escape(directory), "*-*.index"))]
  numbered = {n for n in names if re.fullmatch(r".+-\d+", n)}
  return [os.path.join(directory, n)
          for n in sorted(numbered, key=lambda n: int(n.rsplit("-", 1)[1]), reverse=True)]


def restore_newest(ckpt: tf.train.Checkpoint, directory: str) -> str | None:
  """Restores the newest intact checkpoint in `directory`; returns its prefix or None.

  A newer checkpoint that is truncated, empty, corrupt or deleted (e.g. by a
  full disk or a kill during a copy) is skipped with a warning.

  Raises:
    ValueError: a checkpoint of another architecture or config.
    CorruptCheckpointError: there are checkpoints, but none is intact.
  """
  found = checkpoints(directory)
  for path in found:
    try:
      restore(ckpt, path)
      return path
    except CorruptCheckpointError as e:
      logging.warning("%s; falling back to the previous checkpoint", e)
  if found:
    raise CorruptCheckpointError(f"no intact checkpoint in {directory} (tried {len(found)}); "
                                 "restore it from a copy, or delete it to start over")
  return None


def split_frames(data_dir: str, split: str) -> int:
  """Frames in a split, from the data set's manifest.

  Raises:
    records.RecordError: no readable manifest, or no such split.
  """
  manifest = records.load_manifest(data_dir)
  if split not in manifest["splits"]:
    raise records.RecordError(f"{data_dir}: no split {split!r}; the manifest has "
                              f"{sorted(manifest['splits'])}")
  return int(manifest["splits"][split]["num_frames"])


def epoch_seed(seed: int, epoch: int) -> int:
  """The data seed of one epoch: fixed by the run's seed, different per epoch."""
  digest = hashlib.sha256(f"{seed}/{epoch}".encode()).digest()
  return int.from_bytes(digest[:4], "little")


def epoch_dataset(strategy: tf.distribute.Strategy, cfg: config_lib.TrainConfig,
                  epoch: int, skip_steps: int = 0) -> tf.distribute.DistributedDataset:
  """The distributed training data of one epoch, `skip_steps` steps in.

  Each input pipeline reads its own shards and yields per-replica batches;
  the order is a pure function of (cfg.seed, epoch), so a resumed run sees
  exactly the batches an uninterrupted run would have seen.
  """
  def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
    data = pipeline.make_dataset(
        cfg.data_dir, cfg.train_split, ctx.get_per_replica_batch_size(cfg.batch_size),
        input_mode=cfg.model.input_mode, training=True,
        augment_config=None if cfg.augment else pipeline.NO_AUGMENT,
        seed=epoch_seed(cfg.seed, epoch), shard_index=ctx.input_pipeline_id,
        num_shards=ctx.num_input_pipelines, num_epochs=None,
        input_height=cfg.model.input_height, input_width=cfg.model.input_width,
        skip_corrupt=cfg.skip_corrupt_records)
    replicas_per_pipeline = ctx.num_replicas_in_sync // ctx.num_input_pipelines
    # num_epochs=None: a worker's share may hold fewer batches than an epoch has steps.
    return data.skip(skip_steps * replicas_per_pipeline)

  options = tf.distribute.InputOptions(experimental_fetch_to_device=False)
  return strategy.distribute_datasets_from_function(dataset_fn, options)
