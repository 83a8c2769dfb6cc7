"""Density estimation (docs/curriculum.md#f22), one module per experiment:

nade     NADE on binarised MNIST: data, exact NLL loss, samples and completions
rnade    RNADE on dequantised 8x8 digits: data, fresh dequantisation noise, exact
         NLL, samples, and a full-covariance Gaussian and scikit-learn's mixture beside it
mixture  Gaussian mixtures by gradient descent on 2-D points, against EM and
         scikit-learn, with density.png
"""
