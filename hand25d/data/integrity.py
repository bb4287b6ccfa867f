"""Integrity of a data set's shards: checked against the manifest, bad records found.

The manifest records each shard's size, sha256 and record count (num_frames).
`verify` checks them all before training reads a split (threads: hashlib and
file reads release the GIL); `bad_records` names the records of a failing
shard that tf.data cannot use. What is refused, and why: docs/data_format.md.
"""

import concurrent.futures
import dataclasses
import hashlib
import os
import struct

from hand25d.data import records

import tensorflow as tf

# TFRecord framing: uint64 length, uint32 masked CRC of the length, data, uint32 CRC of the data.
_HEADER, _FOOTER = 12, 4


@dataclasses.dataclass(frozen=True)
class ShardScan:
  """What one pass over a shard file finds (see scan_shard)."""
  bytes: int
  sha256: str
  num_records: int  # Complete records by the TFRecord framing (CRCs not checked).
  error: str | None  # Where the framing breaks, if it does.


def scan_shard(path: str) -> ShardScan:
  """Size, sha256 and record count of a TFRecord file in one read.

  Walks the record framing (length, data, CRC fields) so that a file cut
  inside a record, or inside a record header, is caught even where no
  digest is recorded. hashlib releases the GIL, so scans run in threads.
  """
  digest, count, error = hashlib.sha256(), 0, None
  size = os.path.getsize(path)
  with open(path, "rb") as fp:
    offset = 0
    while offset < size:
      header = fp.read(_HEADER)
      digest.update(header)
      if len(header) < _HEADER:
        error = f"record {count}: file ends inside the record header at byte {offset}"
        break
      (length,) = struct.unpack("<Q", header[:8])
      if length > size - offset - _HEADER - _FOOTER:
        error = (f"record {count}: length field {length} at byte {offset} runs past the "
                 f"end of the file ({size} bytes): truncated or corrupt")
        digest.update(fp.read())
        break
      remaining = length + _FOOTER
      while remaining > 0:
        block = fp.read(min(remaining, 1 << 20))
        digest.update(block)
        remaining -= len(block)
      offset = fp.tell()
      count += 1
  return ShardScan(bytes=size, sha256=digest.hexdigest(), num_records=count, error=error)


def shard_problem(path: str, shard: dict) -> str | None:
  """Why a shard file fails its manifest entry, or None if it passes.

  Checks the size, the sha256 (if the manifest records one; manifests of
  some importers do not) and the record count against num_frames.
  """
  if not os.path.isfile(path):
    return f"shard {path} does not exist"
  scan = scan_shard(path)
  if scan.error:
    return f"shard {path} {scan.error}"
  if "bytes" in shard and scan.bytes != shard["bytes"]:
    return f"shard {path} has {scan.bytes} bytes, the manifest says {shard['bytes']}"
  if scan.num_records != shard["num_frames"]:
    return (f"shard {path} holds {scan.num_records} records, the manifest says "
            f"{shard['num_frames']}")
  if "sha256" in shard and scan.sha256 != shard["sha256"]:
    return f"shard {path}: sha256 {scan.sha256} differs from the manifest's {shard['sha256']}"
  return None


def verify(data_dir: str, splits, manifest: dict | None = None,
           workers: int = 8) -> dict[str, str]:
  """Checks every shard of `splits` against the manifest, reading the files in threads.

  Returns:
    {shard path: problem} for the shards that fail (empty if all pass).

  Raises:
    records.RecordError: no usable manifest, an unknown or empty split, or a shard
      name outside data_dir.
  """
  manifest = manifest or records.load_manifest(data_dir)
  entries = []
  for split in splits:
    shards = records.split_info(data_dir, manifest, split)["shards"]
    if not shards:
      raise records.RecordError(f"{data_dir}: split {split!r} has no frames")
    entries += [(records.resolve(data_dir, s["file"]), s) for s in shards]
  with concurrent.futures.ThreadPoolExecutor(max(1, min(workers, len(entries)))) as pool:
    problems = pool.map(lambda e: shard_problem(*e), entries)
    return {path: p for (path, _), p in zip(entries, problems) if p}


def bad_records(path: str, num_frames: int) -> tuple[list[str], int]:
  """The records of a shard that tf.data cannot use, and how many it loses.

  A record that does not decode (not an Example, a wrong size, a label out
  of range) is one lost record; corrupt framing (a CRC or length error)
  ends the file for TFRecordDataset, so every record from there on is lost.

  Returns:
    (one line per problem naming the shard and record, records lost).
  """
  problems, lost, index = [], 0, 0
  try:
    for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
      try:
        records.decode(serialized, f"shard {path} record {index}")
      except records.RecordError as e:
        problems.append(str(e))
        lost += 1
      index += 1
  except tf.errors.DataLossError as e:
    problems.append(f"shard {path} record {index}: corrupt or truncated TFRecord data "
                    f"({records.error_message(e)}); the records from here on are unreadable")
    lost += max(num_frames - index, 1)
  if index < num_frames and not problems:
    problems.append(f"shard {path}: {index} records, the manifest says {num_frames}")
    lost += num_frames - index
  return problems, lost
