"""SessionOptions, RunOptions and the enums, with onnxruntime's names and values."""

from __future__ import annotations

import enum

__all__ = ["GraphOptimizationLevel", "ExecutionMode", "SessionOptions", "RunOptions"]

DISABLE_FALLBACK_KEY = "session.disable_cpu_ep_fallback"
DISABLE_PLUGINS_KEY = "session.disable_plugins"


class GraphOptimizationLevel(enum.IntEnum):
    ORT_DISABLE_ALL = 0
    ORT_ENABLE_BASIC = 1
    ORT_ENABLE_EXTENDED = 2
    ORT_ENABLE_LAYOUT = 3
    ORT_ENABLE_ALL = 99


class ExecutionMode(enum.IntEnum):
    ORT_SEQUENTIAL = 0
    ORT_PARALLEL = 1


class SessionOptions:
    """Options of an :class:`ortcore.InferenceSession`, read once at session creation.

    Besides onnxruntime's fields, ``disabled_plugins`` names plugins (entry-point
    or distribution names) to leave out of this session, and
    ``disable_fallback`` forbids running unclaimed nodes on the fallback
    provider (also settable as onnxruntime's config entry
    ``session.disable_cpu_ep_fallback = "1"``).
    """

    def __init__(self) -> None:
        self.graph_optimization_level = GraphOptimizationLevel.ORT_ENABLE_ALL
        self.optimized_model_filepath = ""
        self.intra_op_num_threads = 0
        self.inter_op_num_threads = 0
        self.execution_mode = ExecutionMode.ORT_SEQUENTIAL
        self.log_severity_level = 2
        self.log_verbosity_level = 0
        self.logid = ""
        self.enable_profiling = False
        self.profile_file_prefix = "ortcore_profile"
        self.enable_mem_pattern = True
        self.enable_cpu_mem_arena = True
        self.use_deterministic_compute = False
        self.disabled_plugins: list[str] = []
        self._config: dict[str, str] = {}

    def add_session_config_entry(self, key: str, value: str) -> None:
        self._config[str(key)] = str(value)

    def get_session_config_entry(self, key: str) -> str:
        return self._config.get(key, "")

    @property
    def disable_fallback(self) -> bool:
        return self._config.get(DISABLE_FALLBACK_KEY, "0") == "1"

    @disable_fallback.setter
    def disable_fallback(self, value: bool) -> None:
        self._config[DISABLE_FALLBACK_KEY] = "1" if value else "0"

    def all_disabled_plugins(self) -> list[str]:
        extra = [p.strip() for p in self._config.get(DISABLE_PLUGINS_KEY, "").split(",") if p.strip()]
        return [*self.disabled_plugins, *extra]


class RunOptions:
    """Per-run options (accepted for compatibility; ``terminate`` stops before the run)."""

    def __init__(self) -> None:
        self.log_severity_level = 2
        self.log_verbosity_level = 0
        self.logid = ""
        self.run_tag = ""
        self.terminate = False
        self.only_execute_path_to_fetches = False
