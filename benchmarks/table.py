r"""Prints the Markdown tables of a benchmarks/unlearn.py JSON report.

    python benchmarks/table.py benchmarks/results/unlearn_ml100k_lightgcn2.json
"""
import json
import sys

COLUMNS = [
    ('seconds', 'time (s)', '{:.2f}'),
    ('speedup_vs_retrain', 'speed-up', '{:.1f}x'),
    ('closure', 'closure', '{:.3f}'),
    ('rank_shift', 'rank shift', '{:.2f}'),
    ('forgotten_user_row_norm', 'user row norm', '{:.2f}'),
    ('poison_share_removed', 'poison removed', '{:.2f}'),
    ('target_top20_share', 'target top-20 share', '{:.5f}'),
    ('recall@20', 'Recall@20', '{:.4f}'),
    ('ndcg@20', 'NDCG@20', '{:.4f}'),
]


def rows(request):
    fidelity = request.get('fidelity', {}).get('methods', {})
    yield 'original', dict(request['original'], seconds=None)
    for method, entry in request['methods'].items():
        row = dict(entry, **entry['test'])
        row.update(fidelity.get(method, {}))
        yield method, row


def table(request):
    present = [c for c in COLUMNS
               if any(c[0] in row for _, row in rows(request))]
    lines = [
        f"request: {request['request']} ({request['request_size']} "
        f"interactions); model trained for {request['train']['epochs']} "
        f"epochs in {request['train']['seconds']:.1f} s", '',
        '| method | ' + ' | '.join(c[1] for c in present) + ' |',
        '|---' * (len(present) + 1) + '|'
    ]
    for method, row in rows(request):
        cells = [
            '' if row.get(key) is None else fmt.format(row[key])
            for key, _, fmt in present
        ]
        lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main():
    for path in sys.argv[1:]:
        report = json.load(open(path))
        print(f"## {report['model']} on {report['dataset']}\n")
        print(f"`{report['command']}` ({report['date']}, "
              f"{report['machine']['threads']} threads)\n")
        for request in report['requests']:
            print(table(request) + '\n')


if __name__ == '__main__':
    main()
