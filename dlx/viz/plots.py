"""PNG figures: image grids (samples, reconstructions), loss curves, attention maps,
and vision figures (docs/curriculum.md#e4, #h4): classic filters applied to an image,
learned first-layer filters and feature maps, plus helpers that pull those out of a Flax
model."""

from collections.abc import Mapping
import math

import numpy as np
from PIL import Image

from dlx import viz
from dlx.ops import filters


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
    grid[
      pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w
    ] = img
  return (grid * 255).round().astype(np.uint8)


def save_image_grid(images, path, num_columns=None, scale: int = 2):
  grid = image_grid(images, num_columns)
  img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
  if scale > 1:
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
  img.save(path)


def plot_loss_curves(rows, path, metric="loss"):
  """Train and validation `metric` against step, from a run's metrics.jsonl rows
  (`dlx.training.metric_writers.read_metrics`)."""
  plt = viz.pyplot()
  curves = {}
  for row in rows:
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


def plot_run_comparison(runs, path, metric=None):
  """Several runs' loss curves overlaid, one colour per run (train solid, validation
  dashed), and a second panel of `metric` (e.g. accuracy) when given.

  runs: {name: the run's metrics.jsonl rows}, in legend order."""
  plt = viz.pyplot()
  panels = ["loss"] + ([metric] if metric else [])
  fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
  colours = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20").colors
  for ax, name in zip(axes[0], panels):
    for i, (label, rows) in enumerate(runs.items()):
      labelled = False  # one legend entry per run, not per split
      for split, style in (("train", "-"), ("validation", "--")):
        points = {r["step"]: r[name] for r in rows if r["split"] == split and name in r}
        steps = sorted(points)
        if not steps:
          continue
        ax.plot(
          steps,
          [points[s] for s in steps],
          style,
          color=colours[i % len(colours)],
          marker="." if len(steps) < 20 else None,
          label=None if labelled else label,
        )
        labelled = True
    ax.set_xlabel("step")
    ax.set_ylabel(name)
    ax.set_title(f"{name} (solid: train, dashed: validation)", fontsize=10)
    ax.grid(alpha=0.3)
  axes[0, 0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_tradeoff(curves, path, *, xlabel, ylabel, title=None):
  """Lines of (x, y) points, one per label (a single point is drawn as a marker), e.g.
  error against sparsity for several pruning methods."""
  plt = viz.pyplot()
  fig, ax = plt.subplots(figsize=(6, 4))
  for label, points in curves.items():
    if not points:
      continue
    xs, ys = zip(*points)
    ys = [max(y, 1e-4) for y in ys]  # a log axis has no 0
    ax.plot(xs, ys, "o" if len(points) == 1 else ".-", label=label)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_yscale("log")
  if title:
    ax.set_title(title)
  ax.legend()
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_attention(weights, source_labels, target_labels, path, title=None):
  """An attention map: rows = output (query) positions, columns = input (key) positions,
  shade = weight. `weights` (T, S); labels are the tokens as strings."""
  plt = viz.pyplot()
  weights = np.asarray(weights, np.float32)
  if weights.shape != (len(target_labels), len(source_labels)):
    raise ValueError(
      f"weights {weights.shape} do not match {len(target_labels)} target and "
      f"{len(source_labels)} source labels"
    )
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


def plot_segmentation(images, true_masks, predicted_masks, path, class_names, titles=None):
  """Rows of image | true mask | predicted mask (docs/curriculum.md#f9). Masks hold
  class ids; class 0 (background) is black, the others tab10 / tab20 colours, with a
  legend. images (N, H, W) or (N, H, W, 1) in [0, 1]; masks (N, H, W); titles: one
  string per row for the predicted mask (e.g. its pixel accuracy)."""
  plt = viz.pyplot()
  from matplotlib import colors  # pylint: disable=g-import-not-at-top
  from matplotlib import patches  # pylint: disable=g-import-not-at-top

  images = np.asarray(images, np.float32)
  n, num_classes = len(images), len(class_names)
  palette = plt.get_cmap("tab10" if num_classes <= 11 else "tab20").colors
  cmap = colors.ListedColormap([(0.0, 0.0, 0.0)] + list(palette[: num_classes - 1]))
  fig, axes = plt.subplots(n, 3, figsize=(6.6, 2.2 * n + 0.6), squeeze=False)
  for i in range(n):
    panels = (images[i].reshape(images.shape[1:3]), true_masks[i], predicted_masks[i])
    for j, panel in enumerate(panels):
      ax = axes[i, j]
      if j == 0:
        ax.imshow(panel, cmap="gray", vmin=0.0, vmax=1.0)
      else:
        ax.imshow(
          np.asarray(panel), cmap=cmap, vmin=-0.5, vmax=num_classes - 0.5, interpolation="nearest"
        )
      ax.set_xticks([])
      ax.set_yticks([])
    if titles is not None:
      axes[i, 2].set_title(titles[i], fontsize=8)
  for j, name in enumerate(("image", "true mask", "predicted mask")):
    axes[0, j].set_title(name if titles is None or j != 2 else f"{name}\n{titles[0]}", fontsize=9)
  handles = [patches.Patch(color=cmap(c), label=str(name)) for c, name in enumerate(class_names)]
  fig.legend(
    handles=handles,
    loc="lower center",
    ncol=min(num_classes, 11),
    fontsize=7,
    handlelength=1.0,
    columnspacing=0.8,
  )
  fig.tight_layout(rect=(0, 0.5 / (2.2 * n + 0.6), 1, 1))
  fig.savefig(path, dpi=100)
  plt.close(fig)


# Panels of `plot_filtered_images`: (title, function of the image, display).
# 'clip' shows values in the image's [0, 1] range; 'stretch' maps each
# panel's min..max to black..white (for signed responses such as edges).
_FILTER_PANELS = (
  ("edge (Sobel |G|)", filters.edge_magnitude, "stretch"),
  ("edge (8-neighbour)", lambda x: filters.apply_kernel(x, filters.EDGE), "stretch"),
  ("sharpen", lambda x: filters.apply_kernel(x, filters.SHARPEN), "clip"),
  ("blur (Gaussian)", lambda x: filters.apply_kernel(x, filters.GAUSSIAN_BLUR), "clip"),
  ("emboss", lambda x: filters.apply_kernel(x, filters.EMBOSS), "stretch"),
)


def rescale_to_unit(x):
  """Min-max normalisation to [0, 1] (a constant array becomes 0.5)."""
  x = np.asarray(x, np.float32)
  low, high = float(x.min()), float(x.max())
  if high - low < 1e-12:
    return np.full_like(x, 0.5)
  return (x - low) / (high - low)


def _as_float_image(image):
  image = np.asarray(image)
  if image.dtype == np.uint8:
    image = image.astype(np.float32) / 255.0
  image = image.astype(np.float32)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  if image.ndim not in (2, 3):
    raise ValueError(f"image must be (H, W), (H, W, 1) or (H, W, 3), got {image.shape}")
  return image


def plot_filtered_images(image, path):
  """One row: the image, then its edge / sharpen / blur / emboss versions.

  image: (H, W), (H, W, 1) or (H, W, 3), floats in [0, 1] or uint8 (e.g. the
  first MNIST test image). Filters are `dlx.ops.filters` cross-correlations
  with 'edge' boundary; signed outputs are min-max stretched for display.
  """
  plt = viz.pyplot()
  image = _as_float_image(image)
  panels = [("original", image)]
  for title, function, display in _FILTER_PANELS:
    out = np.asarray(function(image))
    panels.append((title, rescale_to_unit(out) if display == "stretch" else np.clip(out, 0, 1)))
  fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.6))
  for ax, (title, panel) in zip(axes, panels):
    ax.imshow(
      panel, cmap="gray" if panel.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest"
    )
    ax.set_title(title, fontsize=9)
    ax.axis("off")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_first_layer_filters(kernel, path, scale: int | None = None):
  """Grid of conv filters from a kernel (kh, kw, in, out), each in [0, 1].

  in == 3: one RGB tile per output filter. Otherwise one grey tile per
  (input, output) pair, a row per output filter. Each tile is min-max
  normalised on its own. scale: pixel upscaling (default: tiles ~48 px).
  """
  kernel = np.asarray(kernel, np.float32)
  if kernel.ndim != 4:
    raise ValueError(f"kernel must be (kh, kw, in, out), got shape {kernel.shape}")
  kh, kw, num_in, num_out = kernel.shape
  if num_in == 3:
    tiles = [rescale_to_unit(kernel[..., o]) for o in range(num_out)]
    columns = None
  else:
    tiles = [
      rescale_to_unit(kernel[:, :, i, o])[..., None] for o in range(num_out) for i in range(num_in)
    ]
    columns = num_in if num_in > 1 else None
  scale = scale or max(1, math.ceil(48 / max(kh, kw)))
  save_image_grid(np.stack(tiles), path, num_columns=columns, scale=scale)


def plot_feature_maps(feature_maps, path, max_maps: int = 32, scale: int | None = None):
  """Grey grid of the first `max_maps` channels of activations (H, W, C) of
  one image (a leading batch axis of 1 is dropped); each map min-max
  normalised on its own."""
  maps = np.asarray(feature_maps, np.float32)
  if maps.ndim == 4 and maps.shape[0] == 1:
    maps = maps[0]
  if maps.ndim != 3:
    raise ValueError(f"feature_maps must be (H, W, C), got shape {maps.shape}")
  channels = min(maps.shape[-1], max_maps)
  tiles = np.stack([rescale_to_unit(maps[..., c])[..., None] for c in range(channels)])
  scale = scale or max(1, math.ceil(64 / max(maps.shape[:2])))
  save_image_grid(tiles, path, scale=scale)


def first_conv_kernel(params):
  """The first 4-D leaf (a 2-D conv kernel) of a params tree, in module order.

  Accepts `variables` (with 'params') or params. Walks dicts in insertion
  order, which is the order Flax created the modules in at init (a tree
  rebuilt with sorted keys, e.g. some checkpoint restores, may differ).
  """
  if isinstance(params, Mapping) and "params" in params:
    params = params["params"]

  def search(tree):
    if isinstance(tree, Mapping):
      for value in tree.values():
        found = search(value)
        if found is not None:
          return found
      return None
    return tree if np.ndim(tree) == 4 else None

  kernel = search(params)
  if kernel is None:
    raise ValueError("no 4-D (conv kernel) leaf in params")
  return kernel


def _module_path(module) -> str:
  return "/".join(module.path)


def feature_maps(model, variables, image, layer_name: str, **apply_kwargs):
  """Output of submodule `layer_name` (a path like 'Conv_0' or 'block1/conv')
  for one image (H, W, C), without the batch axis.

  Runs `model.apply` with flax `capture_intermediates` limited to that
  module's __call__; apply_kwargs go to apply (e.g. train=False). If the
  module runs several times, the first output is returned.
  """
  x = np.asarray(image)[None]
  wanted = lambda module, method: method == "__call__" and _module_path(module) == layer_name
  _, state = model.apply(
    variables, x, capture_intermediates=wanted, mutable=["intermediates"], **apply_kwargs
  )
  node = state.get("intermediates", {})
  for name in layer_name.split("/"):
    node = node.get(name, {}) if isinstance(node, Mapping) else {}
  if not isinstance(node, Mapping) or "__call__" not in node:
    _, every = model.apply(
      variables, x, capture_intermediates=True, mutable=["intermediates"], **apply_kwargs
    )
    names = sorted(_paths(every["intermediates"]))
    raise KeyError(f"no module {layer_name!r}; modules: {', '.join(names)}")
  output = node["__call__"][0]
  return np.asarray(output[0])


def _paths(tree, prefix=()):
  for name, value in tree.items():
    if name == "__call__":
      if prefix:
        yield "/".join(prefix)
    elif isinstance(value, Mapping):
      yield from _paths(value, prefix + (name,))


# ------------------------------------------------------------------ analysis figures


def plot_curve_panels(panels, path, *, ylabel, title=None, yscale="linear"):
  """Side-by-side panels of labelled lines sharing one y axis, e.g. a loss against epochs
  and against seconds (docs/curriculum.md#c4) or two spectral densities (#c6).

  panels: a list of dicts with 'curves' ({label: (xs, ys)}), 'xlabel', and optionally
  'title' and 'xscale' ('linear' or 'log'); a curve of one point is drawn as a marker."""
  plt = viz.pyplot()
  fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
  for ax, panel in zip(axes[0], panels):
    for label, (xs, ys) in panel["curves"].items():
      ax.plot(xs, ys, "o" if len(xs) == 1 else "-", label=label)
    ax.set_xlabel(panel["xlabel"])
    ax.set_ylabel(ylabel)
    ax.set_xscale(panel.get("xscale", "linear"))
    ax.set_yscale(yscale)
    if panel.get("title"):
      ax.set_title(panel["title"], fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_pca_clusters(points, colourings, variance_ratio, path):
  """2-D PCA scatter panels, one per colouring ({title: (N,) integer labels}, e.g. the
  true class and the k-means cluster), then the cumulative explained-variance curve
  (docs/curriculum.md#h1). points (N, 2): the first two principal coordinates."""
  plt = viz.pyplot()
  points = np.asarray(points)
  fig, axes = plt.subplots(1, len(colourings) + 1, figsize=(4.6 * (len(colourings) + 1), 4.2))
  for ax, (name, labels) in zip(axes, colourings.items()):
    labels = np.asarray(labels)
    scatter = ax.scatter(
      points[:, 0], points[:, 1], c=labels, cmap="tab10", s=6, vmin=-0.5, vmax=9.5
    )
    ax.set_title(name, fontsize=10)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    fig.colorbar(scatter, ax=ax, ticks=range(10), fraction=0.046)
  ratio = np.asarray(variance_ratio)
  ax = axes[-1]
  ax.plot(np.arange(1, len(ratio) + 1), np.cumsum(ratio), ".-")
  ax.set_xlabel("principal components")
  ax.set_ylabel("cumulative explained variance")
  ax.set_ylim(0, 1.02)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
