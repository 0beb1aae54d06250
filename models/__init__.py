"""Neuron models, synapses and the E/I network shared by the scripts."""
