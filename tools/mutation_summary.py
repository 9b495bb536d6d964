"""Summarize a mutmut run (`make mutation`): mutant counts per package and the kill rate without the equivalent
mutants listed in tools/mutation_equivalents.txt.

Reads mutmut 3's result files ``mutants/<source>.py.meta`` (exit code per mutant: 1/3 killed, 0 survived, 33
no test covers the function, 36 timeout, ...). Equivalent mutants (no observable difference) are excluded from
the denominator: ``kill rate = killed / (mutants - equivalent)``; a timeout counts as killed (the mutant made a
test hang, which a test run notices). Prints a markdown table, then every mutant that is neither killed nor
listed as equivalent (the survivors left), and every listed equivalent that was killed after all (stale entry).

Usage: python tools/mutation_summary.py [--mutants mutants] [--equivalents tools/mutation_equivalents.txt]
"""
import argparse
import glob
import json
import os.path as osp
import sys
from collections import Counter, defaultdict

KILLED = {1: 'killed', 3: 'killed', 36: 'timeout', -24: 'timeout', 24: 'timeout', 152: 'timeout', 255: 'timeout'}
SURVIVED = {0: 'survived', 5: 'no tests', 33: 'no tests'}


def status(exit_code):
    if exit_code in KILLED:
        return 'killed'
    if exit_code in SURVIVED:
        return SURVIVED[exit_code]
    if exit_code is None:
        return 'not checked'
    return f'other ({exit_code})'


def package_of(source_path: str) -> str:
    parts = source_path.split('/')
    return '/'.join(parts[:2]) if len(parts) > 2 else source_path  # a package directory, or a top-level module


def read_equivalents(path: str) -> dict:
    """``mutant name -> reason`` from lines ``<name>  # <reason>`` (blank lines and ``#`` lines ignored)."""
    out = {}
    if not osp.isfile(path):
        return out
    for line in open(path):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        name, _, reason = line.partition('#')
        out[name.strip()] = reason.strip()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--mutants', default='mutants')
    ap.add_argument('--equivalents', default='tools/mutation_equivalents.txt')
    args = ap.parse_args(argv)
    equivalents = read_equivalents(args.equivalents)
    results = {}  # mutant name -> (package, status)
    for meta in sorted(glob.glob(osp.join(args.mutants, '**', '*.py.meta'), recursive=True)):
        source = osp.relpath(meta, args.mutants)[:-len('.meta')]
        for name, code in json.load(open(meta)).get('exit_code_by_key', {}).items():
            results[name] = (package_of(source), status(code))
    if not results:
        print(f'no mutmut results under {args.mutants}/ (run `make mutation` first)', file=sys.stderr)
        return 1
    counts = defaultdict(Counter)
    for name, (pkg, st) in results.items():
        counts[pkg][st] += 1
        if name in equivalents:
            counts[pkg]['equivalent'] += 1
            counts[pkg]['equivalent but killed'] += st == 'killed'
    print('| package | mutants | killed | equivalent | survived (not equivalent) | kill rate |')
    print('|---|---|---|---|---|---|')
    total = Counter()
    for pkg in sorted(counts):
        c = counts[pkg]
        n = sum(v for k, v in c.items() if not k.startswith('equivalent'))
        eq = c['equivalent'] - c['equivalent but killed']
        left = n - c['killed'] - eq
        total.update(n=n, killed=c['killed'], eq=eq, left=left)
        rate = c['killed'] / (n - eq) if n - eq else 1.0
        print(f'| {pkg} | {n} | {c["killed"]} | {eq} | {left} | {rate:.1%} |')
    rate = total['killed'] / (total['n'] - total['eq']) if total['n'] - total['eq'] else 1.0
    print(f'| **all** | {total["n"]} | {total["killed"]} | {total["eq"]} | {total["left"]} | **{rate:.1%}** |')
    left = sorted(n for n, (_, st) in results.items() if st != 'killed' and n not in equivalents)
    print(f'\nsurvivors not listed as equivalent ({len(left)}):')
    for name in left:
        print(f'  {name}  [{results[name][1]}]')
    stale = sorted(n for n in equivalents if n in results and results[n][1] == 'killed')
    unknown = sorted(n for n in equivalents if n not in results)
    if stale:
        print(f'\nlisted as equivalent but killed ({len(stale)}): ' + ', '.join(stale))
    if unknown:
        print(f'\nlisted as equivalent but not generated (renamed or removed code, {len(unknown)}): '
              + ', '.join(unknown))
    return 0


if __name__ == '__main__':
    sys.exit(main())
