"""metrics.jsonl: what MetricWriter writes, read_metrics reads back, torn lines skipped;
the mean of the steps between log points."""

import json

import jax.numpy as jnp
import numpy as np

from dlx.training import metric_writers


def test_written_rows_read_back_in_order_and_by_split(tmp_path):
  writer = metric_writers.MetricWriter(str(tmp_path))
  writer.write(2, "train", {"loss": 0.5})
  writer.write(2, "validation", {"loss": 0.75, "accuracy": 0.25})
  writer.write(4, "train", {"loss": 0.125})
  writer.close()
  rows = metric_writers.read_metrics(tmp_path)
  assert rows == [
    {"step": 2, "split": "train", "loss": 0.5},
    {"step": 2, "split": "validation", "loss": 0.75, "accuracy": 0.25},
    {"step": 4, "split": "train", "loss": 0.125},
  ]
  assert [r["step"] for r in metric_writers.read_metrics(tmp_path, "train")] == [2, 4]
  assert metric_writers.read_metrics(tmp_path / "metrics.jsonl", "validation") == rows[1:2]
  assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())


def test_torn_and_garbage_lines_are_skipped(tmp_path):
  good = {"step": 1, "split": "train", "loss": 1.0}
  (tmp_path / "metrics.jsonl").write_text(
    json.dumps(good) + "\n" + "[1, 2]\n" + "\n" + '{"step": 2, "split": "tr'
  )
  assert metric_writers.read_metrics(tmp_path) == [good]


def test_no_file_is_no_rows(tmp_path):
  assert metric_writers.read_metrics(tmp_path) == []


def test_mean_of_is_numpys_mean_per_metric():
  rng = np.random.default_rng(0)
  rows = [{"loss": rng.normal(), "accuracy": rng.uniform()} for _ in range(37)]
  history = [{k: jnp.float32(v) for k, v in row.items()} for row in rows]
  means = metric_writers.mean_of(history)
  assert set(means) == {"loss", "accuracy"}
  for key in means:
    expected = np.mean(np.float32([row[key] for row in rows]))
    np.testing.assert_allclose(means[key], expected, rtol=1e-6)
    assert isinstance(means[key], float)
