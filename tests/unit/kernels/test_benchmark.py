"""benchmarks/onednn_conv.py runs end to end (its numbers are not asserted)."""

from tests.experiments import test_benchmarks


def test_onednn_conv_benchmark_runs(extension):
  done = test_benchmarks._run("benchmarks/onednn_conv.py", "--repeats=1", "--batch_size=2")
  assert done.stdout.count("x\n") == 6  # a speed-up per row
