"""DQN on CartPole-v1 (docs/curriculum.md#f24): Q-learning with a neural Q-function, a
replay buffer and a target network (Mnih et al., 2015), Double DQN targets by default
(van Hasselt et al., 2016; `--config.double_dqn=False` for the original max target).

The environment is CartPole-v1 written in JAX (dlx/envs/cartpole.py: gymnasium's
equations and limits, 500 steps at most, checked against gymnasium step by step), so
acting, storing and learning all run inside the compiled train step: one trainer step is
10 environment steps, each followed by one Huber TD update on a replay minibatch of 64
(after a 1000-step warmup); epsilon falls from 1 to 0.05 over 10k steps; the target net
is copied every 500 steps; Adam 2.5e-4 (gradients clipped at norm 10). The replay
buffer, the environment's state and the target network live in the train state, so a
killed run resumes exactly. Validation plays 300 greedy episodes and keeps the best
checkpoint by their mean return (DQN's returns oscillate); the report scores it on 100
other episodes (`report.mean_return`; 500 is the maximum) and draws learning_curve.png
(returns against environment steps). See dlx/tasks/rl/.

Expected: a mean return of 500 (the maximum) on the 100 test episodes after the default
150k environment steps (experiments/rl/README.md has the measurements and the tuning).

  ./launch.sh dqn_cartpole
"""

from dlx import config as config_lib
from dlx.models import dqn
from dlx.tasks.rl import agent
from dlx.tasks.rl import episodes
from dlx.tasks.rl import transitions


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  config.env = "CartPole-v1"
  config.model = config_lib.model_config(hidden=(128, 128), num_actions=2)
  config.gamma = 0.99
  config.double_dqn = True
  config.huber_delta = 1.0
  config.buffer_size = 50_000
  config.batch_size = 64  # the replay minibatch of each TD update
  config.warmup_steps = 1000  # environment steps before the first update
  config.train_every = 1  # environment steps per TD update
  config.env_steps_per_step = 10  # environment steps per trainer step
  config.target_update_every = 500  # environment steps; 0 = Polyak averaging with tau
  config.tau = 0.005
  config.epsilon_start = 1.0
  config.epsilon_end = 0.05
  config.exploration_steps = 10_000
  config.eval_episodes = 100  # test episodes (the target's)
  config.validation_episodes = 300  # they pick the best checkpoint
  config.probe_transitions = 1000  # random-policy transitions per evaluation split
  config.num_train_steps = 15_000  # x 10 = 150k environment steps
  config.log_every_steps = 100
  config.eval_every_steps = 250
  config.checkpoint_every_steps = 1000
  config.train_eval_examples = 1000
  config.best_metric = "mean_return"
  config.best_mode = "max"
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 2.5e-4
  config.optimizer.grad_clip_norm = 10.0
  if config_lib.SMOKE in args:
    config_lib.smoke(
      config,
      **{
        "model.hidden": (8,),
        "buffer_size": 64,
        "warmup_steps": 4,
        "env_steps_per_step": 4,
        "target_update_every": 4,
        "exploration_steps": 8,
        "eval_episodes": 2,
        "validation_episodes": 2,
        "probe_transitions": 32,
      },
    )
  return config


def get_model(config):
  return dqn.QNetwork(**config_lib.model_kwargs(config), memory=agent.initial_memory(config))


def get_dataset(config, data_dir):
  del data_dir  # the environment is the data
  return transitions.make_stream(config)


get_loss = transitions.get_loss
make_optimizer = agent.make_optimizer
make_train_step = agent.make_train_step
evaluate = episodes.evaluate
final_report = episodes.final_report

OUTPUTS = ("learning_curve.png",)
TARGETS = {"report.mean_return": (">=", 500.0)}
