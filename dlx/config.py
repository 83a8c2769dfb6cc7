"""The fields every experiment config has. An experiment's `get_config()` starts from
`base_config()` and adds or changes fields; every field can then be overridden on the
command line with `--config.FIELD=VALUE` (absl can only override fields that exist)."""

import ml_collections

from dlx import errors
from dlx import optim

PARALLEL_MODES = ("mesh", "pmap")


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.experiment = ""             # the experiment's name (file stem in experiments/)
  c.seed = 0                    # fixes parameters, data order, dropout and sampling
  c.batch_size = 128            # global batch, split over all devices
  c.eval_batch_size = 256
  # Duration: num_train_steps if > 0, else num_epochs passes over the train split.
  c.num_train_steps = -1
  c.num_epochs = 10.0
  c.log_every_steps = 100
  c.eval_every_steps = 0        # validation every N steps; 0 = once per epoch
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 3
  # The validation metric that picks the best checkpoint and drives early stopping.
  c.best_metric = "loss"
  c.best_mode = "min"           # min | max
  c.early_stopping_patience = 0  # evaluations without improvement before stopping; 0 = off
  c.eval_examples = 0           # validation/test examples per evaluation; 0 = the whole split
  c.train_eval_examples = 10000  # train examples in the final evaluation (generalisation gap)
  c.sample_every_steps = 0      # experiments with a `visualize` hook: PNG grids every N steps (0 = at the end)
  c.parallel = "mesh"           # mesh: jit over a device mesh, batch on the 'data' axis; pmap
  c.distributed = False         # multi-host: call jax.distributed.initialize() first
  c.optimizer = optim.default_config()
  return c


def validate(config, num_devices: int):
  """Raises ConfigError naming the field when a value cannot work."""
  def fail(field, message):
    raise errors.ConfigError(f"--config.{field}={config.get(field)!r}: {message}")

  if config.parallel not in PARALLEL_MODES:
    fail("parallel", f"choose one of {', '.join(PARALLEL_MODES)}")
  for field in ("batch_size", "eval_batch_size"):
    value = config[field]
    if value <= 0:
      fail(field, "must be positive")
    if value % num_devices:
      fail(field, f"must be divisible by the number of devices ({num_devices})")
  if config.num_train_steps <= 0 and config.num_epochs <= 0:
    fail("num_epochs", "set num_epochs > 0 or num_train_steps > 0")
  for field in ("log_every_steps", "checkpoint_every_steps", "keep_checkpoints"):
    if config[field] <= 0:
      fail(field, "must be positive")
  for field in ("eval_examples", "train_eval_examples"):
    if config[field] < 0:
      fail(field, "must be >= 0 (0 = the whole split)")
  if config.eval_every_steps < 0:
    fail("eval_every_steps", "must be >= 0 (0 = once per epoch)")
  if config.best_mode not in ("min", "max"):
    fail("best_mode", "choose min or max")
  if config.early_stopping_patience < 0:
    fail("early_stopping_patience", "must be >= 0 (0 = off)")
