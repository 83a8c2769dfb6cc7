"""Tests for the subword language model of dlx.tasks.language_model (docs/curriculum.md#h3):
bits per character by hand, the SentencePiece vocabulary (round trips, trained on the
training plays only, cached, deterministic) and the characters each token spells."""

import math
import sys
import types

import jax.numpy as jnp
import numpy as np
import pytest

from dlx import experiment
from dlx.data import text
from dlx.data import tokenizers
from dlx.tasks import language_model as lm


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp("sentencepiece"))


@pytest.fixture(scope="module")
def tokenizer(cache):
  return lm.shakespeare_sentencepiece(512, "bpe", cache_dir=cache)


def test_bits_per_char_by_hand():
  # Uniform over 4 characters: ln 4 nats = 2 bits per character.
  logits = jnp.zeros((2, 5, 4))
  out = lm.char_language_model_loss(logits, {"targets": jnp.zeros((2, 5), jnp.int32)})
  np.testing.assert_allclose(out["bits_per_char"], 2.0, rtol=1e-6)
  np.testing.assert_allclose(out["loss"], math.log(4.0), rtol=1e-6)
  # 10 tokens of ln 8 nats each (3 bits) spelling 15 characters: 30 bits / 15 = 2.
  assert lm.bits_per_char(10 * math.log(8.0), 15) == pytest.approx(2.0)


def test_subword_hook_divides_total_nats_by_characters():
  vocab, batches = 8, []
  for chars in ([[1, 2, 3], [4, 1, 1]], [[2, 2, 2]]):
    targets = np.zeros((len(chars), 3), np.int32)
    batches.append(({"targets": targets, "target_chars": np.array(chars)}, None))
  ctx = types.SimpleNamespace(
    examples=lambda split: split,
    outputs=lambda data: [(b, jnp.zeros((*b["targets"].shape, vocab))) for b, _ in batches],
  )
  got = lm.subword_bits_per_char(ctx, "test")
  # 9 tokens of 3 bits (uniform over 8) spelling 18 characters.
  assert got["bits_per_char"] == pytest.approx(9 * 3 / 18)
  assert got["chars_per_token"] == pytest.approx(18 / 9)


def test_sentencepiece_round_trips_on_every_held_out_play(tokenizer):
  assert tokenizer.vocab_size == 512
  plays = text.shakespeare_plays()
  for name in text.VALIDATION_PLAYS + text.TEST_PLAYS:
    ids = tokenizer.encode(plays[name])
    assert tokenizer.decode(ids) == plays[name]
    counts = lm.token_char_counts(tokenizer, ids)
    assert counts.sum() == len(plays[name])  # every character counted once
    assert 1.8 < len(plays[name]) / len(ids) < 3.0  # pieces of ~2 characters


def test_token_char_counts_by_hand(tokenizer):
  sentence = "KING.\nWhat news, my lord?\n"
  ids = tokenizer.encode(sentence)
  pieces = tokenizer.pieces(sentence)
  expected = [len(p) for p in pieces]
  expected[0] -= pieces[0].startswith("▁")  # the dummy prefix is no character of the text
  assert list(lm.token_char_counts(tokenizer, ids)) == expected
  assert sum(expected) == len(sentence)


def test_sentencepiece_trains_on_train_plays_only_and_is_cached(cache, monkeypatch):
  seen = []
  real = tokenizers.SentencePieceTokenizer.train

  def spy(corpus, *args, **kwargs):
    seen.append(corpus)
    return real(corpus, *args, **kwargs)

  monkeypatch.setattr(tokenizers.SentencePieceTokenizer, "train", spy)
  other = cache + "/other"
  first = lm.shakespeare_sentencepiece(300, "bpe", cache_dir=other)
  (corpus,) = seen
  plays = text.shakespeare_plays()
  assert corpus == "\n\n".join(plays[name] for name in text.play_split()["train"])
  for name in text.VALIDATION_PLAYS + text.TEST_PLAYS:
    assert plays[name][:2000] not in corpus
  again = lm.shakespeare_sentencepiece(300, "bpe", cache_dir=other)
  assert len(seen) == 1  # read from the cache
  assert again.model_proto == first.model_proto
  monkeypatch.setattr(tokenizers.SentencePieceTokenizer, "train", real)
  fresh = lm.shakespeare_sentencepiece(300, "bpe", cache_dir=cache + "/third")
  assert fresh.model_proto == first.model_proto  # training is deterministic


def test_subword_windows_and_target_chars(tokenizer, monkeypatch):
  monkeypatch.setattr(lm, "shakespeare_sentencepiece", lambda *a: tokenizer)
  config = types.SimpleNamespace(
    vocab_size=512, tokenizer_type="bpe", context_length=16, train_stride=1024
  )
  data = lm.shakespeare_subwords(config)
  test = data.test
  np.testing.assert_array_equal(test["inputs"][:, 1:], test["targets"][:, :-1])
  # No target is a play's first piece, so each spells its piece's length ("▁" a space).
  pieces = [tokenizer.processor.id_to_piece(int(i)) for i in test["targets"][3]]
  assert list(test["target_chars"][3]) == [len(p) for p in pieces]
  assert len(test["inputs"]) < data.info["num_chars"]["test"] / 16 / 1.8
  assert data.info["num_chars"]["test"] == sum(len(t) for t in text.split_texts()["test"])
  assert set(data.info["plays"]["test"]) == set(text.TEST_PLAYS)


def test_bpe_experiment_without_sentencepiece_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "sentencepiece", None)  # as if not installed
  # An earlier test in this process may have imported the experiment: import it afresh.
  monkeypatch.delitem(sys.modules, "dlx_experiments.gpt_shakespeare_bpe", raising=False)
  with pytest.raises(ImportError, match=r"needs sentencepiece, from dlx's \[data\] extra"):
    experiment.load("gpt_shakespeare_bpe")
