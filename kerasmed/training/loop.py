"""A ``train_on_batch`` training loop that reports exactly what ``fit`` reports.

The polyp seed project moved from ``fit`` to a hand-written ``train_on_batch`` loop and its
memory grew until it failed. This loop avoids each cause of that growth:

- the model is compiled once, before the loop; recompiling (the seed did so every epoch to
  change which layers train) builds new train functions and grows memory each time;
- every training batch has one shape (``SegmentationDataset`` drops the incomplete last batch
  when shuffling), so the compiled step is traced once and never again;
- validation runs through ``model.evaluate``, the compiled test function ``fit`` uses, not
  ``predict`` per batch;
- epoch figures are running means kept in plain floats, nothing is appended per step, and the
  batches are dropped as soon as the step has run.

Callbacks receive the same calls and logs as under ``fit`` (``on_epoch_end`` gets the training
means and the ``val_`` figures), so ``history.csv``, plots and checkpoints are identical.
"""

from __future__ import annotations

import keras

__all__ = ["train_on_batch_loop"]


def train_on_batch_loop(model, train_data, validation_data, epochs, callbacks=(),
                        initial_epoch: int = 0, verbose: int = 1, class_weight=None):
    """Train ``model`` (already compiled) with ``train_on_batch``, one epoch per pass.

    ``train_data`` and ``validation_data`` are ``keras.utils.PyDataset``-like sequences of
    ``(x, y)`` batches. ``train_on_batch`` resets the metrics at each call, so the epoch's
    figures are the mean of the per-batch figures; with equal batch sizes this is the value
    ``fit`` reports (a mean over samples).

    Returns:
        The ``keras.callbacks.History`` of the run, as ``fit`` returns it.
    """
    steps = len(train_data)
    callback_list = keras.callbacks.CallbackList(
        list(callbacks), add_history=True, add_progbar=verbose != 0, model=model,
        verbose=verbose, epochs=epochs, steps=steps)
    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        sums: dict[str, float] = {}
        done = 0
        for step in range(steps):
            callback_list.on_train_batch_begin(step)
            x, y = train_data[step]
            logs = model.train_on_batch(x, y, class_weight=class_weight, return_dict=True)
            del x, y
            done += 1
            for key, value in logs.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            callback_list.on_train_batch_end(step, {k: v / done for k, v in sums.items()})
            if model.stop_training:
                break
        epoch_logs = {k: v / max(done, 1) for k, v in sums.items()}
        if validation_data is not None:
            val_logs = model.evaluate(validation_data, verbose=0, return_dict=True)
            epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
        callback_list.on_epoch_end(epoch, epoch_logs)
        train_data.on_epoch_end()
        if model.stop_training:
            break
    callback_list.on_train_end()
    return model.history
