"""The fields every experiment config has. An experiment's `get_config()` starts from
`base_config()` and adds or changes fields; every field can then be overridden on the
command line with `--config.FIELD=VALUE` (absl can only override fields that exist)."""

import json

import ml_collections

from dlx import errors
from dlx.training import optim
from dlx.training import precision
from dlx.training import sharding

PARALLEL_MODES = ("mesh", "pmap")
INPUT_PIPELINES = ("memory", "grain")
# Where metrics go besides metrics.jsonl, which is always written (`jsonl` may be named).
LOGGERS = ("tensorboard", "jsonl", "wandb", "mlflow")
CPU_KERNELS = ("auto", "onednn", "xla")  # dlx/kernels/route.py
SMOKE = "smoke"  # every experiment's `NAME:smoke`: a few steps on tiny data


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.experiment = ""  # the experiment's name (file stem in experiments/)
  c.seed = 0  # fixes parameters, data order, dropout and sampling
  c.batch_size = 128  # global batch, split over all devices
  c.eval_batch_size = 256
  # Duration: num_train_steps if > 0, else num_epochs passes over the train split;
  # num_train_steps = 0 trains nothing and only evaluates (e.g. a run from `init_from`).
  c.num_train_steps = -1
  c.num_epochs = 10.0
  c.log_every_steps = 100
  # Comma-separated: tensorboard, wandb, mlflow (docs/tracking.md); metrics.jsonl is
  # always written (resume, reports, sweeps and plots read it).
  c.loggers = "tensorboard"
  c.eval_every_steps = 0  # validation every N steps; 0 = once per epoch
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 3
  # Write checkpoints on a background thread (orbax async): training goes on while the
  # host copy of the state is written (benchmarks/checkpoint_stall.py). A failed write
  # (a full disk) surfaces at the next save or at the end, as one line.
  c.checkpoint_async = True
  # The validation metric that picks the best checkpoint and drives early stopping.
  c.best_metric = "loss"
  c.best_mode = "min"  # min | max
  c.early_stopping_patience = 0  # evaluations without improvement before stopping; 0 = off
  c.eval_examples = 0  # validation/test examples per evaluation; 0 = the whole split
  c.train_eval_examples = 10000  # train examples in the final evaluation (generalisation gap)
  c.sample_every_steps = 0  # a `visualize` hook: PNG grids every N steps (0 = at the end)
  c.parallel = "mesh"  # mesh: jit over a device mesh, batch on the 'data' axis; pmap
  # The mesh's axes (dlx/training/sharding.py, docs/scaling.md): data splits the batch,
  # fsdp the batch and every parameter, tensor the attention heads and MLP units;
  # -1 takes the devices the others leave. The default is data parallelism.
  c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
  c.sharding_rules = ""  # 'REGEX=SPEC;...' by state path, e.g. '.*embedding=replicated'
  c.fsdp_min_elements = sharding.FSDP_MIN_ELEMENTS  # smaller leaves stay whole under FSDP
  # Train batches (the same ones either way, dlx/data/grain_pipeline.py): memory = NumPy
  # arrays sliced on a thread; grain = grain's DataLoader, which streams a tfds dataset
  # prepared as ArrayRecord (python -m dlx.data.convert) from disk instead of loading it.
  c.input_pipeline = "memory"
  c.grain_workers = 0  # grain: processes reading and decoding batches (0 = this process)
  # Compute dtype (dlx/training/precision.py): bfloat16 runs matmuls and convolutions in bf16;
  # parameters, optimizer state, logits and losses stay float32.
  c.dtype = "float32"
  c.distributed = False  # multi-host: call jax.distributed.initialize() first
  # Runs that start from runs (dlx/training/warm_start.py): WORKDIR, WORKDIR:best or WORKDIR:latest.
  c.init_from = ""  # start from that run's parameters and model state
  c.init_from_keys = ""  # comma-separated sub-trees to take (e.g. "backbone"); "" = all
  c.teacher = ""  # a frozen model the loss and step can read
  c.smoke = False  # set by `:smoke`; experiments that need another run may do without
  c.tfds_mock_examples = 0  # > 0: tfds datasets become this many random examples (smoke)
  # XLA backend optimisation level 0: compiles several times faster, runs slower and
  # rounds differently (smoke runs, debugging); mesh mode only.
  c.fast_compile = False
  # Convolutions on the CPU (docs/cpu_kernels.md): onednn = dlx's oneDNN extension, xla =
  # XLA's; auto = oneDNN when the extension is built, the backend is the CPU and the run
  # uses one device. results.json's `cpu_kernels` says which ran.
  c.cpu_kernels = "auto"
  c.optimizer = optim.default_config()
  return c


def parse_arg(arg, choices=()) -> frozenset[str]:
  """The words of get_config's argument (`NAME:a,b`), each one of `choices` or 'smoke';
  anything else is a ConfigError listing what the experiment accepts."""
  words = [w.strip() for w in str(arg).split(",")] if arg else []
  valid = (*choices, SMOKE)
  for word in words:
    if word not in valid:
      raise errors.ConfigError(
        f"unknown config argument {word!r}; this experiment takes "
        f"{' or '.join(':' + v for v in valid)} (comma-separated), or nothing"
      )
  return frozenset(words)


def compiler_options(config_or_fast_compile) -> dict | None:
  """XLA options for every function a run compiles: optimisation level 0 with
  `fast_compile` (a config with that field, or the flag itself), else the defaults.
  Tasks call it too, so their own compiled helpers match the run's train step."""
  fast = config_or_fast_compile
  if not isinstance(fast, bool):
    fast = bool(fast.get("fast_compile", False))
  return {"xla_backend_optimization_level": 0} if fast else None


# The same cheaper code generation for a whole process, as XLA_FLAGS (read once, when the
# backend starts): benchmarks' --tiny runs and the fast test suite use it.
FAST_COMPILE_XLA_FLAGS = (
  "--xla_backend_optimization_level=0",
  "--xla_llvm_disable_expensive_passes=true",
)


def with_fast_compile_flags(xla_flags: str) -> str:
  """`xla_flags` plus FAST_COMPILE_XLA_FLAGS, except those it already sets."""
  extra = [f for f in FAST_COMPILE_XLA_FLAGS if f.split("=")[0] not in xla_flags]
  return " ".join([xla_flags, *extra]).strip()


def smoke(config, **overrides):
  """The `:smoke` variant: 3 steps (logging, validating and checkpointing at step 2
  and at the end) on small batches, tfds data replaced by 64 random examples, then the
  experiment's own `overrides` (dotted keys reach nested fields: model.features=8)."""
  config.smoke = True
  config.num_train_steps = 3
  config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 2
  config.batch_size = 8
  config.eval_batch_size = 16
  config.eval_examples = config.train_eval_examples = 32
  config.sample_every_steps = 0
  config.tfds_mock_examples = 64
  config.fast_compile = True  # compile time is most of a smoke run
  # A warmup longer than the run leaves a decaying schedule nothing to decay over.
  config.optimizer.warmup_steps = min(config.optimizer.warmup_steps, 1)
  return override(config, **overrides)


def override(config, **fields):
  """Sets fields by dotted name (`override(config, **{"model.features": 8})`); a name
  the config does not have is an error, as it is on the command line."""
  for name, value in fields.items():
    *parents, leaf = name.split(".")
    target = config
    for parent in parents:
      target = target[parent]
    if leaf not in target:
      raise errors.ConfigError(f"no config field {name!r} to override")
    target[leaf] = value
  return config


def model_config(**kwargs) -> ml_collections.ConfigDict:
  """config.model: the model's keyword arguments (`--config.model.NAME=V` overrides)."""
  return ml_collections.ConfigDict(kwargs)


def model_kwargs(config) -> dict:
  """config.model as keyword arguments for the model's constructor; lists (from JSON or
  the command line) become tuples, which Flax modules need to stay hashable."""

  def freeze(value):
    return tuple(freeze(v) for v in value) if isinstance(value, (list, tuple)) else value

  return {k: freeze(v) for k, v in config.model.to_dict().items()}


def from_json(text: str):
  """A run's config.json back as a ConfigDict (lists as tuples, as get_config made them)."""

  def freeze(value):
    if isinstance(value, dict):
      return {k: freeze(v) for k, v in value.items()}
    return tuple(freeze(v) for v in value) if isinstance(value, list) else value

  return ml_collections.ConfigDict(freeze(json.loads(text)))


def loggers(config) -> tuple[str, ...]:
  """config.loggers as names, each once, in order; an unknown one is a ConfigError that
  lists the valid names."""
  value = config.get("loggers", "tensorboard")
  names = [w.strip() for w in str(value).split(",") if w.strip()]
  for name in names:
    if name not in LOGGERS:
      raise errors.ConfigError(
        f"--config.loggers={value!r}: unknown logger {name!r}; choose from "
        f"{', '.join(LOGGERS)} (comma-separated)"
      )
  return tuple(dict.fromkeys(names))


def validate(config, num_devices: int):
  """Raises ConfigError naming the field when a value cannot work."""

  def fail(field, message):
    raise errors.ConfigError(f"--config.{field}={config.get(field)!r}: {message}")

  if config.parallel not in PARALLEL_MODES:
    fail("parallel", f"choose one of {', '.join(PARALLEL_MODES)}")
  if config.get("input_pipeline", "memory") not in INPUT_PIPELINES:
    fail("input_pipeline", f"choose one of {', '.join(INPUT_PIPELINES)}")
  loggers(config)
  if config.get("cpu_kernels", "auto") not in CPU_KERNELS:
    fail("cpu_kernels", f"choose one of {', '.join(CPU_KERNELS)}")
  if config.get("grain_workers", 0) < 0:
    fail("grain_workers", "must be >= 0 (0 = read in the training process)")
  if config.get("dtype", "float32") not in precision.COMPUTE_DTYPES:
    fail("dtype", f"choose one of {', '.join(precision.COMPUTE_DTYPES)}")
  mu_dtype = config.get("optimizer", {}).get("mu_dtype", "")
  if mu_dtype not in optim.MU_DTYPES:
    raise errors.ConfigError(
      f"--config.optimizer.mu_dtype={mu_dtype!r}: choose one of "
      f"{', '.join(repr(d) for d in optim.MU_DTYPES)} ('' = the parameters' float32)"
    )
  if config.fast_compile and config.parallel == "pmap":
    fail(
      "fast_compile", "works with --config.parallel=mesh only (jax.pmap takes no compiler options)"
    )
  batch_ways = num_devices  # the devices the batch is split over
  if config.parallel == "mesh":
    sizes = sharding.mesh_sizes(config, num_devices)
    sharding.parse_rules(config.get("sharding_rules", ""))
    batch_ways = sizes["data"] * sizes["fsdp"]
  elif config.get("mesh") and (config.mesh.fsdp != 1 or config.mesh.tensor != 1):
    fail("parallel", "pmap replicates the parameters; --config.mesh.fsdp/tensor need mesh")
  for field in ("batch_size", "eval_batch_size"):
    value = config[field]
    if value <= 0:
      fail(field, "must be positive")
    if value % batch_ways:
      if batch_ways == num_devices:
        fail(field, f"must be divisible by the number of devices ({num_devices})")
      fail(field, f"must be divisible by mesh.data x mesh.fsdp ({batch_ways} devices)")
  if config.num_train_steps < 0 and config.num_epochs <= 0:
    fail("num_epochs", "set num_epochs > 0 or num_train_steps >= 0 (0 = only evaluate)")
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
