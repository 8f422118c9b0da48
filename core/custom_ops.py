"""Custom TensorFlow ops a served SavedModel may need, registered before it is loaded.

A SavedModel built with a ScaNN retrieval index (`trainer.scann_serving_model`) calls ops of the
`Scann` namespace that stock TensorFlow lacks; importing the `scann` package registers them in
the process. `register_custom_ops` imports each installed package once; every loader of a served
SavedModel (the model server's workers, the evaluator, the compression records, `recsys
recommend`) goes through `load_saved_model`, which calls it first. `missing_ops_error` turns
TensorFlow's "Op type not registered" failure for a known namespace into one line that says
which package to install.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
import threading
from typing import Dict, Optional, Tuple

_LOG = logging.getLogger(__name__)

# op namespace -> (module that registers its ops, pip requirement)
CUSTOM_OP_PACKAGES: Dict[str, Tuple[str, str]] = {"Scann": ("scann", "scann==1.3.2")}


def installed(namespace: str) -> bool:
    """Whether the package that registers `namespace`'s ops can be imported (not importing it)."""
    try:
        return importlib.util.find_spec(CUSTOM_OP_PACKAGES[namespace][0]) is not None
    except ValueError:  # a module object without a spec (e.g. blocked in sys.modules)
        return False


def load_saved_model(path: str, **kwargs):
    """`tf.saved_model.load(path, **kwargs)` after `register_custom_ops`: every in-project loader
    of a served SavedModel goes through here, so a ScaNN-index model loads wherever scann is."""
    import tensorflow as tf

    register_custom_ops()
    return tf.saved_model.load(path, **kwargs)


_UNREGISTERED = re.compile(r"Op type not registered '(\w+)>(\w+)'")
_lock = threading.Lock()
_registered: Dict[str, bool] = {}


def register_custom_ops() -> Dict[str, bool]:
    """Imports every installed custom-op package of `CUSTOM_OP_PACKAGES` (once per process).

    Returns:
      namespace -> whether its ops are registered in this process.
    """
    with _lock:
        for namespace, (module, _) in CUSTOM_OP_PACKAGES.items():
            if namespace in _registered:
                continue
            present = installed(namespace)
            if present:
                try:
                    importlib.import_module(module)
                except ImportError as err:  # installed but broken: the load error says what is missing
                    _LOG.warning("cannot import %s (ops %s>*): %s", module, namespace, err)
                    present = False
            _registered[namespace] = present
        return dict(_registered)


def missing_ops_error(path: str, error: BaseException) -> Optional[str]:
    """One line saying which package a SavedModel needs, when `error` is TensorFlow's
    "Op type not registered" for a namespace of `CUSTOM_OP_PACKAGES`; else None.

    Args:
      path: the SavedModel directory.
      error: what loading it raised.
    """
    match = _UNREGISTERED.search(str(error))
    if match is None or match.group(1) not in CUSTOM_OP_PACKAGES:
        return None
    module, requirement = CUSTOM_OP_PACKAGES[match.group(1)]
    return (f"{path} needs the custom op {match.group(1)}>{match.group(2)} of the '{module}' package, "
            f"which is not installed in the model server: pip install {requirement}")
