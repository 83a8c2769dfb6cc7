"""PNG figures of detection and segmentation scenes (docs/curriculum.md#d7, #f10, #f11):
each image with its class mask tinted, its boxes outlined and labelled, and optionally a
model's predicted boxes on top. PIL only (no matplotlib)."""

import math

import numpy as np
from PIL import Image
from PIL import ImageDraw

# matplotlib's tab10, one colour per class, with yellow for its grey (class 7).
PALETTE = np.array(
  [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (255, 230, 0),
    (188, 189, 34),
    (23, 190, 207),
  ],
  np.uint8,
)


def _colour(label) -> tuple:
  return tuple(int(v) for v in PALETTE[int(label) % len(PALETTE)])


def render_scene(
  image,
  boxes=None,
  labels=None,
  valid=None,
  mask=None,
  predictions=None,
  scale: int = 3,
  class_names=None,
) -> Image.Image:
  """One scene as an RGB image, `scale` times larger.

  Args:
    image: (H, W) or (H, W, 1) intensities in [0, 1].
    boxes, labels, valid: ground truth, (M, 4) x1 y1 x2 y2 pixels, (M,), (M,) bool.
    mask: (H, W) ints, 0 background, class c -> c + 1: those pixels are tinted.
    predictions: dict with 'boxes' (P, 4), 'classes' (P,) and optional 'scores' and
      'valid', drawn as thin outlines with the class (and score).
    scale: pixels per scene pixel (nearest neighbour).
    class_names: label text per class (default the class id).
  """
  gray = np.clip(np.asarray(image, np.float32).reshape(np.shape(image)[:2]), 0, 1)
  rgb = np.repeat(gray[..., None], 3, axis=-1)
  if mask is not None:
    mask = np.asarray(mask)
    fg = mask > 0
    tint = PALETTE[(mask[fg] - 1) % len(PALETTE)].astype(np.float32) / 255
    rgb[fg] = np.maximum(gray[fg], 0.35)[:, None] * tint
  img = Image.fromarray((rgb * 255).round().astype(np.uint8))
  img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
  draw = ImageDraw.Draw(img)
  name = lambda c: str(class_names[int(c)]) if class_names is not None else str(int(c))
  if boxes is not None:
    valid = np.ones(len(boxes), bool) if valid is None else np.asarray(valid, bool)
    for box, label in zip(np.asarray(boxes)[valid], np.asarray(labels)[valid]):
      x1, y1, x2, y2 = (float(v) * scale for v in box)
      draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=_colour(label), width=2)
      draw.text((x1 + 2, y1 + 1), name(label), fill=_colour(label))
  if predictions is not None:
    p_boxes = np.asarray(predictions["boxes"])
    p_valid = np.asarray(predictions.get("valid", np.ones(len(p_boxes), bool)), bool)
    scores = predictions.get("scores")
    for k in np.flatnonzero(p_valid):
      x1, y1, x2, y2 = (float(v) * scale for v in p_boxes[k])
      cls = predictions["classes"][k]
      draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=(255, 255, 255), width=1)
      text = name(cls) if scores is None else f"{name(cls)} {float(scores[k]):.2f}"
      draw.text((x1 + 2, max(y2 - 11, y1)), text, fill=(255, 255, 255))
  return img


def draw_scenes(
  split,
  path,
  num_examples: int = 16,
  num_columns: int = 4,
  scale: int = 3,
  predictions=None,
  class_names=None,
):
  """Saves the first `num_examples` scenes of a split (dlx.data.scenes arrays: 'inputs',
  'boxes', 'labels', 'valid', optional 'mask') as one PNG grid; `predictions` holds
  batched arrays ('boxes' (N, P, 4), 'classes', optional 'scores', 'valid')."""
  n = min(num_examples, len(split["inputs"]))
  tiles = []
  for i in range(n):
    pred = None if predictions is None else {k: np.asarray(v)[i] for k, v in predictions.items()}
    tiles.append(
      render_scene(
        split["inputs"][i],
        split["boxes"][i],
        split["labels"][i],
        split["valid"][i],
        split["mask"][i] if "mask" in split else None,
        pred,
        scale,
        class_names,
      )
    )
  cols = max(1, min(num_columns, n))
  rows = max(1, math.ceil(n / cols))
  pad = 4
  w, h = (tiles[0].width, tiles[0].height) if tiles else (1, 1)
  grid = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + pad) + pad), (64, 64, 64))
  for i, tile in enumerate(tiles):
    r, c = divmod(i, cols)
    grid.paste(tile, (pad + c * (w + pad), pad + r * (h + pad)))
  grid.save(path)
