"""Run plumbing shared by every script: output folders, atomic files, one-line errors."""
from __future__ import annotations

import argparse
import datetime as _dt
import errno
import io
import json
import math
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

from utils.settings import nonneg_float, nonneg_int, positive_float, positive_int

__all__ = [
    "UserError", "GracefulInterrupt", "RunStatus", "compilation_cache_dir",
    "use_compilation_cache", "make_out_dir", "atomic_write_json", "atomic_write_bytes",
    "save_figure", "write_config", "write_metrics", "cli", "positive_float", "positive_int",
    "nonneg_int", "nonneg_float",
    "to_jsonable",
]


class UserError(Exception):
    """A problem with the user's input: printed as one line, no traceback."""


def check_out_dir(path: Path, *, reuse: bool = False) -> None:
    """UserError if `path` is a file, or a non-empty folder while not `reuse`d."""
    if path.exists() and not path.is_dir():
        raise UserError(f"--out_dir {path} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not reuse:
        raise UserError(f"--out_dir {path} already holds files of another run; choose a new "
                        "folder (or --resume that run)")


def make_out_dir(script: str, out_dir: str | None, *, reuse: bool = False) -> Path:
    """Create and return a fresh run folder: `out_dir` or results/<script>/<timestamp>/.

    An existing non-empty folder is refused (a run never overwrites another run's files)
    unless `reuse` is set, as when resuming that run. UserError names any problem."""
    if out_dir is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        path = Path("results") / script / stamp
    else:
        path = Path(out_dir)
    check_out_dir(path, reuse=reuse)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create --out_dir {path}: {err.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"--out_dir {path} is not writable")
    return path


class GracefulInterrupt:
    """Ctrl-C (SIGINT) or SIGTERM inside this block sets `requested` instead of interrupting,
    so that a loop can stop at a consistent point; a second one interrupts at once
    (KeyboardInterrupt). Outside the main thread, where signals cannot be caught, it does
    nothing."""

    def __init__(self, message: str = "stopping after the current step (Ctrl-C again to "
                                      "stop now)"):
        self.message = message
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(self.message, file=sys.stderr)

    def __enter__(self) -> "GracefulInterrupt":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> bool:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


class RunStatus:
    """The state of a run folder in status.json: running, then done, failed or interrupted.

    Use as a context manager around the work, after the inputs are validated and config.json
    is written: the status says on disk how the run ended."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / "status.json"
        self.started = _dt.datetime.now().isoformat(timespec="seconds")

    def write(self, state: str, message: str | None = None) -> None:
        """Record `state` (and a one-line message) atomically."""
        status = {"state": state, "started": self.started,
                  "updated": _dt.datetime.now().isoformat(timespec="seconds")}
        if message:
            status["message"] = message
        atomic_write_json(self.path, status)

    def __enter__(self) -> "RunStatus":
        self.write("running")
        return self

    def __exit__(self, kind, err, tb) -> bool:
        if kind is None:
            self.write("done")
        elif issubclass(kind, KeyboardInterrupt):
            self.write("interrupted")
        else:
            self.write("failed", f"{kind.__name__}: {err}".splitlines()[0])
        return False


def _umask() -> int:
    """The process's file-creation mask (read without changing it for long)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str) -> None:
    """Write to a temporary file beside `path`, give it the usual permissions, rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are for others too
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None:  # name the file for the user
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes to a temporary file beside `path`, then rename it into place."""
    _atomic_write(Path(path), lambda fh: fh.write(data), "wb")


def to_jsonable(obj: Any) -> Any:
    """Convert NumPy/JAX scalars and arrays (and non-finite floats) into plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    text = json.dumps(to_jsonable(obj), indent=2)
    _atomic_write(Path(path), lambda fh: fh.write(text + "\n"), "w")


def write_config(out_dir: Path, args: argparse.Namespace | dict) -> None:
    """Save every argument of the run to config.json."""
    atomic_write_json(Path(out_dir) / "config.json", dict(vars(args)) if not isinstance(args, dict) else args)


def write_metrics(out_dir: Path, metrics: dict) -> None:
    """Save the run's results to metrics.json."""
    atomic_write_json(Path(out_dir) / "metrics.json", metrics)


def save_figure(fig, path: str | Path, show: bool = False, tight: bool = True) -> Path:
    """Save a matplotlib figure (pyplot's or a bare `Figure`) atomically as PNG, cropped to
    what is drawn (`tight`, one more drawing pass) or as laid out; show it only when asked."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight" if tight else None)
    atomic_write_bytes(path, buf.getvalue())
    if show:
        import matplotlib.pyplot as pyplot  # only a run asked to show figures needs a GUI

        pyplot.show()
    if "matplotlib.pyplot" in sys.modules:  # pyplot keeps its figures until closed
        sys.modules["matplotlib.pyplot"].close(fig)
    return Path(path)


def compilation_cache_dir() -> Path:
    """Where compiled JAX functions are kept between runs: $JAX_COMPILATION_CACHE_DIR, else
    $XDG_CACHE_HOME (or ~/.cache) /brain-modeling-jax. Deleting the folder clears it."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "brain-modeling-jax"


def use_compilation_cache() -> None:
    """Keep every compiled function on disk, so that a second run skips compiling
    (docs/NOTES.md, "Start-up"). Only the scripts' entry points call it.
    Before JAX is imported this only sets JAX's environment variables, so that a run that
    never computes (--help, a bad flag) does not pay JAX's import."""
    settings = {"jax_compilation_cache_dir": str(compilation_cache_dir()),
                "jax_persistent_cache_min_compile_time_secs": 0.0,
                "jax_persistent_cache_min_entry_size_bytes": 0}
    if "jax" not in sys.modules:
        for name, value in settings.items():
            os.environ.setdefault(name.upper(), str(value))
        return
    import jax

    for name, value in settings.items():
        jax.config.update(name, value)


def cli(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None,
        cache: bool = False) -> int:
    """Run `main`, turning a UserError or Ctrl-C into one line on stderr and an exit status;
    with `cache`, compiled functions are kept on disk between runs (use_compilation_cache)."""
    if cache:
        use_compilation_cache()
    try:
        main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory: use smaller sizes (fewer neurons, starts or trials per "
              "batch)", file=sys.stderr)
        return 1
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"error: no space left to write {err.filename or 'the results'}: free some disk "
              "space or choose another --out_dir (files already written are intact)",
              file=sys.stderr)
        return 1
    return 0


def in_background(*steps: Callable[[], Any]) -> None:
    """Run `steps` in order in one daemon thread: work the run needs later (slow imports,
    compilations) overlapping work that waits outside Python (a fit's compiled simulations).
    A step that fails ends the thread quietly: the run meets the same failure where it does
    that work itself."""
    def run() -> None:
        try:
            for step in steps:
                step()
        except Exception:
            return
    threading.Thread(target=run, daemon=True).start()


def exit_now(status: int) -> NoReturn:
    """End the process with `status` once stdout and stderr are flushed, skipping Python's
    teardown of its modules (JAX's compiled functions and client; docs/NOTES.md, "Start-up").
    Only for a script's last line, once every file it writes is closed (they are written whole
    and renamed into place)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
