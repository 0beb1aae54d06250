"""The Brian2 networks of benchmarks/brian2_fit.py and brian2_population.py: the HH and GIF
equations, and one network of candidates x traces neurons.

Imported in the Brian2 environment (numpy < 2) as `kit.brian2_model` (the programs' folder is
first on sys.path), so it imports Brian2 and numpy only.
"""
from __future__ import annotations

import brian2 as b2
import numpy as np

# Traub-Miles kinetics as in Brian2's HH examples; the same ODE as models/hh.py.
HH_EQUATIONS = """
dv/dt = (gl*(EL - v) - g_na*(m*m*m)*h*(v - ENa) - g_kd*(n*n*n*n)*(v - EK) + I)/C : volt
dm/dt = 0.32*(mV**-1)*4*mV/exprel((13.*mV - v + VT)/(4*mV))/ms*(1 - m) - 0.28*(mV**-1)*5*mV/exprel((v - VT - 40.*mV)/(5*mV))/ms*m : 1
dn/dt = 0.032*(mV**-1)*5*mV/exprel((15.*mV - v + VT)/(5.*mV))/ms*(1. - n) - .5*exp((10.*mV - v + VT)/(40.*mV))/ms*n : 1
dh/dt = 0.128*exp((17.*mV - v + VT)/(18.*mV))/ms*(1. - h) - 4./(1 + exp((40.*mV - v + VT)/(5.*mV)))/ms*h : 1
gl : siemens (constant)
g_na : siemens (constant)
g_kd : siemens (constant)
VT : volt (constant)
C : farad (constant)
EL : volt (constant)
EK : volt (constant)
ENa : volt (constant)
I : amp
trace : integer (constant)
"""
# Mihalas & Niebur (2009), the same model as models/gif.py; Brian2 detects a spike at the end
# of the step in which v passed theta (no interpolation inside the step)
GIF_EQUATIONS = """
dv/dt = (-(v - V_rest) + R*(I + I1 + I2))/tau : volt
dtheta/dt = a*(v - V_rest) - b*(theta - V_th_inf) : volt
dI1/dt = -k1*I1 : amp
dI2/dt = -k2*I2 : amp
V_rest : volt (constant)
V_reset : volt (constant)
V_th_inf : volt (constant)
V_th_reset : volt (constant)
R : ohm (constant)
tau : second (constant)
a : hertz (constant)
b : hertz (constant)
k1 : hertz (constant)
k2 : hertz (constant)
R1 : 1 (constant)
R2 : 1 (constant)
A1 : amp (constant)
A2 : amp (constant)
I : amp
trace : integer (constant)
"""
GIF_RESET = """I1 = R1*I1 + A1
I2 = R2*I2 + A2
v = V_reset
theta = theta + int(theta < V_th_reset)*(V_th_reset - theta)"""
KHZ = 1 / b2.ms
# model -> equations, threshold, reset, {our name: (Brian2 name, unit)} (ours in uS, nF, mV,
# MOhm, ms, 1/ms, nA), initial state
MODELS = {
    "hh": (HH_EQUATIONS, None, None,
           {"gl": ("gl", b2.uS), "g_na": ("g_na", b2.uS), "g_kd": ("g_kd", b2.uS),
            "vth": ("VT", b2.mV), "C": ("C", b2.nF), "EL": ("EL", b2.mV),
            "EK": ("EK", b2.mV), "ENa": ("ENa", b2.mV)},
           {"v": -65 * b2.mV, "m": 0, "h": 0, "n": 0}),
    "gif": (GIF_EQUATIONS, "v > theta", GIF_RESET,
            {**{k: (k, b2.mV) for k in ("V_rest", "V_reset", "V_th_inf", "V_th_reset")},
             "R": ("R", b2.Mohm), "tau": ("tau", b2.ms), "a": ("a", KHZ), "b": ("b", KHZ),
             "k1": ("k1", KHZ), "k2": ("k2", KHZ), "R1": ("R1", 1), "R2": ("R2", 1),
             "A1": ("A1", b2.nA), "A2": ("A2", b2.nA)},
            {"v": "V_rest", "theta": "V_th_inf", "I1": 0 * b2.nA, "I2": 0 * b2.nA}),
}


def set_params(group, model: str, values: dict, repeat: int) -> None:
    """Per-neuron parameter values (ours' units), each repeated for the `repeat` traces."""
    for name, value in values.items():
        brian_name, unit = MODELS[model][3][name]
        setattr(group, brian_name, np.repeat(np.atleast_1d(value), repeat) * unit)



def build(model: str, current: np.ndarray, dt: float, fixed: dict, popsize: int, method: str,
          substeps: int):
    """One network: popsize x traces neurons, each reading its trace's current every step,
    integrated with steps of dt / substeps and recorded every dt."""
    equations, threshold, reset = MODELS[model][:3]
    n_traces, n_steps = current.shape
    b2.defaultclock.dt = dt / substeps * b2.ms
    namespace = {"I_rec": b2.TimedArray(current.T * b2.nA, dt=dt * b2.ms)}
    group = b2.NeuronGroup(popsize * n_traces, equations, method=method, threshold=threshold,
                           reset=reset, namespace=namespace)
    group.trace = np.tile(np.arange(n_traces), popsize)
    set_params(group, model, fixed, popsize * n_traces)
    group.run_regularly("I = I_rec(t, trace)", when="start", order=-1)
    monitor = b2.StateMonitor(group, "v", record=True, dt=dt * b2.ms)
    net = b2.Network(group, monitor)
    net.store()
    return net, group, monitor, n_steps * dt * b2.ms


def set_initial(group, model: str) -> None:
    """The initial state, after the parameters (a parameter's name stands for its value: GIF
    starts at V_rest, its threshold at V_th_inf)."""
    for name, value in MODELS[model][4].items():
        setattr(group, name, value)

