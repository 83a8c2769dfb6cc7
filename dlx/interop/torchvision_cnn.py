"""torchvision's CNN classifiers as dlx models, and their weight maps (rules in
dlx/interop/torchvision_rules.py).

  resnet18/34/50      dlx.models.resnet as it is: 7x7/2 stem, 3x3/2 max pool with padding
                      1, basic or bottleneck blocks with the stride on the 3x3 (v1.5),
                      1x1 conv + BN projections, global average pool, fc
  vgg11..19[_bn]      dlx.models.vgg.VGG as it is (bias on every conv, BN after it in _bn)
  alexnet             AlexNet(conv_widths=TORCHVISION_WIDTHS, use_lrn=False)
  densenet121         dlx.models.densenet.densenet121 as it is
  googlenet           GoogLeNet(dropout_rate=0.2, transform_input=...); with aux1/aux2
                      when the checkpoint has them (the pretrained file does, untrained)

Name maps (torchvision -> dlx):
  ResNet    conv1, bn1 -> stem_conv, stem_bn; layer{s}.{i}.conv{j}, bn{j} ->
            stage{s}_block{i+1}/Conv_{j-1}, BatchNorm_{j-1}; downsample.0, .1 -> projection,
            projection_bn; fc -> classifier
  VGG       features.{n} (conv, bn) -> stage{s}_conv{j}, stage{s}_bn{j};
            classifier.0, .3, .6 -> fc1, fc2, fc3
  AlexNet   features.0, 3, 6, 8, 10 -> conv1..conv5; classifier.1, .4, .6 -> fc6, fc7, fc8
  DenseNet  features.conv0, norm0 -> stem_conv, stem_bn; denseblock{b}.denselayer{l}.norm1,
            conv1, norm2, conv2 -> denseblock{b}/layer{l}/BatchNorm_0, Conv_0, BatchNorm_1,
            Conv_1; transition{b}.norm, conv -> transition{b}/BatchNorm_0, Conv_0;
            norm5 -> final_bn; classifier -> classifier
  GoogLeNet conv{n}.conv, .bn -> conv{n}/Conv_0, BatchNorm_0; inception{x}.branch1,
            branch2.0, branch2.1, branch3.0, branch3.1, branch4.1 -> branch1x1,
            branch3x3_reduce, branch3x3, branch5x5_reduce, branch5x5, pool_proj;
            aux{k}.conv, fc1, fc2 -> aux{k}/conv, fc1, fc2; fc -> fc

The first linear layer after a flatten (VGG's classifier.0 from 512x7x7, AlexNet's
classifier.1 from 256x6x6, GoogLeNet's aux fc1 from 128x4x4) has its input columns
permuted from NCHW to NHWC order (torchvision_rules.linear).
"""

from dlx.interop.torchvision_rules import Arch
from dlx.interop.torchvision_rules import batch_norm
from dlx.interop.torchvision_rules import conv
from dlx.interop.torchvision_rules import linear
from dlx.interop.torchvision_rules import need
from dlx.models import alexnet
from dlx.models import densenet
from dlx.models import googlenet
from dlx.models import resnet
from dlx.models import vgg


def _head_options(torch_key: str, dlx_path: str):
  """options() that reads num_classes from the last linear layer."""

  def options(shapes, side):
    if side == "torch":
      return {"num_classes": need(shapes, torch_key, 2)[0]}
    return {"num_classes": need(shapes, dlx_path, 2)[1]}

  return options


def _conv_bn(torch_conv, torch_bn, dlx_conv, dlx_bn) -> list:
  return conv(torch_conv, dlx_conv) + batch_norm(torch_bn, dlx_bn)


# ----------------------------------------------------------------------------- ResNet


def _resnet_rules(model, paths) -> list:
  rules = _conv_bn("conv1", "bn1", "stem_conv", "stem_bn")
  convs = 3 if model.block is resnet.BottleneckBlock else 2
  for s, blocks in enumerate(model.stage_sizes):
    for i in range(blocks):
      t, d = f"layer{s + 1}.{i}", f"stage{s + 1}_block{i + 1}"
      for j in range(convs):
        rules += _conv_bn(
          f"{t}.conv{j + 1}", f"{t}.bn{j + 1}", f"{d}/Conv_{j}", f"{d}/BatchNorm_{j}"
        )
      if f"params/{d}/projection/kernel" in paths:
        rules += _conv_bn(
          f"{t}.downsample.0", f"{t}.downsample.1", f"{d}/projection", f"{d}/projection_bn"
        )
  return rules + linear("fc", "classifier")


def _resnet(constructor) -> Arch:
  return Arch(
    build=lambda options: constructor(options["num_classes"]),
    options=_head_options("fc.weight", "params/classifier/kernel"),
    rules=_resnet_rules,
  )


# -------------------------------------------------------------------------------- VGG


def _vgg_rules(model, paths) -> list:
  rules, index = [], 0  # index: position in torchvision's `features` Sequential
  for s, widths in enumerate(model.stage_config):
    for j in range(len(widths)):
      rules += conv(f"features.{index}", f"stage{s + 1}_conv{j + 1}", bias=True)
      if model.batch_norm:
        rules += batch_norm(f"features.{index + 1}", f"stage{s + 1}_bn{j + 1}")
      index += 3 if model.batch_norm else 2  # conv (+ bn) + relu
    index += 1  # max pool
  pooled = (model.stage_config[-1][-1], model.pooled_size, model.pooled_size)
  rules += linear("classifier.0", "fc1", flatten=pooled)
  return rules + linear("classifier.3", "fc2") + linear("classifier.6", "fc3")


def _vgg(config, with_bn: bool) -> Arch:
  return Arch(
    build=lambda options: vgg.VGG(config, options["num_classes"], batch_norm=with_bn),
    options=_head_options("classifier.6.weight", "params/fc3/kernel"),
    rules=_vgg_rules,
  )


# ---------------------------------------------------------------------------- AlexNet


def _alexnet_rules(model, paths) -> list:
  rules = []
  for index, name in zip((0, 3, 6, 8, 10), ("conv1", "conv2", "conv3", "conv4", "conv5")):
    rules += conv(f"features.{index}", name, bias=True)
  pooled = (model.conv_widths[-1], model.pooled_size, model.pooled_size)
  rules += linear("classifier.1", "fc6", flatten=pooled)
  return rules + linear("classifier.4", "fc7") + linear("classifier.6", "fc8")


ALEXNET = Arch(
  build=lambda options: alexnet.AlexNet(
    options["num_classes"], conv_widths=alexnet.TORCHVISION_WIDTHS, use_lrn=False
  ),
  options=_head_options("classifier.6.weight", "params/fc8/kernel"),
  rules=_alexnet_rules,
)


# --------------------------------------------------------------------------- DenseNet


def _densenet_rules(model, paths) -> list:
  rules = _conv_bn("features.conv0", "features.norm0", "stem_conv", "stem_bn")
  for b, layers in enumerate(model.block_config):
    for i in range(layers):
      t, d = f"features.denseblock{b + 1}.denselayer{i + 1}", f"denseblock{b + 1}/layer{i + 1}"
      rules += batch_norm(f"{t}.norm1", f"{d}/BatchNorm_0") + conv(f"{t}.conv1", f"{d}/Conv_0")
      rules += batch_norm(f"{t}.norm2", f"{d}/BatchNorm_1") + conv(f"{t}.conv2", f"{d}/Conv_1")
    if b < len(model.block_config) - 1:
      t, d = f"features.transition{b + 1}", f"transition{b + 1}"
      rules += batch_norm(f"{t}.norm", f"{d}/BatchNorm_0") + conv(f"{t}.conv", f"{d}/Conv_0")
  return rules + batch_norm("features.norm5", "final_bn") + linear("classifier", "classifier")


DENSENET121 = Arch(
  build=lambda options: densenet.densenet121(options["num_classes"]),
  options=_head_options("classifier.weight", "params/classifier/kernel"),
  rules=_densenet_rules,
)


# -------------------------------------------------------------------------- GoogLeNet

# torchvision's Inception branch -> dlx's InceptionBlock layer.
_BRANCHES = (
  ("branch1", "branch1x1"),
  ("branch2.0", "branch3x3_reduce"),
  ("branch2.1", "branch3x3"),
  ("branch3.0", "branch5x5_reduce"),
  ("branch3.1", "branch5x5"),
  ("branch4.1", "pool_proj"),
)


def _basic_conv(torch_name, dlx_name) -> list:
  """torchvision's BasicConv2d (conv + bn) -> dlx's ConvBNReLU."""
  return _conv_bn(
    f"{torch_name}.conv", f"{torch_name}.bn", f"{dlx_name}/Conv_0", f"{dlx_name}/BatchNorm_0"
  )


def _googlenet_rules(model, paths) -> list:
  rules = []
  for name in ("conv1", "conv2", "conv3"):
    rules += _basic_conv(name, name)
  for block in googlenet.INCEPTION_CONFIG:
    for t, d in _BRANCHES:
      rules += _basic_conv(f"inception{block}.{t}", f"inception{block}/{d}")
  if model.aux_logits:
    for aux in ("aux1", "aux2"):
      rules += _basic_conv(f"{aux}.conv", f"{aux}/conv")
      rules += linear(f"{aux}.fc1", f"{aux}/fc1", flatten=(128, 4, 4))
      rules += linear(f"{aux}.fc2", f"{aux}/fc2")
  return rules + linear("fc", "fc")


def _googlenet_options(shapes, side):
  options = _head_options("fc.weight", "params/fc/kernel")(shapes, side)
  options["aux_logits"] = (
    "aux1.fc2.weight" if side == "torch" else "params/aux1/fc2/kernel"
  ) in shapes
  return options


GOOGLENET = Arch(
  build=lambda options: googlenet.GoogLeNet(
    options["num_classes"],
    options["aux_logits"],
    dropout_rate=0.2,
    transform_input=options.get("transform_input", True),
  ),
  options=_googlenet_options,
  rules=_googlenet_rules,
)


ARCHS = {
  "resnet18": _resnet(resnet.resnet18),
  "resnet34": _resnet(resnet.resnet34),
  "resnet50": _resnet(resnet.resnet50),
  **{f"vgg{depth}": _vgg(config, False) for depth, config in vgg.DEPTHS.items()},
  **{f"vgg{depth}_bn": _vgg(config, True) for depth, config in vgg.DEPTHS.items()},
  "alexnet": ALEXNET,
  "densenet121": DENSENET121,
  "googlenet": GOOGLENET,
}
