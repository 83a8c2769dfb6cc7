"""PCA and k-means on the embedded digits (docs/curriculum.md#h1). The dataset is the
first ten principal coordinates of the 8x8 images (fitted on the train split); the
trainer fits softmax regression on them, whose test accuracy says how much of the class
information ten directions keep. The report is the unsupervised part: the explained
variance of every component, k-means (k = 10) on the coordinates and on the raw pixels
with cluster purity against the labels, scikit-learn's KMeans beside it, and
pca_kmeans.png (the first two coordinates coloured by class and by cluster; the
cumulative explained variance).

  ./launch.sh kmeans_pca_digits
  ./launch.sh kmeans_pca_digits --config.num_components=64   # the classifier on all pixels' worth
"""

from dlx import config as config_lib
from dlx import data
from dlx.models import mlp
from dlx.tasks import classification
from dlx.tasks.classic import pca_kmeans


def get_config(arg=None):
  args = config_lib.parse_arg(arg)
  config = config_lib.base_config()
  config.num_components = 10
  config.kmeans = config_lib.model_config(k=10, restarts=10)  # the best of 10 seedings
  config.model = config_lib.model_config(num_outputs=10)
  config.batch_size = 64
  config.num_epochs = 50.0
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-2
  if config_lib.SMOKE in args:
    config_lib.smoke(config, **{"kmeans.restarts": 2})
  return config


def get_model(config):
  return mlp.Linear(**config_lib.model_kwargs(config))


def get_dataset(config, data_dir):
  del data_dir
  return pca_kmeans.pca_dataset(data.load("digits", seed=config.seed), config.num_components)


loss = classification.classification
final_report = pca_kmeans.final_report
OUTPUTS = (pca_kmeans.PLOT,)
