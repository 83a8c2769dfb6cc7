"""CLIP on captioned MNIST (docs/curriculum.md#f16): a small CNN image tower and a
2-layer Transformer text tower (read at the end token) trained with CLIP's symmetric
contrastive loss on digits paired with templated captions ("a handwritten 7", "the
number seven written by hand"; dlx/data/captions.py). No label is ever a target: the
classifier is made afterwards from text alone, by embedding the ten prompts "a photo of
the digit {zero..nine}" (a template never seen in training) and giving each test image
the class of the nearest prompt (zero-shot). Retrieval recall@k is over the first 1000
held-out pairs, a hit being any item of the query's digit (dlx/tasks/contrastive.py).
The report gives the zero-shot accuracy with every template as the prompt and writes
similarity.png (test images x their held-out captions).

Expected: zero-shot test accuracy about 0.9855 (experiments/self_supervised/README.md has
the measurements).

  ./launch.sh clip_mnist --data_dir=../shared/tfds
"""

import ml_collections

from dlx import config as config_lib
from dlx import data
from dlx.data import captions
from dlx.models import clip
from dlx.tasks import contrastive


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  config.data = ml_collections.ConfigDict(dict(max_length=captions.MAX_LENGTH))
  config.model = config_lib.model_config(
    embed_dim=64,
    image_widths=(16, 32),
    image_hidden=128,
    text_layers=2,
    text_heads=4,
    text_features=64,
    text_hidden=128,
    causal=True,
    pool="end",
    init_temperature=0.07,
    max_logit_scale=100.0,
  )
  config.zero_shot_template = captions.ZERO_SHOT_TEMPLATE
  config.retrieval_examples = 1000  # held-out pairs in the retrieval gallery
  config.batch_size = 128
  config.num_train_steps = 600
  config.log_every_steps = 100
  config.eval_every_steps = 300
  config.checkpoint_every_steps = 600
  config.best_metric = "zero_shot_accuracy"
  config.best_mode = "max"
  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.weight_decay = 1e-4
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_steps = 100
  if config_lib.SMOKE in args:
    config_lib.smoke(
      config,
      **{
        "model.embed_dim": 8,
        "model.image_widths": (4,),
        "model.image_hidden": 8,
        "model.text_layers": 1,
        "model.text_heads": 2,
        "model.text_features": 8,
        "model.text_hidden": 8,
        "retrieval_examples": 32,
      },
    )
  return config


def get_model(config):
  kwargs = config_lib.model_kwargs(config)
  vocab_size = len(captions.tokenizer().vocab)
  return clip.CLIP(vocab_size=vocab_size, max_length=config.data.max_length, **kwargs)


def get_dataset(config, data_dir):
  return data.load(
    "mnist_captions", data_dir=data_dir, seed=config.seed, max_length=config.data.max_length
  )


loss = contrastive.clip_loss
evaluate = contrastive.evaluate
final_report = contrastive.final_report
OUTPUTS = contrastive.OUTPUTS
TARGETS = {"test.zero_shot_accuracy": (">=", 0.90)}
