"""`python -m dlx.tools.aot_check`: the verdict's wording, the out-of-memory error's numbers,
one-line errors (a bad topology, no libtpu); with libtpu in its side directory
(`./launch.sh tpu-tools`), real compiles for TPU topologies in subprocesses: a small GPT
fits a v5e:2x2, and the 1.5B-parameter GPT of docs/scaling.md does not fit v5e:4x4 chips
replicated but fits with its state sharded 16 ways (slow: minutes of XLA's compiler)."""

import os
import re
import subprocess
import sys
import types

import pytest

from dlx.tools import aot_check
from tests import conftest

HAS_LIBTPU = os.path.isfile(os.path.join(aot_check.libtpu_dir(), "libtpu", "libtpu.so"))
needs_libtpu = pytest.mark.skipif(
  not HAS_LIBTPU,
  reason=f"libtpu is not in {aot_check.libtpu_dir()}; ./launch.sh tpu-tools installs it",
)
GPT_1_5B = (
  "--config.model.num_layers=48",
  "--config.model.features=1600",
  "--config.model.num_heads=25",
  "--config.context_length=512",
  "--config.batch_size=16",
)
FITS = re.compile(r"\bfits\b")


def _main(capsys, *argv):
  with pytest.raises(SystemExit) as exit_info:
    aot_check.main(list(argv))
  return exit_info.value.code, capsys.readouterr().err


def _run(*argv, timeout=1800):
  done = subprocess.run(
    [sys.executable, "-m", "dlx.tools.aot_check", "gpt_shakespeare_char", *argv],
    cwd=conftest.REPO,
    capture_output=True,
    text=True,
    timeout=timeout,
  )
  return done.returncode, done.stdout, done.stderr


def test_the_verdict_says_fits_or_does_not_fit_never_both():
  fits = aot_check.verdict(9 << 30, int(15.75 * (1 << 30)))
  assert fits == "verdict: fits (9.00 GiB of 15.75 GiB HBM per chip)"
  too_big = aot_check.verdict(40 << 30, 16 << 30)
  assert too_big == "verdict: does not fit (40.00 GiB of 16.00 GiB HBM per chip)"
  assert "does not fit" not in fits and not FITS.search(too_big)
  # Exactly full fits; an estimate the compiler gave up on never does.
  assert FITS.search(aot_check.verdict(16 << 30, 16 << 30))
  at_least = aot_check.verdict(1 << 30, 16 << 30, at_least=True)
  assert at_least == "verdict: does not fit (at least 1.00 GiB of 16.00 GiB HBM per chip)"


def test_bytes_read_as_gib_or_mib():
  assert aot_check.human_bytes(int(2.5 * (1 << 30))) == "2.50 GiB"
  assert aot_check.human_bytes(38 << 20) == "38.0 MiB"
  assert aot_check.human_bytes(-(900 << 20)) == "-900.0 MiB"


def test_the_memory_total_counts_donated_arguments_once():
  stats = types.SimpleNamespace(
    argument_size_in_bytes=100,
    output_size_in_bytes=90,
    alias_size_in_bytes=80,
    temp_size_in_bytes=1000,
    generated_code_size_in_bytes=7,
  )
  rows = dict(aot_check.memory_rows(stats))
  assert rows["total"] == 100 + 90 - 80 + 1000 + 7


def test_the_compilers_out_of_memory_error_gives_needed_and_available_bytes():
  gib = 1 << 30
  new = (
    "RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for HLO "
    "temporaries (22.54G) exceeds available HBM (15.75G)."
  )
  assert aot_check.oom_numbers(new) == (int(22.54 * gib), int(15.75 * gib))
  old = "Ran out of memory in memory space hbm. Used 63.80G of 30.75G hbm. Exceeded hbm"
  assert aot_check.oom_numbers(old) == (int(63.80 * gib), int(30.75 * gib))
  assert aot_check.oom_numbers("RESOURCE_EXHAUSTED: something else") == (None, None)


def test_the_hbm_table_is_each_chips_usable_size():
  gib = 1 << 30
  nominal = {"TPU v4": 32, "TPU v5 lite": 16, "TPU v5": 96, "TPU v6 lite": 32}
  assert set(aot_check.HBM_BYTES) == set(nominal)
  for kind, size in nominal.items():
    assert (size - 1.5) * gib < aot_check.HBM_BYTES[kind] < size * gib, kind


def test_topologies_are_libtpu_names():
  assert aot_check.parse_topology("v5e:4x4") == ("v5e:4x4", {})
  assert aot_check.parse_topology("v4:2x2x2") == ("v4:2x2x2", {"chip_config_name": "megacore"})
  for bad in ("v5e-16", "v5e", "4x4", "v5e:4", "tpu:4x4x4x4"):
    with pytest.raises(ValueError, match="CHIP:SHAPE"):
      aot_check.parse_topology(bad)


def test_bad_arguments_are_one_line_and_exit_2(capsys):
  code, err = _main(capsys, "gpt_shakespeare_char", "--topology=v5e-16")
  assert code == 2 and err.count("\n") == 1 and "--topology='v5e-16'" in err
  code, err = _main(capsys, "gpt_shakespeare_char")
  assert code == 2 and err.count("\n") == 1 and "--topology" in err


def test_without_libtpu_it_says_how_to_install_it(capsys, monkeypatch, tmp_path):
  if aot_check.importlib.util.find_spec("libtpu") is not None:
    pytest.skip("libtpu is installed in this environment (the [tpu] extra)")
  monkeypatch.setenv("DLX_LIBTPU_DIR", str(tmp_path))
  code, err = _main(capsys, "gpt_shakespeare_char", "--topology=v5e:2x2")
  assert code == 2 and err.count("\n") == 1
  assert f"libtpu (XLA's TPU compiler) is not in {tmp_path}" in err
  assert "./launch.sh tpu-tools installs it" in err


@needs_libtpu
def test_a_small_gpt_fits_a_v5e_slice():
  code, out, err = _run(
    "--topology=v5e:2x2",
    "--config.model.num_layers=1",
    "--config.mesh.data=1",
    "--config.mesh.fsdp=4",
  )
  assert code == 0, out + err
  assert "4 chips (TPU v5 lite)" in out and "mesh: data=1 fsdp=4 tensor=1" in out
  assert "HBM per chip: 15.75 GiB" in out
  assert re.search(r"^verdict: fits \([\d.]+ MiB of 15.75 GiB HBM per chip\)$", out, re.M)
  assert "TPU_WORKER_HOSTNAMES" not in err and "TPU_ACCELERATOR_TYPE" not in err


@needs_libtpu
def test_a_topologys_bad_shape_is_one_line():
  code, out, err = _run("--topology=v5e:3x3")
  assert code == 2 and err.count("\n") == 1 and "--topology=v5e:3x3" in err, out + err


@needs_libtpu
@pytest.mark.slow
def test_a_1_5b_gpt_fits_v5e_chips_only_with_its_state_sharded():
  """The command in docs/scaling.md: 1.5B parameters and Adam's two moments are 17.7 GB
  of float32, more than a v5e chip's 15.75 GiB replicated, a sixteenth of it sharded."""
  code, out, err = _run("--topology=v5e:4x4", *GPT_1_5B, "--config.mesh.data=16")
  assert code == 1 and "verdict: does not fit" in out and not FITS.search(out), out + err
  code, out, err = _run(
    "--topology=v5e:4x4", *GPT_1_5B, "--config.mesh.data=1", "--config.mesh.fsdp=16"
  )
  assert code == 0 and "verdict: fits" in out and "does not fit" not in out, out + err
  assert "parameters: 1,47" in out
