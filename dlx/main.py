"""Launch an experiment:

  python -m dlx.main --config=experiments/NAME.py --workdir=DIR [--data_dir=DIR] \
      [--config.FIELD=VALUE ...]

Relaunching with the same --workdir resumes from its newest checkpoint. Bad input (an
unknown experiment or config field, a bad value, missing data) prints one line saying
what was wrong and exits with status 2.
"""

import os
import sys

# Before TensorFlow or JAX load: TF only reads data and must not take GPU memory.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # and skip its oneDNN banner

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
from ml_collections import config_flags

from dlx import errors

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment file, e.g. experiments/lenet5_mnist.py[:ARG].",
    lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")
flags.DEFINE_string("data_dir", None,
                    "Prepared tensorflow-datasets dir (default: $TFDS_DATA_DIR).")


def _fail(message: str):
  sys.stderr.write(f"dlx: error: {message}\n")
  sys.exit(2)


def _experiment_names_to_paths(argv):
  """Lets --config name an experiment (--config=mlp_xor[:ARG]) as well as give its file."""
  from dlx import experiment as experiment_lib  # pylint: disable=g-import-not-at-top
  out = []
  for arg in argv:
    if arg.startswith("--config="):
      value = arg[len("--config="):]
      name, sep, config_arg = value.partition(":")
      if not os.path.isfile(name):
        out.append(f"--config={experiment_lib.resolve(name)}{sep}{config_arg}")
        continue
    out.append(arg)
  return out


def parse_flags(argv):
  """absl parsing, with every mistake reported as one line."""
  try:
    argv = _experiment_names_to_paths(argv)
    rest = FLAGS(argv)
    _ = FLAGS.config  # config_flags may load the file lazily: surface its errors here
  except flags.Error as e:
    _fail(_one_line(e))
  except errors.UserError as e:
    _fail(str(e))
  except (AttributeError, KeyError) as e:
    # config_flags reports an override of a field that does not exist this way.
    field = str(e).strip("\"'")
    _fail(f"unknown config field {field!r}: no --config.{field} in this experiment's "
          "config (see its get_config, or config.json in a workdir)")
  except Exception as e:  # pylint: disable=broad-except
    # Errors from the config file itself (e.g. an exception in get_config).
    _fail(f"could not load --config: {type(_root_cause(e)).__name__}: {_one_line(e)}")
  if FLAGS.config is None:
    _fail("--config is required, e.g. --config=experiments/lenet5_digits.py")
  if not FLAGS.workdir:
    _fail("--workdir is required, e.g. --workdir=/tmp/runs/lenet5_digits")
  return rest


def _root_cause(e):
  # config_flags wraps errors raised inside the config file; report the original.
  while e.__cause__ is not None:
    e = e.__cause__
  return e


def _one_line(e) -> str:
  raw = str(_root_cause(e)).strip()
  if "Traceback (most recent call last)" in raw:
    # Keep the message before the traceback and the traceback's last line (the error).
    head = raw.split("Traceback (most recent call last)")[0]
    raw = f"{head} {raw.splitlines()[-1]}"
  return " ".join(raw.split())


def _quiet_library_logs():
  """Orbax logs every file it writes and clu repeats our metric lines; keep the console
  to dlx's own progress, validation and result lines (warnings still pass)."""
  def keep(record):
    # Standard library levels: 30 WARNING, 40 ERROR. tfds warns about data it then
    # reports missing; our own one-line error says what to do.
    if "tensorflow_datasets" in record.pathname:
      return record.levelno >= 40
    noisy = "orbax" in record.pathname or "clu/metric_writers" in record.pathname
    return record.levelno >= 30 or not noisy
  handler = logging.get_absl_handler()
  for h in (handler, handler.python_handler):  # ABSLHandler delegates to python_handler
    h.addFilter(keep)


def main(argv):
  _quiet_library_logs()
  if len(argv) > 1:
    _fail(f"unexpected arguments {' '.join(argv[1:])!r}; flags look like --name=value")
  # Imported here so that flag errors are reported before the heavy imports.
  from dlx import experiment as experiment_lib  # pylint: disable=g-import-not-at-top
  from dlx import parallel  # pylint: disable=g-import-not-at-top
  from dlx import train  # pylint: disable=g-import-not-at-top

  config = FLAGS.config
  # "experiments/NAME.py:ARG" passes ARG to get_config; the module is the file part.
  config_path = FLAGS["config"].config_filename.split(":")[0]
  try:
    experiment = experiment_lib.load(config_path)
    with config.unlocked():
      config.experiment = config.experiment or experiment_lib.name_of(config_path)
    parallel.initialize_distributed(config.distributed)
    results = train.train_and_evaluate(config, FLAGS.workdir, data_dir=FLAGS.data_dir,
                                       experiment=experiment)
  except errors.UserError as e:
    _fail(str(e))
  logging.info("results written to %s", os.path.join(FLAGS.workdir, "results.json"))
  print(f"test: {_format(results['test'])}")


def _format(metrics):
  return "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))


def run():
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
