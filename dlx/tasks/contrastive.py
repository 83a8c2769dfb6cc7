"""Image-text contrastive learning, CLIP (docs/curriculum.md#f16): the loss as the trainer
wants it, and zero-shot classification and retrieval as set-level evaluation.

  clip_loss       `dlx.losses.clip_contrastive` per example (B,), so the batch mean the
                  trainer minimises is CLIP's loss; padded evaluation rows (mask 0) are
                  taken out of the softmax and score 0
  zero_shot       class index per image: the nearest of the class prompts' embeddings
  recall_at_k     retrieval recall where a hit is any gallery item of the query's class
  evaluate        zero-shot accuracy with the class prompts "a photo of the digit {word}"
                  (a held-out template) and image->text / text->image recall@1 and @5
                  over the first `config.retrieval_examples` held-out pairs
  final_report    zero-shot accuracy per prompt template, and similarity.png

Captions of MNIST say nothing but the digit, so an image's own caption and another
caption of the same digit and template are the same tokens: retrieval counts a hit by
class (recall@1 = the top item shows / names the right digit), not by pair identity,
which no model can beat chance at among identical captions.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from dlx import losses
from dlx import viz
from dlx.data import captions
from dlx.data import core
from dlx.data import pipeline

RECALL_KS = (1, 5)
OUTPUTS = ("similarity.png",)
_NEG = -1e9  # a logit no softmax keeps


def masked_clip_contrastive(image, text, logit_scale, mask):
  """CLIP's symmetric InfoNCE per example over the rows with mask = 1 only: the other
  rows are neither positives nor negatives, and their loss is 0. Equal to
  `losses.clip_contrastive(image[real], text[real], 1 / logit_scale)` on the real rows."""
  image, text = jnp.asarray(image, jnp.float32), jnp.asarray(text, jnp.float32)
  normalise = lambda x: (
    x * jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=-1, keepdims=True), 1e-12))
  )
  real = jnp.asarray(mask) > 0
  logits = logit_scale * normalise(image) @ normalise(text).T
  keep = real[None, :]  # columns: candidates of the other modality
  labels = jnp.arange(logits.shape[0])
  image_to_text = losses.softmax_cross_entropy(jnp.where(keep, logits, _NEG), labels)
  text_to_image = losses.softmax_cross_entropy(jnp.where(keep, logits.T, _NEG), labels)
  return jnp.where(real, 0.5 * (image_to_text + text_to_image), 0.0)


def clip_loss(outputs, batch):
  """{'loss': (B,) per-example CLIP loss, 'logit_scale': (B,) the current exp(s)}.

  The loss couples the whole batch (every other caption is a negative), so per example
  means: row i's share, whose batch mean is the CLIP loss. Evaluation batches are
  padded to full size with copies of the last example; their `mask` keeps the copies
  out of the softmax."""
  image, text, scale = outputs["image"], outputs["text"], outputs["logit_scale"]
  if "mask" in batch:
    loss = masked_clip_contrastive(image, text, scale, batch["mask"])
  else:
    loss = losses.clip_contrastive(image, text, 1.0 / scale)
  return {"loss": loss, "logit_scale": jnp.broadcast_to(scale, loss.shape)}


def zero_shot(image_embeddings, class_embeddings):
  """(N,) index of the most similar class embedding (rows: one per class) per image."""
  return np.argmax(np.asarray(image_embeddings) @ np.asarray(class_embeddings).T, axis=1)


def recall_at_k(similarity, query_labels, gallery_labels, k: int) -> float:
  """Share of queries (rows of `similarity`) whose k most similar gallery items (columns)
  include one with the query's label."""
  similarity = np.asarray(similarity)
  k = min(k, similarity.shape[1])
  top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
  hits = np.asarray(gallery_labels)[top] == np.asarray(query_labels)[:, None]
  return float(np.mean(np.any(hits, axis=1)))


def _predict(ctx):
  return ctx.predict or jax.jit(lambda variables, x: ctx.model.apply(variables, x, train=False))


def embed_split(ctx, data):
  """(image embeddings (N, D), caption embeddings (N, D), labels (N,)) of a split."""
  predict, images, texts = _predict(ctx), [], []
  # Full-size batches (the last one padded), so one compiled shape serves every split.
  for batch in pipeline.eval_batches(data, ctx.config.eval_batch_size):
    outputs, real = predict(ctx.variables, batch["inputs"]), int(batch["mask"].sum())
    images.append(np.asarray(outputs["image"][:real]))
    texts.append(np.asarray(outputs["text"][:real]))
  return np.concatenate(images), np.concatenate(texts), np.asarray(data["targets"])


def class_embeddings(ctx, template: str, data) -> tuple[np.ndarray, float]:
  """(10, D) text embeddings of the template filled with each digit, and the logit scale.

  The prompts ride in an evaluation-sized batch (beside copies of `data`'s first image),
  the shape `embed_split` has compiled already."""
  tok = captions.tokenizer()
  max_length = ctx.dataset.info.get("max_length", captions.MAX_LENGTH)
  tokens = captions.encode([captions.caption(template, d) for d in range(10)], tok, max_length)
  size = ctx.config.eval_batch_size
  if size >= len(tokens):
    inputs = core.take(data, np.zeros(size, np.int64))["inputs"]
    inputs["text"] = tokens[np.minimum(np.arange(size), len(tokens) - 1)]
  else:
    inputs = {"text": tokens}
  outputs = _predict(ctx)(ctx.variables, inputs)
  return np.asarray(outputs["text"][: len(tokens)]), float(outputs["logit_scale"])


def retrieval_metrics(image_embeddings, text_embeddings, labels) -> dict:
  """Image->text and text->image recall@k on these pairs (hits by class)."""
  similarity = image_embeddings @ text_embeddings.T
  out = {}
  for k in RECALL_KS:
    out[f"image_to_text_recall@{k}"] = recall_at_k(similarity, labels, labels, k)
    out[f"text_to_image_recall@{k}"] = recall_at_k(similarity.T, labels, labels, k)
  return out


def evaluate(ctx, split):
  data = ctx.examples(split)
  images, texts, labels = embed_split(ctx, data)
  template = ctx.config.get("zero_shot_template", captions.ZERO_SHOT_TEMPLATE)
  prompts, _ = class_embeddings(ctx, template, data)
  n = ctx.config.get("retrieval_examples", 1000) or len(labels)
  return {
    "zero_shot_accuracy": float(np.mean(zero_shot(images, prompts) == labels)),
    **retrieval_metrics(images[:n], texts[:n], labels[:n]),
  }


def plot_similarity(similarity, images, caption_texts, path, title=None):
  """Cosine similarities of images (rows, drawn on the left) and captions (columns)."""
  plt = viz.pyplot()

  similarity = np.asarray(similarity, np.float32)
  n = similarity.shape[0]
  strip = np.concatenate([np.asarray(im, np.float32)[..., 0] for im in images], axis=0)
  fig, (left, right) = plt.subplots(
    1, 2, figsize=(0.45 * n + 3.0, 0.45 * n + 3.0), gridspec_kw=dict(width_ratios=(1, n))
  )
  left.imshow(strip, cmap="gray", aspect="auto", extent=(0, 1, n - 0.5, -0.5))
  left.axis("off")
  shown = right.imshow(similarity, cmap="viridis", vmin=-1.0, vmax=1.0, aspect="auto")
  right.set_xticks(range(len(caption_texts)), caption_texts, rotation=90, fontsize=7)
  right.set_yticks([])
  right.set_xlabel("caption")
  for i in range(n):
    j = int(np.argmax(similarity[i]))
    right.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, color="red", lw=1.5))
  if title:
    right.set_title(title)
  fig.colorbar(shown, ax=right, fraction=0.046, label="cosine similarity")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def similarity_pairs(labels, per_class: int = 2):
  """Indices of the first `per_class` examples of each class, sorted by class."""
  labels = np.asarray(labels)
  picked = [np.flatnonzero(labels == c)[:per_class] for c in range(10)]
  return np.concatenate(picked).astype(np.int64)


def final_report(ctx):
  """Zero-shot test accuracy with each template as the class prompt (train and held-out
  templates) and similarity.png: two test images per digit against their captions (red
  box: each image's best caption)."""
  data = ctx.examples("test")
  images, texts, labels = embed_split(ctx, data)
  per_template = {}
  for template in captions.TRAIN_TEMPLATES + captions.HELD_OUT_TEMPLATES:
    prompts, logit_scale = class_embeddings(ctx, template, data)
    per_template[template] = round(float(np.mean(zero_shot(images, prompts) == labels)), 4)
  held_out = [per_template[t] for t in captions.HELD_OUT_TEMPLATES]
  trained = [per_template[t] for t in captions.TRAIN_TEMPLATES]

  index = similarity_pairs(labels)
  tok = captions.tokenizer()
  picked = core.take(data, index)
  words = [tok.decode(t for t in row if t > tok.unk_id) for row in picked["inputs"]["text"]]
  plot_similarity(
    images[index] @ texts[index].T,
    picked["inputs"]["image"],
    words,
    os.path.join(ctx.workdir, OUTPUTS[0]),
    title=f"test images x their held-out captions (step {ctx.step})",
  )
  return {
    "plots": list(OUTPUTS),
    "zero_shot_accuracy_per_template": per_template,
    "zero_shot_accuracy_held_out_templates_mean": round(float(np.mean(held_out)), 4),
    "zero_shot_accuracy_train_templates_mean": round(float(np.mean(trained)), 4),
    "logit_scale": round(logit_scale, 3),
  }
