"""finetune's loss against TerraTorch 1.1.1's: TerraTorch builds its criterion (``configure_losses``) from the
``loss``/``ignore_index``/``class_weights`` hyper-parameters our checkpoints write, loads our criterion tensors
strictly, and gives our training loss and its gradient on the same logits and labels (1e-5), for CE and CE + Dice,
with and without class weights, on batches with unlabelled pixels, classes absent from the batch and an almost
unlabelled batch."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from terramind_backend.finetune.loss import IGNORE_INDEX, criterion_state, loss_hparam, segmentation_loss

CLASSES = 5


def _terratorch_criterion(dice: bool, class_weights):
    """TerraTorch's own ``configure_losses`` on the hyper-parameters a checkpoint of ours holds."""
    from terratorch.tasks import SemanticSegmentationTask

    holder = SimpleNamespace(hparams={"loss": loss_hparam(dice), "ignore_index": IGNORE_INDEX,
                                      "class_weights": class_weights})
    SemanticSegmentationTask.configure_losses(holder)
    prefix = "criterion."
    state = {k[len(prefix):]: v for k, v in criterion_state(dice, class_weights).items()}
    assert all(k.startswith(prefix) for k in criterion_state(dice, class_weights))
    holder.criterion.load_state_dict(state, strict=True)
    return holder.criterion


def _batches():
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(3, CLASSES, 24, 24, generator=g) * 4
    labels = torch.randint(0, 3, (3, 24, 24), generator=g)  # classes 3 and 4 absent
    labels[0, :10] = IGNORE_INDEX
    labels[2] = IGNORE_INDEX
    yield "unlabelled rows, absent classes", logits, labels
    wide = labels.clone()
    wide[1, :, :6] = 4  # class 4 only in one image
    yield "a class in one image only", logits * 10, wide
    sparse = torch.full_like(labels, IGNORE_INDEX)
    sparse[1, 5, 5] = 2
    yield "one labelled pixel", logits, sparse


@pytest.mark.parametrize("dice", [False, True], ids=["ce", "ce+dice"])
@pytest.mark.parametrize("class_weights", [None, [0.5, 2.0, 1.0, 0.0, 3.0]], ids=["unweighted", "weighted"])
def test_finetune_loss_and_gradient_equal_terratorch_criterion_from_our_hyper_parameters(dice, class_weights):
    criterion = _terratorch_criterion(dice, class_weights)
    weight = None if class_weights is None else torch.tensor(class_weights)
    for case, logits, labels in _batches():
        theirs_in, ours_in = logits.clone().requires_grad_(), logits.clone().requires_grad_()
        theirs = criterion(theirs_in, labels)
        theirs = theirs["loss"] if isinstance(theirs, dict) else theirs
        ours = segmentation_loss(ours_in, labels, weight, dice)
        theirs.backward()
        ours.backward()
        assert ours.item() == pytest.approx(theirs.item(), abs=1e-5), case
        torch.testing.assert_close(ours_in.grad, theirs_in.grad, atol=1e-6, rtol=1e-4, msg=case)


def test_finetune_dice_term_is_smp_dice_loss_over_labelled_pixels():
    """Our Dice term alone equals segmentation_models_pytorch's DiceLoss as TerraTorch configures it."""
    from terramind_backend.finetune.loss import dice_loss

    smp_dice = _terratorch_criterion(True, None).losses["dice"]
    for case, logits, labels in _batches():
        assert float(dice_loss(logits, labels)) == pytest.approx(float(smp_dice(logits, labels)), abs=1e-6), case
