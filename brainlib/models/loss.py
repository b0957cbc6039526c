"""The segmentation loss: soft Dice (eq. 15 with probabilities) plus binary cross-entropy."""
from __future__ import annotations

DICE_SMOOTHING = 1.0


def soft_dice(masks, logits, smoothing: float = DICE_SMOOTHING):
    """Soft Dice of a batch, eq. (15) with probabilities for the predicted set:
    (2 sum(p m) + s) / (sum p + sum m + s), summed over the whole batch (empty slices are
    common, so a per-slice Dice would be undefined for many of them)."""
    import tensorflow as tf

    masks = tf.cast(masks, tf.float32)
    probabilities = tf.sigmoid(tf.cast(logits, tf.float32))
    overlap = tf.reduce_sum(probabilities * masks)
    return (2 * overlap + smoothing) / (tf.reduce_sum(probabilities) + tf.reduce_sum(masks) + smoothing)


def dice_bce_loss(masks, logits):
    """Binary cross-entropy on logits (mean over pixels) + (1 - soft Dice)."""
    import tensorflow as tf

    masks = tf.cast(masks, tf.float32)
    cross_entropy = tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=masks, logits=tf.cast(logits, tf.float32)))
    return cross_entropy + 1 - soft_dice(masks, logits)
