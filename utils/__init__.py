"""Shared code of the scripts.

    settings.py         settings declared once (default, help, flag) -> the command lines
    run.py              run folders, atomic writes, user errors, the CLI wrapper
    devices.py          the local devices --devices chooses (fitting and training)
    distributed_env.py  the environment variables of a multi-process run
    fitting/            fitting point neurons to recordings
    training/           training the E/I network on a task
"""
