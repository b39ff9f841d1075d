"""Train the network in PyTorch (nn.Module, DataLoader, explicit loop) and script it."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from exporters.mnist import MnistData
from exporters.progress import ProgressBar
from exporters.settings import TrainSettings
from model_store.contract import IMAGE_HEIGHT, IMAGE_WIDTH, NUM_CLASSES


class DenseNet(nn.Module):
    """Flatten -> Dense 512 ReLU -> Dense 10 (logits), initialised like Keras's Dense."""

    def __init__(self) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.hidden = nn.Linear(IMAGE_HEIGHT * IMAGE_WIDTH, 512)
        self.relu = nn.ReLU()
        self.output = nn.Linear(512, NUM_CLASSES)
        for layer in (self.hidden, self.output):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.output(self.relu(self.hidden(self.flatten(image))))


class Classifier(nn.Module):
    """The exported module: ``image`` [N, 28, 28] in [0, 1] -> ``probabilities`` [N, 10]."""

    def __init__(self, network: DenseNet) -> None:
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(image), dim=1)


@dataclass
class TorchResult:
    classifier: Classifier
    test_probabilities: npt.NDArray[np.float32]
    test_accuracy: float
    train_seconds: float
    device: str


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def train(data: MnistData, settings: TrainSettings, show_progress: bool = True) -> TorchResult:
    torch.manual_seed(settings.seed)
    torch.use_deterministic_algorithms(True)
    device = pick_device(settings.device)
    images = torch.from_numpy(data.train_images[: settings.train_limit].astype(np.float32) / 255.0)
    labels = torch.from_numpy(data.train_labels[: settings.train_limit].astype(np.int64))
    loader = DataLoader(
        TensorDataset(images, labels),
        batch_size=settings.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(settings.seed),
    )
    network = DenseNet().to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs * len(loader))
    loss_fn = nn.CrossEntropyLoss()

    started = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        network.train()
        progress = (
            ProgressBar(len(loader), f"Epoch {epoch}/{settings.epochs}", unit=" steps")
            if show_progress
            else None
        )
        correct = seen = 0
        loss_sum = 0.0
        for batch_images, batch_labels in loader:
            batch_images, batch_labels = batch_images.to(device), batch_labels.to(device)
            optimizer.zero_grad()
            logits = network(batch_images)
            loss = loss_fn(logits, batch_labels)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(batch_labels)
            correct += int((logits.argmax(dim=1) == batch_labels).sum())
            seen += len(batch_labels)
            if progress:
                progress.advance(suffix=f"loss {loss_sum / seen:.4f} accuracy {correct / seen:.4f}")
        if progress:
            progress.close()
    train_seconds = time.perf_counter() - started

    classifier = Classifier(network.cpu()).eval()
    probabilities = predict_probabilities(classifier, data.test_images.astype(np.float32) / 255.0)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == data.test_labels))
    return TorchResult(classifier, probabilities, accuracy, train_seconds, str(device))


def predict_probabilities(
    module: torch.nn.Module, images: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    with torch.inference_mode():
        return module(torch.from_numpy(images)).numpy().astype(np.float32)


def export_torchscript(classifier: Classifier, path: str) -> None:
    """Script and save the classifier.

    torch 2.13 marks TorchScript deprecated in favour of torch.export, but TorchServe 0.12's
    handlers and the issue's contract load TorchScript, so the deprecation notice is muted here only.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*torch\.jit\.\w+.* is deprecated", category=DeprecationWarning
        )
        torch.jit.save(torch.jit.script(classifier), path)
