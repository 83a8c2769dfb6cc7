"""The oneDNN extension for the kernel tests: built here when this machine can build it
(so a fresh checkout tests it), skipped only when oneDNN or a compiler is absent, or when
the run hides it on purpose (DLX_NO_ONEDNN=1: the suite as on a machine without it)."""

import os

import pytest

from dlx.kernels import onednn


@pytest.fixture(scope="session")
def extension():
  if os.environ.get("DLX_NO_ONEDNN", "") not in ("", "0"):
    pytest.skip("the extension is hidden (DLX_NO_ONEDNN is set); unset it to test it")
  reason = onednn.source_missing()
  if reason:
    pytest.skip(f"oneDNN source absent: {reason}")
  onednn.build()  # a no-op when this source's build exists; a compile error fails
  onednn.reset_for_tests()
  library = onednn.load()
  assert library is not None, f"the built extension does not load: {onednn.missing()}"
  return library
