"""Neuron models, synapses and the E/I network shared by the scripts.

`NEURON_MODELS` is the one list of fittable point-neuron families: name -> factory returning a
`models.spec.NeuronModel` (its keyword options are the family's own, e.g. hh's steady_state).
Models never import utils.
"""
from models.gif import make_gif
from models.hh import make_hh

NEURON_MODELS = {"hh": make_hh, "gif": make_gif}
