"""Self-attention figures of Transformers (docs/curriculum.md#h4): every head of every
layer over a token sequence (a language model), and where an image classifier's class
token looks among the patches (a ViT), per layer and as the rollout of all layers.

`plots.plot_attention` draws one query-by-key map of an encoder-decoder; a decoder-only
or encoder-only model has layers x heads of them, which these figures lay out side by
side so that heads that look back one token, attend to spaces or to the class token
can be told apart at a glance.
"""

import numpy as np

from dlx import viz

_SHOWN = {" ": "\u2423", "\n": "\u21b5", "\t": "\u21e5"}  # visible whitespace


def token_labels(tokens) -> list[str]:
  """Tick labels for characters or ids: whitespace made visible."""
  return [_SHOWN.get(t, t) if isinstance(t, str) else str(t) for t in tokens]


def plot_attention_heads(maps, labels, path, title=None):
  """A grid of attention maps, one row per layer and one column per head.

  maps: {layer name: (heads, T, T)} for one sequence; labels: T token strings (queries
  on the rows, keys on the columns). Each panel shares the scale 0..1."""
  plt = viz.pyplot()
  names = list(maps)
  heads = np.asarray(maps[names[0]]).shape[0]
  size = 1.0 + 0.1 * len(labels)
  fig, axes = plt.subplots(
    len(names), heads, figsize=(size * heads, size * len(names)), squeeze=False
  )
  ticks = np.arange(len(labels))
  for row, name in enumerate(names):
    for head in range(heads):
      ax = axes[row, head]
      ax.imshow(np.asarray(maps[name])[head], cmap="viridis", vmin=0.0, vmax=1.0)
      ax.set_xticks(ticks, labels, fontsize=6)
      ax.set_yticks(ticks, labels, fontsize=6)
      ax.tick_params(length=0, pad=1)
      ax.set_title(f"{name}, head {head}", fontsize=8)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout(rect=(0, 0, 1, 0.97) if title else None)
  fig.savefig(path, dpi=80)
  plt.close(fig)


def plot_patch_attention(images, maps, path, title=None):
  """Rows of image | class-token attention over the patches, one panel per map.

  images (N, H, W) or (N, H, W, 1) in [0, 1]; maps: {panel name: (N, gh, gw)} weights
  of the class token on the gh x gw patches (a layer's, head-averaged, or the rollout),
  each shown over the image, upsampled by repeating every patch's value."""
  plt = viz.pyplot()
  images = np.asarray(images, np.float32)
  images = images.reshape(images.shape[:3])
  n, height, width = images.shape
  names = list(maps)
  fig, axes = plt.subplots(
    n, len(names) + 1, figsize=(1.6 * (len(names) + 1), 1.7 * n + 0.4), squeeze=False
  )
  for i in range(n):
    axes[i, 0].imshow(images[i], cmap="gray", vmin=0.0, vmax=1.0)
    for j, name in enumerate(names):
      grid = np.asarray(maps[name][i], np.float32)
      heat = np.kron(grid, np.ones((height // grid.shape[0], width // grid.shape[1])))
      ax = axes[i, j + 1]
      ax.imshow(images[i], cmap="gray", vmin=0.0, vmax=1.0)
      ax.imshow(heat / max(float(heat.max()), 1e-9), cmap="inferno", alpha=0.6, vmin=0, vmax=1)
      if i == 0:
        ax.set_title(name, fontsize=8)
    axes[i, 0].set_title("input" if i == 0 else "", fontsize=8)
  for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout(rect=(0, 0, 1, 0.97) if title else None)
  fig.savefig(path, dpi=80)
  plt.close(fig)
