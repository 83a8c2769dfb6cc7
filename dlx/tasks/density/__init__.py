"""Density estimation (docs/curriculum.md#f22), one module per experiment:

nade     NADE on binarised MNIST: data, exact NLL loss, samples and completions
mixture  Gaussian mixtures by gradient descent on 2-D points, against EM and
         scikit-learn, with density.png
"""
