"""Tokenizers (dlx.data.tokenizers) and the Shakespeare language-modelling data (dlx.data.text)."""

import numpy as np
import pytest

from dlx.data import text
from dlx.data import tokenizers

SENTENCE = "The cat sat on the mat."


@pytest.fixture(scope="module")
def train_text():
  return "".join(text.split_texts()["train"])


@pytest.fixture(scope="module")
def char_data():
  return text.shakespeare_char(64)


def test_char_tokenizer_round_trip_and_sorted_vocab(tmp_path):
  tok = tokenizers.CharTokenizer.fit("hello world")
  assert tok.chars == sorted(set("hello world"))
  assert tok.decode(tok.encode("low hero")) == "low hero"
  assert tok.pad_id is None and tok.unk_id is None
  tok.save(tmp_path / "char.json")
  again = tokenizers.load(tmp_path / "char.json")
  assert again.chars == tok.chars and again.encode("hello") == tok.encode("hello")


def test_char_tokenizer_unknown_characters():
  with pytest.raises(ValueError, match="not in the vocabulary"):
    tokenizers.CharTokenizer.fit("abc").encode("abz")
  tok = tokenizers.CharTokenizer.fit("abc", unk="?")
  assert tok.vocab_size == 4
  assert tok.decode(tok.encode("abz")) == "ab?"


def test_word_tokenizer_round_trip_and_unknown_words(tmp_path):
  tok = tokenizers.WordTokenizer.fit("The mat cat sat the on. To-night, o'er the sea!")
  assert tok.vocab[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
  assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
  assert tok.decode(tok.encode(SENTENCE)) == SENTENCE
  assert tok.decode(tok.encode("To-night, o'er the sea!")) == "To-night, o'er the sea!"
  assert tok.encode("The dog sat.") == [
    tok.encode("The")[0],
    3,
    tok.encode("sat")[0],
    tok.encode(".")[0],
  ]
  tok.save(tmp_path / "word.json")
  assert tokenizers.load(tmp_path / "word.json").vocab == tok.vocab


def test_word_tokenizer_normal_form_on_the_corpus(train_text):
  passage = train_text[10_000:20_000]
  tok = tokenizers.WordTokenizer.fit(passage)
  decoded = tok.decode(tok.encode(passage))
  assert decoded == tok.normalize(passage)
  assert tok.decode(tok.encode(decoded)) == decoded  # exact on the normal form
  assert tokenizers.split_words(decoded) == tokenizers.split_words(passage)


def test_word_tokenizer_max_vocab_and_lowercase():
  tok = tokenizers.WordTokenizer.fit("a a a b b c The the", max_vocab=6, lowercase=True)
  assert tok.vocab == ["<pad>", "<bos>", "<eos>", "<unk>", "a", "b"]
  assert tok.decode(tok.encode("A B C")) == "a b <unk>"


@pytest.mark.parametrize("model_type,size", [("bpe", 1_000_000), ("unigram", 200_000)])
def test_sentencepiece_round_trip(train_text, tmp_path, model_type, size):
  corpus = train_text[:size]
  tok = tokenizers.SentencePieceTokenizer.train(
    corpus, 300, model_type=model_type, model_prefix=str(tmp_path / "sp")
  )
  assert tok.vocab_size == 300
  assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
  held_out = text.shakespeare_plays()["macbeth"][:3000]
  assert set(held_out) <= set(corpus)
  ids = tok.encode(held_out)
  assert tok.decode(ids) == held_out  # spaces and line breaks survive
  assert len(ids) < len(held_out) * 0.75  # subwords are longer than characters
  again = tokenizers.SentencePieceTokenizer.load(str(tmp_path / "sp.model"))
  assert again.encode(held_out) == ids
  assert tokenizers.load(str(tmp_path / "sp.model")).encode(SENTENCE) == tok.encode(SENTENCE)
  assert (tmp_path / "sp.vocab").exists()


def test_plays_are_37_without_boilerplate():
  plays = text.shakespeare_plays()
  assert len(plays) == 37 and "hamlet" in plays and "sonnets" not in plays
  assert list(plays) == sorted(plays)
  assert not any("Project Gutenberg" in t or "GUTENBERG" in t for t in plays.values())
  wrapped = (
    "Header\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\nplay\n"
    "*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nlicence"
  )
  assert text.strip_gutenberg_boilerplate(wrapped).strip() == "play"


def test_split_by_play_is_fixed_and_disjoint():
  split = text.play_split()
  assert split["validation"] == ("macbeth", "richard_ii", "twelfth_night")
  assert split["test"] == ("henry_v", "much_ado_about_nothing", "othello")
  names = [n for s in split.values() for n in s]
  assert len(names) == len(set(names)) == 37
  assert set(names) == set(text.shakespeare_plays())
  assert split == text.play_split()


def test_char_windows_targets_are_inputs_shifted(char_data):
  ds, tok = char_data
  for name in ("train", "validation", "test"):
    split = ds.split(name)
    assert split["inputs"].shape == split["targets"].shape
    assert split["inputs"].shape[1] == 64 and split["inputs"].dtype == np.int32
    np.testing.assert_array_equal(split["inputs"][:, 1:], split["targets"][:, :-1])
  # Windows start at 0 and are `context_length` apart, within each play.
  first = text.shakespeare_plays()[text.play_split()["validation"][0]]
  assert tok.decode(ds.validation["inputs"][0]) == first[:64]
  assert tok.decode(ds.validation["targets"][0]) == first[1:65]
  assert tok.decode(ds.validation["inputs"][1]) == first[64:128]


def test_char_vocabulary_covers_every_split(char_data):
  ds, tok = char_data
  assert tok.vocab_size == ds.info["vocab_size"] == len(ds.info["chars"]) == 83
  for texts in text.split_texts().values():
    assert set("".join(texts)) <= set(tok.chars)
  chars = ds.info["num_chars"]
  assert chars["train"] > 5 * chars["test"] > 0
  assert ds.size("train") == pytest.approx(chars["train"] / 64, rel=0.01)


def test_train_stride_and_max_train_windows():
  ds, _ = text.shakespeare_char(32, train_stride=8, max_train_windows=1000)
  assert ds.size("train") == 1000
  np.testing.assert_array_equal(ds.train["inputs"][:, 1:], ds.train["targets"][:, :-1])
  dense, _ = text.shakespeare_char(32, train_stride=8)
  assert dense.size("train") == pytest.approx(4 * ds.info["num_chars"]["train"] / 32, rel=0.01)
  assert dense.size("validation") == ds.size("validation")


def test_shakespeare_tokens_with_a_word_tokenizer():
  tok = tokenizers.WordTokenizer.fit(text.split_texts()["train"], max_vocab=2000)
  ds = text.shakespeare_tokens(tok, 16)
  assert ds.info["vocab_size"] == 2000
  assert ds.train["inputs"].max() < 2000
  np.testing.assert_array_equal(ds.test["inputs"][:, 1:], ds.test["targets"][:, :-1])


def test_simple_sentences_are_in_the_play():
  play = text.shakespeare_plays()["macbeth"]
  found = text.simple_sentences(play, 3, 8)
  assert "When shall we three meet again?" in found
  flat = tokenizers.join_words(tokenizers.split_words(play))
  for sentence in found:
    assert sentence in flat
    words = [w for w in tokenizers.split_words(sentence)[:-1] if w != ","]
    assert 3 <= len(words) <= 8 and sentence[-1] in ".!?"
