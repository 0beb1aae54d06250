"""Training the E/I network on a task (task_training.py is the command line).

Imports flow one way: config <- task <- rules <- trainer <- checkpoint <- runs <- job;
figures stands aside (it needs only matplotlib). Timing a configuration in a fresh process is
the benchmarks' (benchmarks/kit/training.py).

    config.py      TrainConfig, RunOptions (every setting, its default and help: the flags)
                   and the registries RULES, TASKS, OPTIMIZERS (names only: no JAX)
    task.py        the tasks, TaskData, trial seeds, recall-period losses
    rules.py       the learning rules (bptt, diag, expsm_diag) and their step builders
    trace_kernels.py  a faster D-RTRL trace kernel registered in braintrace
    trainer.py     Trainer (network, optimizer, compiled steps; record activity), make_trainer
    checkpoint.py  save / load checkpoints, restore the optimizer state
    memory.py      refuse a network too large for the memory, before allocating
    runs.py        train() and simulate_run(): one run written into a run folder
    job.py         what task_training.py does once its flags are read
    parallel.py    several devices and processes: the data mesh, jax.distributed start-up
    recording.py   activity recorded as the trials run (statistics accumulated, not kept)
    analysis.py    weight and activity statistics of a trained network
    populations.py block matrices and rates by population (networks from anatomy)
    figures.py     activity, training-curve, weight and connectivity figures

The package imports nothing itself; import what you need from its modules.
"""
