"""Pruning (docs/curriculum.md#g2): masks from dlx.ops.pruning kept by the optimizer
while fine-tuning a trained run (`--config.init_from=WORKDIR`); sparsity and FLOP
reports (experiments/compression/prune_lenet300_mnist.py, prune_lenet5_mnist.py).

  pruning_config  adds config.pruning: kind, scope, target sparsity and its schedule
  make_optimizer  the config's optimizer chained with the pruning transformation
  evaluate        the sparsity of the prunable layers, beside every evaluation
  final_report    sparsity per layer, test accuracy dense vs pruned, the one-shot
                  trade-off beside the fine-tuning path (sparsity_curve.png), and the
                  FLOPs that structured pruning saves
"""

import functools
import os

import numpy as np
import optax

from dlx import config as config_lib
from dlx import errors
from dlx.ops import pruning as pruning_ops
from dlx.tasks.compression import common
from dlx.tools import model_stats
from dlx.training import metric_writers
from dlx.training import optim
from dlx.training import warm_start
from dlx.viz import plots

OUTPUTS = ("sparsity_curve.png",)


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
    return functools.partial(pruning_ops.magnitude_masks, scope=pruning_config_.scope)
  if kind == "units":
    return functools.partial(
      pruning_ops.unit_masks, norm=pruning_config_.norm, exclude=tuple(pruning_config_.exclude)
    )
  raise errors.ConfigError(f"--config.pruning.kind={kind!r}: choose magnitude or units")


def make_optimizer(config, total_steps):
  """The config's optimizer followed by the pruning transformation."""
  p = config.pruning
  end = max(1, int(p.ramp_fraction * total_steps))
  schedule = pruning_ops.polynomial_sparsity(p.sparsity, begin=0, end=end)
  return optax.chain(
    optim.create_optimizer(config.optimizer, total_steps),
    pruning_ops.pruning(make_masks_fn(p), schedule, every=p.every, until=end),
  )


def evaluate(ctx, split):
  """Set-level: the sparsity of the prunable layers, beside every evaluation."""
  del split
  return {"sparsity": pruning_ops.sparsity_report(ctx.variables["params"])["sparsity"]}


def _layer_order(model, sample):
  rows = model_stats.layer_table(model, sample, train=False)
  return rows, [r["path"] for r in rows if r["type"] in ("Conv", "Dense")]


def structured_flops(model, variables, sample) -> dict:
  """Forward FLOPs of the dense model (dlx.tools.model_stats) and of the model with its dropped
  units removed: each conv / dense layer's FLOPs scale by its alive inputs times its
  kept outputs (a sequential model's layers, in call order)."""
  rows, order = _layer_order(model, sample)
  kept = pruning_ops.kept_units(variables["params"], order)
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


def _fine_tune_trajectory(workdir):
  """(sparsity, validation accuracy) at each validation of this run (metrics.jsonl)."""
  rows = metric_writers.read_metrics(workdir, "validation")
  return [(r["sparsity"], r["accuracy"]) for r in rows]


def final_report(ctx):
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
  report = pruning_ops.sparsity_report(params)
  report["test_accuracy"] = common.test_accuracy(ctx, ctx.variables)
  report["dense_test_accuracy"] = common.test_accuracy(ctx, dense)
  report["accuracy_drop"] = report["dense_test_accuracy"] - report["test_accuracy"]
  make_masks = make_masks_fn(config.pruning)
  one_shot = []
  for level in config.pruning.one_shot_levels:
    pruned = pruning_ops.apply_masks(dense["params"], make_masks(dense["params"], level))
    accuracy = common.test_accuracy(ctx, {**dense, "params": pruned})
    one_shot.append({"sparsity": float(level), "test_accuracy": accuracy})
  report["one_shot"] = one_shot
  trajectory = _fine_tune_trajectory(ctx.workdir)
  plots.plot_tradeoff(
    {
      "one-shot (no fine-tuning)": [(p["sparsity"], 1 - p["test_accuracy"]) for p in one_shot],
      "pruned while fine-tuning (validation)": [(s, 1 - a) for s, a in trajectory],
      "final (test)": [(report["sparsity"], 1 - report["test_accuracy"])],
    },
    os.path.join(ctx.workdir, OUTPUTS[0]),
    xlabel="sparsity of the prunable layers",
    ylabel="error",
    title=f"{config.experiment}: dense test error {1 - report['dense_test_accuracy']:.2%}",
  )
  report["plot"] = OUTPUTS[0]
  if config.pruning.kind == "units":
    sample = np.asarray(ctx.dataset.test["inputs"][:1])
    report.update(structured_flops(ctx.model, {"params": params, **model_state}, sample))
  return report
