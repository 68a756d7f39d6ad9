"""Hot reload: the service follows its model URI's alias in the registry.

A ``ModelFollower`` owns one daemon thread. It loads the model first (so the HTTP server is up
and ``/health`` answers while it loads), then, when the URI follows an alias, a stage or
``Latest``, asks the registry every ``interval`` seconds which version that names now (a cheap
lookup). When the version changed it loads the new one in that same thread, never on the event
loop, and swaps it into the ``ModelHolder`` with one assignment. A version that fails to load
is logged and counted, the old one keeps serving, and the next poll tries again.

``poll()`` is one step of that loop, public so tests drive it without threads or clocks. A
service serving several horizons runs one follower per horizon, each with its own holder, so
each horizon's model reloads (or fails to) independently of the others.
"""

from __future__ import annotations

import logging
import threading

from pipeline.domain import ModelLoader, VersionResolver
from pipeline.serving.holder import ModelHolder, Served

log = logging.getLogger(__name__)
STOP_JOIN_SECONDS = 2.0  # a load in progress is not waited for: the thread is a daemon
MODELS = "models:/"


class ModelFollower:
    """Loads ``uri`` in the background and keeps the holder on the version it names."""

    def __init__(
        self,
        loader: ModelLoader,
        resolver: VersionResolver,
        uri: str,
        interval: float,
        holder: ModelHolder | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"reload interval must be > 0 seconds, got {interval}")
        self.loader = loader
        self.resolver = resolver
        self.uri = uri
        self.interval = interval
        self.holder = holder or ModelHolder()
        # Parsing only: a malformed URI fails here, when the service is built, not in a thread.
        self.alias = resolver.follows(uri)
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failing: str | None = None  # the version being tried until it loads

    @property
    def name(self) -> str:
        """The registered model the URI names (``models:/NAME@alias`` -> ``NAME``): the
        model's label in metrics, known before anything is loaded."""
        return self.uri.removeprefix(MODELS).split("@", 1)[0].split("/", 1)[0]

    @property
    def follows(self) -> bool:
        """True when the URI names a moving target (an alias, a stage, Latest)."""
        return self.alias is not None

    def start(self) -> None:
        """Start the background thread once; later calls do nothing (cheap: call it freely)."""
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(  # named per model: one thread per horizon
                    target=self._run, name=f"stockpipe-reload-{self.name}", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        """Stop polling; a load in progress finishes (or not) in its daemon thread."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(STOP_JOIN_SECONDS)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            if self.holder.current is not None and not self.follows:
                return  # a fixed version is loaded once and never changes
            self._stop.wait(self.interval)

    def poll(self) -> bool:
        """One step: load the first model, or reload if the URI now names another version.

        Returns True when a model was swapped in. Never raises: a failure is logged, counted
        in the holder, and whatever was served keeps serving.
        """
        current = self.holder.current
        try:
            if current is not None:
                if not self.follows:
                    return False
                version = self.resolver.resolve(self.uri)  # cheap: no model is loaded
                if version == current.model.version:
                    return False
                if version != self._failing:  # said once per version, not on every retry
                    log.info("%s now names version %s; loading it", self.uri, version)
                self._failing = version
            # The loader resolves the URI again: should the alias move meanwhile, it loads the
            # newest target, and the next poll finds nothing to do.
            model = self.loader.load(self.uri)
        except Exception as exc:  # any registry or model-store failure: keep serving
            self._failed(current, exc)
            return False
        self._failing = None
        if current is not None and model.version == current.model.version:
            return False  # the alias moved back before the load: nothing changed
        self.holder.swap(Served.of(model, self.alias, self.uri))
        old = "nothing" if current is None else f"version {current.model.version}"
        log.info("serving %s version %s (was %s)", model.name or self.uri, model.version, old)
        return True

    def _failed(self, current: Served | None, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        self.holder.failed(error)
        state = (
            "no model is loaded yet"
            if current is None
            else f"version {current.model.version} keeps serving"
        )
        log.error("cannot load %s (%s); %s; retry in %g s", self.uri, error, state, self.interval)
