"""Weights in and out of other libraries' checkpoint formats (docs/interop.md).

  hf_gpt2          Hugging Face GPT-2 directories <-> dlx's GPT: from_hf_gpt2, to_hf_gpt2
  safetensors_io   safetensors files as NumPy arrays (no torch), sharded checkpoints

Reading and writing needs the `safetensors` package, dlx's [interop] extra.
"""

from dlx.interop.hf_gpt2 import from_hf_gpt2
from dlx.interop.hf_gpt2 import to_hf_gpt2

__all__ = ["from_hf_gpt2", "to_hf_gpt2"]
