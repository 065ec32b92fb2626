"""tinymask host toolchain: data, training, int8 quantization, board checks, bundles, logs, reports."""

import os

# TensorFlow's C++ start-up chatter drowns the pipeline's own output; warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
