#!/usr/bin/env python3
"""How often the scaling lab's quick variant passes, by how well the system
really scales: the rounds of labs/src/scaling/rounds.rs against one round.

A run's searches are drawn as the committed runs measured them: each
search's figure is the shape's true throughput times exp(N(0, sd)), sd the
spread measured between two searches of one shape in one run (0.104 on the
EPYC VM of ../quick-2026-12-06, the larger of the two machines). The rule is
the lab's: after each round of 1, 2, 2, 1 replicas the ratio of the means
of every search so far gets the interval ratio * exp(+-Z * SEARCH_SD *
sqrt(1/n1 + 1/n2)); the run stops once the interval lies wholly over or
under the bound, or after MAX_ROUNDS, and passes if the ratio reaches the
bound. Standard library only: python3 sequential.py
"""
import math
import random

BOUND, SEARCH_SD, Z, MAX_ROUNDS = 1.6, 0.12, 1.645, 3  # as in rounds.rs
TRUE_SD = 0.104  # measured on the EPYC VM of ../quick-2026-12-06 (16 pairs)
RUNS = 200_000


def run(scale, rng, max_rounds):
    one, two = [], []
    for n in range(1, max_rounds + 1):
        for _ in range(2):
            one.append(math.exp(rng.gauss(0, TRUE_SD)))
            two.append(scale * math.exp(rng.gauss(0, TRUE_SD)))
        ratio = (sum(two) / len(two)) / (sum(one) / len(one))
        se = SEARCH_SD * math.sqrt(1 / len(one) + 1 / len(two))
        low, high = ratio * math.exp(-Z * se), ratio * math.exp(Z * se)
        if low >= BOUND or high < BOUND:
            break
    return ratio >= BOUND, n


def main():
    rng = random.Random(14)
    print("| the system scales | one round: passes | rounds: passes | rounds: mean rounds | rounds: runs that needed all three |")
    print("|---|---|---|---|---|")
    for scale in (1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.1):
        fixed = sum(run(scale, rng, 1)[0] for _ in range(RUNS)) / RUNS
        seq = [run(scale, rng, MAX_ROUNDS) for _ in range(RUNS)]
        passed = sum(p for p, _ in seq) / RUNS
        mean_rounds = sum(n for _, n in seq) / RUNS
        all_three = sum(n == MAX_ROUNDS for _, n in seq) / RUNS
        print(f"| {scale:.1f}× | {fixed:.2%} | {passed:.3%} | {mean_rounds:.2f} | {all_three:.1%} |")


if __name__ == "__main__":
    main()
