"""The ONNX backend API (``onnx.backend.base.Backend``) over InferenceSession.

This lets onnx's ``BackendTest`` drive ortcore the way it drives onnxruntime::

    import onnx.backend.test
    import ortcore.backend
    globals().update(onnx.backend.test.BackendTest(ortcore.backend, __name__).test_cases)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

import ortcore
from ortcore.session import InferenceSession

__all__ = ["OrtCoreBackend", "OrtCoreBackendRep", "prepare", "run_model", "run_node", "supports_device", "is_compatible"]


def _providers_for(device: str) -> list[str] | None:
    kind = device.split(":")[0].upper()
    if kind == "CPU":
        return None  # the fallback provider(s)
    wanted = {"CUDA": "CUDAExecutionProvider", "OPENCL": "OpenCLExecutionProvider"}.get(kind)
    if wanted is None or wanted not in ortcore.get_available_providers():
        raise ortcore.EPFail(f"no available provider for device {device!r}")
    return [wanted]


class OrtCoreBackendRep(BackendRep):
    """A prepared model: runs positional or named inputs through one session."""

    def __init__(self, session: InferenceSession) -> None:
        self.session = session
        self._names = [i.name for i in session.get_inputs()]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, dict):
            feeds = inputs
        elif isinstance(inputs, (list, tuple)):
            feeds = dict(zip(self._names, inputs))
        else:
            feeds = {self._names[0]: inputs}
        return tuple(self.session.run(None, feeds))


class OrtCoreBackend(Backend):
    """onnx.backend.base.Backend implemented with ortcore's InferenceSession."""

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        return cls.supports_device(device)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        try:
            _providers_for(device)
        except ortcore.EPFail:
            return False
        return True

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> OrtCoreBackendRep:
        if isinstance(model, OrtCoreBackendRep):
            return model
        if isinstance(model, InferenceSession):
            return OrtCoreBackendRep(model)
        options = ortcore.SessionOptions()
        for key, value in kwargs.items():
            if hasattr(options, key):
                setattr(options, key, value)
        source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
        return OrtCoreBackendRep(InferenceSession(source, options, providers=_providers_for(device)))

    @classmethod
    def run_model(cls, model: Any, inputs: Any, device: str = "CPU", **kwargs: Any) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(
        cls,
        node: onnx.NodeProto,
        inputs: Sequence[Any],
        device: str = "CPU",
        outputs_info: Sequence[tuple[Any, Any]] | None = None,
        **kwargs: Any,
    ) -> tuple[np.ndarray, ...]:
        """Run one node: inputs positional, as in onnx's backend API."""
        from ortcore.dtypes import onnx_elem_type

        arrays = [np.asarray(x) for x in inputs]
        names = [n for n in node.input]
        graph_inputs = [
            onnx.helper.make_tensor_value_info(name, onnx_elem_type(a.dtype), a.shape)
            for name, a in zip(names, arrays) if name
        ]
        graph_outputs = [onnx.helper.make_tensor_value_info(o, 0, None) for o in node.output if o]
        graph = onnx.helper.make_graph([node], "run_node", graph_inputs, graph_outputs)
        opset = kwargs.pop("opset_version", onnx.defs.onnx_opset_version())
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid(node.domain or "", opset)])
        feeds = {name: a for name, a in zip(names, arrays) if name}
        rep = cls.prepare(model, device, **kwargs)
        return tuple(rep.session.run(None, feeds))


prepare = OrtCoreBackend.prepare
run_model = OrtCoreBackend.run_model
run_node = OrtCoreBackend.run_node
supports_device = OrtCoreBackend.supports_device
is_compatible = OrtCoreBackend.is_compatible
