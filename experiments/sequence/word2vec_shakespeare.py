"""Word embeddings (docs/curriculum.md#h3): skip-gram with negative sampling (word2vec)
on the words of the Shakespeare plays, against a co-occurrence SVD and random vectors.

  ./launch.sh word2vec_shakespeare

The 4000 most frequent words of the 31 training plays (lowercased, seen 5 times or more),
100-dimensional centre and context tables (dlx/models/skipgram.py), windows of up to 4
words each side, 5 negatives per pair from the unigram^0.75 distribution, frequent
words subsampled (t = 1e-3); Adam (3e-3, cosine to 3e-4), batch 1024, 20,000 steps
(about 8 epochs). Validation and test pairs come from the held-out plays (`loss` there:
how well the vectors predict contexts in unseen plays).

The final report (`report.similarity`) scores the centre vectors, the PPMI + SVD
baseline (the same words, window and dimension, from the training plays' counts) and
random vectors on the similarity test of dlx/tasks/word_embeddings.py (related word
pairs against random pairs: mean cosines and `auc`), and lists nearest neighbours and
analogies (b - a + c) under `report.neighbours` and `report.analogies`.
"""

import jax
import ml_collections
import numpy as np

from dlx import config as config_lib
from dlx.models import skipgram
from dlx.tasks import word_embeddings as we


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  config.min_count = 5
  config.max_vocab = 4000
  config.window = 4
  config.negatives = 5
  config.subsample = 1e-3
  config.max_pairs = 0  # 0: every pair
  config.model = ml_collections.ConfigDict({"features": 100})
  config.batch_size = 1024
  config.eval_batch_size = 4096
  config.num_train_steps = 20000
  config.eval_every_steps = 5000
  config.log_every_steps = 1000
  config.eval_examples = 100_000
  config.train_eval_examples = 100_000
  config.best_metric = "loss"
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 3e-3
  config.optimizer.schedule = "cosine"
  config.optimizer.min_learning_rate_factor = 0.1
  if config_lib.SMOKE in args:
    config_lib.smoke(config, max_vocab=300, max_pairs=2000, **{"model.features": 16})
  return config


def get_model(config):
  return skipgram.SkipGram(vocab_size=config.max_vocab, features=config.model.features)


def get_dataset(config, data_dir=None):
  del data_dir  # the plays ship inside the `shakespeare` package
  dataset = we.sgns_dataset(config)
  if len(dataset.info["vocab"]) != config.max_vocab:
    raise ValueError(f"the plays have {len(dataset.info['vocab'])} words for the vocabulary")
  return dataset


loss = we.sgns_loss


def final_report(ctx):
  vocab = ctx.dataset.info["vocab"]
  sgns = np.asarray(jax.device_get(ctx.variables["params"]["center"]["embedding"]))
  plays = we.split_words_by_play()["train"]
  index = {w: i for i, w in enumerate(vocab)}
  svd = we.ppmi_svd(we.cooccurrence(plays, index, ctx.config.window), sgns.shape[1])
  random = np.random.default_rng(ctx.config.seed).normal(size=sgns.shape)
  vectors = {"sgns": sgns, "ppmi_svd": svd, "random": random}
  similarity = {name: we.similarity_test(v, vocab) for name, v in vectors.items()}
  neighbours = {
    method: {w: we.nearest(vectors[method], vocab, w) for w in we.NEIGHBOUR_WORDS if w in index}
    for method in ("sgns", "ppmi_svd")
  }
  analogies = {
    method: {
      f"{a}:{b}::{c}:{d}": we.analogy(vectors[method], vocab, a, b, c)
      for a, b, c, d in we.ANALOGIES
      if all(w in index for w in (a, b, c))
    }
    for method in ("sgns", "ppmi_svd")
  }
  return {"similarity": similarity, "neighbours": neighbours, "analogies": analogies}


TARGETS = {"report.similarity.sgns.auc": (">=", 0.95)}  # measured: the family README
