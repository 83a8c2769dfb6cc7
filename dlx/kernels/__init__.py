"""Convolutions on the CPU through oneDNN, the library behind PyTorch's CPU convolutions
(docs/cpu_kernels.md): an optional C++ extension registered with XLA's FFI.

  onednn   builds (python -m dlx.kernels.onednn) and loads the extension
  route    which implementation convolutions trace to: 'onednn' or 'xla' (the default)
  conv     conv_general_dilated (lax's signature, routed) and onednn_conv
"""
