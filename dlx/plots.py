"""PNG figures: image grids (samples, reconstructions) and loss curves."""

import json
import math

import numpy as np
from PIL import Image


def image_grid(images, num_columns: int | None = None, pad: int = 2) -> np.ndarray:
  """(N, H, W, C) floats in [0, 1] -> one uint8 (rows*H, cols*W, C) mosaic."""
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  if images.ndim == 3:
    images = images[..., None]
  n, h, w, c = images.shape
  cols = num_columns or int(math.ceil(math.sqrt(n)))
  rows = int(math.ceil(n / cols))
  grid = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.float32)
  for i, img in enumerate(images):
    r, k = divmod(i, cols)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h,
         pad + k * (w + pad):pad + k * (w + pad) + w] = img
  return (grid * 255).round().astype(np.uint8)


def save_image_grid(images, path, num_columns=None, scale: int = 2):
  grid = image_grid(images, num_columns)
  img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
  if scale > 1:
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
  img.save(path)


def plot_loss_curves(metrics_jsonl, path, metric="loss"):
  """Train and validation `metric` against step, from a run's metrics.jsonl."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  curves = {}
  with open(metrics_jsonl) as f:
    for line in f:
      row = json.loads(line)
      if metric in row:
        curves.setdefault(row["split"], {})[row["step"]] = row[metric]
  fig, ax = plt.subplots(figsize=(6, 4))
  for split, points in sorted(curves.items()):
    steps = sorted(points)
    ax.plot(steps, [points[s] for s in steps], label=split, marker="." if len(steps) < 50 else None)
  ax.set_xlabel("step")
  ax.set_ylabel(metric)
  ax.legend()
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_attention(weights, source_labels, target_labels, path, title=None):
  """An attention map: rows = output (query) positions, columns = input (key) positions,
  shade = weight. `weights` (T, S); labels are the tokens as strings."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  weights = np.asarray(weights, np.float32)
  if weights.shape != (len(target_labels), len(source_labels)):
    raise ValueError(f"weights {weights.shape} do not match {len(target_labels)} target and "
                     f"{len(source_labels)} source labels")
  size = 0.35 * max(weights.shape) + 1.5
  fig, ax = plt.subplots(figsize=(size + 1, size))
  image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(float(weights.max()), 1e-6))
  ax.set_xticks(range(len(source_labels)), source_labels, rotation=90)
  ax.set_yticks(range(len(target_labels)), target_labels)
  ax.set_xlabel("input (attended to)")
  ax.set_ylabel("output step")
  if title:
    ax.set_title(title)
  fig.colorbar(image, ax=ax, fraction=0.046)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
