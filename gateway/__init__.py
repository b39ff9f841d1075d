"""The Flask gateway: one API in front of TF Serving and TorchServe."""
