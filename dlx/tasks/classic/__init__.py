"""The classic experiments' task parts, one module per concern: the Gaussian NLL in use
(docs/curriculum.md#b4), the weighted loss in use (#b5), batch-size regimes (#c4), the
Hessian spectrum (#c6), bagging (#d5), the perceptron, least squares and logistic
regression (#f1), PCA and k-means (#h1). The non-learned
arithmetic they use is in dlx/ops/ (hessian, resampling, linear_models, clustering).

  heteroscedastic  data with noise that grows with |x|; a mean and a variance per input
                 by the Gaussian NLL; coverage of the 90% intervals; intervals.png
  imbalanced     digits with rare classes; class-weighted cross-entropy; recall per class
  batch_regimes  the whole-train-split objective at every epoch, and one figure of every
                 run of a sweep that differs only in batch size
  hessian        extreme eigenvalues and spectral density at initialisation and trained
  bagging        bootstrap resamples as per-example multiplicities; ensemble reports
  perceptron     the learning rule as a custom step; updates counted in its state
  least_squares  a synthetic linear dataset; closed-form least squares beside the
                 trained linear layer
  logistic       an L2-penalised optimizer; scikit-learn's logistic regression beside
                 the trained softmax layer
  pca_kmeans     a dataset of principal coordinates; clustering purity and figures
  common         what several reports share (a model's outputs on a whole split)
"""
