"""Train a conductance-based E/I spiking network on evidence accumulation, or simulate it.

    python task_training.py --method bptt                       # train (defaults below)
    python task_training.py --method expsm_diag                 # online ES-D-RTRL (braintrace)
    python task_training.py --method diag --n_rec 50            # D-RTRL (slower per batch)
    python task_training.py --neuron alif --method bptt         # the adaptive-LIF network
    python task_training.py --conn_method gaussian --n_rec 400 --w_ei_ratio 4
    python task_training.py --mode sim --checkpoint results/task_training/RUN/checkpoint.npz
    python task_training.py --resume results/task_training/RUN  # continue an interrupted run

Each run folder holds config.json, metrics.json, checkpoint.npz (best model by held-out
validation accuracy, with its config), last.npz (latest state, for --resume) and PNG figures.
The default neuron model is gif (the authors' BrainScale network, on which all three methods
learn); --neuron alif is the adaptive-LIF network (best for bptt). The command line only: the
work is done by utils/training (train, simulate).
"""
from __future__ import annotations

import argparse
import signal
import sys
from typing import Any, Dict, Optional, Sequence

from utils.distributed_env import DISTRIBUTED_ENV
from utils.run import cli
from utils.training.config import TrainingJob

DISTRIBUTED_HELP = ("several processes or hosts train one network together (each batch split "
                    "over all their devices; process 0 writes the run folder) when these are "
                    "set in every process: " + "; ".join(f"{k}: {v}" for k, v in
                                                        DISTRIBUTED_ENV.items()))


def build_parser(suppress: bool = False) -> argparse.ArgumentParser:
    """The command-line interface, one flag per setting of TrainingJob (utils/training/
    config.py); `suppress=True` omits defaults (to see what was given)."""
    kw = {"argument_default": argparse.SUPPRESS} if suppress else {}
    parser = argparse.ArgumentParser(prog="task_training.py", description=__doc__.split("\n\n")[0],
                                     epilog=DISTRIBUTED_HELP, **kw)
    TrainingJob.add_flags(parser, suppress=suppress)
    return parser


def parse(argv: Optional[Sequence[str]]) -> tuple[Dict[str, Any], set]:
    """Every flag's value (a new dict) and the set of flags given explicitly."""
    values = dict(vars(build_parser().parse_args(argv)))
    explicit = set(vars(build_parser(suppress=True).parse_args(argv)))
    return values, explicit


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Parse arguments, then train or simulate; returns the metrics written."""
    values, explicit = parse(argv)
    from utils.training.job import run_job  # JAX and the BrainPy stack: once the flags are read

    return run_job(values, explicit)


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    """A batch scheduler's SIGTERM saves and evaluates like Ctrl-C."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    sys.exit(cli(main))
