r"""What the commands of :mod:`~torch_geometric_unlearn.cli` print: the
training record, the demo's table and its legend, the benchmark's summary
and the report of an unlearn run."""
from torch_geometric_unlearn.evaluation.report import format_table
from torch_geometric_unlearn.evaluation.stream import format_stream

__all__ = ['print_train', 'print_demo', 'print_benchmark', 'print_unlearn']


def print_train(record: dict):
    r"""The record of the ``train`` command."""
    print(f"data:   {record['dataset']}")
    print(f"model:  {record['model']}, loss {record['loss']}")
    print(f"epochs: {record['epochs']} (best {record['best_epoch']}), "
          f"{record['train_seconds']:.1f} s "
          f"({record['seconds_per_epoch']:.2f} s/epoch)")
    print('test:   ' + ', '.join(f'{k} {v:.4f}'
                                 for k, v in record['test'].items()))


DEMO_COLUMNS = [
    ('seconds', 'lower', 'seconds', '{:.2f}'),
    ('speed-up', 'higher', 'speedup_vs_retrain', '{:.0f}x'),
    ('recall@20', 'higher', 'recall@20', '{:.4f}'),
    ('ndcg@20', 'higher', 'ndcg@20', '{:.4f}'),
    ('forgotten rank', '= retrain', 'deleted_mean_rank', '{:.1f}'),
    ('rank shift', 'near 1', 'rank_shift', '{:.2f}'),
]

DEMO_LEGEND = """\
rows: original = the trained model before the request; ifru = the
  influence-function update; retrain = training from scratch without the
  forgotten pairs, the reference; drop edges, no update = the original
  parameters on the new graph, the do-nothing baseline to beat.
columns: seconds of unlearn(); speed-up = the retrain's seconds over them;
  recall@20, ndcg@20 on the test split, new graph; forgotten rank =
  the forgotten pairs' mean rank among their users' unseen items: higher is
  more forgotten, but the target is the retrain's value, not the highest;
  rank shift = how far a method moved that rank, as a share of the
  retrain's move: 1 = as far as retraining, 0 = not at all, above 1 =
  overshoot (the forgotten pairs stand out again)."""


def print_demo(record: dict):
    r"""The ``demo`` command's table and its legend."""
    width = max(len(name) for name in record['methods']) + 2
    widths = [max(len(h), len(b)) + 2 for h, b, _, _ in DEMO_COLUMNS]
    print(f"{'method':{width}}" + ''.join(
        f'{h:>{w}}' for (h, _, _, _), w in zip(DEMO_COLUMNS, widths)))
    print(f"{'  better:':{width}}" + ''.join(
        f'{b:>{w}}' for (_, b, _, _), w in zip(DEMO_COLUMNS, widths)))
    for name, row in record['methods'].items():
        cells = [('' if row.get(key) is None else fmt.format(row[key]))
                 for _, _, key, fmt in DEMO_COLUMNS]
        print(f'{name:{width}}' + ''.join(
            f'{c:>{w}}' for c, w in zip(cells, widths)))
    print()
    print(DEMO_LEGEND)


def print_benchmark(report: dict):
    r"""The ``benchmark`` command's summary table and the files it wrote
    (one per request of a protocol)."""
    if 'reports' in report:
        print(f"protocol {report['protocol']}: {report['source']}")
        for each in report['reports']:
            print()
            print_benchmark(each)
        return
    if 'checkpoints' in report:  # a stream (--requests)
        print(f"{report['data']}, {report['requests']} requests of "
              f"{report['config']['request']} in turn")
        print(format_stream(report))
        print('wrote ' + ', '.join(report['files']))
        return
    runs = report['runs']
    print(f"{runs[0]['data']}, request {report['config']['request']} "
          f"({runs[0]['request_size']} pairs), {len(runs)} run(s)")
    print(format_table(report))
    floors = [run['noise_floor'] for run in runs if 'noise_floor' in run]
    if floors:
        mean = {key: sum(f[key] for f in floors) / len(floors)
                for key in floors[0]}
        print("noise floor (closure of the next seed's paired retrain): " +
              ', '.join(f'{key} {value:.2f}' for key, value in mean.items()))
    popularity = [run['mia_auc_popularity'] for run in runs
                  if 'mia_auc_popularity' in run]
    if popularity:
        print(f"MIA auc of item popularity alone (no model): "
              f"{sum(popularity) / len(popularity):.3f}")
    print('wrote ' + ', '.join(report['files']))
    if report.get('plot_skipped'):
        print(f"plot skipped: {report['plot_skipped']}")


def print_unlearn(report: dict):
    r"""The report of the ``unlearn`` command."""
    print(f"{report['method']}: forgot {report['forgotten']} interactions "
          f"in {report['timings']['total']:.2f} s"
          + (f" ({report['message']})" if report['message'] else ''))
    if report.get('certificate'):
        print(f"certificate: {report['certificate']}")
    for when in ('before', 'after'):
        print(f'test {when}: ' + ', '.join(
            f'{k} {v:.4f}' for k, v in report[f'test_{when}'].items()))
    entry = report.get('ledger_entry')
    if entry:
        print(f"ledger: entry {entry['index']}, request "
              f"{entry['request_id']}, hash {entry['hash'][:16]}")
    print(f"wrote {report['out']}")
