"""Training: models, the tf.data input pipeline, the training loop, plots.  Call
:func:`imgclf.core.runtime.configure` *before* importing the other modules: thread counts are
read when TensorFlow starts."""
