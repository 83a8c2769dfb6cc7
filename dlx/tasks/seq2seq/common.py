"""What the encoder-decoder experiments share (docs/curriculum.md#f12, #f13): the masked
per-example loss, the config and datasets (in the model's input layout), exact-match
evaluation and the attention report that `recurrent` and `transformer` plot their own
attention in.

Teacher-forced exact match equals greedy-decoding exact match: if every teacher-forced
argmax equals the target (EOS included), greedy decoding feeds itself exactly the target
prefix at every step and so emits the target; if some argmax is wrong, greedy decoding
emits that wrong token at the first such step. The validation `sequence_accuracy` is
therefore what autoregressive decoding scores.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from dlx import config as config_lib
from dlx import losses
from dlx.data import core
from dlx.data import pipeline
from dlx.data import sequences
from dlx.viz import plots

OUTPUTS = ("attention.png",)


def sequence_loss(logits, batch):
  """Masked (docs/curriculum.md#b13) cross-entropy of an encoder-decoder, per example;
  token accuracy over real target tokens; sequence_accuracy = 1 when every real token
  (and EOS) is right."""
  targets, mask = batch["targets"], batch["target_mask"]
  correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  tokens = jnp.maximum(jnp.sum(mask, -1), 1.0)
  return {
    "loss": losses.sequence_cross_entropy(logits, targets, mask),
    "token_accuracy": jnp.sum(correct * mask, -1) / tokens,
    "sequence_accuracy": jnp.all((correct == 1) | (mask == 0), -1).astype(jnp.float32),
  }


def to_model_inputs(split: core.Split) -> core.Split:
  """dlx.data.sequences' flat arrays -> {'inputs': {'source', 'target_in'}, 'targets',
  'target_mask'}: the model reads the inputs dict, the loss the targets and mask."""
  return {
    "inputs": {"source": split["source"], "target_in": split["target_in"]},
    "targets": split["targets"],
    "target_mask": split["target_mask"],
  }


def as_model_dataset(dataset: core.Dataset) -> core.Dataset:
  return dataset.map(to_model_inputs)


def per_example(model, variables, split: core.Split, batch_size: int = 500) -> dict:
  """`sequence_loss`'s values for every example of a (model-input) split, as NumPy
  arrays (`pipeline.apply_in_chunks`: one compiled batch shape, padding dropped)."""

  @jax.jit  # the loss too: op by op, each of its operations compiles on its own
  def values(variables, source, target_in, targets, target_mask):
    logits = model.apply(variables, {"source": source, "target_in": target_in}, train=False)
    return sequence_loss(logits, {"targets": targets, "target_mask": target_mask})

  inputs = split["inputs"]
  return pipeline.apply_in_chunks(
    values,
    variables,
    inputs["source"],
    inputs["target_in"],
    split["targets"],
    split["target_mask"],
    batch_size=batch_size,
  )


def exact_match(model, variables, split: core.Split, batch_size: int = 500) -> dict:
  """Token and sequence accuracy of teacher-forced predictions over a (model-input)
  split: equal to greedy decoding's exact match (see the module docstring)."""
  return _means(per_example(model, variables, split, batch_size))


def accuracy_by_length(model, variables, split: core.Split, batch_size: int = 500) -> dict:
  """{length: sequence accuracy} over the examples of each target length."""
  return _by_length(split, per_example(model, variables, split, batch_size))


def _means(values):
  return {key: float(np.mean(value)) for key, value in values.items()}


def _by_length(split, values):
  lengths = (split["target_mask"].sum(1) - 1).astype(int)
  correct = values["sequence_accuracy"]
  return {int(n): float(np.mean(correct[lengths == n])) for n in np.unique(lengths)}


def seq2seq_config(task: str):
  """Fields every encoder-decoder experiment has; `task` is reverse, sort, copy or
  reorder (dlx/data/sequences.py)."""
  config = config_lib.base_config()
  config.task = task
  config.num_train = 20_000
  config.num_symbols = 10  # synthetic tasks: symbols per position
  config.min_length = 1
  config.max_length = 10  # the training lengths; test sequences have these too
  config.longer_lengths = (11, 20)  # reported (no bar): accuracy on longer sequences
  config.max_vocab = 0  # reorder: word vocabulary cap (0 = every training word)
  config.max_words = 8  # reorder: longest sentence, in words
  config.batch_size = 64
  config.eval_batch_size = 500
  config.best_metric = "sequence_accuracy"
  config.best_mode = "max"
  config.train_eval_examples = 2000
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_steps = 200
  config.optimizer.grad_clip_norm = 1.0
  return config


def _task_dataset(config, test_lengths=None):
  if config.task == "reorder":
    return sequences.reorder_task(
      max_words=config.max_words, max_vocab=config.max_vocab or None, seed=config.seed
    )
  make = {
    "copy": sequences.copy_task,
    "reverse": sequences.reverse_task,
    "sort": sequences.sort_task,
  }[config.task]
  return make(
    num_train=config.num_train,
    min_length=config.min_length,
    max_length=config.max_length,
    num_symbols=config.num_symbols,
    seed=config.seed,
    test_lengths=test_lengths,
  )


def seq2seq_dataset(config, data_dir=None):
  del data_dir  # synthetic, or built from the packaged plays
  dataset = _task_dataset(config)
  if dataset.info["vocab_size"] != config.vocab_size:
    raise ValueError(
      f"the {config.task} task has {dataset.info['vocab_size']} tokens but "
      f"--config.vocab_size={config.vocab_size}"
    )
  return as_model_dataset(dataset)


def token_labels(ids, info) -> list[str]:
  """Readable labels for token ids: symbols as numbers, words from the vocabulary."""
  special = {sequences.PAD_ID: "<pad>", sequences.BOS_ID: "<bos>", sequences.EOS_ID: "<eos>"}
  vocab = info.get("vocab")
  labels = []
  for i in ids:
    i = int(i)
    if i in special:
      labels.append(special[i])
    elif vocab is not None:
      labels.append(vocab[i])
    else:
      labels.append(str(i - sequences.FIRST_SYMBOL_ID))
  return labels


def seq2seq_report(ctx, attention_fn) -> dict:
  """Exact match on the test split, by length; on longer sequences (synthetic tasks);
  an attention map (attention.png) of the first test example.

  attention_fn(model, variables, inputs) -> (B, T, S) weights to plot."""
  model, variables, dataset, config = ctx.model, ctx.variables, ctx.dataset, ctx.config
  test = per_example(model, variables, dataset.test)
  report = {"test": _means(test), "test_by_length": _by_length(dataset.test, test)}
  if config.task != "reorder" and config.longer_lengths:
    longer = as_model_dataset(_task_dataset(config, tuple(config.longer_lengths)))
    report["longer_by_length"] = accuracy_by_length(model, variables, longer.test)
  example = core.take(dataset.test, slice(0, 1))
  # Jitted: the model run op by op compiles each operation separately (seconds on a CPU).
  attention = jax.jit(lambda variables, inputs: attention_fn(model, variables, inputs))
  weights = np.asarray(attention(variables, example["inputs"]))[0]
  source = example["inputs"]["source"][0]
  target_length = int(example["target_mask"][0].sum())
  source_length = int((source != 0).sum())
  info = dataset.info
  plots.plot_attention(
    weights[:target_length, :source_length],
    token_labels(source[:source_length], info),
    token_labels(example["targets"][0][:target_length], info),
    os.path.join(ctx.workdir, OUTPUTS[0]),
    title=f"{config.experiment}: first test example",
  )
  report["attention_plot"] = OUTPUTS[0]
  return report


def smoke(config):
  """`:smoke`: 500 training strings and a one-layer model 16 wide."""
  small = {"num_layers": 1, "features": 16, "hidden": 16}
  return config_lib.smoke(
    config, num_train=500, **{f"model.{k}": v for k, v in small.items() if k in config.model}
  )
