"""tinymask host toolchain: data, training, int8 quantization, board checks, bundles, logs, reports."""

import sys

SUPPORTED_PYTHONS = ((3, 11), (3, 12), (3, 13))  # every dependency has wheels for these (pyproject.toml)

if sys.version_info[:2] not in SUPPORTED_PYTHONS:
    raise SystemExit(
        f"error: tinymask needs CPython 3.11, 3.12 or 3.13 (TensorFlow 2.21 wheels); this is "
        f"{sys.version.split()[0]} at {sys.executable}: make the venv with python3.11, python3.12 or python3.13"
    )

import os  # noqa: E402

from host import quiet_import  # noqa: E402

# TensorFlow's C++ log drowns the pipeline's own output: besides start-up chatter, TF 2.21's own tf.data
# logs an E-level "NodeDef mentions attribute use_unbounded_threadpool" at every fit and predict. A TF
# failure that matters still raises a Python exception; TF_CPP_MIN_LOG_LEVEL=0 in the environment
# brings the whole log back.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Lines TensorFlow's shared libraries print while loading, before its log level applies.
quiet_import.install()
