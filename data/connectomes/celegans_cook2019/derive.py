"""Derive cells.csv and edges.csv of this folder from the cect 0.3.5 wheel (MIT).

    pip download --no-deps cect==0.3.5 -d cect_wheel
    python data/connectomes/celegans_cook2019/derive.py cect_wheel/cect-0.3.5-py3-none-any.whl

Reads, without importing cect: the 302 hermaphrodite neuron names and their Cook et al. (2019)
classes (cect/Cells.py, list literals), the chemical-synapse count matrix of Cook et al. 2019
(cect/cache/Cook2019HermReader.json, connections["Generic_CS"], pre x post), and the
transmitter-resolved matrices of Wang et al. (2024) (cect/cache/Wang2024HermReader.json,
"Acetylcholine", "Glutamate", "GABA"). A neuron's transmitters are those whose matrix holds
any of its outgoing synapses. Rules (SOURCE.md): GABA only -> I; acetylcholine and/or
glutamate -> E; acetylcholine + GABA -> the transmitter with more synapses in Wang's
matrices; none of the three -> E with its outgoing chemical synapses left out (no known sign).
"""
from __future__ import annotations

import ast
import csv
import json
import sys
import zipfile
from pathlib import Path

FAST = ("Acetylcholine", "Glutamate", "GABA")
CLASSES = (("pharyngeal", ("PHARYNGEAL_INTERNEURONS", "PHARYNGEAL_MOTORNEURONS",
                           "PHARYNGEAL_POLYMODAL_NEURONS")),
           ("sensory", ("SENSORY_NEURONS_1_COOK", "SENSORY_NEURONS_2_COOK",
                        "SENSORY_NEURONS_3_COOK", "SENSORY_NEURONS_4_COOK",
                        "SENSORY_NEURONS_5_COOK", "SENSORY_NEURONS_6_COOK")),
           ("inter", ("INTERNEURONS_1_COOK", "INTERNEURONS_2_COOK", "INTERNEURONS_3_COOK",
                      "INTERNEURONS_4_COOK", "INTERNEURONS_LINK_TO_PHARYNX_COOK")),
           ("motor", ("HEAD_MOTORNEURONS_COOK", "SUBLATERAL_MOTORNEURONS_COOK",
                      "VENTRAL_CORD_MOTORNEURONS", "HSN_MOTORNEURONS", "VC_HERM_MOTORNEURONS")),
           ("other", ("UNKNOWN_FUNCTION_NEURONS",)))


def list_literals(source: str) -> dict:
    """name -> value of every module-level `NAME = [literal list]` in `source`."""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            if isinstance(value, list):
                out[node.targets[0].id] = value
    return out


def population_of(lists: dict, neurons: list) -> dict:
    """neuron -> its class (first match in CLASSES order)."""
    pop = {}
    for name, members in CLASSES:
        for key in members:
            for n in lists[key]:
                pop.setdefault(n, name)
    missing = [n for n in neurons if n not in pop]
    if missing:
        raise SystemExit(f"neurons without a class: {missing}")
    return pop


def transmitter_synapses(wang: dict, neurons: list) -> dict:
    """neuron -> {transmitter: outgoing synapse count in Wang et al.'s matrix}."""
    index = {n: i for i, n in enumerate(wang["nodes"])}
    out = {n: {} for n in neurons}
    for t in FAST:
        matrix = wang["connections"][t]
        for n in neurons:
            total = sum(matrix[index[n]]) if n in index else 0
            if total > 0:
                out[n][t] = total
    return out


def sign_of(counts: dict) -> tuple:
    """(type E/I or None for no known sign, transmitter label)."""
    if not counts:
        return None, "none"
    label = "+".join(sorted(counts))
    if set(counts) == {"GABA"}:
        return "I", label
    if "GABA" not in counts:
        return "E", label
    return ("I" if counts["GABA"] > sum(v for k, v in counts.items() if k != "GABA")
            else "E"), label


def main(wheel: str) -> None:
    here = Path(__file__).resolve().parent
    with zipfile.ZipFile(wheel) as z:
        lists = list_literals(z.read("cect/Cells.py").decode())
        cook = json.loads(z.read("cect/cache/Cook2019HermReader.json"))
        wang = json.loads(z.read("cect/cache/Wang2024HermReader.json"))
    neurons = lists["PREFERRED_HERM_NEURON_NAMES"]
    pop = population_of(lists, neurons)
    tx = transmitter_synapses(wang, neurons)
    kinds = {n: sign_of(tx[n]) for n in neurons}
    index = {n: i for i, n in enumerate(cook["nodes"])}
    counts = cook["connections"]["Generic_CS"]
    with open(here / "cells.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "type", "population", "input", "readout", "transmitter"])
        for n in neurons:
            # readout: every neuron (SOURCE.md, "Populations")
            w.writerow([n, kinds[n][0] or "E", pop[n], int(pop[n] == "sensory"), 1,
                        kinds[n][1]])
    kept = dropped = synapses = 0
    with open(here / "edges.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["pre", "post", "weight", "sign"])
        for a in neurons:
            for b in neurons:
                c = counts[index[a]][index[b]]
                if c <= 0:
                    continue
                if kinds[a][0] is None:
                    dropped += 1
                    continue
                kept += 1
                synapses += int(c)
                w.writerow([a, b, int(c), "-" if kinds[a][0] == "I" else "+"])
    print(f"{len(neurons)} neurons, {kept} edges ({synapses} synapses) kept, {dropped} edges "
          f"from neurons without a known fast transmitter left out")
    for label in sorted({k[1] for k in kinds.values()}):
        members = [n for n in neurons if kinds[n][1] == label]
        print(f"{label}: {len(members)} ({', '.join(members) if len(members) < 40 else '...'})")


if __name__ == "__main__":
    main(sys.argv[1])
