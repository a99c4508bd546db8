"""Training: models, the tf.data input pipeline, the training loop, plots.

Import :mod:`imgclf.training.runtime` and call ``configure`` *before* anything
imports TensorFlow: thread counts are read when TensorFlow starts.
"""
