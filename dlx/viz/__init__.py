"""Figures: PNG image grids, curves and attention maps (`plots`), detection and
segmentation scenes (`scene_figures`), and a Transformer's self-attention, every layer
and head or a class token over image patches (`attention_figures`).

`pyplot()` is the one place matplotlib is set up: every figure in dlx is drawn through it,
headless (the Agg backend), so a run on a machine without a display never opens a window
or fails to find one. matplotlib is imported only when a figure is drawn.
"""


def pyplot():
  """matplotlib.pyplot with the headless Agg backend selected."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  return plt
