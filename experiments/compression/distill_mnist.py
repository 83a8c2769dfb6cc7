"""Knowledge distillation (Hinton et al., 2015; docs/curriculum.md#g1, #b12): the
784-800-800-10 student of experiments/compression/mlp_student_mnist.py, trained on the teacher's
softened outputs: alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) +
(1 - alpha) * cross-entropy with the labels. No dropout, no jitter: all it gains over
the student alone comes from the teacher.

  ./launch.sh mlp_teacher_mnist --data_dir=../shared/tfds          # the teacher, once
  ./launch.sh distill_mnist --data_dir=../shared/tfds --config.teacher=runs/mlp_teacher_mnist
  ./launch.sh sweep distill_mnist --grid 'config.temperature=2,5,10,20' \\
      --data_dir=../shared/tfds --config.teacher=$PWD/runs/mlp_teacher_mnist
"""

from dlx import config as config_lib
from dlx.tasks.compression import common
from dlx.tasks.compression import distillation


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = common.mnist_config(epochs=50.0, hidden=(800, 800), dropout_rate=0.0)
  config.temperature = 20.0
  config.alpha = 0.9  # weight of the soft (teacher) term
  if config_lib.SMOKE in args:
    common.smoke_mlp(config)
  return config


get_model = common.mlp_model
get_dataset = common.mnist_dataset
get_loss = distillation.get_loss
STARTS_FROM = {"teacher": "mlp_teacher_mnist"}
TARGETS = {"test.accuracy": (">=", 0.98)}
