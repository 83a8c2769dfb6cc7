"""Word embeddings of the Shakespeare plays (docs/curriculum.md#h3): skip-gram with
negative sampling (SGNS, word2vec; Mikolov et al. 2013) against two baselines, with the
similarity test, nearest neighbours and analogies the final report shows.

Words are the lowercased letter tokens of `tokenizers.split_words` (punctuation, the
speaker lines included, dropped; "o'er" and "to-morrow" are one word). The vocabulary
is the training plays' words seen `min_count` times or more. Training pairs (centre,
context) come from the training plays only: frequent words are subsampled (a word of
frequency f kept with probability min(1, sqrt(t / f) + t / f)), each centre takes the
words up to a window drawn from 1..`window` on each side, and each pair carries
`negatives` words drawn from the unigram distribution to the power 3/4, all with one
fixed seed. Validation and test pairs come from the held-out plays the same way, so
their loss measures how well the vectors predict contexts in unseen plays.

The similarity test: cosine similarity of `RELATED_PAIRS` (a hand list: king / queen,
lord / lady, ...) against `num_random_pairs` random vocabulary pairs; `auc` is the
fraction of (related, random) comparisons in which the related pair is the more similar
(0.5: no better than chance). Baselines: random vectors, and the PPMI co-occurrence
matrix of the training plays (the same window) reduced by a truncated SVD to the same
dimension (Levy and Goldberg 2014).
"""

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np

from dlx.data import core
from dlx.data import text
from dlx.data import tokenizers

# Related pairs a reader of the plays would accept; words outside the vocabulary are
# skipped (the report says how many were scored).
RELATED_PAIRS = (
  ("king", "queen"),
  ("lord", "lady"),
  ("father", "mother"),
  ("son", "daughter"),
  ("brother", "sister"),
  ("husband", "wife"),
  ("man", "woman"),
  ("he", "she"),
  ("his", "her"),
  ("sir", "madam"),
  ("uncle", "cousin"),
  ("prince", "duke"),
  ("sword", "dagger"),
  ("day", "night"),
  ("sun", "moon"),
  ("heaven", "earth"),
  ("love", "hate"),
  ("life", "death"),
  ("war", "peace"),
  ("good", "bad"),
  ("sweet", "fair"),
  ("thou", "you"),
  ("thee", "thy"),
  ("eyes", "tears"),
  ("heart", "soul"),
  ("gold", "silver"),
  ("horse", "horses"),
  ("english", "french"),
  ("england", "france"),
  ("one", "two"),
  ("three", "four"),
  ("speak", "say"),
  ("come", "go"),
  ("kill", "slay"),
  ("dead", "alive"),
  ("head", "hand"),
)
NEIGHBOUR_WORDS = ("king", "lady", "sword", "love", "night", "france", "thou", "gold")
ANALOGIES = (  # a : b :: c : ?
  ("man", "woman", "king", "queen"),
  ("he", "she", "his", "her"),
  ("father", "mother", "son", "daughter"),
  ("brother", "sister", "uncle", "aunt"),
  ("lord", "lady", "sir", "madam"),
  ("england", "english", "france", "french"),
)


def words(play: str) -> list[str]:
  """The play's lowercased words, punctuation dropped."""
  return [w for w in tokenizers.split_words(play.lower()) if w[0].isalpha()]


@functools.cache
def split_words_by_play() -> dict[str, tuple[tuple[str, ...], ...]]:
  return {
    split: tuple(tuple(words(t)) for t in texts) for split, texts in text.split_texts().items()
  }


def vocabulary(train_plays, min_count: int, max_vocab: int = 0) -> tuple[list[str], np.ndarray]:
  """Words seen at least `min_count` times, by decreasing count (ties alphabetical), the
  `max_vocab` most frequent (0: all), and their counts."""
  counts = collections.Counter(w for play in train_plays for w in play)
  vocab = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
  vocab = vocab[:max_vocab] if max_vocab else vocab
  return vocab, np.array([counts[w] for w in vocab], np.int64)


def skipgram_pairs(ids: np.ndarray, window: int, rng: np.random.Generator) -> np.ndarray:
  """(N, 2) (centre, context) pairs of one id sequence: each centre with the words up to
  a distance drawn from 1..window (word2vec's dynamic window)."""
  reach = rng.integers(1, window + 1, len(ids))
  pairs = []
  for offset in range(1, window + 1):
    for sign in (1, -1):
      centre = np.arange(len(ids))
      context = centre + sign * offset
      keep = (context >= 0) & (context < len(ids)) & (reach >= offset)
      pairs.append(np.stack([ids[centre[keep]], ids[context[keep]]], 1))
  return np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)


def negative_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
  p = counts.astype(np.float64) ** power
  return p / p.sum()


def sgns_loss(scores, batch=None):
  """Per-example negative-sampling loss of scores (B, 1 + k), the true context first:
  -log sigmoid(s_0) - sum_j log sigmoid(-s_j). Also the accuracy of telling the true
  context from each negative (positive score > 0, negative scores < 0)."""
  del batch
  positive, negative = scores[:, 0], scores[:, 1:]
  loss = -jax.nn.log_sigmoid(positive) - jnp.sum(jax.nn.log_sigmoid(-negative), axis=-1)
  right = jnp.concatenate([positive[:, None] > 0, negative < 0], axis=-1)
  return {"loss": loss, "pair_accuracy": jnp.mean(right.astype(jnp.float32), axis=-1)}


def sgns_dataset(config) -> core.Dataset:
  """Pairs with negatives from each split (see the module docstring); `inputs` is
  {"center": (N,), "contexts": (N, 1 + negatives)}. `info` holds the vocabulary and its
  counts. `config.max_pairs` (0: all) evenly thins each split's pairs (smoke runs)."""
  rng = np.random.default_rng(config.seed)
  plays = split_words_by_play()
  vocab, counts = vocabulary(plays["train"], config.min_count, config.max_vocab)
  index = {w: i for i, w in enumerate(vocab)}
  frequency = counts / counts.sum()
  keep = np.minimum(1.0, np.sqrt(config.subsample / frequency) + config.subsample / frequency)
  noise = negative_distribution(counts)
  splits = {}
  for split in ("train", "validation", "test"):
    pairs = []
    for play in plays[split]:
      ids = np.array([index[w] for w in play if w in index], np.int64)
      ids = ids[rng.random(len(ids)) < keep[ids]]
      pairs.append(skipgram_pairs(ids, config.window, rng))
    pairs = np.concatenate(pairs)
    if config.max_pairs and len(pairs) > config.max_pairs:
      pairs = pairs[np.linspace(0, len(pairs) - 1, config.max_pairs).astype(np.int64)]
    negatives = rng.choice(len(vocab), size=(len(pairs), config.negatives), p=noise)
    contexts = np.concatenate([pairs[:, 1:], negatives], 1).astype(np.int32)
    splits[split] = {"inputs": {"center": pairs[:, 0].astype(np.int32), "contexts": contexts}}
  info = {"name": "shakespeare_skipgram", "vocab": vocab, "counts": counts}
  return core.Dataset(splits["train"], splits["validation"], splits["test"], info)


def cooccurrence(plays, index: dict, window: int) -> np.ndarray:
  """(V, V) counts of word pairs at most `window` apart (both orders) in `plays`."""
  size = len(index)
  matrix = np.zeros((size, size), np.float64)
  for play in plays:
    ids = np.array([index[w] for w in play if w in index], np.int64)
    for offset in range(1, window + 1):
      np.add.at(matrix, (ids[:-offset], ids[offset:]), 1.0)
  return matrix + matrix.T


def ppmi_svd(matrix: np.ndarray, features: int) -> np.ndarray:
  """Positive PMI of a co-occurrence matrix, reduced to `features` dimensions by SVD:
  U_k sqrt(S_k) (rows: words)."""
  total = matrix.sum()
  rows, cols = matrix.sum(1, keepdims=True), matrix.sum(0, keepdims=True)
  with np.errstate(divide="ignore", invalid="ignore"):
    pmi = np.log(matrix * total / (rows * cols))
  ppmi = np.where(np.isfinite(pmi) & (pmi > 0), pmi, 0.0)
  u, s, _ = np.linalg.svd(ppmi.astype(np.float32), full_matrices=False)
  return u[:, :features] * np.sqrt(s[:features])


def normalize(vectors: np.ndarray) -> np.ndarray:
  norms = np.linalg.norm(vectors, axis=1, keepdims=True)
  return vectors / np.maximum(norms, 1e-12)


def similarity_test(vectors, vocab, related=RELATED_PAIRS, num_random: int = 1000, seed=0):
  """Cosine similarity of the related pairs in the vocabulary against random pairs:
  their means, and `auc` (see the module docstring)."""
  index = {w: i for i, w in enumerate(vocab)}
  unit = normalize(np.asarray(vectors, np.float64))
  pairs = [(index[a], index[b]) for a, b in related if a in index and b in index]
  rng = np.random.default_rng(seed)
  random_pairs = rng.choice(len(vocab), size=(num_random, 2))
  random_pairs = random_pairs[random_pairs[:, 0] != random_pairs[:, 1]]
  cos = lambda p: np.sum(unit[p[:, 0]] * unit[p[:, 1]], axis=1)
  rel, rand = cos(np.array(pairs)), cos(random_pairs)
  auc = float(np.mean(rel[:, None] > rand[None, :]) + 0.5 * np.mean(rel[:, None] == rand[None]))
  return {
    "related_cosine": float(rel.mean()),
    "random_cosine": float(rand.mean()),
    "auc": auc,
    "num_related": len(pairs),
  }


def nearest(vectors, vocab, word: str, k: int = 5, exclude=()) -> list[str]:
  unit = normalize(np.asarray(vectors, np.float64))
  return nearest_to(unit, vocab, unit[vocab.index(word)], k, exclude=(word, *exclude))


def nearest_to(unit, vocab, query, k: int, exclude=()) -> list[str]:
  scores = unit @ (query / max(np.linalg.norm(query), 1e-12))
  out = []
  for i in np.argsort(-scores):
    if vocab[i] not in exclude:
      out.append(vocab[i])
    if len(out) == k:
      break
  return out


def analogy(vectors, vocab, a: str, b: str, c: str, k: int = 3) -> list[str]:
  """The k words nearest to b - a + c (3CosAdd on unit vectors), a, b, c excluded."""
  unit = normalize(np.asarray(vectors, np.float64))
  index = {w: i for i, w in enumerate(vocab)}
  query = unit[index[b]] - unit[index[a]] + unit[index[c]]
  return nearest_to(unit, vocab, query, k, exclude=(a, b, c))
