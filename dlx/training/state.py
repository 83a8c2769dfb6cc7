"""The train state: one pytree holding everything a resumed run needs."""

from typing import Any

import flax
import jax


@flax.struct.dataclass
class TrainState:
  """`step` counts optimizer updates; the data position and the per-step rng are
  derived from it, so (params, opt_state, model_state, rng, step) is a complete
  snapshot. `model_state` holds non-trained collections such as `batch_stats`.

  `frozen` holds the variables of frozen models the step reads (`{'teacher': ...}`
  with --config.teacher). They travel with the state into the compiled step as
  arguments, but are never trained or checkpointed: they come from their own run.
  Checkpoints hold `checkpointed()`, the same five fields as before `frozen` existed."""

  step: jax.Array
  params: Any
  opt_state: Any
  model_state: Any
  rng: jax.Array
  frozen: Any = flax.struct.field(default_factory=dict)

  def variables(self, params=None):
    return {"params": self.params if params is None else params, **self.model_state}

  def checkpointed(self) -> dict:
    """What a checkpoint holds: every field but `frozen`."""
    return {
      "step": self.step,
      "params": self.params,
      "opt_state": self.opt_state,
      "model_state": self.model_state,
      "rng": self.rng,
    }
