"""The environment variables that make several processes share one job (training or a --data
fitting run), with what each means; light, so that both command lines can list them."""

__all__ = ["DISTRIBUTED_ENV"]

# environment variable -> meaning (README, "Benchmarks and speed", several processes or hosts)
DISTRIBUTED_ENV = {
    "JAX_COORDINATOR_ADDRESS": "host:port of process 0, which every process connects to",
    "JAX_NUM_PROCESSES": "number of processes taking part",
    "JAX_PROCESS_ID": "this process's index, 0 .. JAX_NUM_PROCESSES - 1",
    "JAX_INIT_TIMEOUT": "seconds to wait for the coordinator and the other processes "
                        "(default 120)",
}
