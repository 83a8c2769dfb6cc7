"""Language modelling on the Shakespeare plays (docs/curriculum.md#f12, #f14, #h3): the
next-token loss, the budget the GPT and LSTM experiments share, the data (characters or
SentencePiece subwords), bits per character, and text samples for the final report.

Bits per character compare models whose tokens differ: the total loss in nats over the
target tokens, divided by the number of characters those tokens spell, over ln 2. For a
character model each token is one character, so it is the per-token loss / ln 2."""

import hashlib
import math
import os

import jax.numpy as jnp
import ml_collections
import numpy as np

from dlx import config as config_lib
from dlx import losses
from dlx.data import core
from dlx.data import text
from dlx.data import tokenizers

NANOGPT = "nanogpt"  # the `:nanogpt` argument: nanoGPT's CPU example (also the default)
SHAKESPEARE_CHARS = 83  # distinct characters in the training plays (all the corpus has)
SAMPLE_PROMPTS = (
  "ROMEO.\n",
  "First Citizen.\nBefore we proceed any further, hear me speak.\n",
  "KING.\nWhat news, my lord?\n",
)
OUTPUTS = ("samples.txt",)


def language_model_loss(logits, batch):
  """Next-token cross-entropy (nats per token) for every position: (B, T), which the
  trainer averages over T. Also token accuracy."""
  targets = batch["targets"]
  return {
    "loss": losses.softmax_cross_entropy(logits, targets),
    "accuracy": (jnp.argmax(logits, -1) == targets).astype(jnp.float32),
  }


def char_language_model_loss(logits, batch):
  """`language_model_loss` plus `bits_per_char`: each token is one character, so the
  per-token loss in bits (nats / ln 2). Every window has the same number of characters,
  so its mean over windows is total bits / total characters."""
  out = language_model_loss(logits, batch)
  out["bits_per_char"] = out["loss"] / math.log(2.0)
  return out


def bits_per_char(total_nats: float, num_chars: int) -> float:
  """Total loss in nats over some tokens -> bits per character they spell."""
  return float(total_nats) / float(num_chars) / math.log(2.0)


def language_model_config(**model):
  """The character-level budget gpt_shakespeare_char and lstm_shakespeare_char share
  (nanoGPT's CPU example); `model` holds the model's keyword arguments besides
  vocab_size, which follows config.vocab_size."""
  config = config_lib.base_config()
  config.vocab_size = SHAKESPEARE_CHARS
  # nanoGPT's shakespeare_char CPU example: 4 layers, 4 heads (GPT), 128 dims, context 64,
  # batch 12, 2000 iterations, no dropout, AdamW 1e-3 (beta2 0.99, weight decay 0.1),
  # 100 warmup steps, cosine to 1e-4, clipping at 1. It is the default because it is
  # what a 2-core CPU trains in minutes; `:nanogpt` names it explicitly.
  config.context_length = 64
  config.train_stride = 64
  config.model = ml_collections.ConfigDict({"vocab_size": config.get_ref("vocab_size"), **model})
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
  # Windows spread over each split (experiment.eval_split), about nanoGPT's estimate (200
  # batches of 12), keep evaluation a small part of a short run: the whole validation and
  # test plays are 12,157 windows, 3.4x the tokens 300 steps train on. The train split
  # only gives the generalisation gap. --config.eval_examples=0 scores whole splits.
  config.eval_examples = 2000
  config.train_eval_examples = 1000
  return config


def smoke(config):
  """`:smoke`: few windows (one every 2048 characters) of 32 characters, a one-layer
  model 32 wide, 20-character samples."""
  return config_lib.smoke(
    config,
    context_length=32,
    train_stride=2048,
    sample_length=20,
    **{"model.num_layers": 1, "model.features": 32},
  )


def shakespeare_char(config) -> core.Dataset:
  """Character windows of `config.context_length` from the plays, split by play
  (dlx/data/text.py); training windows start every `config.train_stride` characters."""
  dataset, _ = text.shakespeare_char(config.context_length, train_stride=config.train_stride)
  if dataset.info["vocab_size"] != config.vocab_size:
    raise ValueError(
      f"the corpus has {dataset.info['vocab_size']} characters but "
      f"--config.vocab_size={config.vocab_size}"
    )
  return dataset


def shakespeare_char_dataset(config, data_dir=None):
  del data_dir  # the plays ship inside the `shakespeare` package
  return shakespeare_char(config)


def char_tokenizer(dataset: core.Dataset):
  return tokenizers.CharTokenizer(dataset.info["chars"])


def write_text_samples(workdir: str, name: str, prompts, samples) -> str:
  """Writes `name`.txt with each prompt and its continuation; returns the file name."""
  path = os.path.join(workdir, f"{name}.txt")
  with open(path, "w") as f:
    for i, (prompt, sample) in enumerate(zip(prompts, samples)):
      f.write(f"=== sample {i} (prompt {prompt!r}) ===\n{prompt}{sample}\n\n")
  return os.path.basename(path)


# Subwords (docs/curriculum.md#h3): a SentencePiece vocabulary learned from the training
# plays only, cached by the hash of that text and the options (training takes ~1 s).
SUBWORD_VOCAB = 512


def sentencepiece_cache_dir() -> str:
  root = os.environ.get("DLX_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "dlx")
  return os.path.join(root, "sentencepiece")


def shakespeare_sentencepiece(
  vocab_size: int = SUBWORD_VOCAB, model_type: str = "bpe", cache_dir: str | None = None
) -> tokenizers.SentencePieceTokenizer:
  """A SentencePiece model (`model_type` "bpe" or "unigram") of `vocab_size` pieces
  trained on the training plays only (text.split_texts()["train"]), with the defaults of
  `SentencePieceTokenizer.train`: no normalisation, "\\n" a piece of its own, one
  thread (deterministic). Read from `cache_dir` (default $DLX_CACHE_DIR/sentencepiece,
  i.e. ~/.cache/dlx/sentencepiece) when a model of the same corpus and options is there,
  otherwise trained and written there; nothing is downloaded."""
  corpus = "\n\n".join(text.split_texts()["train"])
  options = f"{model_type}-{vocab_size}"
  key = hashlib.sha256((options + "\0" + corpus).encode("utf-8")).hexdigest()[:16]
  cache_dir = cache_dir or sentencepiece_cache_dir()
  path = os.path.join(cache_dir, f"shakespeare_train_{options}-{key}.model")
  if os.path.isfile(path):
    return tokenizers.SentencePieceTokenizer.load(path)
  tokenizer = tokenizers.SentencePieceTokenizer.train(corpus, vocab_size, model_type=model_type)
  os.makedirs(cache_dir, exist_ok=True)
  partial = f"{path}.{os.getpid()}.tmp"
  tokenizer.save(partial)
  os.replace(partial, path)  # atomic: a concurrent run reads a whole file or none
  return tokenizer


def token_char_counts(tokenizer: tokenizers.SentencePieceTokenizer, ids) -> np.ndarray:
  """How many characters of the text each id of `tokenizer.encode(text)` spells (int32):
  its piece's length ("▁" is the space), 0 for control pieces, and one less for the
  first piece, whose leading "▁" is SentencePiece's dummy prefix (not in the text). The
  counts sum to len(text) for any text of training characters."""
  processor = tokenizer.processor
  lengths = np.array(
    [
      0 if processor.is_control(i) else len(processor.id_to_piece(i))
      for i in range(tokenizer.vocab_size)
    ],
    np.int32,
  )
  counts = lengths[np.asarray(ids, np.int64)]
  if len(counts) and processor.id_to_piece(int(ids[0])).startswith("▁"):
    counts[0] -= 1
  return counts


def shakespeare_subwords(config) -> core.Dataset:
  """Windows of `config.context_length` subword tokens of the plays, split by play as the
  character data (training windows every `config.train_stride` tokens, validation and
  test every `context_length`), plus `target_chars` (N, T): the characters each target
  token spells, for bits per character. The vocabulary: `shakespeare_sentencepiece`."""
  tokenizer = shakespeare_sentencepiece(config.vocab_size, config.tokenizer_type)
  length = config.context_length
  splits, num_tokens = {}, {}
  texts = text.split_texts()
  for split, play_texts in texts.items():
    ids, chars, starts, offset = [], [], [], 0
    for play in play_texts:
      encoded = np.asarray(tokenizer.encode(play), np.int32)
      counts = token_char_counts(tokenizer, encoded)
      if counts.sum() != len(play):
        raise RuntimeError(
          f"tokens spell {counts.sum()} characters of a {len(play)}-character play"
        )
      stride = config.train_stride if split == "train" else length
      starts.append(offset + text.windows(encoded, length, stride))
      ids.append(encoded)
      chars.append(counts)
      offset += len(encoded)
    index = np.concatenate(starts)[:, None] + np.arange(length + 1)
    window, window_chars = np.concatenate(ids)[index], np.concatenate(chars)[index]
    splits[split] = {
      "inputs": window[:, :-1],
      "targets": window[:, 1:],
      "target_chars": window_chars[:, 1:],
    }
    num_tokens[split] = int(offset)
  info = dict(
    name="shakespeare_subwords",
    vocab_size=tokenizer.vocab_size,
    context_length=length,
    plays=text.play_split(),
    num_chars={s: sum(map(len, t)) for s, t in texts.items()},
    num_tokens=num_tokens,
    tokenizer_type=config.tokenizer_type,
  )
  if tokenizer.vocab_size != config.vocab_size:
    raise ValueError(f"the tokenizer has {tokenizer.vocab_size} pieces, not {config.vocab_size}")
  return core.Dataset(splits["train"], splits["validation"], splits["test"], info)


def subword_bits_per_char(ctx, split: str) -> dict:
  """The set-level `evaluate` hook of a subword language model: total nats over the
  evaluated windows' target tokens / the characters they spell / ln 2 (`bits_per_char`,
  comparable with a character model's), and `chars_per_token`."""
  nats, chars, tokens = 0.0, 0, 0
  for batch, logits in ctx.outputs(ctx.examples(split)):
    nats += float(jnp.sum(losses.softmax_cross_entropy(logits, batch["targets"])))
    chars += int(np.sum(batch["target_chars"]))
    tokens += int(np.size(batch["targets"]))
  return {"bits_per_char": bits_per_char(nats, chars), "chars_per_token": chars / tokens}
