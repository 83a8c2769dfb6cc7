"""The training loop's parts, which `dlx/train.py` puts together.

steps           the compiled train and evaluation steps (loss, gradients, metrics)
state           TrainState: everything a resumed run needs, in one pytree
checkpoint      orbax checkpoints: periodic, keep-N, best-by-metric, restore-or-init
parallel        data parallelism (mesh or pmap), multi-host start-up, placing batches
sharding        the mesh's axes (data, fsdp, tensor) and where each state array lives
runner          the steps compiled for a mesh or pmap; a mesh step outside the loop (AOT)
precision       compute dtypes (bfloat16 with float32 parameters)
optim           optimizers and schedules from the config, EMA of the weights
metric_writers  console, TensorBoard and metrics.jsonl writers, and the metrics.jsonl reader
trackers        Weights & Biases and MLflow (`--config.loggers`), continued across relaunches
warm_start      runs that start from runs (`init_from`) and frozen teachers (`teacher`)
relaunch        what a relaunch into a workdir may change; atomic writes; torn files survived
provenance      what produced a run: command, experiment file, git commit and diff, versions
workdir_lock    one run per workdir: the lock a run holds, and a second launch's one-line error
preemption      SIGTERM and Ctrl-C: save the step in flight and stop (all processes alike)
"""
