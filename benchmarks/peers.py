"""headstart against the tools a user would otherwise pick, side by side, on identical splits.

    make peers                                      # = pip install -e ".[bench]" && python benchmarks/peers.py
    python benchmarks/peers.py                      # rotten-tomatoes and vader-tweets, 8/32/128 per class, 3 seeds
    python benchmarks/peers.py --data vader-tweets --budgets 128 --strategies probe,contrastive,lora
    python benchmarks/peers.py --strategies none --peers none   # only rewrite the table from what is stored
    # the per-strategy table's "before" columns: headstart 0.1.0 (commit 3c62f2b) in a worktree, this script
    git worktree add /tmp/before 3c62f2b && PYTHONPATH=/tmp/before/src python benchmarks/peers.py --peers none \
        --strategies scratch,scratch-small,probe,partial:2,full,lldr,lora,contrastive,lp-ft \
        --out runs/peers-0.1.0 --no-tables

The whole default grid takes hours on 2 CPU cores (SetFit alone about 11 minutes per run at
128/class); every finished run is stored, so an interrupted run continues where it stopped.

Peers (measurement tools only, in the ``bench`` extra):
- SetFit (same MiniLM body, logistic-regression head), its documented defaults; where the default
  "oversampling" would draw more sentence pairs than ``num_iterations=20`` (SetFit's pre-1.0 default
  and the paper's setting), ``num_iterations=20`` caps them: all pairs of 384 texts is ~74k pairs,
  about 50 minutes per run on 2 CPU cores;
- a Hugging Face ``Trainer`` full fine-tune of ``AutoModelForSequenceClassification`` from the same
  checkpoint, its default ``TrainingArguments`` (3 epochs, lr 5e-5, batch 8);
- scikit-learn ``LogisticRegression()`` (defaults) on the same frozen sentence embeddings.

Every peer trains on the same labelled examples headstart saw (a budget of n per class is every
label: headstart splits it into training and validation, the peers train on all n) and is scored on
the same held-out test examples. headstart runs its race (probe, partial:2, full, lora, lp-ft,
contrastive) on the same draws; "headstart best" is the strategy with the best *selection* accuracy
at that budget (the race's rule), and its *test* accuracy is what the table reports.

Results are stored per run (resumable) and exported to ``benchmarks/results/peers.jsonl``, the compact
record the table is built from: a partial run adds rows, never drops them, and a fresh clone rebuilds
the section with ``--strategies none --peers none``. A run of ``benchmarks/settings.py`` whose setting
later became the default has this grid's key, and joins the file instead of being trained again.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import ROOT, merge_jsonl, read_jsonl, write_section  # noqa: E402
from _targets import targets_table  # noqa: E402

from headstart.backbones.text import _minilm_dir  # noqa: E402
from headstart.data import draw, load_task  # noqa: E402
from headstart.race import RaceSpec, ResultStore, prepare_race, run_race, summarize  # noqa: E402
from headstart.race.analysis import budget_label  # noqa: E402
from headstart.race.grid import RunSpec  # noqa: E402
from headstart.race.store import RESULTS_FORMAT  # noqa: E402

STRATEGIES = ["scratch", "scratch-small", "probe", "partial:2", "full", "lldr", "lora", "contrastive"]
RESULTS = ROOT / "benchmarks" / "results" / "peers.jsonl"
SETTINGS = ROOT / "benchmarks" / "results" / "settings.jsonl"
KEEP = ("data", "strategy", "peer", "budget", "seed", "sel_acc", "test_acc", "seconds", "n_train", "n_val", "n_test",
        "trainable_params", "key", "headstart", "epochs", "stop_reason")
PEERS = ["fastfit", "setfit", "hf-trainer", "hf-trainer-10ep", "sklearn-logreg"]
PEER_NAMES = {"fastfit": "FastFit", "setfit": "SetFit", "hf-trainer": "HF Trainer (3 ep)",
              "hf-trainer-10ep": "HF Trainer (10 ep)", "sklearn-logreg": "sklearn LogReg"}
#: rows written before headstart recorded its version in each run came from 0.1.0
FIRST_VERSION = "0.1.0"
TEST_LIMIT = 1000
MAX_LENGTH = 64


def _setfit(path: str, texts: list[str], labels: np.ndarray, test: list[str], seed: int, classes=None) -> np.ndarray:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    counts = np.bincount(labels)
    # oversampling's pair count: same-class combinations with replacement vs different-class pairs, the larger twice
    pairs = 2 * max(int(sum(c * (c + 1) // 2 for c in counts)), int(sum(counts) ** 2 - sum(counts ** 2)) // 2)
    capped = pairs > 2 * 20 * len(texts)
    model = SetFitModel.from_pretrained(path)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, seed=seed, max_length=MAX_LENGTH, show_progress_bar=False,
                                 report_to="none", **({"num_iterations": 20} if capped else {}))
        trainer = Trainer(model=model, args=args,
                          train_dataset=Dataset.from_dict({"text": texts, "label": labels.tolist()}))
        trainer.train()
    return np.asarray(model.predict(test))


def _hf_trainer(path: str, texts: list[str], labels: np.ndarray, test: list[str], seed: int, classes=None,
                **settings) -> np.ndarray:
    """``AutoModelForSequenceClassification`` + ``Trainer``: its defaults, or ``settings`` (epochs, lr, batch)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=int(labels.max()) + 1)
    data = Dataset.from_dict({"text": texts, "label": labels.tolist()}).map(
        lambda b: tok(b["text"], truncation=True, max_length=MAX_LENGTH), batched=True)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, seed=seed, report_to=[], save_strategy="no", use_cpu=True,
                                 disable_tqdm=True, **settings)
        Trainer(model=model, args=args, train_dataset=data, processing_class=tok).train()
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(test), 64):
            enc = tok(test[i : i + 64], truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")
            preds.append(model(**enc).logits.argmax(-1).numpy())
    return np.concatenate(preds)


def _sklearn(path: str, texts: list[str], labels: np.ndarray, test: list[str], seed: int, classes=None) -> np.ndarray:
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    st = SentenceTransformer(path)
    st.max_seq_length = MAX_LENGTH
    clf = LogisticRegression(random_state=seed).fit(st.encode(texts), labels)
    return clf.predict(st.encode(test))


def _fastfit(path: str, texts: list[str], labels: np.ndarray, test: list[str], seed: int,
             classes: tuple[str, ...] = ()) -> np.ndarray:
    """FastFit (Yehudai & Bendel, 2024), its README's recommended settings on CPU (no fp16), max 64 tokens.

    Two shims for today's stack, nothing else changed: ``datasets.load_metric`` is gone (FastFit only uses it
    for evaluation, which is not run here), and transformers 5's ``Trainer`` takes ``processing_class=``
    where FastFit passes ``tokenizer=``. Classes are named to it by their label text, as FastFit expects. The
    output folder does not exist yet (FastFit's resume check reads an argument transformers 5 no longer has).
    """
    import datasets
    import torch

    if not hasattr(datasets, "load_metric"):
        datasets.load_metric = lambda *a, **k: None
    import fastfit.train as fastfit_train
    from datasets import Dataset, DatasetDict

    if not getattr(fastfit_train.Trainer, "_headstart_shim", False):  # once per process: the shim must not nest
        class _Trainer(fastfit_train.Trainer):
            _headstart_shim = True

            def __init__(self, *args, tokenizer=None, **kwargs):
                super().__init__(*args, processing_class=tokenizer, **kwargs)

        fastfit_train.Trainer = _Trainer
    names = [classes[int(y)] for y in labels]
    with tempfile.TemporaryDirectory() as out:
        trainer = fastfit_train.FastFitTrainer(
            model_name_or_path=path, label_column_name="label", text_column_name="text", num_train_epochs=40,
            per_device_train_batch_size=32, per_device_eval_batch_size=64, max_text_length=MAX_LENGTH,
            dataloader_drop_last=False, num_repeats=4, optim="adafactor", clf_loss_factor=0.1, fp16=False,
            use_cpu=True, seed=seed, output_dir=str(Path(out) / "run"), save_strategy="no", report_to=[],
            disable_tqdm=True,
            # a custom dataset must have a "test" part (FastFit prepares it for trainer.test(), never called here):
            # the training texts stand in, so the real test texts are never handed to it before prediction
            dataset=DatasetDict({part: Dataset.from_dict({"text": texts, "label": names})
                                 for part in ("train", "test")}))
        model = trainer.train()
    tok, model = trainer.tokenizer, model.eval()
    tok.model_input_names = ["input_ids", "attention_mask"]  # FastFit renamed them for its training collator
    index = {name: i for i, name in enumerate(classes)}
    preds = []
    with torch.no_grad():
        for i in range(0, len(test), 64):
            enc = tok(test[i : i + 64], truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")
            logits = model.inference_forward(enc["input_ids"], enc["attention_mask"])
            preds += [model.config.id2label[int(k)] for k in logits.argmax(-1)]
    return np.array([index[p] for p in preds])


RUNNERS = {"fastfit": _fastfit, "setfit": _setfit, "hf-trainer": _hf_trainer,
           "hf-trainer-10ep": lambda *a, **k: _hf_trainer(*a, **k, num_train_epochs=10, learning_rate=5e-5,
                                                          per_device_train_batch_size=16),
           "sklearn-logreg": _sklearn}


@dataclass
class _Remaining(RaceSpec):
    """The grid minus the runs whose rows are already committed to the JSONL file: a fresh clone (no stores)
    resumes a long run where the committed rows end instead of training them again."""

    only: tuple[RunSpec, ...] = ()

    def runs(self) -> list[RunSpec]:
        return list(self.only)


def committed_keys() -> set[str]:
    return {r["key"] for r in read_jsonl(RESULTS)}


def adopt_settings(data: str, seeds: int) -> None:
    """Runs of ``benchmarks/settings.py`` that are runs of this grid (a setting measured there that later became the
    default: same resolved options, same key) join the JSONL file, so they are not trained again."""
    have, grid = committed_keys(), grid_keys(data, seeds)
    rows = [r for r in read_jsonl(SETTINGS) if r["data"] == data and r["key"] in grid and r["key"] not in have]
    if rows:
        print(f"{data}: {len(rows)} runs adopted from {SETTINGS.name}", flush=True)
        export(data, rows)


def race_missing(spec: RaceSpec, prepared, task, out: Path, committed: set[str], **options) -> None:
    """Race the runs of ``spec`` whose keys are not in ``committed`` (the rows of a results file) into ``out``."""
    todo = tuple(run for run in spec.runs()
                 if spec.run_key(run, prepared.fingerprint, prepared.test_fingerprint) not in committed)
    print(f"{spec.data}: {len(spec.runs()) - len(todo)} headstart runs committed already, {len(todo)} to run "
          "(or found in the store)", flush=True)
    if todo:
        run_race(_Remaining(**{**asdict(spec), "only": todo}), out, task=task, data=prepared, progress=False,
                 **options)


def run_peers(data: str, budgets: list[int], seeds: int, out: Path, strategies: list[str], peers: list[str]) -> None:
    """Adds the missing runs (missing from the stores under ``out`` and from the JSONL file), then exports every
    stored headstart and peer record to the JSONL file."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = str(_minilm_dir())
    task = load_task(data)
    spec = RaceSpec(data, "minilm-l6", strategies=strategies or STRATEGIES, budgets=list(budgets), seeds=seeds,
                    test_limit=TEST_LIMIT, backbone_options={"max_length": MAX_LENGTH})
    prepared = prepare_race(spec, task)
    committed = committed_keys()
    if strategies:
        race_missing(spec, prepared, task, out / "headstart", committed)
    test_texts, test_labels = list(prepared.test.inputs), prepared.test.labels
    store = ResultStore(out / "peers.sqlite")
    done = store.done_keys() | committed
    for budget in budgets:
        for seed in range(seeds):
            tr, va = draw(task, prepared.splits, budget, seed=seed)
            index = np.concatenate([tr, va])
            texts, labels = [task.inputs[i] for i in index], task.labels[index]
            for peer in peers:
                ident = f"{prepared.fingerprint}|{peer}|{budget}|{seed}|{TEST_LIMIT}|{RESULTS_FORMAT}"
                key = hashlib.sha1(ident.encode()).hexdigest()
                if key in done:
                    continue
                tic = time.perf_counter()
                pred = RUNNERS[peer](path, texts, labels, test_texts, seed, classes=task.classes)
                seconds = time.perf_counter() - tic
                acc = float((pred == test_labels).mean())
                print(f"{data} {peer} {budget}/class seed {seed}: {acc:.3f} in {seconds:.0f}s", flush=True)
                record = {"peer": peer, "budget": budget, "seed": seed, "test_acc": acc, "seconds": seconds,
                          "n_train": len(index), "n_test": len(test_labels)}
                store.add(key, peer, budget, seed, record)
                export(data, [{**record, "key": key}])  # each finished peer run reaches the JSONL at once
    store.close()
    export_stored(data, out, seeds, strategies)


def export_stored(data: str, out: Path, seeds: int, strategies: list[str] = ()) -> None:
    """Every finished run of ``data`` in the stores under ``out`` into the JSONL file (rows are added, never
    dropped). Only the benchmark's own grid is exported (every strategy, budget and seed at its defaults):
    variants measured in the same store while tuning a default never reach the tables."""
    peer_records, race_records = [], []
    if (out / "peers.sqlite").exists():
        with ResultStore(out / "peers.sqlite") as store:
            peer_records = store.records()
    if (out / "headstart" / "results.sqlite").exists():
        with ResultStore(out / "headstart" / "results.sqlite") as race_store:
            race_records = race_store.records(grid_keys(data, seeds, strategies))
    if peer_records or race_records:
        export(data, race_records + peer_records)


def grid_keys(data: str, seeds: int, strategies: list[str] = ()) -> frozenset[str]:
    """The run keys of the benchmark's own grid under this headstart (every strategy, budget and seed at its
    defaults, plus ``strategies`` asked for, such as an older version's ``lp-ft``): a default changed within a
    version gives new keys, so its older rows leave the tables."""
    return _grid(data, max(3, seeds), tuple(dict.fromkeys([*STRATEGIES, *strategies])))[0]


def held_out(data: str) -> tuple[int, int]:
    """How many selection and test examples every run of ``data`` shares: at most ``TEST_LIMIT`` each, fewer where
    the dataset holds fewer (vader-tweets: 839 test examples, and as many selection examples)."""
    return _grid(data, 3, tuple(STRATEGIES))[1:]


def held_out_text(datasets: list[str]) -> str:
    """The selection and test examples shared by every run, per dataset, for a section's text."""
    return "; ".join(f"{data}: {n_sel:,} selection and {n_test:,} test examples"
                     for data in datasets for n_sel, n_test in [held_out(data)])


@functools.cache  # a report asks for the same grid more than once (adopting settings runs, then the tables)
def _grid(data: str, seeds: int, names: tuple[str, ...]) -> tuple[frozenset[str], int, int]:
    grid = RaceSpec(data, "minilm-l6", strategies=list(names), budgets=[8, 32, 128], seeds=seeds,
                    test_limit=TEST_LIMIT, backbone_options={"max_length": MAX_LENGTH})
    prepared = prepare_race(grid, load_task(data))
    keys = frozenset(grid.run_key(run, prepared.fingerprint, prepared.test_fingerprint) for run in grid.runs())
    return keys, len(prepared.selection), len(prepared.test.labels)


def export(data: str, records: list[dict]) -> None:
    """Merge ``records`` into the JSONL file by key: rows already there are kept, never dropped."""
    merge_jsonl(RESULTS, [{k: r.get(k) for k in KEEP} | {"data": data} for r in records],
                order=lambda r: (r["data"], r["budget"], r.get("strategy") or r.get("peer"), r["seed"]))


def stored(data: str, seeds: int, version: str | None = None) -> tuple[list[dict], list[dict], list[int]]:
    """headstart records of ``data`` (of headstart ``version``: default, this one) and peer records from the
    JSONL, and the budgets the peers cover."""
    from headstart import __version__

    rows = [r for r in read_jsonl(RESULTS) if r["data"] == data]
    rows = [r for r in rows if r["seed"] < seeds]
    if (version or __version__) == __version__:  # this version's rows: only its current grid (defaults as now)
        current = grid_keys(data, seeds)
        rows = [r for r in rows if not r.get("strategy") or r["key"] in current]
    race = [{**r, "from_scratch": r["strategy"].startswith("scratch"), "test_macro_f1": r["test_acc"],
             "n_selection": 0, "per_class": r["budget"], "seconds_per_epoch": None, "epochs": r.get("epochs") or 0,
             "delta_l2": 0.0, "delta_relative": 0.0}
            for r in rows if r.get("strategy") and r.get("sel_acc") is not None
            and (r.get("headstart") or FIRST_VERSION) == (version or __version__)]
    peers = [r for r in rows if r.get("peer")]
    return race, peers, sorted({r["budget"] for r in peers})  # a budget is shown once its peers have run


def _stats(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _seeds(n: int, seeds: int) -> str:
    return "" if n == seeds else f" ({n} of {seeds} seeds)"


def _bold_highest(cells: list[tuple[tuple[float, float] | None, str]]) -> list[str]:
    """Each cell as "mean ± std" plus its suffix; the highest mean of the row (as printed, ties too) in bold."""
    top = max(round(acc[0], 3) for acc, _ in cells if acc)  # compared as printed: 3 decimals
    out = []
    for acc, rest in cells:
        text = "" if acc is None else f"{acc[0]:.3f} ± {acc[1]:.3f}"
        out.append((f"**{text}**" if acc and round(acc[0], 3) == top else text) + rest)
    return out


def table(data: str, race_records: list[dict], peers: list[dict], budgets: list[int],
          seeds: int) -> tuple[str, dict]:
    raced = [s for s in STRATEGIES if any(r["strategy"] == s for r in race_records)]  # variants stay in the store
    rows = summarize([r for r in race_records if r["strategy"] in raced], raced)
    lines = ["| labels/class | headstart best | " + " | ".join(PEER_NAMES[p] for p in PEERS) + " |",
             "|---" * (2 + len(PEERS)) + "|"]
    curves: dict[str, dict[int, tuple[float, float]]] = {}
    for b in budgets:
        at = [r for r in rows if r.budget == b]
        if not at:
            continue
        # chosen on selection accuracy (the race's rule), complete rows first; its test accuracy is reported
        best = max([r for r in at if r.seeds == seeds] or at, key=lambda r: r.sel_acc_mean)
        curves.setdefault("headstart (best)", {})[b] = (best.acc_mean, best.acc_std)
        raced = "" if len(at) == len(STRATEGIES) else f" (of {', '.join(r.strategy for r in at)})"
        cells = [((best.acc_mean, best.acc_std), f" `{best.strategy}`{raced}, {best.seconds:.0f}s"
                  + _seeds(best.seeds, seeds))]
        for peer in PEERS:
            rs = [p for p in peers if p["peer"] == peer and p["budget"] == b]
            if not rs:
                cells.append((None, "–"))
                continue
            mean, std = _stats([p["test_acc"] for p in rs])
            curves.setdefault(peer, {})[b] = (mean, std)
            cells.append(((mean, std), f", {np.mean([p['seconds'] for p in rs]):.0f}s" + _seeds(len(rs), seeds)))
        lines.append(f"| {budget_label(b)} | " + " | ".join(_bold_highest(cells)) + " |")
    if len(lines) == 2:
        return (f"No peer has run on {data} under the current rules yet (`python benchmarks/peers.py --data {data}`)."
                ), curves
    return "\n".join(lines), curves


def strategy_table(data: str, seeds: int, before: str, after: str) -> str:
    """Every strategy at every budget, headstart ``before`` vs ``after``: test mean ± std (selection mean)."""
    cells: dict[tuple[str, str, int], str] = {}
    budgets: set[int] = set()
    for version in (before, after):
        race, _, _ = stored(data, seeds, version)
        for r in summarize(race, [s for s in STRATEGIES if any(x["strategy"] == s for x in race)]):
            budgets.add(r.budget)
            cells[(version, r.strategy, r.budget)] = (f"{r.acc_mean:.3f} ± {r.acc_std:.3f} ({r.sel_acc_mean:.3f})"
                                                      + _seeds(r.seeds, seeds))
    lines = ["| strategy | " + " | ".join(f"{budget_label(b)}/class {v}" for b in sorted(budgets)
                                          for v in ("before", "after")) + " |",
             "|---" * (1 + 2 * len(budgets)) + "|"]
    for strategy in STRATEGIES:
        row = [cells.get((version, strategy, b), "–") for b in sorted(budgets) for version in (before, after)]
        if any(c != "–" for c in row):
            lines.append(f"| `{strategy}` | " + " | ".join(row) + " |")
    before_lpft = [r for r in stored(data, seeds, before)[0] if r["strategy"] == "lp-ft"]
    if before_lpft:
        rows = summarize(before_lpft, ["lp-ft"])
        lines.append("| `lp-ft` (before; now `full`) | " + " | ".join(
            next((f"{r.acc_mean:.3f} ± {r.acc_std:.3f} ({r.sel_acc_mean:.3f})" + _seeds(r.seeds, seeds)
                  for r in rows if r.budget == b), "–") + " | →" for b in sorted(budgets)) + " |")
    return "\n".join(lines)


def plot(all_curves: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(all_curves), figsize=(6 * len(all_curves), 4.2), dpi=100, squeeze=False)
    for ax, (data, curves) in zip(axes[0], all_curves.items()):
        for name, points in curves.items():
            xs = sorted(points)
            ys = np.array([points[x][0] for x in xs])
            ss = np.array([points[x][1] for x in xs])
            (line,) = ax.plot(xs, ys, marker="o", label=name, linewidth=2.5 if name.startswith("headstart") else 1.5)
            ax.fill_between(xs, ys - ss, ys + ss, color=line.get_color(), alpha=0.12)
        ax.set_xscale("log")
        ax.set_xticks(sorted({x for p in curves.values() for x in p}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(data)
        ax.set_xlabel("labelled examples per class")
        ax.set_ylabel("test accuracy")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _names(arg: str) -> list[str]:
    return [] if arg == "none" else arg.split(",")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="rotten-tomatoes,vader-tweets")
    parser.add_argument("--budgets", default="8,32,128")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "runs" / "peers"))
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help="headstart strategies to run ('none': only report what is stored)")
    parser.add_argument("--peers", default=",".join(PEERS), help="peers to run ('none': only report what is stored)")
    parser.add_argument("--before", default=FIRST_VERSION, help="the headstart version the per-strategy table compares "
                                                                "with")
    parser.add_argument("--no-tables", action="store_true",
                        help="run and export to the JSONL file only, leave BENCHMARKS.md alone (for an older headstart "
                             "on PYTHONPATH measuring the per-strategy table's 'before' columns)")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    sections, per_strategy, curves = [], [], {}
    for data in args.data.split(","):
        adopt_settings(data, args.seeds)
        if _names(args.strategies) or _names(args.peers):
            run_peers(data, budgets, args.seeds, Path(args.out) / data, _names(args.strategies), _names(args.peers))
        elif (Path(args.out) / data).exists():
            export_stored(data, Path(args.out) / data, args.seeds)  # runs finished elsewhere (a resumed grid)
    if args.no_tables:
        return
    from headstart import __version__

    for data in sorted({r["data"] for r in read_jsonl(RESULTS)}):
        race_records, peers, covered = stored(data, args.seeds)
        text, curves[data] = table(data, race_records, peers, covered, args.seeds)
        sections.append(f"### {data}\n\n{text}")
        per_strategy.append(f"### {data}\n\n{strategy_table(data, args.seeds, args.before, __version__)}\n\n"
                            f"Targets on {data} ({__version__}):\n\n"
                            + targets_table(race_records, peers, args.seeds, *held_out(data)))
    image = ROOT / "benchmarks" / "peers.png"
    plot(curves, image)
    import setfit
    import sklearn
    import transformers

    versions = (f"setfit {setfit.__version__}, transformers {transformers.__version__}, "
                f"scikit-learn {sklearn.__version__}")
    body = (f"`minilm-l6` (all-MiniLM-L6-v2) everywhere, max 64 tokens; {args.seeds} seeds; the same held-out "
            f"examples (stratified, at most {TEST_LIMIT:,} each; {held_out_text(sorted(curves))}) for every run. "
            "Each cell: test accuracy mean ± std "
            "over seeds, then mean wall-clock of one training run (fit; SetFit and sklearn include encoding). "
            "Labels/class counts every label a run saw: headstart splits it into training and validation, the "
            "peers train on all of it. headstart best = the strategy with the best mean *selection* accuracy at "
            "that budget, out of "
            f"{', '.join(STRATEGIES)}; the cell reports its *test* accuracy. Bold: the highest mean test accuracy "
            "in the row, as printed (a reading aid, not a verdict: whether a gap is beyond noise is in the next "
            f"section). {versions}.\n\n"
            + "\n\n".join(sections) + "\n\n![accuracy vs labels per class](benchmarks/peers.png)\n\n"
            + "Per-run results: `benchmarks/results/peers.jsonl` (rebuild this section with `python "
            "benchmarks/peers.py --strategies none --peers none`); what they mean: the next section.")
    write_section("peers", "headstart vs FastFit, SetFit, HF Trainer and scikit-learn", body)
    write_section("strategies", f"Every strategy, headstart {args.before} vs {__version__}", (
        f"The peers' draws and test examples (the peers section), {args.seeds} seeds. Each cell: test accuracy mean ± "
        "std over seeds, then (in brackets) the mean *selection* accuracy, the number every choice is made on. "
        f"{args.before}: every fine-tune from a random head at 1e-3, epochs counted as epochs (20: at 8 labels/class "
        f"that is 20 optimiser steps), early stopping on validation loss; `lp-ft` separate. {__version__}: every "
        "fine-tune starts from the probe's head (LP-FT; `lp-ft` is now an alias of `full`), plans at least 100 "
        "optimiser steps (the from-scratch baselines too) and keeps its last epoch (the from-scratch baselines "
        "early-stop on validation accuracy); LoRA trains at 5e-4 and also adapts the feed-forward layers, LLDR's "
        "top block trains at 1e-4 and each block below at 0.9 of the rate above. "
        "Why, and what it changed: the changelog entries \"Fine-tunes that earn their place\", \"The "
        "fine-tunes keep their last epoch\" and \"LLDR decays by 0.9 per block\" in the peer notes; the targets "
        "a default misses are explained by the section \"Other settings of the fine-tunes\". "
        "Cells are filled as the resumable grid runs (`python benchmarks/peers.py --peers none`).\n\n"
        "Under each table, the targets judged with the race's own noise rule (`benchmarks/_targets.py`): paired by "
        "seed; noise = the spread of the paired differences over sqrt(seeds), at least the binomial error of a "
        "difference on the shared held-out examples; \"level\" = not more than 2 noise units behind, \"ahead\" = more "
        "than 2 ahead. Strategies are compared on selection accuracy; peers have no selection score, so comparisons "
        "with a peer use test accuracy, against the peer with the best mean test accuracy (a choice that favours "
        "the peer).\n\n"
        + "\n\n".join(per_strategy)))


if __name__ == "__main__":
    main()
