r"""The certificate against paired retrains: a labelled matrix of updates.

Reads the results of ``weight_path.py`` (own loops: LightGCN, SAGE, GCN,
``to_hetero``; closures of the forgotten, probe and neighbour pairs) and
of ``faithful.py`` (the package's trainer: forgotten and probe pairs,
attacks) and labels every IFRU update against its seed's paired retrain,
as the issue "Faithful on the neighbours and on scattered requests" does:

* **bad**: the forgotten closure below 0.3, the probe or neighbour closure
  more than 0.2 below dropping the edges', or an attack's target promoted
  (``attack_removed`` below 0);
* **good**: the forgotten closure at least 0.6 and the probe and neighbour
  closures at least dropping the edges';
* **neither** otherwise.

Closures are against the two seeds' mean paired change.  Then the
confusion table of the certificate's flags (as the update recorded them),
over every update, over the requests where two seeds' retrains agree
(noise floor of the forgotten pairs at least 0.6, where a label means
something), and by the label the same rule gives a retrain: the other
seed's paired retrain judged against this seed's (its closures are the
noise floors, dropping the edges' against this seed's paired change), so
that a request whose own retrains fail the rule is told apart; then by
flag, by model and variant, and the updates it got wrong.

Example::

    python benchmarks/certificate_matrix.py \
        --weight-path benchmarks/results/weight_path/certificate/*.json \
        --faithful benchmarks/results/faithful/*_certificate.json
"""
import argparse
import collections
import json
import os
import sys
from typing import Dict, List

SETS = ('forgotten', 'probe', 'neighbours')
# The variant a flagged update's advice leads to (Certificate.advice):
# 'noisy_draw' -> more negatives averaged (the default's sampler average
# for LightGCN and MF, 16 sampled negatives for the GNNs), 'off_minimum' ->
# IFRUConfig(step='auto').
ADVISED = {'ifru-neg1': 'ifru', 'ifru-frozen': 'ifru',
           'ifru-previous': 'ifru', 'ifru-newton': 'ifru'}


def label(closure: Dict[str, float], drop: Dict[str, float],
          attack_removed=None) -> str:
    sets = [k for k in SETS if k in closure]
    if closure['forgotten'] < 0.3 or any(
            closure[k] < drop[k] - 0.2 for k in sets[1:]) or (
            attack_removed is not None and attack_removed < 0):
        return 'bad'
    if closure['forgotten'] >= 0.6 and all(closure[k] >= drop[k]
                                           for k in sets[1:]):
        return 'good'
    return 'neither'


def weight_path_updates(path: str) -> List[Dict]:
    report = json.load(open(path))
    config = report['config']
    model = config.get('model', 'lightgcn')
    setting = (f"lambda_reg {config['lambda_reg']:g}" if model == 'lightgcn'
               else f"lr {config['lr']:g}")
    out = []
    for entry in report['requests']:
        for seed, methods in entry['seeds'].items():
            drop = {k: methods['drop-edges'][k]['closure'] for k in SETS}
            for name, value in methods.items():
                if not name.startswith('ifru') or 'forgotten' not in value:
                    continue
                closure = {k: value[k]['closure'] for k in SETS}
                info = value['info']
                out.append(dict(
                    source=f"own loop, {config['dataset']}, {model}, "
                    f"{setting}", model=model, variant=name,
                    request=entry['request'], seed=seed,
                    floor=entry['noise_floor']['forgotten'],
                    closure=closure, drop=drop, flags=info['flags'],
                    draw_noise=info['figures'].get('draw_noise'),
                    neighbour_shift=info['figures'].get('neighbour_shift'),
                    label=label(closure, drop),
                    # Another seed's paired retrain against this seed's:
                    # its closures are the noise floors.
                    retrain=label(entry['noise_floor'], {
                        k: methods['drop-edges'][k]['closure_own']
                        for k in SETS})))
    return out


def faithful_updates(path: str) -> List[Dict]:
    report = json.load(open(path))
    config = report['config']
    model = 'mf' if config['layers'] == 0 else f"lightgcn-{config['layers']}"
    out = []
    for entry in report['requests']:
        for run in entry['runs']:
            methods = run['methods']
            drop = methods['drop-edges']['closure']
            for name, value in methods.items():
                if not name.startswith('ifru') or 'closure' not in value:
                    continue
                closure = value['closure']
                cert = value['certificate']
                out.append(dict(
                    source=f"package trainer, {config['dataset']}, {model}",
                    model=model, variant=name, request=entry['request'],
                    seed=run['seed'], floor=entry['noise_floor']['forgotten'],
                    closure=closure, drop=drop, flags=cert['flags'],
                    draw_noise=cert.get('draw_noise'),
                    neighbour_shift=cert.get('neighbour_shift'),
                    label=label(closure, drop, value.get('attack_removed')),
                    retrain=label(entry['noise_floor'],
                                  methods['drop-edges']['closure_own'])))
    return out


def confusion(updates: List[Dict]) -> str:
    count = collections.Counter((u['label'], bool(u['flags']))
                                for u in updates)
    lines = ['| | flagged | not flagged | share flagged |',
             '|---|---|---|---|']
    for lab in ('bad', 'good', 'neither'):
        total = count[(lab, True)] + count[(lab, False)]
        share = f'{count[(lab, True)] / total:.0%}' if total else '-'
        lines.append(f'| {lab} ({total}) | {count[(lab, True)]} | '
                     f'{count[(lab, False)]} | {share} |')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--weight-path', nargs='*', default=[])
    parser.add_argument('--faithful', nargs='*', default=[])
    parser.add_argument('--variants', nargs='*', default=None,
                        help='only these IFRU variants (e.g. the default '
                        "'ifru', or 'ifru-ends ifru-local@0.1'); all by "
                        'default')
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    updates = [u for p in args.weight_path for u in weight_path_updates(p)]
    updates += [u for p in args.faithful for u in faithful_updates(p)]
    if args.variants is not None:
        updates = [u for u in updates if u['variant'] in args.variants]
    agree = [u for u in updates if u['floor'] >= 0.6]
    print(f'## Every update ({len(updates)})\n\n{confusion(updates)}\n')
    print(f'## Where two seeds\' retrains agree (noise floor >= 0.6; '
          f'{len(agree)})\n\n{confusion(agree)}\n')
    for lab in ('good', 'neither', 'bad'):
        group = [u for u in updates if u['retrain'] == lab]
        print(f'## Where a retrain of the other seed is labelled {lab} '
              f'({len(group)})\n\n{confusion(group)}\n')
    flags = collections.Counter((u['label'], f) for u in updates
                                for f in u['flags'])
    print('## By flag\n\n| flag | bad | good | neither |\n|---|---|---|---|')
    for flag in sorted({f for _, f in flags}):
        print(f'| {flag} | ' + ' | '.join(str(flags[(lab, flag)]) for lab in
                                          ('bad', 'good', 'neither')) + ' |')
    print('\n## Following the advice: a flagged update, then the same '
          'request and seed with its advice taken\n\n| label flagged | '
          'label after the advice | flagged after | updates |\n'
          '|---|---|---|---|')
    index = {(u['source'], u['request'], u['seed'], u['variant']): u
             for u in updates}
    followed = collections.Counter()
    for u in updates:
        advised = index.get((u['source'], u['request'], u['seed'],
                             ADVISED.get(u['variant'])))
        if u['flags'] and advised is not None:
            followed[(u['label'], advised['label'],
                      bool(advised['flags']))] += 1
    for (before, after, flagged), count in sorted(followed.items()):
        print(f"| {before} | {after} | {'yes' if flagged else 'no'} | "
              f'{count} |')
    print('\n## By model and variant: bad flagged / bad, good flagged / good'
          '\n\n| model | variant | bad | good |\n|---|---|---|---|')
    groups = collections.defaultdict(list)
    for u in updates:
        groups[(u['model'], u['variant'])].append(u)
    for (model, variant), group in sorted(groups.items()):
        cells = []
        for lab in ('bad', 'good'):
            members = [u for u in group if u['label'] == lab]
            cells.append(f"{sum(bool(u['flags']) for u in members)} / "
                         f"{len(members)}")
        print(f'| {model} | {variant} | ' + ' | '.join(cells) + ' |')
    print('\n## Wrong: bad not flagged, good flagged\n\n| source | request | '
          'seed | variant | label | closure (f / p / n) | drop the edges | '
          'noise floor | draw noise | neighbour shift | flags |\n|---|' +
          '---|' * 10)
    for u in updates:
        if (u['label'] == 'bad') == bool(u['flags']) or \
                u['label'] == 'neither':
            continue
        fig = [u['draw_noise'], u['neighbour_shift']]
        print(f"| {u['source']} | {u['request']} | {u['seed']} | "
              f"{u['variant']} | {u['label']} | " + ' / '.join(
                  f'{v:.2f}' for v in u['closure'].values()) + ' | ' +
              ' / '.join(f'{v:.2f}' for v in u['drop'].values()) +
              f" | {u['floor']:.2f} | " + ' | '.join(
                  '-' if v is None else f'{v:.2f}' for v in fig) +
              f" | {', '.join(u['flags']) or '-'} |")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)),
                    exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump({'command': 'python benchmarks/certificate_matrix.py '
                       + ' '.join(sys.argv[1:] if argv is None else argv),
                       'updates': updates}, f, indent=1)


if __name__ == '__main__':
    main()
