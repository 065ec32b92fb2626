"""Pictures of results: training curves and confusion matrices (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def shipped_epoch(history: dict, best_epoch: int) -> tuple[int, str]:
    """The epoch whose weights the bundle holds: the refit's last epoch, else the best validation epoch."""
    if history.get("refit_accuracy"):
        return len(history["refit_accuracy"]), "shipped: refit, last epoch"
    return best_epoch, "shipped: best validation epoch"


def training_curves(history: dict, best_epoch: int, path: Path) -> None:
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    shipped, why = shipped_epoch(history, best_epoch)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, style in (("loss", "-"), ("val_loss", "--")):
        if key in history:
            ax_loss.plot(epochs, history[key], style, label=key)
    for key, style in (("accuracy", "-"), ("val_accuracy", "--"), ("refit_accuracy", ":")):
        if key in history:
            ax_acc.plot(epochs, history[key], style, label=key)
    for ax, title in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        if shipped:
            ax.axvline(shipped, color="tab:red", lw=1.0, ls="--", label=f"{why} {shipped}")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusion_matrix(matrix: np.ndarray, labels: list[str], title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    peak = matrix.max() if matrix.size else 0
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            color = "white" if matrix[i, j] > peak / 2 else "black"
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", color=color)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
