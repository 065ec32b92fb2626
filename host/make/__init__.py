"""Making a model: data, training, int8 quantization, board checks, evaluation, bundles, compare, prune."""
