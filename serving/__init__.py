"""Local model servers: TorchServe (handler, config, launcher) and TF Serving."""
