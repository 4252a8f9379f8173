r"""Condenses reports of ``benchmarks/faithful.py`` into the Markdown tables
of the docs: per request, its noise floor, then per method the score-change
closures, rank shift, attack or flipped-label figure, utility against the
paired retrain, and time.

Example::

    python benchmarks/faithful_table.py benchmarks/results/faithful/*.json
"""
import json
import sys

METHODS = ('ifru', 'ifru-residual', 'ifru-newton', 'drop-edges',
           'paired-retrain', 'paired-retrain-same-rule')


def cell(stats, key, fmt, percent=False):
    if key not in stats:
        return ''
    mean, std = stats[key]['mean'], stats[key]['std']
    if percent:
        mean, std = 100 * mean, 100 * std
    text = fmt.format(mean)
    spread = fmt.replace('+', '').format(std)
    return text + (' ± ' + spread if stats[key]['n'] > 1 else '')


def own(stats) -> str:
    keys = ('closure_own.forgotten', 'closure_own.probe')
    if not all(k in stats for k in keys):
        return ''
    return ' / '.join(f"{stats[k]['mean']:.2f}" for k in keys)


def table(report) -> str:
    config = report['config']
    model = ('MF' if config['layers'] == 0 else
             f"LightGCN-{config['layers']}")
    lines = [f"### {config['dataset']}, {model}, {config['loss'].upper()}, "
             f"L2 {config['l2']:g}, lr {config['lr']:g}", '',
             f"`{report['command']}`", '',
             '| request (pairs; noise floor forgotten / probe) | method | '
             'closure forgotten | closure probe | own seed\'s (f / p) | '
             'rank shift | attack '
             'removed / flipped AUC | recall@20 vs paired | AUC vs paired '
             '| time / previous default | x paired retrain | ran |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for result in report['requests']:
        floor = result['noise_floor']
        head = (f"{result['request']} ({result['size']}; "
                f"{floor['forgotten']:.2f} / {floor['probe']:.2f})")
        for method in METHODS:
            stats = result['summary'].get(method)
            if stats is None:
                continue
            special = (cell(stats, 'attack_removed', '{:.2f}') or
                       cell(stats, 'flipped_auc', '{:.3f}'))
            lines.append(' | '.join([
                f'| {head}', method,
                cell(stats, 'closure.forgotten', '{:.2f}'),
                cell(stats, 'closure.probe', '{:.2f}'),
                own(stats),
                cell(stats, 'rank_shift', '{:.2f}'), special,
                cell(stats, 'utility_vs_paired.recall@20', '{:+.1f}%',
                     percent=True),
                cell(stats, 'utility_vs_paired.auc', '{:+.2f}%',
                     percent=True),
                cell(stats, 'time_vs_newton', '{:.2f}'),
                cell(stats, 'speedup_vs_paired', '{:.0f}'),
                ', '.join(stats.get('ran', [])) +
                (f" failed on {stats['failed']}" if 'failed' in stats
                 else '')]) + ' |')
            head = ''
    return '\n'.join(lines)


def main(paths):
    for path in paths:
        with open(path) as f:
            print(table(json.load(f)) + '\n')


if __name__ == '__main__':
    main(sys.argv[1:])
