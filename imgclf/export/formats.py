"""The TFLite formats of the export, in the order they are reported.

A module of its own, without TensorFlow: the model card and the HTML report (data
environment) order the export's results by it.
"""

#: The formats the export knows, in the order they are reported.
FORMATS = ("float32", "float16", "int8")
