"""Making models small (docs/curriculum.md#g1, #g2, #g3): what the distillation, pruning
and quantization experiments share.

  distillation   Hinton et al. (2015) on MNIST: a large teacher MLP, a small student
                 alone and distilled from the teacher (`--config.teacher=WORKDIR`)
  pruning        masks from dlx.ops.pruning kept by the optimizer while fine-tuning a
                 trained run (`--config.init_from=WORKDIR`); sparsity and FLOP reports
  quantization   post-training int8 of a trained run with dlx.ops.quantization
"""

import functools
import os

import jax
import numpy as np
import optax

from dlx import config as config_lib
from dlx import data
from dlx import errors
from dlx import losses
from dlx.data import core
from dlx.models import mlp
from dlx.ops import pruning
from dlx.ops import quantization
from dlx.tasks import classification
from dlx.tools import model_stats
from dlx.training import metric_writers
from dlx.training import optim
from dlx.training import warm_start
from dlx.viz import plots

PRUNING_OUTPUTS = ("sparsity_curve.png",)
# Hinton et al. (2015), MNIST, test errors out of 10,000.
HINTON_ERRORS = {"teacher": 67, "student": 146, "distilled": 74}


def mnist_config(*, epochs=30.0, **model):
  """MNIST classification by an MLP (`model`: dlx.models.mlp.MLP's keyword arguments):
  images scaled to [0, 1], Adam with a cosine schedule, best checkpoint by accuracy."""
  config = config_lib.base_config()
  config.model = config_lib.model_config(num_outputs=10, activation="relu", **model)
  config.batch_size = 128
  config.num_epochs = epochs
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = "cosine"
  config.best_metric = "accuracy"
  config.best_mode = "max"
  return config


def smoke_mlp(config, **overrides):
  """The `:smoke` variant of an MNIST MLP experiment: hidden layers 16 wide."""
  hidden = (16,) * len(config.model.hidden)
  return config_lib.smoke(config, **{"model.hidden": hidden, **overrides})


def mlp_model(config):
  """The experiment's MLP (get_model of the MNIST MLP experiments)."""
  return mlp.MLP(**config_lib.model_kwargs(config))


def mnist_dataset(config, data_dir):
  del config
  return data.load("mnist", data_dir=data_dir).map(data.transforms.scale_images)


def test_errors(results) -> int:
  """Misclassified test images (MNIST's test split has 10,000)."""
  return round((1.0 - results["test"]["accuracy"]) * 10_000)


def distillation(config):
  """Per-example loss of a student reading the teacher's logits (batch
  ['teacher_outputs']): alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE,
  with accuracy, the soft and hard terms apart, and the teacher's own accuracy. A smoke
  run without a teacher distills from a uniform one (zero logits)."""
  temperature, alpha = config.temperature, config.alpha

  def loss(logits, batch):
    teacher = batch.get("teacher_outputs")
    if teacher is None:
      if not config.smoke:
        raise errors.ConfigError("distillation needs --config.teacher=WORKDIR")
      teacher = 0.0 * logits
    labels = batch["targets"]
    return {
      "loss": losses.distillation_loss(logits, teacher, labels, temperature, alpha),
      "soft_loss": losses.distillation_loss(logits, teacher, labels, temperature, 1.0),
      "hard_loss": losses.softmax_cross_entropy(logits, labels),
      "accuracy": classification.accuracy(logits, labels),
      "teacher_accuracy": classification.accuracy(teacher, labels),
    }

  return loss


# ------------------------------------------------------------------ pruning


def pruning_config(config, *, sparsity: float, fraction_of_training: float = 0.6):
  """Adds config.pruning: unstructured magnitude pruning (kind 'magnitude', scope
  global or layerwise) or structured pruning of units (kind 'units', by L1/L2 norm),
  raised to `sparsity` along a cubic schedule over the first `fraction_of_training` of
  the run, every `every` steps, then fine-tuned with the masks fixed."""
  config.pruning = config_lib.model_config(
    kind="magnitude",
    scope="global",
    sparsity=sparsity,
    norm="l2",
    exclude=(),  # layers the structured kind leaves whole (e.g. the classifier)
    ramp_fraction=fraction_of_training,
    every=100,
    one_shot_levels=(0.5, 0.7, 0.8, 0.9, 0.95, 0.98),
  )
  return config


def make_masks_fn(pruning_config_):
  """The config's mask rule: params, sparsity -> masks."""
  kind = pruning_config_.kind
  if kind == "magnitude":
    return functools.partial(pruning.magnitude_masks, scope=pruning_config_.scope)
  if kind == "units":
    return functools.partial(
      pruning.unit_masks, norm=pruning_config_.norm, exclude=tuple(pruning_config_.exclude)
    )
  raise errors.ConfigError(f"--config.pruning.kind={kind!r}: choose magnitude or units")


def pruning_optimizer(config, total_steps):
  """The config's optimizer followed by the pruning transformation (make_optimizer)."""
  p = config.pruning
  end = max(1, int(p.ramp_fraction * total_steps))
  schedule = pruning.polynomial_sparsity(p.sparsity, begin=0, end=end)
  return optax.chain(
    optim.create_optimizer(config.optimizer, total_steps),
    pruning.pruning(make_masks_fn(p), schedule, every=p.every, until=end),
  )


def pruning_evaluate(ctx, split):
  """Set-level: the sparsity of the prunable layers, beside every evaluation."""
  del split
  return {"sparsity": pruning.sparsity_report(ctx.variables["params"])["sparsity"]}


def _layer_order(model, sample):
  rows = model_stats.layer_table(model, sample, train=False)
  return rows, [r["path"] for r in rows if r["type"] in ("Conv", "Dense")]


def structured_flops(model, variables, sample) -> dict:
  """Forward FLOPs of the dense model (dlx.tools.model_stats) and of the model with its dropped
  units removed: each conv / dense layer's FLOPs scale by its alive inputs times its
  kept outputs (a sequential model's layers, in call order)."""
  rows, order = _layer_order(model, sample)
  kept = pruning.kept_units(variables["params"], order)
  dense = sum(r["flops"] for r in rows)
  pruned = sum(
    r["flops"] * (kept[r["path"]][0] * kept[r["path"]][1] if r["path"] in kept else 1.0)
    for r in rows
  )
  return {
    "dense_flops": int(dense),
    "pruned_flops": int(round(pruned)),
    "flops_reduction": dense / max(pruned, 1.0),
    "kept_units": {layer: kept[layer][1] for layer in order},
  }


def test_accuracy(ctx, variables, apply=None) -> float:
  """Accuracy on the whole test split of the run's model with `variables`, or of
  `apply(variables, inputs) -> logits` (a jitted function) when given."""
  data, size = ctx.dataset.test, ctx.config.eval_batch_size
  correct = 0
  for start in range(0, len(data["targets"]), size):
    inputs = data["inputs"][start : start + size]
    logits = (apply or ctx.predict)(variables, inputs=inputs)
    correct += int(
      np.sum(np.argmax(np.asarray(logits), -1) == data["targets"][start : start + size])
    )
  return correct / len(data["targets"])


def _fine_tune_trajectory(workdir):
  """(sparsity, validation accuracy) at each validation of this run (metrics.jsonl)."""
  rows = metric_writers.read_metrics(workdir, "validation")
  return [(r["sparsity"], r["accuracy"]) for r in rows]


def pruning_report(ctx):
  """Sparsity per layer and in total; test accuracy of the dense run it started from
  and of the pruned model; the one-shot trade-off (the dense run pruned to each level,
  no fine-tuning) beside this run's fine-tuning path, as sparsity_curve.png; with
  structured pruning, the FLOPs the dropped units save."""
  config, params = ctx.config, ctx.variables["params"]
  model_state = {k: v for k, v in ctx.variables.items() if k != "params"}
  if config.init_from:
    source, _ = warm_start.restore_state(config.init_from, "init_from")
    dense = {"params": source["params"], **source.get("model_state", {})}
  else:  # a smoke run: no dense run to compare with, so its own weights stand in
    dense = ctx.variables
  report = pruning.sparsity_report(params)
  report["test_accuracy"] = test_accuracy(ctx, ctx.variables)
  report["dense_test_accuracy"] = test_accuracy(ctx, dense)
  report["accuracy_drop"] = report["dense_test_accuracy"] - report["test_accuracy"]
  make_masks = make_masks_fn(config.pruning)
  one_shot = []
  for level in config.pruning.one_shot_levels:
    pruned = pruning.apply_masks(dense["params"], make_masks(dense["params"], level))
    accuracy = test_accuracy(ctx, {**dense, "params": pruned})
    one_shot.append({"sparsity": float(level), "test_accuracy": accuracy})
  report["one_shot"] = one_shot
  trajectory = _fine_tune_trajectory(ctx.workdir)
  plots.plot_tradeoff(
    {
      "one-shot (no fine-tuning)": [(p["sparsity"], 1 - p["test_accuracy"]) for p in one_shot],
      "pruned while fine-tuning (validation)": [(s, 1 - a) for s, a in trajectory],
      "final (test)": [(report["sparsity"], 1 - report["test_accuracy"])],
    },
    os.path.join(ctx.workdir, PRUNING_OUTPUTS[0]),
    xlabel="sparsity of the prunable layers",
    ylabel="error",
    title=f"{config.experiment}: dense test error {1 - report['dense_test_accuracy']:.2%}",
  )
  report["plot"] = PRUNING_OUTPUTS[0]
  if config.pruning.kind == "units":
    sample = np.asarray(ctx.dataset.test["inputs"][:1])
    report.update(structured_flops(ctx.model, {"params": params, **model_state}, sample))
  return report


# ------------------------------------------------------------------ quantization

QUANTIZATION_SCHEMES = {  # report name: (per_channel, calibration method)
  "int8_per_tensor": (False, "minmax"),
  "int8_per_channel": (True, "minmax"),
  "int8_per_channel_percentile": (True, "percentile"),
}


def quantization_config(config):
  """An evaluation-only run (no training steps) of a trained run's model, plus
  config.quantization: calibration examples (the first of the train split) and the
  percentile of the percentile calibration. A smoke run has no trained run to read, so
  it keeps its few training steps from scratch."""
  if not config.smoke:
    config.num_train_steps = 0
  config.quantization = config_lib.model_config(calibration_examples=500, percentile=99.99)
  return config


def quantization_report(ctx):
  """Float vs int8 test accuracy for each scheme (per-tensor or per-channel weight
  scales, min/max or percentile activation calibration), and the model's size in bytes
  as float32 and with int8 kernels (per-channel scales)."""
  q_config = ctx.config.quantization
  # core.take also reads the first rows of a train split streamed from disk.
  first = core.take(ctx.dataset.train, slice(0, q_config.calibration_examples))
  calibration = np.asarray(first["inputs"])
  report = {"float_accuracy": test_accuracy(ctx, ctx.variables)}
  for name, (per_channel, method) in QUANTIZATION_SCHEMES.items():
    quantized = quantization.quantize_model(
      ctx.model,
      ctx.variables,
      calibration,
      per_channel=per_channel,
      method=method,
      percentile=q_config.percentile,
    )
    apply = jax.jit(functools.partial(quantization.int8_apply, ctx.model, quantized=quantized))
    report[f"{name}_accuracy"] = test_accuracy(ctx, ctx.variables, apply)
    report[f"{name}_drop"] = report["float_accuracy"] - report[f"{name}_accuracy"]
    if name == "int8_per_channel":
      report["int8_bytes"] = quantization.int8_bytes(ctx.variables, quantized)
      report["quantized_layers"] = sorted(quantized.weights)
  report["float_bytes"] = quantization.float_bytes(ctx.variables)
  report["size_ratio"] = report["float_bytes"] / report["int8_bytes"]
  report["calibration_examples"] = len(calibration)
  return report
