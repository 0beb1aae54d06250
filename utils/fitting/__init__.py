"""Fitting point neurons to recordings by gradient and gradient-free optimizers.

    problem.py     FitDefaults (what a script sets), Box, Problem, make_problem, synthetic target
    objectives.py  make_objectives: the real loss and the stages of gradient-based methods
    optim.py       the optimizers and OPTIMIZERS, the registry of methods by name
    metrics.py     spike-train losses and scores (van Rossum, gamma factor)
    data.py        loading recordings from CSV files
    plots.py       figures of a run
    pipeline.py    flags, fit_all, the results table, run_fitting (what the scripts call)

Imports flow scripts -> utils.fitting -> models; the names below are the public ones.
"""
from utils.fitting.objectives import make_objectives
from utils.fitting.optim import (OPTIMIZERS, GradientBased, GradientFree, Objectives,
                                 OptimResult, Stage, Tracker, default_methods, method_names,
                                 run_method)
from utils.fitting.pipeline import (Fits, build_parser, fit_all, format_table, parse_methods,
                                    problem_from_flags, run_fitting)
from utils.fitting.problem import (Box, FitDefaults, Problem, make_problem, parse_assignments,
                                   parse_bounds, simulate_params)

__all__ = ["FitDefaults", "Box", "Problem", "make_problem", "parse_assignments", "parse_bounds",
           "simulate_params", "make_objectives", "Objectives", "Stage", "OptimResult", "Tracker",
           "OPTIMIZERS", "GradientBased", "GradientFree", "method_names", "default_methods",
           "run_method", "build_parser", "parse_methods", "problem_from_flags", "Fits", "fit_all",
           "format_table", "run_fitting"]
