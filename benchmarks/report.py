"""Results → ``results.md`` (the tables the README quotes) and PNG plots.

Pure formatting of the results dict, so a saved ``results.json`` can be re-rendered
(``rlog bench --render DIR``) without measuring again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STAGES = ("drain3_alone", "parse", "mine", "sessionize", "pipeline", "models", "end_to_end")
METHOD_ORDER = ("drain3-novelty", "keywords", "pca", "iforest", "deeplog", "rlog-fast (shipped calibration)",
                "rlog-fast (model alone)", "rlog-fast", "rlog", "rlog-fast +lab", "rlog +lab", "rlog (stream)")


def _f(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _iv(v: Any) -> str:
    return "–" if not v else f"{v[0]:.2f}–{v[1]:.2f}"


def _n(v: Any) -> str:
    if v is None:
        return "–"
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}" if v >= 1 else f"{v:.3f}"


def _ci(x: dict, key: str) -> str:
    """A score with its bootstrap 95% interval, when the row has one."""
    ci = x.get(f"{key}_ci")
    return f"{_f(x[key])} [{ci[0]:.2f}–{ci[1]:.2f}]" if ci and x[key] is not None else _f(x[key])


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _order(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (r["dataset"], METHOD_ORDER.index(r["method"])
                                       if r["method"] in METHOD_ORDER else 99))


def render_markdown(r: dict[str, Any]) -> str:
    env = r["environment"]
    pk = env["packages"]
    models = env["models"]
    lines = [f"# rlog bench: `{r['preset']}`", "",
             f"{r.get('description') or ''}".strip(), "",
             f"Measured {env['time']} on {env['cpu']} ({env['cpu_count']} cores"
             f"{', GPU ' + env['gpu'] if env['gpu'] else ', no GPU'}); Python {env['python']}, torch {pk.get('torch')}, "
             f"transformers {pk.get('transformers')}, drain3 {pk.get('drain3')}, scikit-learn {pk.get('scikit-learn')}. "
             f"R-Log-fast: `{models['fast']['model']}` + `{_short(models['fast']['adapter'])}`"
             f"{' in ' + models['fast']['precision'] if models['fast'].get('precision') else ''}; "
             f"R-Log: `{models['full']['model']}` + `{_short(models['full']['adapter'])}` "
             f"(verdict policy `{env['verdict_policy']}`). Whole run: {r['elapsed_s']:.0f} s.", ""]
    if r["datasets"]:
        lines += ["## Datasets", "", _table(
            ["dataset", "source", "sessions", "fit sessions", "scored sessions (abnormal)", "scored lines",
             "templates scored (abnormal)"],
            [[k, d["source"], f"{d['session']['mode']} {d['session']['by']} {d['session']['size']:g}",
              str(d["fit_sessions"]), f"{d['test_sessions']} ({d['test_abnormal']})", f"{d['test_lines']:,}",
              f"{d['templates']} ({d['templates_abnormal']})" if d["templates"] else "–"]
             for k, d in r["datasets"].items()]), ""]
    if r["skipped"]:
        lines += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in r["skipped"].items()), ""]
    session_rows = _order([x for x in r["detection"] if x["level"] == "session"])
    if session_rows:
        lines += ["## Detection quality (sessions)", "",
                  "Every method is scored on the same sessions. F1 is – where the scored part has no anomaly "
                  "(then FPR, the share of normal sessions flagged, is what counts). Brackets: bootstrap 95% "
                  "intervals over the scored sessions (2,000 resamples); where two methods' intervals overlap, "
                  "the sample cannot tell them apart.", "",
                  _table(["dataset", "method", "P", "R", "F1 [95% CI]", "FPR [95% CI]", "tp/fp/fn/tn", "fit s",
                          "sessions/s"],
                         [[x["dataset"], x["method"], _f(x["precision"]), _f(x["recall"]), _ci(x, "f1"), _ci(x, "fpr"),
                           f"{x['tp']}/{x['fp']}/{x['fn']}/{x['tn']}", _f(x.get("fit_s"), 2),
                           _n(x.get("sessions_per_s"))] for x in session_rows]), ""]
    tpl_rows = _order([x for x in r["detection"] if x["level"] == "template"])
    if tpl_rows:
        lines += ["## Detection quality (templates)", "",
                  "Unique templates held out by time, each judged alone; a template is abnormal when most of its "
                  "lines are. Count-vector and sequence baselines do not apply to a single template.", "",
                  _table(["dataset", "method", "P", "R", "F1 [95% CI]", "FPR [95% CI]", "tp/fp/fn/tn"],
                         [[x["dataset"], x["method"], _f(x["precision"]), _f(x["recall"]), _ci(x, "f1"), _ci(x, "fpr"),
                           f"{x['tp']}/{x['fp']}/{x['fn']}/{x['tn']}"] for x in tpl_rows]), ""]
    if r.get("faultlab"):
        lines += _faultlab_md(r["faultlab"])
    if r["root_cause"]:
        lines += ["## Root cause (simulated incidents)", "",
                  "Over abnormal sessions the cascade caught: R-Log's category must equal the injected fault's.", "",
                  _table(["dataset", "caught", "answered", "correct", "accuracy"],
                         [[k, str(v["caught"]), str(v["answered"]), str(v["correct"]), _f(v["accuracy"])]
                          for k, v in r["root_cause"].items()]), ""]
    e = r.get("explanations")
    if e and e.get("incidents"):
        lines += ["## Explanations (simulated incidents)", "",
                  f"{e['source']}: each of {e['incidents']} fault incidents explained once by R-Log through the "
                  "stream's explain role (its most telling session, flagged as R-Log-fast would). Category: what the "
                  f"alert names (by {e.get('category_by', 'the cascade')}), with its 95% interval, vs the injected "
                  "fault's, beside R-Log's own scored choice among the taxonomy and the evidence rule alone (the "
                  "words of the failing lines). Written: R-Log wrote "
                  "interpretation, root cause and action itself; readable: the alert has all four after the "
                  "evidence fills the gaps. ROUGE-L: R-Log's root cause / action against the injected ones.", "",
                  _table(["method", "category accuracy", "95% interval", "written", "readable", "root cause ROUGE-L",
                          "action ROUGE-L", "ms p50 / p95"],
                         [["alert (R-Log + category model)", _f(e["category_accuracy"]), _iv(e["category_interval"]),
                           _f(e["written_rate"]), _f(e["readable_rate"]), _f(e["cause_rouge_l"]),
                           _f(e["action_rouge_l"]), f"{_n(e['ms'].get('p50'))} / {_n(e['ms'].get('p95'))}"],
                          ["R-Log's own category", _f(e["rlog_category_accuracy"]), "–", "–", "–", "–", "–", "–"],
                          ["evidence rule", _f(e["rule_category_accuracy"]), "–", "–", "1.000", "–", "–", "–"]]), "",
                  _table(["fault", "category", "incidents", "alert category", "R-Log's own", "rule", "written",
                          "root cause ROUGE-L"],
                         [[k, v["category"], str(v["incidents"]), _f(v["category_accuracy"]),
                           _f(v["rlog_category_accuracy"]), _f(v["rule_category_accuracy"]), _f(v["written_rate"]),
                           _f(v["cause_rouge_l"])] for k, v in e["by_scenario"].items()]), ""]
        tr = e.get("trajectories")
        if tr:
            lines += ["R-Log on the published trajectories' validation split (real logs; answers decoded up to "
                      "`</answer>`), against the published answers:", "",
                      _table(["task", "answers", "in format", "BLEU-4", "ROUGE-L", "ms p50"],
                             [[k, str(v["n"]), str(v["answered"]), _f(v["bleu4"]), _f(v["rougeL"]),
                               _n(v["ms"].get("p50"))] for k, v in tr.items()]), ""]
        ri = e.get("real_incidents")
        if ri and ri.get("n"):
            lines += [f"R-Log on {ri['n']} real incidents held out of training (the published trajectories' Apache "
                      "errors that the interpretation, root-cause and solution tasks share), written as the stream "
                      "writes an escalation; ROUGE-L against the published answers' first sentence:", "",
                      _table(["incidents", "written", "interpretation ROUGE-L", "root cause ROUGE-L",
                              "action ROUGE-L", "ms p50 / p95"],
                             [[str(ri["n"]), _f(ri["written_rate"]), _f(ri["interpretation_rouge_l"]),
                               _f(ri["cause_rouge_l"]), _f(ri["action_rouge_l"]),
                               f"{_n(ri['ms'].get('p50'))} / {_n(ri['ms'].get('p95'))}"]]), ""]
    if r["cost"]:
        warmed = any(c.get("warmed_on") for c in r["cost"].values())
        lines += ["## Model cost", ""]
        if warmed:
            lines += ["Steady state: before scoring, R-Log-fast judged each dataset's fit part (earlier traffic, "
                      "no labels read) so the verdict and known-normal memories start where a running stream's "
                      "would; that warm-up is shown apart and not counted. Sessions of one open incident "
                      "(`cascade.incidents`) are judged and explained once: the column counts the later ones "
                      "answered from it without R-Log-fast, and the flagged ones given its explanation without "
                      "R-Log. Floor: the same cascade, warm-up and memories with both models read from the labels "
                      "(`benchmarks/cost_floor.py`): what the data and the memory design cost whatever the models; "
                      "the rest is the models' share.", ""]
        lines += [_table(
            ["dataset", "lines", "sessions", "fast calls", "full calls", "model calls / 1k lines", "cache hit ratio",
             "from open incidents: judged / explained", "floor: calls / 1k with perfect models",
             "malformed fast/full", "model s",
             "warm-up: sessions / fast calls / known-normal templates"],
            [[k, f"{c['lines']:,}", str(c["sessions"]), str(c["fast_calls"]), str(c["full_calls"]),
              _f(c["model_calls_per_1k_lines"], 1), _f(c["cache_hit_ratio"], 3),
              f"{c.get('incident_hits', 0)} / {c.get('explanations_reused', 0)}",
              _f(f["model_calls_per_1k_lines"], 1) if (f := c.get("floor")) else "–",
              f"{c['malformed_fast']}/{c['malformed_full']}", _f(c["model_s"], 1),
              (f"{w['sessions']} / {w['fast_calls']} / {w['known_normal_templates']}" if (w := c.get("warmed_on"))
               else "none (cold)")] for k, c in r["cost"].items()]), ""]
    p = r.get("probe")
    if p and p["sessions"]:
        lines += ["## R-Log-fast vs R-Log, per session", "",
                  f"The same {p['sessions']} sessions of `{p['dataset']}` (distinct, abnormal and normal alternating), "
                  "one at a time through each model.", "",
                  _table(["model", "mean ms", "p50 ms", "p95 ms", "completion tokens (mean)"],
                         [["R-Log-fast", _n(p["fast_ms"]["mean"]), _n(p["fast_ms"]["p50"]), _n(p["fast_ms"]["p95"]),
                           _f(p["fast_completion_tokens_mean"], 1)],
                          ["R-Log", _n(p["full_ms"]["mean"]), _n(p["full_ms"]["p50"]), _n(p["full_ms"]["p95"]),
                           _f(p["full_completion_tokens_mean"], 1)]]), "",
                  f"Speedup of R-Log-fast over R-Log: **{_f(p['speedup_mean'], 1)}x** (mean), "
                  f"{_f(p['speedup_p50'], 1)}x (median); R-Log-fast alone reaches "
                  f"{_f(p.get('fast_f1_over_cascade_f1'), 2)} of the cascade's F1 on `{p['dataset']}`.", ""]
    if r["stages"]:
        lines += ["## Throughput (lines/s)", "",
                  "Stages before the models are timed inside one pass of the real pipeline; `models` is the "
                  "cascade on the scored sessions; `end to end` is both (offline, one process).", "",
                  _table(["dataset", "Drain3 alone", "parse", "mine", "sessionize", "pipeline", "models",
                          "end to end"],
                         [[k, *(_n(v["lines_per_s"].get(s)) for s in STAGES)] for k, v in r["stages"].items()]), ""]
    if r["stream"]:
        lines += ["## Streaming path", "",
                  "Embedded broker (tansu), one `rlog run` worker process (all roles), kafka-python replay of the "
                  "scored lines. Latency: from the session's last line handed to the producer to its alert on the "
                  "alerts topic (only flagged sessions make alerts). Replayed faster than the models judge, "
                  "latency is mostly queueing. The worker starts with an empty template miner, while the offline "
                  "rows' pipeline had first read the fit logs, so a few sessions show other templates and may be "
                  "judged differently.", "",
                  _table(["dataset", "replay pace", "sessions", "alerts", "P", "R", "F1", "latency p50/p95/p99 s",
                          "lines/s", "worker peak RSS MB", "complete"],
                         [[k, f"{s['rate']:g} lines/s" if s.get("rate") else "full speed", str(s["sessions"]),
                           str(s["alerts"]),
                           *((_f(s["scores"]["precision"]), _f(s["scores"]["recall"]), _f(s["scores"]["f1"]))
                             if s["scores"] else ("–", "–", "–")),
                           "/".join(_f(s["latency_ms"][q] / 1000 if s["latency_ms"][q] is not None else None, 1)
                                    for q in ("p50", "p95", "p99")),
                           _n(s["lines_per_s"]), _n(s["worker_peak_rss_mb"]),
                           "yes" if s["completed"] else f"no ({s['error']})"] for k, s in r["stream"].items()]), ""]
    if r["parsing"]:
        rows = r["parsing"]
        mean = sum(x["grouping_accuracy"] for x in rows) / len(rows)
        dmean = sum(x["drain3_grouping_accuracy"] for x in rows) / len(rows)
        lines += ["## Parsing (Loghub 2k grouping accuracy)", "",
                  "rlog's parser (format preset + Drain3 with rlog's masks) vs Drain3 with its defaults on the same "
                  "message text.", "",
                  _table(["system", "true templates", "rlog templates", "rlog accuracy", "rlog lines/s",
                          "Drain3 templates", "Drain3 accuracy", "Drain3 lines/s"],
                         [[x["system"], str(x["true_templates"]), str(x["templates"]), _f(x["grouping_accuracy"]),
                           _n(x["lines_per_s"]), str(x["drain3_templates"]), _f(x["drain3_grouping_accuracy"]),
                           _n(x["drain3_lines_per_s"])] for x in rows]
                         + [["**mean**", "", "", f"**{mean:.3f}**", "", "", f"**{dmean:.3f}**", ""]]), ""]
    m = r["memory"]
    lines += ["## Memory", "", f"Peak RSS of the benchmark process: {_n(m.get('bench_peak_rss_mb_without_models'))} MB "
              f"before the models were loaded, {_n(m.get('bench_peak_rss_mb_with_models'))} MB with both loaded"
              + (f" (load took {m['model_load_s']:.0f} s)" if m.get("model_load_s") is not None else "") + ".", ""]
    return "\n".join(lines).replace("\n\n\n", "\n\n")


def _faultlab_md(fl: dict[str, Any]) -> list[str]:
    """The fault lab's own tables: issue 31's bar per daemon, recall per fault category, explanations."""
    out = ["## Fault lab: leave one daemon out", "",
           f"Corpus `{fl['corpus']}`; each daemon's first {fl['fit_runs']} runs are its past (baselines fit there, "
           "the pipeline and the cascade's memory read it), its later runs are scored (`lab-<daemon>` rows above; "
           "`lab-all` pools them, each daemon judged by what was fitted for it). R-Log-fast's fusion and threshold "
           "scoring a daemon were fitted on the other daemons' scored runs only (never their past, which a "
           "lab-trained adapter has read); `rlog-fast (shipped calibration)` is the adapter's own (fitted on the "
           "simulator and BGL), `rlog-fast (model alone)` the refitted threshold without the evidence fusion, "
           "`rlog` the cascade as the stream runs it (memories warmed on the daemon's past, its own verdicts "
           "only). `+lab` rows: R-Log-fast trained on the lab's other daemons (their past runs) and the "
           "simulator, never on the daemon scored (`train/make_lab_adapters.sh`).", ""]
    if fl.get("targets"):
        out += ["Target (issue 31): rlog's F1 ≥ the best baseline's + 0.05 on every daemon, and FPR ≤ 0.02.", "",
                _table(["daemon", "method", "F1", "FPR", "best baseline", "its F1", "gap", "F1 target", "FPR target"],
                       [[t["daemon"], t.get("method", "rlog"), _f(t["rlog_f1"]), _f(t["rlog_fpr"]), t["best_baseline"],
                         _f(t["best_baseline_f1"]), f"{t['gap']:+.3f}", "met" if t["f1_met"] else "missed",
                         "met" if t["fpr_met"] else "missed"] for t in fl["targets"]]), ""]
    for d, v in fl.get("daemons", {}).items():
        for key, what in (("calibration", "configured R-Log-fast"), ("lab_calibration", "R-Log-fast +lab")):
            cal = v.get(key)
            if cal:
                out.append(f"- `{d}`, {what}{' (' + _short(cal['adapter']) + ')' if cal.get('adapter') else ''}: "
                           f"fitted on {', '.join(cal['fitted_on'])} ({cal['sessions']:,} scored sessions): threshold "
                           f"{cal['threshold']:.4f}; {cal['fusion'] or 'no fusion'}")
    out.append("")
    cats = fl.get("categories") or []
    if cats:
        methods = [m for m in METHOD_ORDER if any(c["method"] == m for c in cats)]
        names = sorted({c["category"] for c in cats})
        by = {(c["method"], c["category"]): c for c in cats}
        out += ["Recall per fault category (abnormal scored sessions of every daemon; brackets: 95% Wilson "
                "interval). FPR has no category: see the rows above.", "",
                _table(["category", "abnormal", *methods],
                       [[n, str(next(c["abnormal"] for c in cats if c["category"] == n)),
                         *(f"{_f(x['recall'], 2)} [{_iv(x['recall_ci'])}]" if (x := by.get((m, n))) else "–"
                           for m in methods)] for n in names]), ""]
    ex = fl.get("explanations") or {}
    if ex:
        out += ["R-Log on incidents of each daemon (explained through the stream's explain role), against the "
                "injector's own root cause and fix; category: what the alert names vs the fault's root-cause "
                "category.", "",
                _table(["daemon", "incidents", "alert category [95%]", "R-Log's own", "rule", "written",
                        "root cause ROUGE-L", "fix ROUGE-L", "ms p50"],
                       [[d, str(e["incidents"]), f"{_f(e['category_accuracy'])} [{_iv(e['category_interval'])}]",
                         _f(e["rlog_category_accuracy"]), _f(e["rule_category_accuracy"]), _f(e["written_rate"]),
                         _f(e["cause_rouge_l"]), _f(e["action_rouge_l"]), _n(e["ms"].get("p50"))]
                        for d, e in ex.items()]), ""]
    exl = fl.get("explanations_lab") or {}
    if exl:
        out += ["The same incidents explained by R-Log trained on the lab without the daemon (`+lab`):", "",
                _table(["daemon", "adapter", "incidents", "alert category [95%]", "R-Log's own", "written",
                        "root cause ROUGE-L", "fix ROUGE-L", "ms p50"],
                       [[d, _short(e["adapter"]), str(e["incidents"]),
                         f"{_f(e['category_accuracy'])} [{_iv(e['category_interval'])}]",
                         _f(e["rlog_category_accuracy"]), _f(e["written_rate"]), _f(e["cause_rouge_l"]),
                         _f(e["action_rouge_l"]), _n(e["ms"].get("p50"))] for d, e in exl.items()]), ""]
    if fl.get("skipped"):
        out += ["Not scored: " + "; ".join(f"{k} ({v})" for k, v in fl["skipped"].items()), ""]
    return out


def _short(path: str | None) -> str:
    return Path(path).name if path else "none"


def plot_all(r: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[Path] = []
    rows = [x for x in r["detection"] if x["level"] == "session" and x["f1"] is not None]
    if rows:
        datasets = sorted({x["dataset"] for x in rows})
        methods = [m for m in METHOD_ORDER if any(x["method"] == m for x in rows)]
        fig, ax = plt.subplots(figsize=(min(16, max(6, 1.6 * len(datasets) * len(methods) / 3)), 4.6))
        by_key = {(x["method"], x["dataset"]): x for x in rows}
        _grouped_bars(ax, datasets, methods, lambda m, d: (x["f1"], x.get("f1_ci")) if (x := by_key.get((m, d)))
                      else (0.0, None))
        ax.set_ylabel("session F1")
        ax.set_title("Detection F1 per method and dataset (same sessions; bars: bootstrap 95% CI)")
        ax.legend(fontsize=7, ncols=min(4, len(methods)), loc="upper center", bbox_to_anchor=(0.5, -0.08))
        fig.subplots_adjust(bottom=0.3)
        fig.tight_layout()
        made.append(_save(fig, out / "f1.png"))
    stream_lat = {k: [x / 1000 for x in s.get("latency_ms_all", [])] for k, s in r["stream"].items()}
    p = r.get("probe") or {}
    if any(stream_lat.values()) or p.get("fast_ms_all"):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        data = [v for v in stream_lat.values() if v]
        if data:
            axes[0].boxplot(data, tick_labels=[k for k, v in stream_lat.items() if v], showfliers=True)
        axes[0].set_ylabel("seconds")
        axes[0].set_title("Produce-to-alert latency (stream)")
        if p.get("fast_ms_all"):
            axes[1].boxplot([[x / 1000 for x in p["fast_ms_all"]], [x / 1000 for x in p["full_ms_all"]]],
                            tick_labels=["R-Log-fast", "R-Log"])
        axes[1].set_ylabel("seconds per session")
        axes[1].set_title(f"Per-session model latency (speedup {_f(p.get('speedup_mean'), 1)}x)")
        fig.tight_layout()
        made.append(_save(fig, out / "latency.png"))
    if r["stages"]:
        keys = STAGES
        datasets = list(r["stages"])
        fig, ax = plt.subplots(figsize=(9, 0.6 + 0.5 * len(keys) * len(datasets) / 2))
        height = 0.8 / len(datasets)
        for i, d in enumerate(datasets):
            vals = [r["stages"][d]["lines_per_s"].get(k) or 0 for k in keys]
            ax.barh([j + i * height for j in range(len(keys))], vals, height, label=d)
        ax.set_yticks([j + height * (len(datasets) - 1) / 2 for j in range(len(keys))],
                      [k.replace("_", " ") for k in keys])
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_xlabel("lines/s (log scale)")
        ax.set_title("Throughput per stage")
        ax.legend(fontsize=8)
        fig.tight_layout()
        made.append(_save(fig, out / "throughput.png"))
    e = r.get("explanations") or {}
    if e.get("by_scenario"):
        faults = list(e["by_scenario"])
        fig, ax = plt.subplots(figsize=(9, 4))
        for i, (key, label) in enumerate((("category_accuracy", "alert"), ("rlog_category_accuracy", "R-Log's own"),
                                          ("rule_category_accuracy", "evidence rule"))):
            vals = [e["by_scenario"][f][key] or 0.0 for f in faults]
            ax.bar([j + i * 0.28 for j in range(len(faults))], vals, 0.28, label=label)
        ax.set_xticks([j + 0.28 for j in range(len(faults))], faults, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("category accuracy")
        ax.set_title(f"Root-cause category per fault type ({e['incidents']} incidents; alert "
                     f"{_f(e['category_accuracy'], 2)}, R-Log's own {_f(e['rlog_category_accuracy'], 2)}, rule "
                     f"{_f(e['rule_category_accuracy'], 2)})", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        made.append(_save(fig, out / "explanations.png"))
    if r.get("faultlab") and (pf := _faultlab_plot(r["faultlab"], out)) is not None:
        made.append(pf)
    return made


def _grouped_bars(ax, groups: list[str], methods: list[str], value_of) -> None:
    """One bar per method in each group, with its interval as error bars; ``value_of(method, group)``
    gives (value, [low, high] or None). Colours from tab20, so a dozen methods stay distinct."""
    import matplotlib.pyplot as plt

    width = 0.8 / len(methods)
    colours = plt.get_cmap("tab20").colors
    for i, m in enumerate(methods):
        pairs = [value_of(m, g) for g in groups]
        vals = [v for v, _ in pairs]
        err = [[v - c[0] if c else 0.0 for v, c in pairs], [c[1] - v if c else 0.0 for v, c in pairs]]
        ax.bar([j + i * width for j in range(len(groups))], vals, width, label=m, yerr=err, capsize=2,
               color=colours[(2 * i) % 20 if i < 10 else (2 * i + 1) % 20], error_kw={"elinewidth": 0.8})
    ax.set_xticks([j + width * (len(methods) - 1) / 2 for j in range(len(groups))], groups)
    ax.set_ylim(0, 1.05)


def _faultlab_plot(fl: dict[str, Any], out: Path) -> Path | None:
    """Recall per fault category, one bar per method, with Wilson intervals."""
    import matplotlib.pyplot as plt

    cats = fl.get("categories") or []
    if not cats:
        return None
    methods = [m for m in METHOD_ORDER if any(c["method"] == m for c in cats)]
    names = sorted({c["category"] for c in cats})
    by = {(c["method"], c["category"]): c for c in cats}
    fig, ax = plt.subplots(figsize=(max(9, 1.5 * len(names)), 5.2))
    _grouped_bars(ax, names, methods, lambda m, n: (x["recall"], x["recall_ci"]) if (x := by.get((m, n)))
                  else (0.0, None))
    ax.set_ylabel("recall (abnormal sessions flagged)")
    ax.set_title("Fault lab, leave one daemon out: recall per fault category (bars: 95% Wilson interval)")
    ax.legend(fontsize=7, ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    return _save(fig, out / "faultlab_categories.png")


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(r: dict[str, Any], out: Path) -> list[Path]:
    md = out / "results.md"
    md.write_text(render_markdown(r), encoding="utf-8")
    return [md, *plot_all(r, out)]
