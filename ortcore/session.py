"""InferenceSession: load, optimize, partition and compile once; run many times."""

from __future__ import annotations

import logging
import os
import time
import weakref
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ortcore.dtypes import dtype_name, type_string
from ortcore.errors import EPFail, Fail, InvalidArgument, OrtCoreError, did_you_mean
from ortcore.graph_utils import validate_graph
from ortcore.ir import Graph, Model, TensorType, load_model
from ortcore.options import ExecutionMode, GraphOptimizationLevel, RunOptions, SessionOptions
from ortcore.partition import Partition, partition_graph
from ortcore.plan import Plan, Profiler, compile_plan
from ortcore.plugin import PluginManager, get_plugin_manager
from ortcore.provider import ExecutionProvider

__all__ = ["InferenceSession", "NodeArg", "ModelMetadata"]

log = logging.getLogger("ortcore.session")


@dataclass(frozen=True)
class NodeArg:
    """An input or output as onnxruntime describes it: name, type string and shape."""

    name: str
    type: str
    shape: list[int | str | None]

    def __repr__(self) -> str:
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"


@dataclass(frozen=True)
class ModelMetadata:
    producer_name: str
    graph_name: str
    domain: str
    description: str
    graph_description: str
    version: int
    custom_metadata_map: dict[str, str]


def _type_str(t: TensorType | None) -> str:
    if t is None:
        return "tensor(undefined)"
    inner = type_string(t.elem_type)
    if t.kind == "sequence":
        return f"seq({inner})"
    if t.kind == "optional":
        return f"optional({inner})"
    if t.kind == "map":
        return "map"
    return inner


def _node_arg(name: str, t: TensorType | None) -> NodeArg:
    shape = list(t.shape) if t is not None and t.shape is not None else []
    return NodeArg(name, _type_str(t), shape)


@dataclass(frozen=True)
class _InputSpec:
    """What run() checks about one feed, prepared once."""

    name: str
    position: int
    dtype: np.dtype | None
    shape: tuple[int | str | None, ...] | None
    type_str: str
    kind: str = "tensor"

    def check(self, value: Any) -> Any:
        if self.kind != "tensor":
            return value  # sequences (lists) and optionals are passed through as given
        if type(value) is not np.ndarray:
            value = _as_array(self, value)
        if self.dtype is not None and value.dtype != self.dtype:
            if self.dtype.kind == "O" and value.dtype.kind in "US":
                value = value.astype(object)
            else:
                raise InvalidArgument(
                    f"input {self.name!r}: expected {self.type_str} ({dtype_name(self.dtype)}), "
                    f"got an array of {dtype_name(value.dtype)} with shape {value.shape}"
                )
        if self.shape is not None:
            if value.ndim != len(self.shape):
                raise InvalidArgument(
                    f"input {self.name!r}: expected rank {len(self.shape)} with shape "
                    f"{_shape_str(self.shape)}, got rank {value.ndim} with shape {value.shape}"
                )
            for axis, (want, got) in enumerate(zip(self.shape, value.shape)):
                if type(want) is int and want != got:
                    raise InvalidArgument(
                        f"input {self.name!r}: dimension {axis} must be {want}, got {got} "
                        f"(expected shape {_shape_str(self.shape)}, got {value.shape})"
                    )
        return value


def _as_array(spec: _InputSpec, value: Any) -> np.ndarray:
    if hasattr(value, "numpy") and callable(value.numpy) and not isinstance(value, np.generic):
        value = value.numpy()  # OrtValue-like objects
    try:
        return np.asarray(value, dtype=spec.dtype if isinstance(value, (int, float, bool, list, tuple)) else None)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(
            f"input {spec.name!r}: expected {spec.type_str}, got {type(value).__name__} that "
            f"cannot be converted to an array ({exc})"
        ) from exc


def _as_output(value: Any) -> Any:
    """Arrays as they are; a numpy scalar a kernel returned becomes a 0-d array."""
    return np.asarray(value) if isinstance(value, np.generic) else value


def _shape_str(shape: Sequence[int | str | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


ProviderSpec = str | tuple[str, Mapping[str, Any]]

# Marks a feed not given; None itself is a valid feed (an empty optional).
_MISSING = object()


class InferenceSession:
    """Run an ONNX model with the onnxruntime Python API.

    ``providers`` is the ordered preference list (names, or ``(name, options)``
    tuples); nodes no listed provider claims fall back to the installed
    fallback provider (CPU) unless ``SessionOptions.disable_fallback`` is set.
    """

    def __init__(
        self,
        path_or_bytes: str | os.PathLike | bytes | Any,
        sess_options: SessionOptions | None = None,
        providers: Sequence[ProviderSpec] | None = None,
        provider_options: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        self._sess_options = sess_options or SessionOptions()
        self._pm = get_plugin_manager(self._sess_options.all_disabled_plugins())
        _register_op_schemas(self._pm)
        if kwargs.get("model") is not None:
            model = kwargs["model"]
        else:
            model = load_model(path_or_bytes)
        self._model_path = str(path_or_bytes) if isinstance(path_or_bytes, (str, os.PathLike)) else None
        self._build(model, providers, provider_options)

    # -- construction --------------------------------------------------------------
    def _build(
        self,
        model: Model,
        providers: Sequence[ProviderSpec] | None,
        provider_options: Sequence[Mapping[str, Any]] | None,
    ) -> None:
        from ortcore.optimizer import optimize

        graph = model.graph
        self._model = model
        # What the caller sees is decided on the model as given, before rewrites.
        init_names = set(graph.initializers)
        overridable = model.ir_version >= 4
        self._inputs = [_node_arg(v.name, v.type) for v in graph.inputs if v.name not in init_names]
        self._overridable = (
            [_node_arg(v.name, v.type) for v in graph.inputs if v.name in init_names] if overridable else []
        )
        self._outputs = [_node_arg(v.name, v.type) for v in graph.outputs]

        validate_graph(graph)
        self._providers = self._make_providers(providers, provider_options)
        self._fallback = [p for p in self._providers if p.fallback]
        if self._sess_options.intra_op_num_threads > 0:
            for provider in self._providers:
                provider.set_intra_op_threads(int(self._sess_options.intra_op_num_threads))
        if self._sess_options.enable_cpu_mem_arena:
            for provider in self._providers:
                provider.use_memory_arena()
        level = GraphOptimizationLevel(int(self._sess_options.graph_optimization_level))
        frozen = {a.name for a in self._overridable}
        self._optimization_log = optimize(model, level, self, frozen=frozen).log
        if self._sess_options.optimized_model_filepath:
            from ortcore.ir import model_to_proto
            import onnx

            onnx.save(model_to_proto(model), self._sess_options.optimized_model_filepath)

        graph = model.graph
        types = self._types = graph.types()
        self._partition = partition_graph(graph, model.opset_imports, self._providers, types)
        # Feeds: required inputs first, then overridable initializers (defaults below).
        arg_names = [a.name for a in self._inputs] + [a.name for a in self._overridable]
        constants = {k: v for k, v in graph.initializers.items() if k not in frozen}
        self._profiler = Profiler() if self._sess_options.enable_profiling else None
        self._executor = self._inter_op_pool()
        self._plan = compile_plan(
            graph,
            self._partition,
            model.opset_imports,
            arg_names=arg_names,
            output_names=[o.name for o in self._outputs],
            constants=constants,
            types=types,
            compile_subgraph=self._compile_subgraph,
            profiler=self._profiler,
            executor=self._executor,
        )
        self._specs = {}
        for position, name in enumerate(arg_names):
            t = next((v.type for v in model.graph.inputs if v.name == name), None)
            self._specs[name] = _InputSpec(
                name, position, t.dtype if t is not None and t.kind == "tensor" else None,
                t.shape if t is not None and t.kind == "tensor" else None, _type_str(t),
                t.kind if t is not None else "tensor",
            )
        self._n_required = len(self._inputs)
        self._defaults = [graph.initializers[a.name] for a in self._overridable]
        self._output_index = {o.name: i for i, o in enumerate(self._outputs)}

    def _make_providers(
        self,
        providers: Sequence[ProviderSpec] | None,
        provider_options: Sequence[Mapping[str, Any]] | None,
    ) -> list[ExecutionProvider]:
        available = self._pm.providers()
        fallback_names = [name for name, info in available.items() if info.fallback and info.available]
        if providers is None:
            providers = fallback_names
            if not providers:
                raise EPFail(
                    "no execution provider is installed; install one, for example "
                    "`pip install ortcore-cpu`"
                )
        if provider_options is not None and len(provider_options) != len(providers):
            raise InvalidArgument(
                f"provider_options has {len(provider_options)} entries but providers has {len(providers)}"
            )
        specs: list[tuple[str, Mapping[str, Any]]] = []
        for i, spec in enumerate(providers):
            name, options = (spec, {}) if isinstance(spec, str) else (spec[0], spec[1])
            if provider_options is not None:
                options = {**options, **provider_options[i]}
            specs.append((name, options))
        if not self._sess_options.disable_fallback:
            listed = {name for name, _ in specs}
            specs.extend((name, {}) for name in fallback_names if name not in listed)
        result = []
        for name, options in specs:
            cls = self._pm.provider_class(name)
            try:
                result.append(cls(options, self._pm.extra_kernels(name)))
            except OrtCoreError:
                raise
            except Exception as exc:
                raise EPFail(f"execution provider {name!r} failed to start: {type(exc).__name__}: {exc}") from exc
        return result

    def _inter_op_pool(self) -> Executor | None:
        """The thread pool that runs independent nodes concurrently (ORT_PARALLEL only)."""
        if int(self._sess_options.execution_mode) != int(ExecutionMode.ORT_PARALLEL):
            return None
        threads = int(self._sess_options.inter_op_num_threads) or (os.cpu_count() or 2)
        if threads < 2:
            return None
        pool = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="ortcore-inter-op")
        weakref.finalize(self, pool.shutdown, wait=False)
        return pool

    def _compile_subgraph(
        self, graph: Graph, *, implicit: Sequence[str] = (), home: ExecutionProvider | None = None
    ) -> Plan:
        """Compile a control-flow body with this session's providers.

        Its arguments are the graph's inputs followed by the outer-scope values
        ``implicit``; they live on, and the outputs return to, ``home``'s device.
        """
        arg_names = [v.name for v in graph.inputs] + list(implicit)
        validate_graph(graph, arg_names)
        types = {**self._types, **graph.types()}
        part = partition_graph(graph, self._model.opset_imports, self._providers, types)
        plan = compile_plan(
            graph, part, self._model.opset_imports,
            arg_names=arg_names,
            output_names=[o.name for o in graph.outputs],
            constants=dict(graph.initializers),
            types=types,
            compile_subgraph=self._compile_subgraph,
            profiler=self._profiler,
            home=home,
        )
        plan.partition = part
        return plan

    # -- the onnxruntime API -------------------------------------------------------
    def get_inputs(self) -> list[NodeArg]:
        return list(self._inputs)

    def get_outputs(self) -> list[NodeArg]:
        return list(self._outputs)

    def get_overridable_initializers(self) -> list[NodeArg]:
        return list(self._overridable)

    def get_providers(self) -> list[str]:
        return [p.name for p in self._providers]

    def get_provider_options(self) -> dict[str, dict[str, Any]]:
        return {p.name: dict(p.options) for p in self._providers}

    def get_session_options(self) -> SessionOptions:
        return self._sess_options

    def get_modelmeta(self) -> ModelMetadata:
        m = self._model
        return ModelMetadata(
            producer_name=m.producer_name,
            graph_name=m.graph.name,
            domain=m.domain,
            description=m.doc_string,
            graph_description=m.graph_description,
            # onnxruntime reports an unset model_version as INT64_MAX
            version=m.model_version if m.model_version is not None else 2**63 - 1,
            custom_metadata_map=dict(m.metadata_props),
        )

    def get_optimization_log(self) -> list[str]:
        """What each optimizer pass changed, in order (``"pass: N change(s)"``)."""
        return list(self._optimization_log)

    def get_partition(self) -> Partition:
        """Which provider runs each node, who declined it and why, and the transfers."""
        return self._partition

    def end_profiling(self) -> str:
        """Write the profile as a Chrome trace JSON file and return its path ("" if off)."""
        if self._profiler is None:
            return ""
        prefix = self._sess_options.profile_file_prefix or "ortcore_profile"
        path = f"{prefix}_{time.strftime('%Y-%m-%d_%H-%M-%S')}.json"
        self._profiler.write(path)
        self._profiler.events.clear()
        return path

    @property
    def profiler(self) -> Profiler | None:
        return self._profiler

    @property
    def plan(self) -> Plan:
        return self._plan

    def run(
        self,
        output_names: Sequence[str] | None,
        input_feed: Mapping[str, Any],
        run_options: RunOptions | None = None,
    ) -> list[np.ndarray]:
        if run_options is not None and run_options.terminate:
            raise Fail("run() was asked to terminate by RunOptions.terminate")
        args = self._feeds_to_args(input_feed)
        try:
            with np.errstate(all="ignore"):  # IEEE results (inf, nan) are the answer, not news
                results = self._plan.run(*args)
        except Exception as exc:
            raise self._run_error(exc) from exc
        if output_names is None:
            return [_as_output(r) for r in results]
        return [_as_output(results[self._output_position(name)]) for name in output_names]

    def _output_position(self, name: str) -> int:
        try:
            return self._output_index[name]
        except KeyError:
            raise InvalidArgument(
                f"unknown output name {name!r}{did_you_mean(name, self._output_index)}; "
                f"the model's outputs are {list(self._output_index)}"
            ) from None
        except TypeError:
            raise InvalidArgument(f"output names must be strings, got {type(name).__name__}") from None

    def _feeds_to_args(self, feed: Mapping[str, Any]) -> list[Any]:
        if not isinstance(feed, Mapping):
            raise InvalidArgument(f"input_feed must be a dict of name -> array, got {type(feed).__name__}")
        args: list[Any] = [_MISSING] * self._n_required + self._defaults
        specs = self._specs
        for name, value in feed.items():
            spec = specs.get(name)
            if spec is None:
                raise InvalidArgument(
                    f"unknown input name {name!r}{did_you_mean(str(name), specs)}; "
                    f"the model's inputs are {[a.name for a in self._inputs]}"
                )
            args[spec.position] = spec.check(value)
        if len(feed) < self._n_required or any(a is _MISSING for a in args[: self._n_required]):
            missing = [a.name for a in self._inputs if a.name not in feed]
            raise InvalidArgument(
                f"missing required input(s) {missing}; expected "
                + ", ".join(f"{a.name!r}: {a.type} {_shape_str(a.shape)}" for a in self._inputs)
            )
        return args

    def _run_error(self, exc: Exception) -> OrtCoreError:
        step = self._plan.failing_step(exc.__traceback__)
        where = step.describe() if step is not None else "the plan"
        return Fail(f"{where} failed: {type(exc).__name__}: {exc}")


def _register_op_schemas(pm: PluginManager) -> None:
    """Register plugin op schemas with onnx.defs once per plugin manager.

    This runs before the model is loaded, so onnx's shape inference on load
    runs the schemas' Python inference functions (see ortcore.custom_ops).
    """
    if getattr(pm, "_schemas_registered", False):
        return
    from ortcore.custom_ops import register_schemas

    register_schemas(pm.op_schemas())
    pm._schemas_registered = True
