"""Every private Keras attribute kerasmed touches, in this one module.

Keras 3 has no public API for three things kerasmed needs:

- rebuilding a built optimizer over a new list of trainable variables while keeping its state
  (``rebuild_optimizer``; encoder unfreezing, ``kerasmed.training.unfreeze``): the optimizer's
  ``_trainable_variables``, ``_trainable_variables_indices``, ``_untrack_variable`` and
  ``_var_key``;
- creating a compiled model's training state from one batch before the first train step is
  traced (``symbolic_build``; ``kerasmed.training.tracing``): ``Trainer._symbolic_build``;
- the layers a layer's call takes its inputs from in a functional graph (``inbound_parents``;
  the dilated encoders of ``kerasmed.models.deeplab``): ``Operation._inbound_nodes``.

``PRIVATE_ATTRIBUTES`` lists them and ``missing_attributes()`` says which of them the installed
Keras lacks; ``tests/test_keras_private.py`` fails naming each one after a Keras upgrade that
removes it. Nothing else in kerasmed reads a private Keras attribute.
"""

from __future__ import annotations

import contextlib

import keras

__all__ = ["PRIVATE_ATTRIBUTES", "missing_attributes", "rebuild_optimizer", "symbolic_build",
           "inbound_parents"]

# What is read, on what, and which function here reads it.
PRIVATE_ATTRIBUTES = {
    "keras.optimizers.Optimizer._trainable_variables": "rebuild_optimizer",
    "keras.optimizers.Optimizer._trainable_variables_indices": "rebuild_optimizer",
    "keras.optimizers.Optimizer._untrack_variable": "rebuild_optimizer",
    "keras.optimizers.Optimizer._var_key": "rebuild_optimizer",
    "keras.optimizers.LossScaleOptimizer._trainable_variables_indices": "rebuild_optimizer",
    "keras.optimizers.LossScaleOptimizer._var_key": "rebuild_optimizer",
    "keras.Model._symbolic_build": "symbolic_build",
    "keras.Operation._inbound_nodes": "inbound_parents",
}


def _probes() -> dict:
    """One built object of each kind whose private attributes are listed."""
    inputs = keras.Input((2,))
    dense = keras.layers.Dense(1)
    model = keras.Model(inputs, dense(inputs))
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    scaled = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam())
    scaled.build(model.trainable_variables)
    return {"keras.optimizers.Optimizer": optimizer,
            "keras.optimizers.LossScaleOptimizer": scaled,
            "keras.Model": model, "keras.Operation": dense}


def missing_attributes() -> list[str]:
    """The entries of ``PRIVATE_ATTRIBUTES`` that the installed Keras does not have (empty
    when all are there), each as ``"<class>.<attribute> (used by keras_private.<function>)"``."""
    probes = _probes()
    missing = []
    for dotted, user in PRIVATE_ATTRIBUTES.items():
        owner, attribute = dotted.rsplit(".", 1)
        if not hasattr(probes[owner], attribute):
            missing.append(f"{dotted} (used by kerasmed.keras_private.{user})")
    return missing


def _slot_prefixes(variables):
    return tuple(f"{v.path.replace('/', '_')}_" for v in variables)


def rebuild_optimizer(optimizer, variables):
    """Rebuild a built ``optimizer`` in place for ``variables``, keeping its state.

    Keras 3 optimizers refuse variables they were not built with, so the optimizer is rebuilt
    over the new list: its non-slot variables (iterations, learning rate, loss scale) are left
    untouched, slots are recreated and the old slot values copied back by variable name. An
    unbuilt optimizer is left alone (``fit`` builds it with the right variables).
    """
    wrapper = optimizer if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else None
    inner = optimizer.inner_optimizer if wrapper is not None else optimizer
    if not inner.built:
        return
    old = list(inner._trainable_variables)
    if {id(v) for v in variables} == {id(v) for v in old}:
        return
    prefixes = _slot_prefixes(old)
    slots = [v for v in inner.variables if v.name.startswith(prefixes)]
    # By name ("<variable path>_<slot>"): the path also holds the name scope the optimizer was
    # first built in (a LossScaleOptimizer's, when built lazily inside a step).
    saved = {v.name: keras.ops.convert_to_numpy(v) for v in slots}
    for v in slots:
        inner._untrack_variable(v)
    inner._trainable_variables_indices.clear()
    inner.built = False
    inner.build(list(variables))
    for v in inner.variables:
        value = saved.get(v.name)
        if value is not None and tuple(value.shape) == tuple(v.shape):
            v.assign(value)
    if wrapper is not None:
        wrapper._trainable_variables_indices.clear()
        for i, v in enumerate(variables):
            wrapper._trainable_variables_indices[wrapper._var_key(v)] = i
        # Bypass attribute tracking, as BaseOptimizer.build does: these are model variables.
        object.__setattr__(wrapper, "_trainable_variables", list(variables))


def symbolic_build(model, batch) -> bool:
    """Run Keras' own symbolic build of a compiled ``model``'s training state (loss trackers,
    metrics, optimizer) from ``batch`` (shapes only, no step is run), in the model's strategy
    scope as Keras does. Returns False, having done nothing, on a Keras without it."""
    build = getattr(model, "_symbolic_build", None)
    if build is None:
        return False
    strategy = getattr(model, "distribute_strategy", None)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        build(data_batch=tuple(batch))
    return True


def inbound_parents(layer) -> list[list]:
    """For each call of ``layer`` in a functional graph, the operations whose outputs that call
    takes, in call order."""
    return [[parent.operation for parent in node.parent_nodes]
            for node in layer._inbound_nodes]
