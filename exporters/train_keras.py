"""Train the network in Keras (Sequential, compile, fit) and compute its test-set outputs."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from exporters.mnist import MnistData
from exporters.settings import TrainSettings
from model_store.contract import IMAGE_HEIGHT, IMAGE_WIDTH, NUM_CLASSES


@dataclass
class KerasResult:
    model: keras.Model
    test_probabilities: npt.NDArray[np.float32]
    test_accuracy: float
    train_seconds: float
    device: str


def build_model() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape=(IMAGE_HEIGHT, IMAGE_WIDTH), name="image"),
            keras.layers.Flatten(),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dense(NUM_CLASSES),  # logits; softmax is added in the exported signature
        ],
        name="mnist_dense",
    )


def _device(settings: TrainSettings) -> str:
    gpus = tf.config.list_logical_devices("GPU")
    if settings.device == "cpu" or (settings.device == "auto" and not gpus):
        return "/CPU:0"
    if settings.device == "auto":
        return gpus[0].name
    index = settings.device.partition(":")[2] or "0"
    return f"/GPU:{index}"


def train(data: MnistData, settings: TrainSettings, verbose: int = 1) -> KerasResult:
    keras.utils.set_random_seed(settings.seed)
    tf.config.experimental.enable_op_determinism()
    x_train = data.train_images[: settings.train_limit].astype(np.float32) / 255.0
    y_train = data.train_labels[: settings.train_limit].astype(np.int64)
    x_test = data.test_images.astype(np.float32) / 255.0

    steps = settings.epochs * -(-len(x_train) // settings.batch_size)
    device = _device(settings)
    with tf.device(device):
        model = build_model()
        model.compile(
            optimizer=keras.optimizers.Adam(
                keras.optimizers.schedules.CosineDecay(settings.learning_rate, steps)
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        started = time.perf_counter()
        model.fit(x_train, y_train, batch_size=settings.batch_size, epochs=settings.epochs, verbose=verbose)
        train_seconds = time.perf_counter() - started
        probabilities = predict_probabilities(model, x_test)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == data.test_labels))
    return KerasResult(model, probabilities, accuracy, train_seconds, device)


def predict_probabilities(model: keras.Model, images: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    logits = model.predict(images, batch_size=1000, verbose=0)
    return np.asarray(tf.nn.softmax(logits), dtype=np.float32)


def export_saved_model(model: keras.Model, directory: str) -> None:
    """Write a SavedModel whose ``serving_default`` maps ``image`` to ``probabilities``."""
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(image: Any) -> dict[str, Any]:
        return {"probabilities": tf.nn.softmax(model(image, training=False))}

    archive.add_endpoint(
        name="serving_default",
        fn=serve,
        input_signature=[tf.TensorSpec([None, IMAGE_HEIGHT, IMAGE_WIDTH], tf.float32, name="image")],
    )
    archive.write_out(directory, verbose=False)
