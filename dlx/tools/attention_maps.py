"""Self-attention maps of a finished run's Transformer (docs/curriculum.md#h4).

  python -m dlx.tools.attention_maps WORKDIR[:best|latest] [--out=FILE.png] \
      [--split=test] [--index=0] [--count=4] [--length=48] [--data_dir=DIR]

WORKDIR is a run of an experiment whose model attends with dlx.nn.attention and reads one
array (the GPT, the ViT; an encoder-decoder's {source, target} inputs are not drawn
here: its runs write attention.png themselves). The weights come from one forward pass on
examples of the run's own data (`--split`, from `--index`), captured by
dlx.models.attention_maps. Token inputs (a language model) give one panel per layer and
head over the first `--length` tokens of one example; image inputs (a ViT) give, for
`--count` images, the class token's attention over the patches in every layer (mean over
heads) and the rollout through all layers. The figure goes to --out (default
WORKDIR/attention_maps.png); a JSON line on stdout says what was drawn. Bad input is one
line on stderr and exit status 2.
"""

import argparse
import json
import os
import sys

from absl import logging
import numpy as np

from dlx import errors
from dlx.data import core
from dlx.data import tfds_data
from dlx.models import attention_maps
from dlx.tools import cli
from dlx.tools import export
from dlx.training import warm_start
from dlx.viz import attention_figures

FIGURE = "attention_maps.png"


def load_run(ref: str, data_dir=None):
  """(experiment, config, model, variables, dataset, step) of the run `ref`."""
  workdir, _ = warm_start.parse_ref(ref)
  if not os.path.isdir(workdir):
    raise errors.UserError(f"{workdir}: no such run directory")
  experiment, config, model = export.run_model(workdir)
  state, step = warm_start.restore_state(ref, "attention_maps", label=f"attention maps of {ref}")
  variables = {"params": state["params"], **state.get("model_state", {})}
  with tfds_data.mocked(config.get("tfds_mock_examples", 0)):  # a :smoke run's mock data
    dataset = experiment.get_dataset(config, data_dir)
  return experiment, config, model, variables, dataset, step


def _maps(model, variables, inputs):
  maps = attention_maps.attention_weights(model, variables, inputs)
  if not maps:
    raise errors.UserError("the run's model has no dlx attention layer (a GPT or a ViT has)")
  return maps


def _token_figure(model, variables, dataset, inputs, length, path, title):
  tokens = np.asarray(inputs)[:1, :length].astype(np.int32)
  maps = _maps(model, variables, tokens)
  chars = dataset.info.get("chars")
  labels = attention_figures.token_labels(
    [chars[t] for t in tokens[0]] if chars is not None else tokens[0].tolist()
  )
  per_layer = {name.split("/")[-2]: np.asarray(w)[0] for name, w in maps.items()}
  attention_figures.plot_attention_heads(per_layer, labels, path, title)
  first = next(iter(per_layer.values()))
  return {
    "kind": "tokens",
    "layers": len(per_layer),
    "heads": first.shape[0],
    "tokens": len(labels),
  }


def _patch_figure(model, variables, inputs, path, title):
  images = np.asarray(inputs, np.float32)
  maps = _maps(model, variables, images)
  layers = list(maps.values())
  patches = layers[0].shape[-1] - 1  # the class token is token 0
  side = int(round(np.sqrt(patches)))
  if side * side != patches:
    raise errors.UserError(f"{patches} patches do not form a square grid")

  def class_row(weights):  # (N, T, T) -> the class token's weights on the patches
    return np.asarray(weights)[:, 0, 1:].reshape((-1, side, side))

  panels = {
    name.split("/")[-2].replace("_", " "): class_row(np.asarray(w).mean(1))
    for name, w in maps.items()
  }
  panels["rollout"] = class_row(attention_maps.attention_rollout(layers))
  attention_figures.plot_patch_attention(images, panels, path, title)
  return {
    "kind": "patches",
    "layers": len(layers),
    "heads": layers[0].shape[1],
    "images": len(images),
  }


def draw_figure(
  model, variables, dataset, path, *, title, split="test", index=0, count=4, length=48
):
  """The figure of `model` on `dataset`'s examples from `index` of `split`: token inputs
  give layers x heads over the first `length` tokens of one example, images give
  `count` images with the class token's maps. Returns what was drawn."""
  try:
    data = dataset.split(split)
  except ValueError as e:
    raise errors.UserError(f"--split={split}: {e}") from e
  total = core.num_examples(data)
  if not 0 <= index < total:
    raise errors.UserError(f"--index={index}: the {split} split has {total} examples")
  inputs = core.take(data, slice(index, index + count))["inputs"]
  if isinstance(inputs, dict):
    raise errors.UserError("the run's inputs are a dict; give a GPT or a ViT run")
  if np.issubdtype(np.asarray(inputs).dtype, np.integer):
    return _token_figure(model, variables, dataset, inputs, length, path, title)
  return _patch_figure(model, variables, inputs, path, title)


def draw(ref, out=None, split="test", index=0, count=4, length=48, data_dir=None) -> dict:
  """Draws the attention figure of the run `ref` (WORKDIR[:best|latest]) to `out`
  (default WORKDIR/attention_maps.png); returns what was drawn."""
  experiment, _, model, variables, dataset, step = load_run(ref, data_dir)
  path = out or os.path.join(warm_start.parse_ref(ref)[0], FIGURE)
  title = f"{experiment.name}, step {step}: {split} example {index}"
  about = draw_figure(
    model,
    variables,
    dataset,
    path,
    title=title,
    split=split,
    index=index,
    count=count,
    length=length,
  )
  return {"experiment": experiment.name, "step": step, "figure": path, **about}


def main(argv=None):
  parser = cli.Parser(
    prog="dlx.tools.attention_maps",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("run", help="WORKDIR[:best|latest] of a finished run")
  parser.add_argument("--out", default=None)
  parser.add_argument("--split", default="test", choices=core.SPLITS)
  parser.add_argument("--index", type=int, default=0)
  parser.add_argument("--count", type=int, default=4, help="images (ViT)")
  parser.add_argument("--length", type=int, default=48, help="tokens (language model)")
  parser.add_argument("--data_dir", default=None)
  args = parser.parse_args(argv)
  # Quiet orbax's notes on the checkpoint items it skips; restored after, as main() may be
  # called in a process that goes on (a test, a notebook).
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)
  try:
    about = draw(args.run, args.out, args.split, args.index, args.count, args.length, args.data_dir)
  except errors.UserError as e:
    cli.fail(str(e))
  finally:
    logging.set_verbosity(verbosity)
  print(json.dumps(about))
  return 0


if __name__ == "__main__":
  sys.exit(main())
