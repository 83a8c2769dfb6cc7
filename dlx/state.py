"""The train state: one pytree holding everything a resumed run needs."""

from typing import Any

import flax
import jax


@flax.struct.dataclass
class TrainState:
  """`step` counts optimizer updates; the data position and the per-step rng are
  derived from it, so (params, opt_state, model_state, rng, step) is a complete
  snapshot. `model_state` holds non-trained collections such as `batch_stats`."""
  step: jax.Array
  params: Any
  opt_state: Any
  model_state: Any
  rng: jax.Array

  def variables(self, params=None):
    return {"params": self.params if params is None else params, **self.model_state}
