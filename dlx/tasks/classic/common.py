"""What several classic reports share."""

import numpy as np


def split_outputs(ctx, split) -> np.ndarray:
  """The model's eval-mode outputs on a whole split, as one host array."""
  return np.concatenate([np.asarray(outputs) for _, outputs in ctx.outputs(split)])
