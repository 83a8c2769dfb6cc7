"""Knowledge distillation (Hinton et al., 2015; docs/curriculum.md#g1) on MNIST: a small
student MLP learns from a large teacher's softened logits (`--config.teacher=WORKDIR`;
experiments/compression/distill_mnist.py).
"""

from dlx import errors
from dlx import losses
from dlx.tasks import classification

# Hinton et al. (2015), MNIST, test errors out of 10,000.
HINTON_ERRORS = {"teacher": 67, "student": 146, "distilled": 74}


def get_loss(config):
  """Per-example loss of a student reading the teacher's logits (batch
  ['teacher_outputs']): alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE,
  with accuracy, the soft and hard terms apart, and the teacher's own accuracy. A smoke
  run without a teacher distills from a uniform one (zero logits)."""
  temperature, alpha = config.temperature, config.alpha

  def loss(logits, batch):
    teacher = batch.get("teacher_outputs")
    if teacher is None:
      if not config.smoke:
        raise errors.ConfigError("distillation needs --config.teacher=WORKDIR")
      teacher = 0.0 * logits
    labels = batch["targets"]
    return {
      "loss": losses.distillation_loss(logits, teacher, labels, temperature, alpha),
      "soft_loss": losses.distillation_loss(logits, teacher, labels, temperature, 1.0),
      "hard_loss": losses.softmax_cross_entropy(logits, labels),
      "accuracy": classification.accuracy(logits, labels),
      "teacher_accuracy": classification.accuracy(teacher, labels),
    }

  return loss
