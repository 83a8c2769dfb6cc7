"""An ensemble of independent copies of one model (bagging, docs/curriculum.md#d5)."""

from typing import Any

import flax.linen as nn


class Ensemble(nn.Module):
  """`num_members` copies of `member(**member_kwargs)` with their own parameters, stacked
  on a leading axis of every parameter by `nn.vmap`, so one compiled step trains them
  all. Every member sees the same inputs; outputs gain a member axis after the batch:
  (N, num_members, ...)."""

  member: Any  # a Module class, e.g. dlx.models.mlp.MLP
  num_members: int
  member_kwargs: Any  # its keyword arguments (a dict)

  @nn.compact
  def __call__(self, x, train: bool = False):
    members = nn.vmap(
      self.member,
      variable_axes={"params": 0},
      split_rngs={"params": True, "dropout": True},
      in_axes=None,
      out_axes=1,
      axis_size=self.num_members,
    )
    return members(**self.member_kwargs, name="members")(x, train)
