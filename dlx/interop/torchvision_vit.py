"""torchvision's Vision Transformer as dlx's ViT, and its weight map (rules in
dlx/interop/torchvision_rules.py).

  vit_b_16   ViT(patch 16, 12 layers, 12 heads, 768 dims, MLP 3072,
             layer_norm_epsilon=1e-6, activation='gelu_exact')

The number of positions, and so the image side, comes from encoder.pos_embedding
(1, 1 + (side / 16)^2, 768): 224 for torchvision's weights. Name map (torchvision -> dlx):

  conv_proj                                  patch_embedding
  class_token (1, 1, 768)                    class_token
  encoder.pos_embedding (1, N + 1, 768)      position_embedding/embedding (N + 1, 768)
  encoder.layers.encoder_layer_{i}.ln_1      encoder/layer_{i}/attention_norm
    .self_attention.in_proj_weight, _bias    .../self_attention/{query,key,value}: rows
                                             [0, d), [d, 2d), [2d, 3d), transposed
    .self_attention.out_proj                 .../self_attention/out
    .ln_2                                    .../feed_forward_norm
    .mlp.0, .mlp.3                           .../feed_forward/hidden, output
  encoder.ln                                 encoder/final_norm
  heads.head                                 head
"""

import math

from dlx.interop.safetensors_io import CheckpointError
from dlx.interop.torchvision_rules import Arch
from dlx.interop.torchvision_rules import Rule
from dlx.interop.torchvision_rules import conv
from dlx.interop.torchvision_rules import layer_norm
from dlx.interop.torchvision_rules import linear
from dlx.interop.torchvision_rules import need
from dlx.interop.torchvision_rules import same
from dlx.models.vit import ViT

_QKV = ("query", "key", "value")


def _in_projection(torch_name: str, dlx_name: str) -> list:
  """nn.MultiheadAttention's packed (3d, d) in_proj -> three (d, d) Dense kernels."""
  paths = lambda field: tuple(f"params/{dlx_name}/{n}/{field}" for n in _QKV)

  def split(x, transpose):
    d = x.shape[0] // 3
    return tuple(
      x[j * d : (j + 1) * d].T if transpose else x[j * d : (j + 1) * d] for j in range(3)
    )

  return [
    Rule(
      (f"{torch_name}.in_proj_weight",),
      paths("kernel"),
      lambda w: split(w, True),
      lambda xp, *kernels: (xp.concatenate([k.T for k in kernels], axis=0),),
    ),
    Rule(
      (f"{torch_name}.in_proj_bias",),
      paths("bias"),
      lambda b: split(b, False),
      lambda xp, *biases: (xp.concatenate(biases, axis=0),),
    ),
  ]


def _vit_rules(model, paths) -> list:
  rules = same("class_token", "params/class_token") + conv(
    "conv_proj", "patch_embedding", bias=True
  )
  rules.append(
    Rule(
      ("encoder.pos_embedding",),
      ("params/position_embedding/embedding",),
      lambda x: (x[0],),
      lambda xp, x: (x[None],),
    )
  )
  for i in range(model.num_layers):
    t, d = f"encoder.layers.encoder_layer_{i}", f"encoder/layer_{i}"
    rules += layer_norm(f"{t}.ln_1", f"{d}/attention_norm")
    rules += _in_projection(f"{t}.self_attention", f"{d}/self_attention")
    rules += linear(f"{t}.self_attention.out_proj", f"{d}/self_attention/out")
    rules += layer_norm(f"{t}.ln_2", f"{d}/feed_forward_norm")
    rules += linear(f"{t}.mlp.0", f"{d}/feed_forward/hidden")
    rules += linear(f"{t}.mlp.3", f"{d}/feed_forward/output")
  return rules + layer_norm("encoder.ln", "encoder/final_norm") + linear("heads.head", "head")


def _vit(patch_size, num_layers, num_heads, features, hidden) -> Arch:
  def options(shapes, side):
    if side == "torch":
      classes = need(shapes, "heads.head.weight", 2)[0]
      positions = need(shapes, "encoder.pos_embedding", 3)[1]
    else:
      classes = need(shapes, "params/head/kernel", 2)[1]
      positions = need(shapes, "params/position_embedding/embedding", 2)[0]
    side_patches = math.isqrt(max(positions - 1, 0))
    if positions < 2 or side_patches**2 != positions - 1:
      raise CheckpointError(
        f"{positions} positions is not 1 + (image_size / {patch_size})^2 for a square image"
      )
    return {"num_classes": classes, "image_size": side_patches * patch_size}

  def build(options):
    return ViT(
      options["num_classes"],
      patch_size,
      num_layers,
      num_heads,
      features,
      hidden,
      layer_norm_epsilon=1e-6,
      activation="gelu_exact",
    )

  # The image side is not a ViT attribute: the position table's length is (side / p)^2 + 1.
  image_side = lambda options: options["image_size"]
  return Arch(build=build, options=options, rules=_vit_rules, input_side=image_side)


ARCHS = {"vit_b_16": _vit(16, 12, 12, 768, 3072)}
