"""Skip-gram word embeddings (docs/curriculum.md#h3; Mikolov et al. 2013): two tables,
one for a word as the centre of a window and one for a word as its context. A pair's
score is the dot product of the centre's and the context's vectors; trained with
negative sampling (dlx.tasks.word_embeddings.sgns_loss), the centre table is the
embedding."""

import flax.linen as nn
import jax.numpy as jnp


class SkipGram(nn.Module):
  """inputs {"center": (B,) ids, "contexts": (B, C) ids} -> scores (B, C): the dot
  product of each centre vector with each of its C context vectors (the true context
  first and the negatives after it, as the task builds them)."""

  vocab_size: int
  features: int = 100

  @nn.compact
  def __call__(self, inputs, train: bool = False):
    del train
    # word2vec's initialisation: centre vectors uniform in +-0.5/features, context zero.
    scale = 0.5 / self.features
    center = nn.Embed(
      self.vocab_size,
      self.features,
      embedding_init=lambda key, shape, dtype=jnp.float32: (
        nn.initializers.uniform(2 * scale)(key, shape, dtype) - scale
      ),
      name="center",
    )
    context = nn.Embed(
      self.vocab_size, self.features, embedding_init=nn.initializers.zeros, name="context"
    )
    return jnp.einsum("bf,bcf->bc", center(inputs["center"]), context(inputs["contexts"]))
