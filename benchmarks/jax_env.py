"""What JAX sees where it runs: versions, backend, devices, and the project's packages.

Prints one line per fact and writes them as JSON. benchmarks/device_check.sh runs it in a
process of its own, so that the GPU memory JAX takes on start-up is free again for the
timed runs.

    python -m benchmarks.jax_env OUT.json
"""
from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
from importlib import metadata

PACKAGES = ("jax", "jaxlib", "numpy", "scipy", "optax", "brainunit", "saiunit", "brainstate",
            "braintools", "brainevent", "braintrace", "brainpy", "brainpy-state",
            "brainpy-datasets", "nevergrad", "scikit-optimize", "scikit-learn")


def package_versions(names=PACKAGES) -> dict:
    """Installed version of each distribution, None where it is not installed."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def gpu_driver() -> str | None:
    """nvidia-smi's name, memory and driver line of each GPU, None without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    proc = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                           "--format=csv,noheader"], capture_output=True, text=True)
    return (proc.stdout or proc.stderr).strip()


def environment() -> dict:
    """The facts: Python, JAX's backend and devices, package versions, nvidia-smi, nvcc."""
    import jax

    devices = jax.devices()
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "backend": jax.default_backend(),
            "devices": [f"{d.platform}:{d.id} {d.device_kind}" for d in devices],
            "packages": package_versions(), "nvidia_smi": gpu_driver(),
            "nvcc": shutil.which("nvcc")}


def main(argv=None) -> dict:
    """Print the facts and write them to the JSON file named on the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="JSON file to write")
    args = p.parse_args(argv)
    from utils.run import atomic_write_json

    env = environment()
    for key, value in env.items():
        if key == "packages":
            value = ", ".join(f"{k} {v}" for k, v in value.items() if v is not None)
        print(f"{key:>10}: {value}")
    atomic_write_json(args.out, env)
    return env


if __name__ == "__main__":
    main()
