r"""Prints the IFRU paper-protocol table (test AUC, overall and on the
pairs of the users and items a request touched) from ``benchmark`` JSON
reports of ``flip`` requests.

Example::

    python benchmarks/paper_table.py benchmarks/results/paper/*.json
"""
import json
import sys

METHODS = ['original', 'ifru', 'ifru-nospill', 'finetune', 'warm-retrain',
           'retrain']


def main(paths):
    print('| data | model | flipped | ' + ' | '.join(METHODS) +
          ' | IFRU speed-up |')
    print('|---|---|---|' + '---|' * (len(METHODS) + 1))
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        config, summary = report['config'], report['summary']
        model = ('MF' if config['layers'] == 0 else
                 f"LightGCN-{config['layers']}")
        cells = []
        for method in METHODS:
            stats = summary.get(method, {})
            if 'test.auc' not in stats:
                cells.append('')
                continue
            cells.append(f"{stats['test.auc']['mean']:.4f} / "
                         f"{stats['test.auc_touched']['mean']:.4f}")
        speedup = summary['ifru'].get('speedup_retrain', {}).get('mean')
        print(f"| {config['dataset']} | {model} | "
              f"{config['request'].split(':')[1]} | " + ' | '.join(cells) +
              f" | {speedup:.0f}x |")


if __name__ == '__main__':
    main(sys.argv[1:])
