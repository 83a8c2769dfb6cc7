"""The task half of an experiment: loss and metrics, the task's base config, data
adapters, reports and set-level evaluators, one concern per module. A task that serves
several unrelated experiments is a sub-package with one module each; in every module the
hooks carry the protocol's names (`get_loss`, `evaluate`, `final_report`, ...).

  classification        softmax cross-entropy + accuracy, soft labels, auxiliary heads
  regression            squared error or Huber, with MSE and MAE
  image_classification  the CNN/ViT experiments' config, data, loss and filter plots
  classic/              the classic experiments, one module each: batch_regimes, hessian,
                        bagging, perceptron, least_squares, logistic, pca_kmeans
  language_model        next-token loss, the Shakespeare character budget, samples;
                        SentencePiece subwords and bits per character
  word_embeddings       skip-gram with negative sampling, PPMI-SVD and random
                        baselines, similarity test, neighbours, analogies
  seq2seq/              encoder-decoders: common (masked sequence loss, data, exact
                        match, attention report), recurrent, transformer
  speech                spoken digits: loss with the digit error rate, spectrograms report
  speech_transcription  spoken digit strings: greedy transcripts, word error rate, report
  detection/            digit-scene detectors: scenes (shared data, config, shift
                        augmentation), yolo (YOLOv1 loss, mAP), rpn (proposals, recall)
  segmentation          per-pixel cross-entropy (+ Dice), mIoU, segmentation.png
  autoencoder           (denoising) autoencoders: reconstruction loss, latent plot
  variational           the VAE family's config, binarised data, negative ELBO and grids
  adversarial           two-player steps (DCGAN minimax, WGAN-GP, weight-clipped WGAN)
                        and the GANs' shared data, grids and sample report
  density/              nade (exact likelihood, samples), mixture (Gaussian mixtures
                        against EM and scikit-learn)
  super_resolution/     common (degradation, bicubic baseline, PSNR/SSIM report),
                        srresnet, srgan (perceptual content loss, two-player step)
  sample_quality        MNIST-FID and classifier scores of generated digits (every
                        sampling experiment's report)
  compression/          making models small: common (MNIST MLPs, test accuracy),
                        distillation, pruning, quantization
  contrastive           CLIP: the loss, zero-shot classification and retrieval
  self_supervised       SimCLR: NT-Xent, linear and k-NN probes of the frozen encoder
  rl/                   DQN: agent (memory, train step), transitions (the probe
                        stream, Bellman residual), episodes (greedy returns, report)
  graphs                graph and node classification, the edge-blind baseline report

Tasks may import models, losses, data, envs, viz and the library; the trainer imports no
task (tests/unit/test_layering.py).
"""
