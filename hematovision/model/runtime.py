"""A fast CPU runtime for the classifier's forward pass: LiteRT with XNNPACK.

LIME and SHAP run hundreds of forward passes per cell, so the seam's speed is the
dashboard's speed. The same trained weights, converted without quantisation, give logits
within about 1e-5 of Keras at several times the speed on two cores.

A runtime file has one or two outputs: a flat ``(n, classes + features)`` one (the logits,
then the pooled features) and, where the head after the Grad-CAM layer is linear, that
layer's feature map ``(n, h, w, k)``, from which Grad-CAM needs no gradients (see
:mod:`hematovision.explain.gradcam`). The two are told apart by their rank, which
conversion keeps, not by their order, which it need not.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
from pathlib import Path

import numpy as np

__all__ = ["RUNTIME_FILE", "HEAD_WEIGHTS_FILE", "export_litert", "LiteRTRunner", "load_head",
           "one_blas_thread"]

log = logging.getLogger(__name__)

RUNTIME_FILE = "model.tflite"
HEAD_WEIGHTS_FILE = "head.npz"  # the linear head after the Grad-CAM layer, see load_head


def load_head(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The head's weights ``(k, classes)`` and bias ``(classes,)``, float64, from the
    ``.npz`` that ``training.add_fast_runtime`` writes."""
    with np.load(path, allow_pickle=False) as stored:
        weights, bias = stored["weights"].astype(np.float64), stored["bias"].astype(np.float64)
    if weights.ndim != 2 or bias.shape != (weights.shape[1],):
        raise ValueError(f"{path}: expected weights (k, classes) and bias (classes,), got "
                         f"{weights.shape} and {bias.shape}")
    return weights, bias


def export_litert(logits_model, path: str | Path) -> Path:
    """Convert a Keras model (image → its outputs) to a float32 LiteRT flatbuffer at
    ``path``."""
    import tensorflow as tf

    # The converter prints every traced tensor (hundreds of lines) to stdout; they belong
    # in the debug log, not between a command's results. Its C++ half logs to stderr.
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), _native_info_hidden():
        converter = tf.lite.TFLiteConverter.from_keras_model(logits_model)
        flatbuffer = converter.convert()
    log.debug("%s", printed.getvalue())
    Path(path).write_bytes(flatbuffer)
    return Path(path)


@contextlib.contextmanager
def _native_info_hidden():
    """LiteRT's C++ logger announces its XNNPACK delegate on stderr (once a process, at the
    first allocation) and, unlike TensorFlow, ignores ``TF_CPP_MIN_LOG_LEVEL``. Where that
    setting hides TensorFlow's info lines (the CLI without ``--verbose``), the stderr file
    descriptor points elsewhere for those milliseconds. Errors still surface: the Python
    interpreter raises them with their message."""
    try:
        hidden = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")) >= 1
    except ValueError:
        hidden = False
    if not hidden:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limit = None


@contextlib.contextmanager
def one_blas_thread():
    """NumPy's BLAS on one thread while the block runs (for every thread of the process:
    BLAS has no per-thread setting); nested and concurrent blocks share one limit, lifted
    when the last ends.

    The familiarity distance multiplies a few cells' features by a 1,280 × 1,280 matrix.
    OpenBLAS splits that over both cores, and when the cores are busy (a batch's workers,
    another user) its threads wait for each other: 33 ms for 8 cells instead of 3.5 ms on
    one thread, with the same bits (each output sums its products in the same order).
    """
    from threadpoolctl import threadpool_limits

    global _blas_users, _blas_limit
    with _blas_lock:
        if _blas_users == 0:
            _blas_limit = threadpool_limits(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limit.restore_original_limits()
                _blas_limit = None


class _Interpreter:
    """One LiteRT interpreter behind a lock (an interpreter is not safe to share between
    threads); resizing the input happens only when the batch size changes."""

    def __init__(self, path: Path, threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = {len(detail["shape"]): detail["index"]
                   for detail in self._interpreter.get_output_details()}
        if 2 not in outputs:
            raise ValueError(f"{path} has no (n, classes + features) output; its outputs "
                             f"have ranks {sorted(outputs)}")
        self._output = outputs[2]
        self.feature_map = outputs.get(4)  # the Grad-CAM layer's output, if exported
        with _native_info_hidden():
            self._interpreter.allocate_tensors()
        self._batch = int(self._interpreter.get_input_details()[0]["shape"][0])
        self._lock = threading.Lock()

    def __call__(self, batch: np.ndarray, feature_map: bool = False):
        with self._lock:
            if batch.shape[0] != self._batch:
                self._interpreter.resize_tensor_input(self._input, batch.shape)
                self._interpreter.allocate_tensors()
                self._batch = batch.shape[0]
            self._interpreter.set_tensor(self._input, batch)
            self._interpreter.invoke()
            flat = self._interpreter.get_tensor(self._output).copy()
            if not feature_map:
                return flat
            return flat, self._interpreter.get_tensor(self.feature_map).copy()


class LiteRTRunner:
    """Runs a converted model on batches of any size.

    Streamlit serves each browser session from its own thread. Two interpreters on the
    same file: one for single cells and small batches, one for the large batches of LIME,
    SHAP and batch runs. A user's classification then never queues behind another user's
    explanation (a 64-image batch takes most of a second), and neither lane re-plans its
    tensors when the two kinds of call alternate.
    """

    SMALL = 8  # batches up to this size take the quick lane

    def __init__(self, path: str | Path, threads: int | None = None):
        self._path, self._threads = Path(path), threads or os.cpu_count() or 1
        self._quick = _Interpreter(self._path, self._threads)
        self._bulk: _Interpreter | None = None  # made on first use: start-up stays quick
        self._making = threading.Lock()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.shape[0] <= self.SMALL:
            return self._quick(batch)
        with self._making:
            if self._bulk is None:
                self._bulk = _Interpreter(self._path, self._threads)
        return self._bulk(batch)

    def with_threads(self, threads: int) -> LiteRTRunner:
        """Another runner on the same file, with interpreters of its own on ``threads``
        threads (each ~90 MiB at batches of up to :attr:`SMALL`)."""
        return LiteRTRunner(self._path, threads)

    @property
    def has_feature_map(self) -> bool:
        """Whether the file also returns the Grad-CAM layer's feature map."""
        return self._quick.feature_map is not None

    def with_feature_map(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The flat output ``(n, classes + features)`` and the feature map ``(n, h, w, k)``
        of a small batch (at most :attr:`SMALL` images: Grad-CAM explains one cell)."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if not self.has_feature_map:
            raise ValueError(f"{self._path} returns no feature map; export it again with "
                             "`python -m hematovision export --model <folder>`")
        if batch.shape[0] > self.SMALL:
            raise ValueError(f"at most {self.SMALL} images at once, got {batch.shape[0]}")
        return self._quick(batch, feature_map=True)
