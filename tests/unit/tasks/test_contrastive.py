"""CLIP's task and data (dlx/tasks/contrastive.py, dlx/data/captions.py): the per-example
loss against an independent NumPy reference, padding rows kept out of it, zero-shot and
retrieval on hand-made embeddings whose answers are known, and the captions' shapes and
fixed vocabulary."""

import ml_collections
import numpy as np
import pytest
from scipy import special

from dlx import data
from dlx import errors
from dlx import experiment
from dlx.data import captions
from dlx.data import core
from dlx.tasks import contrastive


def _reference_clip_loss(image, text, scale):
  """Symmetric InfoNCE per pair in NumPy/SciPy, written from the CLIP paper's pseudocode."""
  a = image / np.linalg.norm(image, axis=1, keepdims=True)
  b = text / np.linalg.norm(text, axis=1, keepdims=True)
  logits = scale * a @ b.T
  diagonal = np.diag(logits)
  rows = special.logsumexp(logits, axis=1) - diagonal
  columns = special.logsumexp(logits, axis=0) - diagonal
  return 0.5 * (rows + columns)


def _embeddings(batch=6, dim=4, seed=0):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(batch, dim)), rng.normal(size=(batch, dim))


def test_per_example_loss_averages_to_the_clip_loss():
  image, text = _embeddings()
  outputs = {"image": image, "text": text, "logit_scale": np.float32(3.0)}
  values = contrastive.clip_loss(outputs, {})
  expected = _reference_clip_loss(image, text, 3.0)
  assert values["loss"].shape == (6,)
  np.testing.assert_allclose(values["loss"], expected, rtol=1e-5)
  np.testing.assert_allclose(np.mean(values["loss"]), np.mean(expected), rtol=1e-5)
  np.testing.assert_allclose(values["logit_scale"], 3.0)


def test_padded_rows_are_neither_positives_nor_negatives():
  image, text = _embeddings()
  mask = np.array([1, 1, 1, 1, 0, 0], np.float32)
  # Padding copies the last real example, as the evaluation pipeline does.
  image[4:], text[4:] = image[3], text[3]
  outputs = {"image": image, "text": text, "logit_scale": np.float32(2.0)}
  loss = contrastive.clip_loss(outputs, {"mask": mask})["loss"]
  np.testing.assert_allclose(loss[:4], _reference_clip_loss(image[:4], text[:4], 2.0), rtol=1e-5)
  np.testing.assert_array_equal(loss[4:], 0.0)
  full = contrastive.clip_loss(outputs, {"mask": np.ones(6, np.float32)})["loss"]
  np.testing.assert_allclose(full, _reference_clip_loss(image, text, 2.0), rtol=1e-5)


def test_recall_counts_a_hit_by_class():
  similarity = np.array([[0.9, 0.8, 0.1], [0.2, 0.1, 0.3], [0.5, 0.4, 0.0]])
  queries, gallery = np.array([1, 2, 0]), np.array([0, 1, 2])
  # top-1: query 0 -> item 0 (class 0, miss), 1 -> item 2 (hit), 2 -> item 0 (hit)
  assert contrastive.recall_at_k(similarity, queries, gallery, 1) == pytest.approx(2 / 3)
  assert contrastive.recall_at_k(similarity, queries, gallery, 2) == pytest.approx(1.0)
  assert contrastive.recall_at_k(similarity, queries, gallery, 10) == 1.0


# ------------------------------------------------- zero-shot wiring, hand-made


def _word_class():
  """vocabulary id -> digit for the number words and digit characters."""
  tok = captions.tokenizer()
  table = np.full(tok.vocab_size, -1)
  for digit, word in enumerate(captions.NUMBER_WORDS):
    table[tok.vocab.index(word)] = table[tok.vocab.index(str(digit))] = digit
  return table


def _fake_context(labels, image_class):
  """A RunContext whose 'model' embeds an image as the one-hot of the class written in its
  first pixel and a caption as the one-hot of the digit it names: zero-shot must give
  each image `image_class` exactly."""
  tok, word_class = captions.tokenizer(), _word_class()
  rng = np.random.default_rng(0)
  texts = [captions.caption(captions.HELD_OUT_TEMPLATES[i % 4], d) for i, d in enumerate(labels)]
  images = rng.uniform(0, 1, (len(labels), 28, 28, 1)).astype(np.float32)
  images[:, 0, 0, 0] = image_class
  split = {
    "inputs": {"image": images, "text": captions.encode(texts, tok)},
    "targets": np.asarray(labels, np.int32),
  }

  def predict(variables, inputs):
    del variables
    out = {"logit_scale": np.float32(10.0)}
    if "image" in inputs:
      out["image"] = np.eye(10)[np.asarray(inputs["image"])[:, 0, 0, 0].astype(int)]
    if "text" in inputs:
      named = word_class[np.asarray(inputs["text"])].max(axis=1)
      out["text"] = np.eye(10)[named]
    return out

  config = ml_collections.ConfigDict(
    dict(
      eval_batch_size=7,
      eval_examples=0,
      train_eval_examples=0,
      retrieval_examples=0,
      zero_shot_template=captions.ZERO_SHOT_TEMPLATE,
    )
  )
  dataset = core.Dataset(split, split, split, dict(max_length=captions.MAX_LENGTH))
  return experiment.RunContext(
    experiment=None,
    config=config,
    workdir="",
    model=None,
    variables={},
    dataset=dataset,
    rng=None,
    step=0,
    predict=predict,
  )


def test_zero_shot_and_retrieval_wiring_on_a_hand_made_model():
  labels = np.arange(20) % 10
  perfect = contrastive.evaluate(_fake_context(labels, labels), "test")
  assert perfect == {
    "zero_shot_accuracy": 1.0,
    "image_to_text_recall@1": 1.0,
    "text_to_image_recall@1": 1.0,
    "image_to_text_recall@5": 1.0,
    "text_to_image_recall@5": 1.0,
  }
  # A quarter of the images look like the next digit: exactly those are misread.
  wrong = labels.copy()
  wrong[:5] = (wrong[:5] + 1) % 10
  metrics = contrastive.evaluate(_fake_context(labels, wrong), "validation")
  assert metrics["zero_shot_accuracy"] == pytest.approx(15 / 20)
  assert metrics["image_to_text_recall@1"] == pytest.approx(15 / 20)


def test_zero_shot_picks_the_nearest_prompt():
  prompts = np.eye(3)
  images = np.array([[0.1, 0.9, 0.0], [0.0, 0.2, 0.3], [1.0, -1.0, 0.0]])
  np.testing.assert_array_equal(contrastive.zero_shot(images, prompts), [1, 2, 0])


# ------------------------------------------------------------------ captions


def test_the_vocabulary_is_fixed_and_held_out_templates_use_trained_words():
  tok = captions.tokenizer()
  assert tok.vocab[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
  assert captions.tokenizer().vocab == tok.vocab
  trained = {
    w
    for t in captions.TRAIN_TEMPLATES
    for d in range(10)
    for w in tok.tokenize(captions.caption(t, d))
  }
  for template in captions.HELD_OUT_TEMPLATES:
    assert template not in captions.TRAIN_TEMPLATES
    for digit in range(10):
      words = tok.tokenize(captions.caption(template, digit))
      assert set(words) <= trained, (template, digit)
      assert len(words) + 2 <= captions.MAX_LENGTH
  assert captions.caption("an image of {a_word} {word}", 8) == "an image of an eight"
  assert captions.caption("{a_digit} {digit} written by hand", 7) == "a 7 written by hand"


def test_caption_split_shapes_and_tokens():
  rng = np.random.default_rng(1)
  raw = {
    "inputs": rng.integers(0, 256, (30, 28, 28, 1)).astype(np.uint8),
    "targets": rng.integers(0, 10, 30).astype(np.int64),
  }
  tok = captions.tokenizer()
  split = captions.caption_split(
    raw, captions.TRAIN_TEMPLATES, tok, np.random.default_rng(0), captions.MAX_LENGTH
  )
  image, text = split["inputs"]["image"], split["inputs"]["text"]
  assert image.shape == (30, 28, 28, 1) and image.dtype == np.float32
  assert 0.0 <= image.min() and image.max() <= 1.0
  assert text.shape == (30, captions.MAX_LENGTH) and text.dtype == np.int32
  assert split["targets"].dtype == np.int32
  np.testing.assert_array_equal(split["targets"], raw["targets"])
  for row, label, template in zip(text, split["targets"], split["template"]):
    length = int(np.sum(row != tok.pad_id))
    assert row[0] == tok.bos_id and row[length - 1] == tok.eos_id
    assert np.all(row[length:] == tok.pad_id) and tok.unk_id not in row
    expected = captions.caption(captions.TRAIN_TEMPLATES[template], int(label))
    assert tok.decode(row[1 : length - 1]) == expected
  again = captions.caption_split(
    raw, captions.TRAIN_TEMPLATES, tok, np.random.default_rng(0), captions.MAX_LENGTH
  )
  np.testing.assert_array_equal(again["inputs"]["text"], text)
  assert len(set(split["template"].tolist())) > 5  # the templates vary


def test_a_caption_too_long_is_a_clear_error():
  with pytest.raises(errors.ConfigError, match="max_length is 4"):
    captions.encode(["a photo of the digit seven"], captions.tokenizer(), max_length=4)


@pytest.mark.slow
def test_mnist_captions_from_tfds(tfds_dir):
  ds = data.load("mnist_captions", data_dir=tfds_dir)
  assert (ds.size("train"), ds.size("validation"), ds.size("test")) == (54000, 6000, 10000)
  assert set(np.unique(ds.test["template"])) == set(range(len(captions.HELD_OUT_TEMPLATES)))
  assert np.bincount(ds.test["targets"]).min() > 800


@pytest.mark.slow
def test_missing_mnist_names_data_dir(tmp_path):
  with pytest.raises(errors.DataNotFoundError, match="--data_dir"):
    data.load("mnist_captions", data_dir=str(tmp_path))
