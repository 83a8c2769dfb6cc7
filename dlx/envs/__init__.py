"""Environments and experience for reinforcement learning, as pure JAX functions.

cartpole  CartPole-v1 (reset/step as jittable functions of a state pytree)
registry  environments by name behind one interface (`Env`): CartPole-v1 or any gymnax one
replay    a fixed-size replay buffer kept in device arrays
"""
