"""dlx: a JAX research codebase for deep learning.

Pure-function Flax Linen models, Optax optimizers, losses as plain functions, and one
generic trainer (`dlx.train.train_and_evaluate`) that runs every experiment in
`experiments/`.
"""

__version__ = "0.1.0"
