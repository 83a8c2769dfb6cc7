"""Reinforcement learning (docs/curriculum.md#f24): DQN (Mnih et al., 2015) with Double
DQN (van Hasselt et al., 2016) as an option, acting in an environment written in JAX, so
the environment steps inside the compiled train step: CartPole-v1 (dlx/envs/cartpole.py),
or any gymnax environment by name (dlx/envs/registry.py).

  agent        the agent's memory, its optimizer and config checks, and the DQN train step
  transitions  the data: a Stream of fixed random-policy transitions, and their loss
               (the Bellman residual)
  episodes     greedy episodes: `evaluate` (mean return) and `final_report`

The TD arithmetic (targets, Q(s, a), the epsilon schedule) is dlx.ops.q_learning.

How DQN fills the experiment protocol:

* the agent (`dlx.models.dqn.QNetwork`) carries its target parameters, its replay buffer
  (`dlx.envs.replay`) and the environment's state as variable collections
  (`agent.initial_memory`), so they live in the train state's `model_state` and every
  checkpoint holds them: a killed run resumes exactly where it stopped;
* `agent.make_train_step` is the train step: `env_steps_per_step` times, act
  epsilon-greedily, step the environment (auto-reset), store the transition, and once
  past `warmup_steps` take one TD step on a replay minibatch (Huber loss) and update the
  target network (a hard copy every `target_update_every` environment steps, or Polyak
  averaging with `tau` when that is 0); all randomness comes from the step's key;
* the data is a `Stream` of fixed transitions of a uniformly random policy (the held-out
  states of Mnih et al.; `transitions.make_stream`): the agent makes its own training
  data, so the step ignores the stream's batches, and validation/test report the Bellman
  residual (`transitions.get_loss`) and the mean max-Q on those states;
* `episodes.evaluate` plays greedy episodes (vmapped, in JAX) and reports `mean_return`,
  which picks the best checkpoint (`best_metric`), since DQN's returns oscillate;
  `episodes.final_report` scores the best checkpoint on 100 test episodes and draws the
  learning curve.

Why dlx has its own CartPole when gymnax has one (and works with this JAX): importing
gymnax imports every environment it ships, one of which pulls in seaborn and scipy.stats,
about 1.5 s of CPU, a fifth of the 8 s a smoke test may take. dlx's copy is checked
step by step against gymnasium's and gymnax's (tests/unit/envs/test_cartpole.py). Other
gymnax environments come from dlx's [rl] extra; without it such a run stops with one
line naming the extra.
"""
