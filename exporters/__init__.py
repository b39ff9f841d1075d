"""MNIST data, training in Keras and PyTorch, export into the model store, verification."""
