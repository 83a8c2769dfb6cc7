"""Sharded training on 8 forced CPU devices (dlx/training/sharding.py, docs/scaling.md):
FSDP and tensor parallelism give the replicated run's losses; a device holds 1/fsdp of
the parameters (plus the small leaves kept whole); a checkpoint restores onto another
mesh with identical arrays; a run saved with fsdp=8 resumes on 2 devices and ends where
the uninterrupted run does; two processes of 4 devices train as one process of 8."""

import json
import socket
import subprocess
import sys

import pytest

from tests import conftest

# Reduction orders differ between meshes: the same sums in another order.
RTOL = 1e-4
GPT = [
  "--config.model.num_layers=1",
  "--config.model.features=64",
  "--config.context_length=32",
  "--config.batch_size=16",
  "--config.optimizer.warmup_steps=2",
]


def _env(devices):
  return conftest.subprocess_env(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def _worker(*args, devices=8, timeout=600):
  """tests/system/sharded_steps.py's JSON line, run with `devices` forced CPU devices."""
  out = subprocess.run(
    [sys.executable, "-m", "tests.system.sharded_steps", *args],
    cwd=conftest.REPO,
    env=_env(devices),
    capture_output=True,
    text=True,
    timeout=timeout,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def _assert_same_losses(runs, reference):
  want = runs[reference]["losses"]
  for mesh, run in runs.items():
    assert run["losses"] == pytest.approx(want, rel=RTOL), mesh


def _assert_fsdp_holds_its_share(run, fsdp):
  share = run["param_bytes_total"] / fsdp + run["small_leaf_bytes"]
  assert run["param_bytes_per_device"] <= share
  share = run["opt_state_bytes_total"] / fsdp + run["small_opt_state_bytes"]
  assert run["opt_state_bytes_per_device"] <= share


def test_gpt_fsdp_and_tensor_parallel_give_the_replicated_losses():
  # fast_compile on every mesh alike: compiling is most of this test's time.
  runs = _worker(
    "gpt_shakespeare_char", "20", "8,1,1", "1,8,1", "1,2,4", *GPT, "--config.fast_compile=True"
  )
  _assert_same_losses(runs, "8,1,1")
  _assert_fsdp_holds_its_share(runs["1,8,1"], 8)
  assert runs["8,1,1"]["param_bytes_per_device"] == runs["8,1,1"]["param_bytes_total"]
  # Tensor x FSDP: heads and hidden units over 4, the rest over 2.
  assert runs["1,2,4"]["param_bytes_per_device"] < runs["1,2,4"]["param_bytes_total"] / 4


VISION = {
  "vit_mnist": [
    "--config.model.num_layers=2",
    "--config.model.features=64",
    "--config.model.hidden=128",
    "--config.batch_size=16",
    "--config.optimizer.learning_rate=1e-4",
  ],
  # Batch 32: batch norm over 16 examples lets reduction order grow past 1e-4 in 20 steps.
  "resnet_fashion_mnist": [
    "--config.model.width=24",
    "--config.batch_size=32",
    "--config.optimizer.learning_rate=1e-4",
  ],
}


@pytest.mark.slow  # fast siblings: tests/unit/training/test_sharding.py (the plan for each)
@pytest.mark.parametrize("name", sorted(VISION))
def test_vision_fsdp_gives_the_replicated_losses(name):
  runs = _worker(name, "20", "8,1,1", "1,8,1", "--config.optimizer.warmup_steps=2", *VISION[name])
  _assert_same_losses(runs, "8,1,1")
  _assert_fsdp_holds_its_share(runs["1,8,1"], 8)


@pytest.mark.parametrize("saved_on, restored_on", [("1,8,1", "2,1,1")])
def test_a_checkpoint_restores_onto_another_mesh_identically(tmp_path, saved_on, restored_on):
  got = _worker("--restore", str(tmp_path), "gpt_shakespeare_char", saved_on, restored_on, *GPT)
  assert got["identical"] and got["placed_as_target"]
  assert got["restored"]["mesh"] == dict(zip(("data", "fsdp", "tensor"), _sizes(restored_on)))


def _sizes(mesh):
  return [int(v) for v in mesh.split(",")]


def _command(workdir, steps, *flags):
  return [
    sys.executable,
    "-m",
    "dlx.main",
    "--config=gpt_shakespeare_char",
    f"--workdir={workdir}",
    f"--config.num_train_steps={steps}",
    "--config.optimizer.schedule=constant",  # 10 + 10 steps = 20 steps
    "--config.log_every_steps=5",
    "--config.eval_every_steps=10",
    "--config.checkpoint_every_steps=10",
    "--config.eval_examples=128",
    "--config.train_eval_examples=128",
    "--config.best_metric=",
    *GPT,
    *flags,
  ]


def _train(workdir, devices, steps, *flags):
  out = subprocess.run(
    _command(workdir, steps, *flags),
    cwd=conftest.REPO,
    env=_env(devices),
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads((workdir / "results.json").read_text())


def _train_rows(workdir):
  rows = conftest.read_jsonl(workdir / "metrics.jsonl")
  return {r["step"]: r["loss"] for r in rows if r.get("split") == "train"}


@pytest.mark.slow  # its fast sibling: test_a_checkpoint_restores_onto_another_mesh_identically
def test_an_fsdp8_run_resumes_on_two_devices(tmp_path):
  fsdp8 = ("--config.mesh.data=1", "--config.mesh.fsdp=8")
  whole = _train(tmp_path / "whole", 8, 20, *fsdp8)
  _train(tmp_path / "moved", 8, 10, *fsdp8)
  moved = _train(tmp_path / "moved", 2, 20, "--config.mesh.data=2", "--config.mesh.fsdp=1")
  assert whole["sharding"]["mesh"] == {"data": 1, "fsdp": 8, "tensor": 1}
  assert moved["sharding"]["mesh"] == {"data": 2, "fsdp": 1, "tensor": 1}
  assert whole["sharding"]["param_bytes_per_device"] < whole["sharding"]["param_bytes_total"] / 4
  assert moved["test"]["loss"] == pytest.approx(whole["test"]["loss"], rel=RTOL)
  assert moved["train"]["loss"] == pytest.approx(whole["train"]["loss"], rel=RTOL)
  assert _train_rows(tmp_path / "moved") == pytest.approx(_train_rows(tmp_path / "whole"), rel=RTOL)
  changes = (tmp_path / "moved" / "config_changes.jsonl").read_text()
  assert "mesh.fsdp" in changes and "mesh.data" in changes


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_of_four_devices_train_as_one_of_eight(tmp_path):
  fsdp8 = ("--config.mesh.data=1", "--config.mesh.fsdp=8")
  one = _train(tmp_path / "one", 8, 20, *fsdp8)
  port, workdir = _free_port(), tmp_path / "two"
  procs = []
  for i in (0, 1):
    flags = [
      "--config.distributed=True",
      f"--coordinator_address=localhost:{port}",
      "--num_processes=2",
      f"--process_id={i}",
      *fsdp8,
    ]
    procs.append(_train_async(workdir, 4, 20, flags, tmp_path / f"process{i}.out"))
  for p in procs:
    assert p.wait(timeout=600) == 0, (tmp_path / "process0.out").read_text()[-3000:]
  two = json.loads((workdir / "results.json").read_text())
  assert two["sharding"]["mesh"] == {"data": 1, "fsdp": 8, "tensor": 1}
  assert two["test"]["loss"] == pytest.approx(one["test"]["loss"], rel=RTOL)
  assert _train_rows(workdir) == pytest.approx(_train_rows(tmp_path / "one"), rel=RTOL)
  # Its checkpoint, written in shards by both processes, starts a run on 2 devices.
  again = _train(tmp_path / "again", 2, 0, f"--config.init_from={workdir}:latest")
  assert again["test"]["loss"] == pytest.approx(two["test"]["loss"], rel=RTOL)


def _train_async(workdir, devices, steps, flags, log_path):
  with open(log_path, "w") as log:
    return subprocess.Popen(
      _command(workdir, steps, *flags),
      cwd=conftest.REPO,
      env=_env(devices),
      stdout=log,
      stderr=subprocess.STDOUT,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
  "name",
  # EMA in the optimizer state, pruning masks, a frozen teacher, batch norm statistics,
  # a two-player step of its own.
  ["ddpm_mnist", "prune_lenet300_mnist", "distill_mnist", "resnet_fashion_mnist", "dcgan_mnist"],
)
def test_smoke_runs_with_every_leaf_sharded(tmp_path, name):
  """A threshold of 16 elements shards nearly every leaf of the tiny smoke models."""
  command = [
    sys.executable,
    "-m",
    "dlx.main",
    f"--config={name}:smoke",
    f"--workdir={tmp_path / name}",
    "--config.mesh.data=1",
    "--config.mesh.fsdp=2",
    "--config.fsdp_min_elements=16",
  ]
  out = subprocess.run(
    command, cwd=conftest.REPO, env=_env(2), capture_output=True, text=True, timeout=600
  )
  assert out.returncode == 0, out.stderr[-3000:]
  held = json.loads((tmp_path / name / "results.json").read_text())["sharding"]
  assert held["param_bytes_per_device"] < 0.75 * held["param_bytes_total"]
