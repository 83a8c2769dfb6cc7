"""The test setup itself: the fast suite's cheaper XLA code generation reaches in-process
tests and the subprocesses they start; a slow selection keeps XLA's defaults."""

import os

import pytest

from dlx import config as config_lib
from tests import conftest


@pytest.mark.skipif(os.environ.get("DLX_TEST_FULL_OPT", "0") != "0", reason="DLX_TEST_FULL_OPT set")
def test_the_fast_suite_and_its_subprocesses_compile_cheaply():
  forced = "--xla_force_host_platform_device_count=2"
  for flags in (
    os.environ.get("XLA_FLAGS", ""),
    conftest.subprocess_env()["XLA_FLAGS"],
    conftest.subprocess_env(XLA_FLAGS=forced)["XLA_FLAGS"],
  ):
    assert all(flag in flags.split() for flag in config_lib.FAST_COMPILE_XLA_FLAGS), flags
  assert forced in conftest.subprocess_env(XLA_FLAGS=forced)["XLA_FLAGS"].split()
  assert "device_count" not in conftest.subprocess_env()["XLA_FLAGS"]


@pytest.mark.parametrize(
  "markexpr, slow",
  [("not slow", False), ("", False), (None, False), ("slow", True), ("slow and torch", True)],
)
def test_only_a_slow_selection_keeps_xla_defaults(markexpr, slow):
  assert conftest._selects_slow_tests(markexpr) is slow  # pylint: disable=protected-access
