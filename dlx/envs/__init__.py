"""Environments and experience for reinforcement learning, as pure JAX functions.

cartpole  CartPole-v1 (reset/step as jittable functions of a state pytree)
replay    a fixed-size replay buffer kept in device arrays
"""
