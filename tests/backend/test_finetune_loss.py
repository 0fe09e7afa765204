"""finetune's Dice term on hand-checked cases (tests/parity/test_finetune_loss_parity.py compares it with
TerraTorch's): scored over labelled pixels, averaged over all classes with absent ones counting 0."""
from __future__ import annotations

import pytest
import torch

from terramind_backend.finetune.loss import IGNORE_INDEX, dice_loss, segmentation_loss


def test_finetune_dice_averages_over_all_classes_and_ignores_unlabelled_pixels():
    classes, labelled = 4, 30
    logits = torch.zeros(2, classes, 5, 10, requires_grad=True)  # uniform: every probability 1/4
    labels = torch.full((2, 5, 10), IGNORE_INDEX)
    labels.view(-1)[:labelled] = 0  # class 0 only; the other 70 pixels unlabelled
    # class 0: 2 * (30/4) / (30/4 + 30) = 0.4; classes 1-3 have no labelled pixels and count 0
    expected = (1 - 0.4) / classes
    loss = dice_loss(logits, labels)
    assert loss.item() == pytest.approx(expected, abs=1e-6)

    loss.backward()
    grad = logits.grad.permute(0, 2, 3, 1).reshape(-1, classes)
    assert grad[labelled:].abs().max() == 0 and grad[:labelled].abs().max() > 0
    with torch.no_grad():  # whatever the model says on unlabelled pixels does not count
        noisy = logits + (labels == IGNORE_INDEX)[:, None] * torch.randn(2, classes, 5, 10) * 5
        assert float(dice_loss(noisy, labels)) == pytest.approx(expected, abs=1e-6)


def test_finetune_dice_is_zero_without_labelled_pixels_and_adds_to_cross_entropy():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    none = torch.full((1, 4, 4), IGNORE_INDEX)
    loss = dice_loss(logits, none)
    loss.backward()
    assert loss.item() == 0 and torch.all(logits.grad == 0)

    labels = torch.randint(0, 3, (1, 4, 4))
    ce = segmentation_loss(logits, labels, None, dice=False)
    assert segmentation_loss(logits, labels, None, dice=True).item() == pytest.approx(
        (ce + dice_loss(logits, labels)).item(), abs=1e-6)
