"""Training: models, the tf.data input pipeline, the training loop, plots.

Call :func:`imgclf.training.runtime.configure` *before* importing the other
modules: thread counts are read when TensorFlow starts.
"""
