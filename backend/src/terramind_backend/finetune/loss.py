"""The training loss, and how a checkpoint describes it in TerraTorch 1.1.1's terms.

Cross-entropy over labelled pixels (optional class weights), plus, with ``dice``, the soft Dice loss
TerraTorch trains with for ``loss={"ce": 1.0, "dice": 1.0}``: segmentation_models_pytorch's
``DiceLoss("multiclass", ignore_index=-1)`` (no smoothing). That Dice scores every class over the
whole batch, counts 0 for a class without labelled pixels in the batch and averages over *all*
classes. Class weights weigh the cross-entropy only; TerraTorch's DiceLoss takes none.

TerraTorch builds its criterion from the checkpoint's ``loss``, ``ignore_index`` and
``class_weights`` and loads the criterion's tensors strictly, so ``criterion_state`` mirrors the
modules it builds: ``nn.CrossEntropyLoss`` (``weight`` = the class weights) for ``"ce"``, and for a
dict of losses a ``CombinedLoss`` (``weight`` = the loss weights) holding one loss per key.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F

from .labels import UNLABELLED

IGNORE_INDEX = UNLABELLED
CE_AND_DICE = {"ce": 1.0, "dice": 1.0}  # TerraTorch's loss name -> weight, in its summation order


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Multiclass soft Dice over labelled pixels: mean over all classes, absent classes counting 0."""
    num_classes = logits.shape[1]
    keep = target != IGNORE_INDEX
    probs = logits.softmax(1).permute(0, 2, 3, 1)[keep]                    # [N, C]
    onehot = F.one_hot(target[keep], num_classes).to(probs.dtype)           # [N, C]
    inter = (probs * onehot).sum(0)
    denom = probs.sum(0) + onehot.sum(0)
    present = onehot.sum(0) > 0
    # a present class has denom >= 1; the floor only keeps absent classes (masked to 0) finite
    score = 2 * inter / denom.clamp_min(1e-7)
    return ((1 - score) * present).mean()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor],
                      dice: bool) -> torch.Tensor:
    """The loss we train with: what TerraTorch computes from ``loss_hparam(dice)``."""
    ce = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE_INDEX)
    if not dice:
        return ce
    terms = {"ce": ce, "dice": dice_loss(logits, target)}
    return sum(w * terms[name] for name, w in CE_AND_DICE.items())


def loss_hparam(dice: bool) -> Union[str, dict]:
    """The checkpoint's ``hyper_parameters["loss"]``."""
    return dict(CE_AND_DICE) if dice else "ce"


def criterion_state(dice: bool, class_weights: Optional[list]) -> dict:
    """The tensors of TerraTorch's criterion for these hyper-parameters, keyed as in the task's state dict."""
    cw = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
    if not dice:
        return {} if cw is None else {"criterion.weight": cw}
    state = {"criterion.weight": torch.tensor(list(CE_AND_DICE.values()), dtype=torch.float32)}
    if cw is not None:
        state["criterion.losses.ce.weight"] = cw
    return state
