"""Subword GPT (docs/curriculum.md#h3) on the Shakespeare plays: gpt_shakespeare_char's
model and budget on SentencePiece pieces instead of characters.

  ./launch.sh gpt_shakespeare_bpe
  ./launch.sh gpt_shakespeare_bpe:unigram   # a unigram vocabulary instead of BPE

The vocabulary: 512 BPE pieces learned by SentencePiece from the 31 training plays only
(no normalisation, spaces kept as "▁", "\\n" a piece; about 2.1 characters a piece),
trained in about a second and cached (`lm.shakespeare_sentencepiece`:
$DLX_CACHE_DIR/sentencepiece, default ~/.cache/dlx/sentencepiece; nothing is
downloaded). The model is the character GPT's (4 layers, 4 heads, 128 dims, context 64,
now 64 pieces) with a 512-way embedding and output; the optimiser and batch are its
too. Windows never cross two plays.

Besides the per-token loss (nats per piece), every evaluation reports `bits_per_char`:
total nats over the target pieces / the characters they spell / ln 2, the unit of
gpt_shakespeare_char's `bits_per_char` on the same test plays (`lm.subword_bits_per_char`),
and `chars_per_token`. Writes samples.txt (temperature 0.8, top-k 40).
"""

import jax
import numpy as np

from dlx import config as config_lib
from dlx import optional_deps
from dlx.models import gpt
from dlx.tasks import language_model as lm

optional_deps.require("gpt_shakespeare_bpe (SentencePiece subwords)", "sentencepiece")

_UNIGRAM = "unigram"  # the `:unigram` argument: SentencePiece's unigram model


def get_config(arg=None):
  args = config_lib.parse_arg(arg, (_UNIGRAM,))
  config = lm.language_model_config(
    num_layers=4, num_heads=4, features=128, dropout_rate=0.0, output_bias=True
  )
  config.vocab_size = lm.SUBWORD_VOCAB
  config.tokenizer_type = _UNIGRAM if _UNIGRAM in args else "bpe"
  config.model.max_length = config.get_ref("context_length")
  config.sample_length = 200  # pieces
  if config_lib.SMOKE in args:
    lm.smoke(config)
  return config


def get_model(config):
  return gpt.GPT(**config_lib.model_kwargs(config))


def get_dataset(config, data_dir=None):
  del data_dir  # the plays ship inside the `shakespeare` package
  return lm.shakespeare_subwords(config)


loss = lm.language_model_loss
evaluate = lm.subword_bits_per_char


def final_report(ctx):
  tokenizer = lm.shakespeare_sentencepiece(ctx.config.vocab_size, ctx.config.tokenizer_type)
  tokenizer.save(f"{ctx.workdir}/tokenizer.model")
  half = ctx.model.max_length // 2
  samples = []
  for i, prompt in enumerate(lm.SAMPLE_PROMPTS):
    ids = list(tokenizer.encode(prompt))
    end = len(ids) + ctx.config.sample_length
    while len(ids) < end:
      context = ids[-half:]
      tokens = gpt.generate(
        ctx.model,
        ctx.variables["params"],
        np.array([context], np.int32),
        ctx.model.max_length - len(context),
        jax.random.fold_in(jax.random.fold_in(ctx.rng, i), len(ids)),
        temperature=0.8,
        top_k=40,
      )
      ids.extend(int(t) for t in np.asarray(tokens)[0, len(context) :])
    samples.append(tokenizer.decode(ids[:end])[len(prompt) :])  # the prompt decodes as itself
  names = lm.write_text_samples(ctx.workdir, "samples", lm.SAMPLE_PROMPTS, samples)
  return {"samples": names, "tokenizer": "tokenizer.model"}


OUTPUTS = ("samples.txt",)  # and tokenizer.model (binary), which `tokenizers.load` reads
