"""What the benchmarks share; no benchmark imports another, only these modules.

- base: the repository's root, the output convention (`write_result`: NAME.json), `time_to`,
  `free_port`, `write_csv`
- hh: the HH problem of the fitting benchmarks (free parameters, noise floor, an accurate
  reference simulation, noisy recordings, drawn populations)
- peers: running fitters in fresh processes (this project's scripts, Brian2, jaxley) and
  finding the Brian2 environment
- sizes: the tables of fits as the number of free parameters grows
- training: one training configuration measured in a fresh process, the speed bars
- optim: the sequential L-BFGS-B loop the lock-step batching is measured against
- nwb: the NWB writer of the benchmarks and the tests
- brian2_model: the Brian2 networks of the Brian2 programs (their own environment imports it
  as `kit.brian2_model`)

This file imports nothing, so that the Brian2 environment can import the kit too.
"""
