"""Weights in and out of other libraries' checkpoint formats (docs/interop.md).

  hf_clip          Hugging Face CLIP (CLIPModel, ViT image tower) directories <-> dlx's
                   CLIP: from_hf_clip, to_hf_clip
  hf_gpt2          Hugging Face GPT-2 directories <-> dlx's GPT: from_hf_gpt2, to_hf_gpt2
  safetensors_io   safetensors files as NumPy arrays (no torch), sharded checkpoints
  torchvision      torchvision classifiers (ResNet, VGG, AlexNet, DenseNet, GoogLeNet,
                   ViT) <-> dlx's models: from_torchvision, to_torchvision
  torchvision_rules  how a torchvision tensor becomes dlx variables and back
  torchvision_cnn  the CNNs' dlx models and weight maps
  torchvision_vit  the ViT's dlx model and weight map
  formats          the formats by name: --config.init_from's sources (hf-gpt2:DIR,
                   hf-clip:DIR, torchvision:ARCH:FILE, safetensors:FILE) and
                   dlx.tools.export's --format, one entry each

Reading and writing needs the `safetensors` package, dlx's [interop] extra.
"""

from dlx.interop.hf_clip import from_hf_clip
from dlx.interop.hf_clip import to_hf_clip
from dlx.interop.hf_gpt2 import from_hf_gpt2
from dlx.interop.hf_gpt2 import to_hf_gpt2
from dlx.interop.torchvision import from_torchvision
from dlx.interop.torchvision import to_torchvision

__all__ = ["from_hf_gpt2", "to_hf_gpt2"]
__all__ += ["from_torchvision", "to_torchvision"]
__all__ += ["from_hf_clip", "to_hf_clip"]
