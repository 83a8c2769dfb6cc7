"""The oneDNN extension for the kernel tests: built here when this machine can build it
(so a fresh checkout tests it), skipped only when oneDNN or a compiler is absent."""

import pytest

from dlx.kernels import onednn


@pytest.fixture(scope="session")
def extension():
  reason = onednn.source_missing()
  if reason:
    pytest.skip(f"oneDNN source absent: {reason}")
  onednn.build()  # a no-op when this source's build exists; a compile error fails
  onednn.reset_for_tests()
  library = onednn.load()
  assert library is not None, f"the built extension does not load: {onednn.missing()}"
  return library
