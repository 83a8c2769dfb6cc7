"""Datasets: tfds by name (read from `--data_dir`, never downloaded) and embedded ones.

    ds = dlx.data.load("mnist", data_dir="../shared/tfds")   # tfds
    ds = dlx.data.load("digits")                              # embedded, no network
    ds = dlx.data.load("reverse", max_length=10)              # synthetic sequence task
    ds = dlx.data.load("shakespeare_char", context_length=64) # the plays, split by play
    ds = dlx.data.load("digit_scenes", data_dir="../shared/tfds") # detection scenes
    ds = dlx.data.load("graph_shapes")                        # synthetic graphs (F25)
    ds = dlx.data.load("spoken_digits")                       # synthesised speech (F23)
    ds = dlx.data.load("mnist_captions", data_dir="../shared/tfds") # captioned digits (F16)

Every loader returns a `Dataset` (three splits of NumPy arrays); an experiment that
makes its training data on the fly returns a `Stream` instead. `dlx.data.pipeline`
turns either into device batches; `dlx.data.grain_pipeline` reads the same batches through
grain (`--config.input_pipeline=grain`), streaming a tfds train split from disk when it is
prepared in ArrayRecord form (`python -m dlx.data.convert NAME --data_dir=SRC --out_dir=DST`).
"""

from dlx.data import embedded
from dlx.data import pipeline
from dlx.data import tfds_data
from dlx.data import transforms
from dlx.data.core import Dataset
from dlx.data.core import Stream

__all__ = ["Dataset", "Stream", "embedded", "load", "pipeline", "tfds_data", "transforms"]

EMBEDDED = tuple(embedded.LOADERS)


def load(name: str, *, data_dir=None, seed: int = 0, **kwargs) -> Dataset:
  """An embedded dataset, text corpus or sequence task by name, scenes or captions of tfds
  digits (from `data_dir`), else a tfds dataset from `data_dir`."""
  from dlx.data import captions  # pylint: disable=g-import-not-at-top
  from dlx.data import graphs  # pylint: disable=g-import-not-at-top
  from dlx.data import scenes  # pylint: disable=g-import-not-at-top
  from dlx.data import sequences  # pylint: disable=g-import-not-at-top
  from dlx.data import speech  # pylint: disable=g-import-not-at-top
  from dlx.data import text  # pylint: disable=g-import-not-at-top

  all_loaders = (embedded.LOADERS, text.LOADERS, sequences.LOADERS, graphs.LOADERS, speech.LOADERS)
  for loaders in all_loaders:
    if name in loaders:
      return loaders[name](seed=seed, **kwargs)
  for loaders in (scenes.LOADERS, captions.LOADERS):
    if name in loaders:
      return loaders[name](data_dir=data_dir, seed=seed, **kwargs)
  return tfds_data.load(name, data_dir=data_dir, **kwargs)
