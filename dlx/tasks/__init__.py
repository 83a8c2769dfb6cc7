"""The task half of an experiment: loss and metrics, the task's base config, data
adapters, reports and set-level evaluators, one module per kind of task.

  classification        softmax cross-entropy + accuracy, soft labels, auxiliary heads
  image_classification  the CNN/ViT experiments' config, data, loss and filter plots
  regression            squared error or Huber, with MSE and MAE
  language_model        next-token loss, the Shakespeare character budget, samples
  seq2seq/              encoder-decoders: common (masked sequence loss, data, exact
                        match, attention report), recurrent, transformer
  detection/            digit-scene detectors: scenes (shared data, config, shift
                        augmentation), yolo (YOLOv1 loss, mAP), rpn (proposals, recall)
  compression/          making models small: common (MNIST MLPs, test accuracy),
                        distillation, pruning, quantization
  adversarial           two-player steps (DCGAN minimax, WGAN-GP, weight-clipped WGAN)
                        and the GANs' shared data, grids and sample report
  super_resolution      SRResNet / SRGAN: degradation, bicubic baseline, PSNR/SSIM report
  variational           the VAE family's config, binarised data, negative ELBO and grids
  sample_quality        MNIST-FID and classifier scores of generated digits (every
                        sampling experiment's report)
  classic/              the classic experiments, one module each: batch_regimes, hessian,
                        bagging, perceptron, least_squares, logistic, pca_kmeans
  rl/                   DQN: agent (memory, train step), transitions (the probe
                        stream, Bellman residual), episodes (greedy returns, report)

Tasks may import models, losses and data; the trainer imports no task.
"""
