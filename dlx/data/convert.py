"""Writes a prepared tfds dataset in ArrayRecord form, which the grain pipeline streams from
disk by random access (docs/curriculum.md#a6):

  python -m dlx.data.convert mnist --data_dir=../shared/tfds --out_dir=DIR
  python -m dlx.main --config=experiments/vision/lenet5_mnist.py --data_dir=DIR \\
      --config.input_pipeline=grain

tfds' own `convert_format` imports Apache Beam (not a dlx dependency) even to convert
locally, so this writes tfds' layout itself: every TFRecord shard's serialized examples,
unchanged and in order, go into an ArrayRecord shard of the same name (written by tfds' own
adapter: one record per group, for cheap random reads), the other metadata files are copied
and dataset_info.json says `fileFormat: array_record`. `tfds.data_source(NAME,
data_dir=DIR)` then reads it. Offline, and without TensorFlow: the TFRecord framing is
simple enough to read here (its checksums are checked; the examples' own bytes are
checked again where they are decoded: protobuf and PNG carry their own).
"""

import argparse
import os
import pathlib
import shutil
import struct
import sys

from dlx import errors

_ARRAY_RECORD = "array_record"


def convert(name: str, data_dir: str, out_dir: str, *, overwrite: bool = False) -> pathlib.Path:
  """Writes `name` (prepared in `data_dir`) under `out_dir` with the same relative path
  (NAME/[CONFIG/]VERSION) and returns that directory. The copy appears whole or not at all:
  it is written beside its place and renamed into it."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core import dataset_info as info_lib  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core import file_adapters  # pylint: disable=g-import-not-at-top

  builder = _prepared_builder(tfds, name, data_dir)
  source = pathlib.Path(builder.data_dir)
  suffix = builder.info.file_format.file_suffix
  if suffix == _ARRAY_RECORD:
    raise errors.UserError(f"{source} is already in ArrayRecord form; use it as --data_dir")
  target = pathlib.Path(out_dir) / os.path.relpath(source, data_dir)
  if target.exists() and not overwrite:
    raise errors.UserError(f"{target} exists; pass --overwrite to replace it")
  target.parent.mkdir(parents=True, exist_ok=True)
  partial = target.parent / f".{target.name}.incomplete-{os.getpid()}"
  shutil.rmtree(partial, ignore_errors=True)
  partial.mkdir()
  try:
    shards = set()
    for split in builder.info.splits.values():
      for path, length in zip(split.filepaths, split.shard_lengths):
        path = pathlib.Path(path)
        shards.add(path.name)
        out = partial / path.name.replace(f".{suffix}-", f".{_ARRAY_RECORD}-")
        written = _copy_records(file_adapters, path, out)
        if written != length:
          raise errors.UserError(f"{path} holds {written} examples, its metadata says {length}")
    for path in source.iterdir():
      if path.is_file() and path.name not in shards and path.name != "dataset_info.json":
        shutil.copyfile(path, partial / path.name)
    info = info_lib.read_from_json(source / "dataset_info.json")
    info.file_format = _ARRAY_RECORD
    info_lib.write_dataset_info_proto(info, dataset_info_dir=os.fspath(partial))
    if target.exists():
      shutil.rmtree(target)
    os.replace(partial, target)
  finally:
    shutil.rmtree(partial, ignore_errors=True)
  return target


def _prepared_builder(tfds, name, data_dir):
  if not data_dir or not (pathlib.Path(data_dir) / name).is_dir():
    raise errors.DataNotFoundError(
      f"no prepared dataset {name!r} in --data_dir={data_dir}; point it at a prepared tfds "
      "data dir (e.g. --data_dir=../shared/tfds)"
    )
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise errors.DataNotFoundError(f"tfds has no dataset named {name!r}; check the name") from e


def _copy_records(file_adapters, path, out) -> int:
  """Copies the serialized examples of one TFRecord shard into an ArrayRecord shard."""
  count = 0

  def records():
    nonlocal count
    for record in tfrecords(path):
      yield count, record
      count += 1

  file_adapters.ArrayRecordFileAdapter.write_examples(os.fspath(out), records())
  return count


def tfrecords(path):
  """The records of a TFRecord file. Each is framed as: length (uint64 LE), the masked
  CRC-32C of those 8 bytes, the data, the masked CRC-32C of the data."""
  with open(path, "rb") as f:
    while header := f.read(12):
      length, length_crc = struct.unpack("<QI", header) if len(header) == 12 else (0, None)
      if length_crc != _masked_crc32c(header[:8]):
        raise errors.UserError(f"{path} is corrupt (bad record header at byte {f.tell() - 12})")
      data = f.read(length)
      if len(data) != length or len(f.read(4)) != 4:
        raise errors.UserError(f"{path} is truncated (last record at byte {f.tell()})")
      yield data


def _crc32c_table():
  table = []
  for byte in range(256):
    crc = byte
    for _ in range(8):
      crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    table.append(crc)
  return table


_CRC32C = _crc32c_table()


def _masked_crc32c(data: bytes) -> int:
  crc = 0xFFFFFFFF
  for byte in data:
    crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  crc ^= 0xFFFFFFFF
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m dlx.data.convert", description=__doc__.split("\n\n")[0]
  )
  parser.add_argument("name", help="tfds dataset name, e.g. mnist")
  parser.add_argument("--data_dir", required=True, help="the prepared tfds data dir to read")
  parser.add_argument("--out_dir", required=True, help="the tfds data dir to write")
  parser.add_argument("--overwrite", action="store_true", help="replace an existing copy")
  args = parser.parse_args(argv)
  try:
    target = convert(args.name, args.data_dir, args.out_dir, overwrite=args.overwrite)
  except errors.UserError as e:
    sys.stderr.write(f"dlx: error: {e}\n")
    return 2
  print(f"wrote {target}; train with --data_dir={args.out_dir} --config.input_pipeline=grain")
  return 0


if __name__ == "__main__":
  sys.exit(main())
