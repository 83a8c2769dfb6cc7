"""The Q-network of a DQN agent (docs/curriculum.md#f24): observation -> one value per
action.

Besides its parameters, the agent owns state that training must carry and a checkpoint
must hold: the target network's parameters and whatever `memory(rng)` makes (the replay
buffer, the environment's state). `init` creates them as extra variable collections, so
they sit in the trainer's `model_state` beside the parameters; the model's forward pass
never reads them, the experiment's train step does (dlx/tasks/rl/agent.py).
"""

from typing import Callable, Optional, Sequence

import flax.linen as nn

from dlx.nn.dense import Dense


class QNetwork(nn.Module):
  """A ReLU MLP over the last axis: (..., obs_dim) -> (..., num_actions).

  hidden: the hidden widths. memory: rng -> {collection: {name: tree}}, made once by
  `init` (a 'target' collection, a copy of the initial parameters, is always made)."""

  hidden: Sequence[int]
  num_actions: int
  memory: Optional[Callable] = None

  @nn.compact
  def __call__(self, observations, train: bool = False):
    del train  # no dropout or batch statistics
    x = observations
    for width in self.hidden:
      x = nn.relu(Dense(width)(x))
    q_values = Dense(self.num_actions)(x)
    if self.is_initializing():
      # The target network starts equal to the online one.
      params = self.variables["params"]
      self.variable("target", "params", lambda: params)
      if self.memory is not None:
        for collection, entries in self.memory(self.make_rng("sample")).items():
          for name, value in entries.items():
            self.variable(collection, name, lambda v=value: v)
    return q_values
