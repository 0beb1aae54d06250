"""Training the E/I network on a task (task_training.py is the command line).

Imports flow one way: task <- rules <- trainer <- checkpoint <- runs; figures and bench
stand aside (figures needs only matplotlib; bench measures trainers in child processes).

    task.py        TASKS (the tasks), TaskData, trial seeds, recall-period losses
    rules.py       RULES (the learning rules: bptt, diag, expsm_diag) and their step builders
    trainer.py     TrainConfig (every setting of a run), Trainer, make_trainer
    checkpoint.py  save / load checkpoints, restore the optimizer state
    runs.py        train() and simulate(): one run written into a run folder
    figures.py     activity, training-curve, weight and connectivity figures
    bench.py       timing and memory of one configuration in a fresh process (benchmarks/)

The package imports nothing itself; import what you need from its modules.
"""
