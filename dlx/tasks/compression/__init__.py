"""Making models small (docs/curriculum.md#g1, #g2, #g3), one module per concern:

common        the MNIST MLP family's config, model, data and `:smoke` variant; the
              test accuracy the pruning and quantization reports score with
distillation  Hinton et al. (2015) on MNIST: the student's loss against the teacher's
              logits (`--config.teacher=WORKDIR`)
pruning       masks from dlx.ops.pruning kept by the optimizer while fine-tuning a
              trained run (`--config.init_from=WORKDIR`); sparsity and FLOP reports
quantization  post-training int8 of a trained run with dlx.ops.quantization
"""
