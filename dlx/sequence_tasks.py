"""What the sequence experiments share: per-example losses in the experiment protocol's
form (dlx/experiment.py), encoder-decoder datasets in the model's input layout, and
exact-match evaluation for the final report.

Teacher-forced exact match equals greedy-decoding exact match: if every teacher-forced
argmax equals the target (EOS included), greedy decoding feeds itself exactly the target
prefix at every step and so emits the target; if some argmax is wrong, greedy decoding
emits that wrong token at the first such step. The validation `sequence_accuracy` is
therefore what autoregressive decoding scores.
"""

import jax
import jax.numpy as jnp
import numpy as np

from dlx import losses
from dlx.data import core


def language_model_loss(logits, batch):
  """Next-token cross-entropy (nats per token) for every position: (B, T), which the
  trainer averages over T. Also token accuracy."""
  targets = batch["targets"]
  return {"loss": losses.softmax_cross_entropy(logits, targets),
          "accuracy": (jnp.argmax(logits, -1) == targets).astype(jnp.float32)}


def sequence_loss(logits, batch):
  """Masked (B13) cross-entropy of an encoder-decoder, per example; token accuracy over
  real target tokens; sequence_accuracy = 1 when every real token (and EOS) is right."""
  targets, mask = batch["targets"], batch["target_mask"]
  correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  tokens = jnp.maximum(jnp.sum(mask, -1), 1.0)
  return {"loss": losses.sequence_cross_entropy(logits, targets, mask),
          "token_accuracy": jnp.sum(correct * mask, -1) / tokens,
          "sequence_accuracy": jnp.all((correct == 1) | (mask == 0), -1).astype(jnp.float32)}


def to_model_inputs(split: core.Split) -> core.Split:
  """dlx.data.sequences' flat arrays -> {'inputs': {'source', 'target_in'}, 'targets',
  'target_mask'}: the model reads the inputs dict, the loss the targets and mask."""
  return {"inputs": {"source": split["source"], "target_in": split["target_in"]},
          "targets": split["targets"], "target_mask": split["target_mask"]}


def as_model_dataset(dataset: core.Dataset) -> core.Dataset:
  return dataset.map(to_model_inputs)


def exact_match(model, variables, split: core.Split, batch_size: int = 500) -> dict:
  """Token and sequence accuracy of teacher-forced predictions over a (model-input)
  split: equal to greedy decoding's exact match (see the module docstring)."""
  apply = jax.jit(lambda inputs: model.apply(variables, inputs, train=False))
  totals, n = {}, core.num_examples(split)
  for start in range(0, n, batch_size):
    batch = core.take(split, slice(start, start + batch_size))
    values = sequence_loss(apply(batch["inputs"]), batch)
    for key, value in values.items():
      totals[key] = totals.get(key, 0.0) + float(jnp.sum(value))
  return {key: value / n for key, value in totals.items()}


def accuracy_by_length(model, variables, split: core.Split, batch_size: int = 500) -> dict:
  """{length: sequence accuracy} over the examples of each target length."""
  lengths = (split["target_mask"].sum(1) - 1).astype(int)
  result = {}
  for length in np.unique(lengths):
    rows = np.flatnonzero(lengths == length)
    result[int(length)] = exact_match(model, variables, core.take(split, rows),
                                      batch_size)["sequence_accuracy"]
  return result


SHAKESPEARE_CHARS = 83  # distinct characters in the training plays (all the corpus has)


def shakespeare_char(config) -> core.Dataset:
  """Character windows of `config.context_length` from the plays, split by play
  (dlx/data/text.py); training windows start every `config.train_stride` characters."""
  from dlx.data import text  # pylint: disable=g-import-not-at-top
  dataset, _ = text.shakespeare_char(config.context_length, train_stride=config.train_stride)
  if dataset.info["vocab_size"] != config.vocab_size:
    raise ValueError(f"the corpus has {dataset.info['vocab_size']} characters but "
                     f"--config.vocab_size={config.vocab_size}")
  return dataset


def language_model_config(arg=None):
  """The character-level budget gpt_shakespeare_char and lstm_shakespeare_char share;
  arg 'nanogpt' is nanoGPT's CPU example (see experiments/gpt_shakespeare_char.py)."""
  from dlx import config as config_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.base_config()
  config.vocab_size = SHAKESPEARE_CHARS
  # nanoGPT's shakespeare_char CPU example: 4 layers, 4 heads (GPT), 128 dims, context 64,
  # batch 12, 2000 iterations, no dropout, AdamW 1e-3 (beta2 0.99, weight decay 0.1),
  # 100 warmup steps, cosine to 1e-4, clipping at 1. It is the default because it is
  # what a 2-core CPU trains in minutes; `:nanogpt` names it explicitly.
  config.context_length = 64
  config.train_stride = 64
  config.num_layers = 4
  config.features = 128
  config.dropout_rate = 0.0
  config.batch_size = 12
  config.num_train_steps = 2000
  config.eval_every_steps = 500
  config.log_every_steps = 100
  config.sample_length = 500
  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.b2 = 0.99
  config.optimizer.weight_decay = 0.1
  config.optimizer.warmup_steps = 100
  config.optimizer.schedule = "cosine"
  config.optimizer.min_learning_rate_factor = 0.1
  config.optimizer.grad_clip_norm = 1.0
  if arg not in (None, "nanogpt"):
    raise ValueError(f"unknown config argument {arg!r}; use :nanogpt or nothing")
  config.eval_examples = 0
  return config


def shakespeare_char_dataset(config, data_dir=None):
  del data_dir  # the plays ship inside the `shakespeare` package
  return shakespeare_char(config)


def char_tokenizer(dataset: core.Dataset):
  from dlx.text import tokenizers  # pylint: disable=g-import-not-at-top
  return tokenizers.CharTokenizer(dataset.info["chars"])


def write_text_samples(workdir: str, name: str, prompts, samples) -> str:
  """Writes `name`.txt with each prompt and its continuation; returns the file name."""
  import os  # pylint: disable=g-import-not-at-top
  path = os.path.join(workdir, f"{name}.txt")
  with open(path, "w") as f:
    for i, (prompt, sample) in enumerate(zip(prompts, samples)):
      f.write(f"=== sample {i} (prompt {prompt!r}) ===\n{prompt}{sample}\n\n")
  return os.path.basename(path)


SAMPLE_PROMPTS = ("ROMEO.\n", "First Citizen.\nBefore we proceed any further, hear me speak.\n",
                  "KING.\nWhat news, my lord?\n")


# ----------------------------------------------------------- encoder-decoder experiments


def seq2seq_config(task: str):
  """Fields every encoder-decoder experiment has; `task` is reverse, sort, copy or
  reorder (dlx/data/sequences.py)."""
  from dlx import config as config_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.base_config()
  config.task = task
  config.num_train = 20_000
  config.num_symbols = 10        # synthetic tasks: symbols per position
  config.min_length = 1
  config.max_length = 10         # the training lengths; test sequences have these too
  config.longer_lengths = (11, 20)  # reported (no bar): accuracy on longer sequences
  config.max_vocab = 0           # reorder: word vocabulary cap (0 = every training word)
  config.max_words = 8           # reorder: longest sentence, in words
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
  from dlx.data import sequences  # pylint: disable=g-import-not-at-top
  if config.task == "reorder":
    return sequences.reorder_task(max_words=config.max_words,
                                  max_vocab=config.max_vocab or None, seed=config.seed)
  make = {"copy": sequences.copy_task, "reverse": sequences.reverse_task,
          "sort": sequences.sort_task}[config.task]
  return make(num_train=config.num_train, min_length=config.min_length,
              max_length=config.max_length, num_symbols=config.num_symbols,
              seed=config.seed, test_lengths=test_lengths)


def seq2seq_dataset(config, data_dir=None):
  del data_dir  # synthetic, or built from the packaged plays
  dataset = _task_dataset(config)
  if dataset.info["vocab_size"] != config.vocab_size:
    raise ValueError(f"the {config.task} task has {dataset.info['vocab_size']} tokens but "
                     f"--config.vocab_size={config.vocab_size}")
  return as_model_dataset(dataset)


def token_labels(ids, info) -> list[str]:
  """Readable labels for token ids: symbols as numbers, words from the vocabulary."""
  from dlx.data import sequences  # pylint: disable=g-import-not-at-top
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


def seq2seq_report(model, variables, dataset, config, workdir, attention_fn) -> dict:
  """Exact match on the test split, by length; on longer sequences (synthetic tasks);
  an attention map (attention.png) of the first test example.

  attention_fn(model, variables, inputs) -> (B, T, S) weights to plot."""
  import os  # pylint: disable=g-import-not-at-top
  from dlx import plots  # pylint: disable=g-import-not-at-top
  report = {"test": exact_match(model, variables, dataset.test),
            "test_by_length": accuracy_by_length(model, variables, dataset.test)}
  if config.task != "reorder" and config.longer_lengths:
    longer = as_model_dataset(_task_dataset(config, tuple(config.longer_lengths)))
    report["longer_by_length"] = accuracy_by_length(model, variables, longer.test)
  example = core.take(dataset.test, slice(0, 1))
  weights = np.asarray(attention_fn(model, variables, example["inputs"]))[0]
  source = example["inputs"]["source"][0]
  target_length = int(example["target_mask"][0].sum())
  source_length = int((source != 0).sum())
  info = dataset.info
  plots.plot_attention(weights[:target_length, :source_length],
                       token_labels(source[:source_length], info),
                       token_labels(example["targets"][0][:target_length], info),
                       os.path.join(workdir, "attention.png"),
                       title=f"{config.experiment}: first test example")
  report["attention_plot"] = "attention.png"
  return report


def transformer_cross_attention(model, variables, inputs):
  """A dlx.models.transformer.Transformer's last-layer cross-attention, mean over heads:
  (B, T, S)."""
  _, attention = model.apply(variables, inputs, return_attention=True)
  return jnp.mean(attention["cross"][-1], axis=1)


def transformer_model(config):
  """The encoder-decoder Transformer an experiment's config describes (num_layers,
  num_heads, features, hidden, dropout_rate, norm, max_positions, vocab_size)."""
  from dlx.models import transformer  # pylint: disable=g-import-not-at-top
  return transformer.Transformer(config.vocab_size, config.max_positions, config.num_layers,
                                 config.num_heads, config.features, config.hidden,
                                 config.dropout_rate, config.norm)


def transformer_report(model, variables, dataset, config, workdir, rng):
  """`seq2seq_report` with the Transformer's last-layer cross-attention plotted."""
  del rng
  return seq2seq_report(model, variables, dataset, config, workdir,
                        transformer_cross_attention)
