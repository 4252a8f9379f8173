r"""The benchmark's report: summaries over repeats, the table the command
line prints, and the JSON, CSV and PNG files it writes (see
:mod:`~torch_geometric_unlearn.evaluation.benchmark`)."""
import csv
import json
import os
import statistics
import textwrap
from typing import Any, Dict, List, Optional, Tuple

from torch_geometric_unlearn.evaluation.config import REFERENCES
from torch_geometric_unlearn.persist import atomic_open

__all__ = ['summarize', 'format_table', 'write_report', 'plot_report']


def _flatten(entry: Dict[str, Any], prefix: str = '') -> Dict[str, float]:
    flat = {}
    for key, value in entry.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f'{prefix}{key}.'))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f'{prefix}{key}'] = float(value)
    return flat


def summarize(runs: List[Dict[str, Any]]) -> Dict[str, Dict[str, Dict]]:
    r"""Mean, standard deviation and count of every numeric figure of every
    method over the runs."""
    summary: Dict[str, Dict[str, Dict]] = {}
    for method in runs[0]['methods']:
        values: Dict[str, List[float]] = {}
        for run in runs:
            for key, value in _flatten(run['methods'][method]).items():
                values.setdefault(key, []).append(value)
        summary[method] = {
            key: {
                'mean': statistics.fmean(v),
                'std': statistics.stdev(v) if len(v) > 1 else 0.0,
                'n': len(v),
            }
            for key, v in values.items()
        }
    fidelity = [run['converged_fidelity'] for run in runs
                if 'converged_fidelity' in run]
    if fidelity:
        summary['converged_fidelity'] = {
            key: {
                'mean': statistics.fmean(f[key] for f in fidelity),
                'std': (statistics.stdev(f[key] for f in fidelity)
                        if len(fidelity) > 1 else 0.0),
                'n': len(fidelity),
            }
            for key in fidelity[0]
        }
    return summary


# Columns of the printed table and the CSV: (header, summary key, format,
# which value is better).
COLUMNS = [
    ('seconds', 'seconds', '{:.3g}', 'lower'),
    ('speed-up', 'speedup_retrain', '{:.0f}x', 'higher'),
    ('speed-up paired', 'speedup_paired-retrain', '{:.0f}x', 'higher'),
    ('closure forgotten', 'change_closure.forgotten', '{:.2f}', 'higher'),
    ('closure probe', 'change_closure.probe', '{:.2f}', 'higher'),
    ('recall@20', 'test.recall@20', '{:.4f}', 'higher'),
    ('ndcg@20', 'test.ndcg@20', '{:.4f}', 'higher'),
    ('hr@20', 'fairness.hr@20', '{:.4f}', 'higher'),
    ('fairness gap ndcg@20', 'fairness.ndcg@20_gap', '{:.4f}',
     '= retrain'),
    ('auc', 'test.auc', '{:.4f}', 'higher'),
    ('auc touched', 'test.auc_touched', '{:.4f}', 'higher'),
    ('rank shift', 'rank_shift', '{:.2f}', 'near 1'),
    ('MIA auc', 'mia_auc', '{:.3f}', "= retrain"),
    ('top20 ∩ retrain', 'top20_overlap_retrain', '{:.3f}', 'higher'),
    ('top20 agreement (ndcg) paired', 'agreement_paired-retrain.ndcg@20',
     '{:.3f}', 'higher'),
    ('forgotten ranks dropped', 'forgotten_rank.dropped', '{:.2f}',
     '= retrain'),
    ('corr retrain', 'score_corr_retrain', '{:.3f}', 'higher'),
    ('poison removed', 'poison_removed', '{:.2f}', 'higher'),
    ('peak MiB', 'peak_mib', '{:.0f}', 'lower'),
]

# What the columns and rows mean, under the table (only for columns shown).
LEGEND = {
    'change_closure.forgotten': 'closure = 1 - |change - reference change| / '
    '|reference change| of the scores of the forgotten pairs (forgotten) or '
    'of pairs sharing a user or an item with them (probe), against the '
    '{reference}: 1 = its change, 0 = no better than no change; '
    "drop-edges' row is how far the new graph alone goes",
    'rank_shift': "rank shift = the forgotten pairs' mean rank moved as a "
    "share of the scratch retrain's move: above 1 is overshoot, which makes "
    'them stand out again',
    'fairness.ndcg@20_gap': "fairness gap = NDCG@20 of the most active 5% "
    "of test users minus the rest's (CURE4Rec): the retrain's row is the "
    'target',
    'agreement_paired-retrain.ndcg@20': 'top20 agreement = NDCG of the '
    "paired retrain's top 20 in the method's top 20 (COVA), 1 = the same "
    'ranking of the same items',
    'forgotten_rank.dropped': 'forgotten ranks dropped = share of forgotten '
    "pairs ranked lower than by the original model: the retrain's row is "
    'the target',
    'mia_auc': "MIA auc = a membership-inference attacker's AUC on the "
    "forgotten pairs: the retrain's row is the target, not 0.5",
}


REFERENCE_NAMES = {'paired-retrain': 'paired retrain (same seed and stream, '
                   'as many epochs)', 'retrain': 'scratch retrain'}


def _cell(stat: Optional[Dict], fmt: str) -> str:
    if stat is None:
        return ''
    text = fmt.format(stat['mean'])
    if stat['n'] > 1:
        text += ' ± ' + fmt.format(stat['std']).rstrip('x')
    return text


def _columns(summary: Dict[str, Dict]) -> List[Tuple[str, str, str, str]]:
    return [c for c in COLUMNS
            if any(c[1] in stats for stats in summary.values())]


def format_table(report: Dict[str, Any]) -> str:
    r"""The summary as a Markdown table (mean ± std over repeats), its
    first row saying which value of each column is better, and a legend
    under it."""
    summary = {k: v for k, v in report['summary'].items()
               if k != 'converged_fidelity'}
    columns = _columns(summary)
    lines = ['| method | ' + ' | '.join(c[0] for c in columns) + ' |',
             '|---|' + '---|' * len(columns),
             '| *better* | ' + ' | '.join(c[3] for c in columns) + ' |']
    for method, stats in summary.items():
        cells = [_cell(stats.get(key), fmt) for _, key, fmt, _ in columns]
        lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
    lines.append('')
    lines.append(textwrap.fill(
        'drop-edges is the do-nothing baseline: the original parameters '
        'predicting with the new graph; a method must beat it.', width=79,
        subsequent_indent='  '))
    reference = next((run.get('fidelity_reference') for run in
                      report['runs'] if run.get('fidelity_reference')), None)
    for _, key, _, _ in columns:
        if key in LEGEND:
            lines.append(textwrap.fill(LEGEND[key].format(
                reference=REFERENCE_NAMES.get(reference, reference)) + '.',
                width=79, subsequent_indent='  '))
    fidelity = report['summary'].get('converged_fidelity')
    if fidelity:
        parts = [f"{k[len('closure_'):]} {_cell(v, '{:.3f}')}"
                 for k, v in fidelity.items() if k.startswith('closure_')]
        lines.append('')
        lines.append('closure between converged points (higher is better): '
                     + ', '.join(parts))
    return '\n'.join(lines)


PLOT_SKIPPED = 'matplotlib is not installed (pip install matplotlib)'


def write_report(report: Dict[str, Any], out_dir: str,
                 name: str = 'benchmark') -> List[str]:
    r"""Writes :obj:`{name}.json` (everything), :obj:`{name}.csv` (the
    summary, one row per method after a row :obj:`better` saying which
    value of each figure is better) and :obj:`{name}.png` (time, utility
    and fidelity per method) into :obj:`out_dir`.  Without matplotlib the
    PNG is skipped and :obj:`report['plot_skipped']` (also in the JSON)
    says why.  Returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    if _pyplot() is None:
        report['plot_skipped'] = PLOT_SKIPPED
    else:
        report.pop('plot_skipped', None)
    paths = [os.path.join(out_dir, f'{name}.{ext}')
             for ext in ('json', 'csv')]
    with atomic_open(paths[0]) as f:
        json.dump(report, f, indent=2)
    summary = {k: v for k, v in report['summary'].items()
               if k != 'converged_fidelity'}
    keys = sorted({key for stats in summary.values() for key in stats})
    with atomic_open(paths[1], newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['method'] + [f'{k}_{s}' for k in keys
                                      for s in ('mean', 'std')])
        writer.writerow(['better'] + [
            _better(k) if s == 'mean' else '' for k in keys
            for s in ('mean', 'std')
        ])
        for method, stats in summary.items():
            writer.writerow([method] + [
                stats[k][s] if k in stats else ''
                for k in keys for s in ('mean', 'std')
            ])
    png = os.path.join(out_dir, f'{name}.png')
    if plot_report(report, png):
        paths.append(png)
    return paths


def _pyplot():
    # matplotlib.pyplot on the file-only backend, or None without it.
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _better(key: str) -> str:
    # Which value of a summary figure is better, for the CSV.
    for _, column, _, better in COLUMNS:
        if key == column:
            return better
    if key.startswith(('test.', 'change_closure.', 'score_corr_',
                       'top20_overlap_', 'speedup_', 'closure_',
                       'agreement_')):
        return 'higher'
    if key in ('seconds', 'all_seconds', 'peak_mib') or \
            key.startswith('timings.'):
        return 'lower'
    return ''


def plot_report(report: Dict[str, Any], path: str) -> bool:
    r"""Bar charts per method of wall time (log scale), Recall@20, the
    score-change closure against the reference retrain on the forgotten
    and the probe pairs (see :func:`fidelity`) and the top-20 overlap with
    the scratch retrain, with the spread over repeats as error bars; the
    do-nothing baseline drop-edges in grey, the retrains in black.  Each
    title says which direction is better.  Returns :obj:`False` if
    matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        return False
    summary = {k: v for k, v in report['summary'].items()
               if k != 'converged_fidelity'}
    reference = next((run.get('fidelity_reference') for run in
                      report['runs'] if run.get('fidelity_reference')),
                     'retrain')
    closure = f'score-change closure vs {reference}'
    panels = [('wall time (s)\nlower is better', 'seconds', True),
              ('Recall@20 (test)\nhigher is better', 'test.recall@20',
               False),
              (f'{closure},\nforgotten pairs: higher is better (1 = '
               'retrain)', 'change_closure.forgotten', False),
              (f'{closure},\nprobe pairs: higher is better (1 = retrain)',
               'change_closure.probe', False),
              ('top-20 overlap with retrain\nhigher is better',
               'top20_overlap_retrain', False)]
    panels = [p for p in panels if any(p[1] in s for s in summary.values())]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4),
                             squeeze=False)
    for ax, (title, key, log) in zip(axes[0], panels):
        names = [m for m, s in summary.items()
                 if key in s and not (log and s[key]['mean'] <= 0)]
        means = [summary[m][key]['mean'] for m in names]
        stds = [summary[m][key]['std'] for m in names]
        colors = ['tab:gray' if m == 'drop-edges' else
                  'black' if m in REFERENCES else 'tab:blue' for m in names]
        ax.bar(range(len(names)), means, yerr=stds, color=colors)
        ax.set_xticks(range(len(names)), names, rotation=45, ha='right')
        ax.set_title(title, fontsize=9)
        if key.startswith('change_closure'):
            ax.axhline(1, color='black', linestyle='--', linewidth=0.8)
            ax.axhline(0, color='tab:gray', linewidth=0.8)
            # Far worse than nothing is off the scale: the value is written
            # instead, so that the scale shows the methods near 0-1.
            ax.set_ylim(-1, 1.15)
            for i, mean in enumerate(means):
                if mean < -1:
                    ax.text(i, -0.95, f'{mean:.1f}', ha='center',
                            va='bottom', fontsize=7, rotation=90,
                            color='white' if colors[i] != 'tab:gray' else
                            'black')
        if log:
            ax.set_yscale('log')
    config = report['config']
    fig.suptitle(f"{config['dataset']}, {config['layers']}-layer LightGCN, "
                 f"{config['train']['loss']}, request {config['request']}")
    fig.tight_layout()
    with atomic_open(path, 'wb') as f:
        fig.savefig(f, dpi=120, format='png')
    plt.close(fig)
    return True
