"""Neuron models, synapses and the E/I networks shared by the scripts.

`NEURON_MODELS` is the one list of fittable point-neuron families: name -> factory returning a
`models.spec.NeuronModel` (its keyword options are the family's own, e.g. hh's steady_state),
imported when first used. The E/I networks and their registry are in `models.networks`.
Models import nothing from utils but the declaration of settings (utils.settings).

    spec.py      NeuronModel: what a fittable family provides (simulators, units, defaults)
    hh.py        the Hodgkin-Huxley neuron
    gif.py       the generalized integrate-and-fire neuron
    registry.py  Registry: name -> factory, imported when first used
    networks/    the E/I networks trained on tasks
"""
from models.registry import Registry

NEURON_MODELS = Registry({"hh": "models.hh:make_hh", "gif": "models.gif:make_gif"})
