"""Launch an experiment:

  python -m dlx.main --config=experiments/NAME.py --workdir=DIR [--data_dir=DIR] \
      [--config.FIELD=VALUE ...]

Relaunching with the same --workdir resumes from its newest checkpoint. Bad input (an
unknown experiment or config field, a bad value, missing data) prints one line saying
what was wrong and exits with status 2. SIGTERM or Ctrl-C stops after the step in flight
and saves it, prints one line and exits with 128 + the signal's number (143, 130; see
dlx/training/preemption.py). The console shows compact progress lines; the full absl log
(timestamps, source lines) goes to WORKDIR/log.txt.
"""

import errno
import logging as std_logging
import os
import re
import signal
import sys
import threading

# Before TensorFlow or JAX load: TF only reads data and must not take GPU memory.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # and skip its oneDNN banner

from dlx import optional_deps  # pylint: disable=g-import-not-at-top

optional_deps.require("the command line (dlx.main)", *optional_deps.TRAINER)

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
from ml_collections import config_flags

from dlx import errors

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file(
  "config",
  None,
  "Experiment file, e.g. experiments/vision/lenet5_mnist.py[:ARG].",
  lock_config=True,
)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")
flags.DEFINE_string("data_dir", None, "Prepared tensorflow-datasets dir (default: $TFDS_DATA_DIR).")
flags.DEFINE_bool(
  "move_aside",
  False,
  "Start this workdir's run over: first move its contents to WORKDIR.discarded-<UTC time> "
  "beside it (nothing is deleted).",
)
# Multi-host (with --config.distributed=True): where process 0 listens, how many processes
# there are and which one this is. Left unset, the DLX_* environment variables are read,
# and then JAX's own detection (SLURM, Open MPI, Cloud TPU).
flags.DEFINE_string(
  "coordinator_address", None, "HOST:PORT of process 0 (env DLX_COORDINATOR_ADDRESS)."
)
flags.DEFINE_integer("num_processes", None, "Processes in the job (env DLX_NUM_PROCESSES).")
flags.DEFINE_integer("process_id", None, "This process's index, 0-based (env DLX_PROCESS_ID).")
flags.DEFINE_integer(
  "distributed_timeout", 300, "Seconds to wait for every process to join before failing."
)
flags.DEFINE_string(
  "compilation_cache",
  None,
  "Directory of XLA's persistent compilation cache (default: $JAX_COMPILATION_CACHE_DIR, "
  "else $DLX_CACHE_DIR/xla, i.e. ~/.cache/dlx/xla); 'off' compiles everything afresh.",
)


def _fail(message: str):
  sys.stderr.write(f"dlx: error: {message}\n")
  sys.exit(2)


_SIGINT_STATUS = 130  # 128 + SIGINT, the shell's status for a process that Ctrl-C ended


def _stop(message: str, status: int, *, at_once: bool = False):
  """A run stopped by a signal: one line, and 128 + the signal's number. `at_once` skips
  the interpreter's shutdown, whose threads (an orbax save a second Ctrl-C cut short)
  would print tracebacks; a Ctrl-C during the ordinary shutdown exits at once too."""
  sys.stderr.write(f"dlx: {message}\n")
  sys.stderr.flush()
  if at_once:
    sys.stdout.flush()
    os._exit(status)  # pylint: disable=protected-access
  signal.signal(signal.SIGINT, _exit_now)
  sys.exit(status)


def _exit_now(*_):
  os._exit(_SIGINT_STATUS)  # pylint: disable=protected-access


# How tensorstore (orbax's array writer) reports a failed system call in its ValueError.
_TENSORSTORE_ERRNO = re.compile(r"os_error_code='(\d+)'")


def _os_error_in(error):
  """The OSError behind `error` (itself, or one it was raised from), else None: orbax and
  TensorFlow wrap the disk's errors in their own, and tensorstore names only the errno."""
  seen = set()
  while error is not None and id(error) not in seen:
    if isinstance(error, OSError) and error.errno is not None:
      return error
    code = _TENSORSTORE_ERRNO.search(str(error))
    if code:
      return OSError(int(code.group(1)), os.strerror(int(code.group(1))))
    seen.add(id(error))
    error = error.__cause__ or error.__context__
  return None


def _os_error_message(error: OSError, workdir: str) -> str:
  """One line for a failed read or write: what, where, and what to do."""
  where = error.filename or workdir
  advice = {
    errno.ENOSPC: "free space (or pass another --workdir) and relaunch the same command; "
    "the last checkpoint is intact and the run resumes from it",
    errno.EROFS: "the file system is read-only: pass a writable --workdir",
    errno.EACCES: "no permission: pass a --workdir you can write to",
    errno.EEXIST: "--workdir must be a directory: pass another path",
    errno.ENOTDIR: "--workdir must be a directory: pass another path",
  }.get(error.errno, "check the path and the disk, then relaunch the same command")
  return f"{error.strerror or type(error).__name__}: {where}; {advice}"


def _experiment_names_to_paths(argv):
  """Lets --config name an experiment (--config=mlp_xor[:ARG]) as well as give its file."""
  from dlx import experiment as experiment_lib  # pylint: disable=g-import-not-at-top

  out = []
  for arg in argv:
    if arg.startswith("--config="):
      value = arg[len("--config=") :]
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
    _fail(
      f"unknown config field {field!r}: no --config.{field} in this experiment's "
      "config (see its get_config, or config.json in a workdir)"
    )
  except Exception as e:  # pylint: disable=broad-except
    # Errors from the config file itself (e.g. an exception in get_config).
    cause = _root_cause(e)
    if isinstance(cause, errors.UserError):
      _fail(str(cause))
    _fail(f"could not load --config: {type(cause).__name__}: {_one_line(e)}")
  if FLAGS.config is None:
    _fail("--config is required, e.g. --config=experiments/vision/lenet5_digits.py")
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


def _keep_record(record) -> bool:
  """Orbax logs every file it writes: keep the logs to dlx's own progress, validation
  and result lines (warnings still pass)."""
  # Standard library levels: 30 WARNING, 40 ERROR. tfds warns about data it then
  # reports missing; our own one-line error says what to do.
  if "tensorflow_datasets" in record.pathname:
    return record.levelno >= 40
  noisy = any(
    name in record.pathname for name in ("orbax", "jax/_src/xla_bridge")
  )  # jax: "no TPU backend"
  return record.levelno >= 30 or not noisy


def _on_console(record) -> bool:
  """Orbax's background save threads each log a failed write, and asyncio logs each of
  their futures whose error nobody read; the console keeps the main thread's report of
  it (the rest is in log.txt)."""
  if record.name == "asyncio":
    return False
  return not ("orbax" in record.pathname and record.threadName != "MainThread")


def _quiet_library_logs():
  handler = logging.get_absl_handler()
  for h in (handler, handler.python_handler):  # ABSLHandler delegates to python_handler
    h.addFilter(_keep_record)
    h.addFilter(_on_console)


class _ConsoleFormatter(std_logging.Formatter):
  """The message alone (progress lines stay short); warnings and errors say so."""

  def format(self, record):
    message = record.getMessage()
    if "orbax" in record.pathname:  # its errors carry tracebacks: those go to log.txt only
      message = f"orbax: {message.strip().splitlines()[0][:300]} (details in log.txt)"
    elif record.exc_info:
      message += "\n" + self.formatException(record.exc_info)
    if record.levelno >= std_logging.WARNING:
      message = f"{record.levelname.lower()}: {message}"
    return message


def _log_to_file(workdir: str, process_index: int):
  """absl's full format in the workdir's log file (the console has compact lines). A log
  line that cannot be written (a full disk) is dropped quietly: the error that matters
  comes from the run itself, as one line."""
  std_logging.raiseExceptions = False
  os.makedirs(workdir, exist_ok=True)
  name = "log.txt" if process_index == 0 else f"log_process{process_index}.txt"
  file_handler = std_logging.FileHandler(os.path.join(workdir, name))
  file_handler.setFormatter(logging.PythonFormatter())
  file_handler.setLevel(std_logging.INFO)
  file_handler.addFilter(_keep_record)
  std_logging.getLogger().addHandler(file_handler)
  _background_errors_to(file_handler)


def _background_errors_to(file_handler):
  """Errors that library threads print themselves (orbax's background save, tensorstore's
  callbacks into an event loop that a failed write closed) go to log.txt only: the run's
  own error, one line, says what went wrong. The main thread's errors are left alone."""

  def to_log(kind, value, traceback, where):
    file_handler.handle(
      std_logging.LogRecord(
        "dlx.background",
        std_logging.ERROR,
        __file__,
        0,
        f"in {where}: %s",
        (value,),
        (kind, value, traceback),
      )
    )

  main_excepthook = sys.excepthook

  def excepthook(kind, value, traceback):
    if threading.current_thread() is threading.main_thread():
      main_excepthook(kind, value, traceback)
    else:
      to_log(kind, value, traceback, threading.current_thread().name)

  sys.excepthook = excepthook
  threading.excepthook = lambda a: to_log(
    a.exc_type, a.exc_value, a.exc_traceback, getattr(a.thread, "name", "a thread")
  )
  sys.unraisablehook = lambda u: to_log(
    u.exc_type, u.exc_value, u.exc_traceback, u.err_msg or repr(u.object)
  )


def compilation_cache_dir(flag_value, environ=os.environ):
  """Where compiled programs are kept between runs, or None when the cache is off: a
  rerun (a sweep's next point, a resumed run, the same experiment with other flags that
  leave the compiled steps alike) skips XLA's compiler for every step it has compiled
  before, which is most of a short run's wall time on a CPU."""
  if flag_value:
    return None if flag_value.lower() == "off" else flag_value
  if environ.get("JAX_COMPILATION_CACHE_DIR"):
    return environ["JAX_COMPILATION_CACHE_DIR"]
  root = environ.get("DLX_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "dlx")
  return os.path.join(root, "xla")


def _enable_compilation_cache(directory):
  if directory is None:
    return
  import jax  # pylint: disable=g-import-not-at-top

  jax.config.update("jax_compilation_cache_dir", directory)
  # jax caches only compiles over 1 s by default; a small model's steps compile in less
  # and are still most of its start-up, so every compiled program is kept.
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


def main(argv):
  _quiet_library_logs()
  logging.get_absl_handler().setFormatter(_ConsoleFormatter())
  if len(argv) > 1:
    _fail(f"unexpected arguments {' '.join(argv[1:])!r}; flags look like --name=value")
  # Imported here so that flag errors are reported before the heavy imports.
  from dlx import experiment as experiment_lib  # pylint: disable=g-import-not-at-top
  from dlx import train  # pylint: disable=g-import-not-at-top
  from dlx.training import parallel  # pylint: disable=g-import-not-at-top
  from dlx.training import relaunch  # pylint: disable=g-import-not-at-top

  config = FLAGS.config
  _enable_compilation_cache(compilation_cache_dir(FLAGS.compilation_cache))
  # "experiments/NAME.py:ARG" passes ARG to get_config; the module is the file part.
  config_path = FLAGS["config"].config_filename.split(":")[0]
  try:
    experiment = experiment_lib.load(config_path)
    with config.unlocked():
      config.experiment = config.experiment or experiment.name
    parallel.initialize_distributed(
      config.distributed,
      coordinator_address=FLAGS.coordinator_address,
      num_processes=FLAGS.num_processes,
      process_id=FLAGS.process_id,
      timeout_s=FLAGS.distributed_timeout,
    )
    import jax  # pylint: disable=g-import-not-at-top

    if FLAGS.move_aside and jax.process_index() == 0:
      moved = relaunch.move_aside(FLAGS.workdir)
      if moved:
        logging.warning("--move_aside: the previous contents of %s are in %s", FLAGS.workdir, moved)
    _log_to_file(FLAGS.workdir, jax.process_index())
    results = train.train_and_evaluate(
      config, FLAGS.workdir, data_dir=FLAGS.data_dir, experiment=experiment
    )
  except errors.UserError as e:
    _fail(str(e))
  except Exception as e:  # pylint: disable=broad-except
    cause = _os_error_in(e)
    if cause is None:
      raise
    _fail(_os_error_message(cause, FLAGS.workdir))
  except errors.Preempted as e:  # SIGTERM or SIGINT: the step in flight is saved
    _stop(e.message(), e.exit_status)
  except KeyboardInterrupt:  # a second Ctrl-C, or one outside the training loop
    _stop(
      "interrupted; stopped at once, without saving the step in flight (saved checkpoints "
      "are kept); relaunch the same command to resume",
      _SIGINT_STATUS,
      at_once=True,
    )
  logging.info("results written to %s", os.path.join(FLAGS.workdir, "results.json"))
  print(f"test: {_format(results['test'])}")


def _format(metrics):
  return "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))


def run():
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
