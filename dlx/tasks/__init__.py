"""The task half of an experiment: loss and metrics, the task's base config, data
adapters, reports and set-level evaluators, one module per kind of task.

  classification        softmax cross-entropy + accuracy, soft labels, auxiliary heads
  image_classification  the CNN/ViT experiments' config, data, loss and filter plots
  regression            squared error or Huber, with MSE and MAE
  language_model        next-token loss, the Shakespeare character budget, samples
  seq2seq               masked sequence loss, exact match, attention reports
  adversarial           two-player steps (DCGAN minimax, WGAN-GP, weight-clipped WGAN)
                        and the GANs' shared data, grids and sample report
  super_resolution      SRResNet / SRGAN: degradation, bicubic baseline, PSNR/SSIM report
  variational           the VAE family's config, binarised data, negative ELBO and grids
  sample_quality        MNIST-FID and classifier scores of generated digits (every
                        sampling experiment's report)

Tasks may import models, losses and data; the trainer imports no task.
"""
