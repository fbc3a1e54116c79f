"""Training infrastructure both stages share: the Lightning base module (EMA, AdamW, warm-up +
cosine, gradient norm, throughput), loggers and media, the Trainer factory and `vlogger train`."""
