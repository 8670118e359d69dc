// headstart lab: the page. Data come from /api/*, live updates from /api/events (server-sent events);
// charts are uPlot (vendored under /assets/vendor/uplot with its licence).
"use strict";

const COLORS = { scratch: "#d62728", frozen: "#1f77b4", finetune: "#2ca02c" };
const EPOCH_TICKS = [1, 2, 5, 10, 20, 50, 100, 200, 500];
const ROLE_NAMES = { scratch: "scratch", frozen: "frozen (probe)", finetune: "fine-tune" };
const $ = (id) => document.getElementById(id);
const fmt = (n) => n.toLocaleString("en-US");
const state = {
  lab: null, setting: null, live: {}, jobs: {}, view: "race", charts: {}, monitorKey: null,
  curves: null, lastEvent: 0, requestSeq: 0,
  // what benchmarks/lab.py reads: seconds from an epoch's end (server clock) to its point drawn here,
  // and when each setting was last drawn (performance.now())
  metrics: { epochLatency: [], redraws: [] },
};
window.labMetrics = state.metrics;

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// ---- controls: sliders, strip and pill (computed here from per-block counts: no round trip) --------------
function frozenValue() { return Number($("frozen").value); }
function budgetValue() { return state.lab.budgets[Number($("budget").value)]; }
function lrValue() { return $("lr").value; }

function finetuneName(frozen) {
  const n = state.lab.blocks.length;
  return frozen === 0 ? "full" : frozen === n ? "probe" : `partial:${n - frozen}`;
}

function trainableCount(frozen) {
  return state.lab.head + state.lab.blocks.slice(frozen).reduce((s, b) => s + b.params, 0);
}

function drawStrip() {
  const frozen = frozenValue(), blocks = state.lab.blocks, name = finetuneName(frozen);
  const total = state.lab.head + blocks.reduce((s, b) => s + b.params, 0);
  const strip = $("strip");
  strip.replaceChildren(...blocks.map((b, i) => {
    const el = document.createElement("div");
    el.className = "block" + (i >= frozen ? " trainable" : "");
    el.textContent = b.name;
    el.title = `${b.name}: ${fmt(b.params)} parameters, ${i >= frozen ? "trains" : "locked"}`;
    return el;
  }), Object.assign(document.createElement("div"), {
    className: "block head", textContent: "head", title: `linear head: ${fmt(state.lab.head)} parameters`,
  }));
  const count = trainableCount(frozen);
  $("pill").textContent = `${fmt(count)} trainable (${(100 * count / total).toFixed(2)}%)`;
  $("pill").dataset.count = String(count);
  $("frozen-value").textContent = `${frozen} of ${blocks.length}`;
  $("frozen-meaning").textContent = name === "probe" ? "everything frozen: the probe (no fine-tune)"
    : name === "full" ? "nothing frozen: full fine-tune" : `${name}: the top ${blocks.length - frozen} blocks train`;
  $("arch-name").textContent = `${state.lab.backbone} · ${name}`;
  $("budget-value").textContent = String(budgetValue());
  $("train-finetune").disabled = name === "probe";
}

let settingTimer = null;
function onSliders() {
  drawStrip();
  clearTimeout(settingTimer);
  settingTimer = setTimeout(loadSetting, 30);
}

async function loadSetting() {
  const seq = ++state.requestSeq;
  const q = new URLSearchParams({ frozen: frozenValue(), budget: budgetValue(), lr: lrValue() });
  const setting = await api(`/api/setting?${q}`);
  if (seq !== state.requestSeq) return; // a newer slider position won
  state.setting = setting;
  drawRace();
  state.metrics.redraws.push(performance.now());
  fillMonitorChoices();
  drawMonitor();
}

async function train(only) {
  const body = { frozen: frozenValue(), budget: budgetValue(), lr: lrValue() };
  if (only) body.only = only;
  try {
    await api("/api/train", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  } catch (e) { alert(e.message); }
  await loadSetting();
  await loadJobs();
}

// ---- the race view -----------------------------------------------------------------------------------------
function curveOf(entrant) {
  // [{epoch, val_acc, ...}] of the entrant's last stage: live epochs while it trains, else the stored curve
  const live = state.live[entrant.key];
  if (entrant.record) {
    const c = entrant.record.curve || [];
    const last = c.length ? c[c.length - 1].stage : null;
    return c.filter((e) => e.stage === last);
  }
  if (!live) return [];
  const stage = live.stages.length ? live.stages[live.stages.length - 1].stage : null;
  return live.epochs.filter((e) => e.stage === stage);
}

function makeChart(id, opts, data) {
  const el = $(id);
  if (state.charts[id]) state.charts[id].destroy();
  el.replaceChildren();
  const width = Math.max(320, el.clientWidth || el.parentElement.clientWidth - 20);
  state.charts[id] = new uPlot({ width, height: 320, ...opts }, data, el);
}

function drawRace() {
  if (!state.setting) return;
  const entrants = state.setting.entrants;
  const curves = entrants.map(curveOf);
  const maxEpoch = Math.max(1, ...curves.map((c) => (c.length ? c[c.length - 1].epoch : 0)));
  const xs = Array.from({ length: maxEpoch + 1 }, (_, i) => i);
  const data = [xs], series = [{ label: "epoch" }];
  entrants.forEach((en, i) => {
    const color = COLORS[en.role];
    const byEpoch = new Map(curves[i].map((e) => [e.epoch, e.val_acc]));
    const rec = en.record;
    if (en.strategy === "probe" && rec) { // closed form: no epochs; its level drawn flat across
      data.push(xs.map(() => rec.test_acc));
      series.push({ label: `${ROLE_NAMES[en.role]}: ${en.strategy} (closed form)`, stroke: color, width: 2, dash: [6, 4] });
    } else {
      data.push(xs.map((x) => (byEpoch.has(x) ? byEpoch.get(x) : null)));
      series.push({ label: `${ROLE_NAMES[en.role]}: ${en.strategy}`, stroke: color, width: 2, spanGaps: true });
    }
    const last = rec ? (curves[i].length ? curves[i][curves[i].length - 1].epoch : 0) : null;
    data.push(xs.map((x) => (rec && x === last ? rec.test_acc : null)));
    series.push({ label: `${en.strategy} test`, stroke: color, width: 0, paths: () => null,
                  points: { show: true, size: 11, fill: color, stroke: color } });
  });
  makeChart("race-chart", {
    series, scales: { x: { time: false }, y: { range: [0, 1] } },
    axes: [{ label: "epoch", incrs: EPOCH_TICKS }, { label: "accuracy" }],
  }, data);
  const stored = entrants.filter((e) => e.record).length;
  $("race-note").textContent = `${state.lab.data} at ${state.setting.budget} labels per class: `
    + `${stored} of ${entrants.length} runs stored` + (stored < entrants.length ? "; Train all three runs the rest." : ".");
  drawCounters();
}

// how much pretrained competence a run that moved a pretrained body kept (race/forgetting.py), in words
function keptText(r) {
  const f = r.forgetting;
  if (!f || f.kept == null) return "";
  return ` · kept ${(100 * f.kept).toFixed(0)}% ${f.what} (drift ${f.drift.toFixed(3)})`;
}

function drawCounters() {
  if (!state.setting) return;
  const now = Date.now() / 1000;
  $("counters").replaceChildren(...state.setting.entrants.map((en) => {
    const el = document.createElement("div");
    el.className = `counter ${en.role}`;
    el.dataset.key = en.key;
    const job = Object.values(state.jobs).filter((j) => j.key === en.key).sort((a, b) => b.id - a.id)[0];
    const live = state.live[en.key];
    let clock = "–", status = "not trained", meta = "";
    if (en.record) {
      const r = en.record;
      clock = `${r.seconds.toFixed(1)} s`;
      status = "done";
      meta = (r.seconds_per_epoch ? `${r.seconds_per_epoch.toFixed(2)} s/epoch · ${r.epochs} epochs · ` : "closed form · ")
        + `Δθ ${r.delta_l2 == null ? "–" : r.delta_l2.toFixed(3)}`
        + (r.delta_relative ? ` (${(100 * r.delta_relative).toFixed(2)}%)` : "")
        + ` · selection ${r.sel_acc.toFixed(3)} · test ${r.test_acc.toFixed(3)} · ${fmt(r.trainable_params)} trainable`
        + keptText(r)
        + (r.ood_acc == null ? "" : ` · out of domain ${r.ood_acc.toFixed(3)} (${(r.ood_acc - r.test_acc >= 0 ? "+" : "")}${(r.ood_acc - r.test_acc).toFixed(3)})`);
    } else if (job && job.state === "running") {
      clock = `${(now - job.started).toFixed(1)} s`;
      status = "training";
      const epochs = live ? live.epochs.filter((e) => e.epoch > 0) : [];
      const stage = live && live.stages.length ? live.stages[live.stages.length - 1] : null;
      meta = stage ? `${stage.stage}: epoch ${epochs.length ? epochs[epochs.length - 1].epoch : 0} of ${stage.epochs}` : "starting";
      if (epochs.length) meta += ` · ${(epochs.reduce((s, e) => s + e.seconds, 0) / epochs.length).toFixed(2)} s/epoch`;
    } else if (job && job.state === "queued") {
      status = "queued";
    } else if (job && (job.state === "failed" || job.state === "cancelled")) {
      status = job.state; meta = job.message || "";
    }
    el.innerHTML = `<span class="state"></span><div class="name"></div><div class="clock"></div><div class="meta"></div>`;
    el.querySelector(".state").textContent = status;
    el.querySelector(".name").textContent = `${ROLE_NAMES[en.role]}: ${en.strategy}`;
    el.querySelector(".clock").textContent = clock;
    el.querySelector(".meta").textContent = meta;
    return el;
  }));
}

async function loadJobs() {
  const { jobs } = await api("/api/jobs");
  for (const j of jobs) state.jobs[j.id] = { ...state.jobs[j.id], ...j };
  drawQueue();
}

function drawQueue() {
  const jobs = Object.values(state.jobs).sort((a, b) => b.id - a.id).slice(0, 12);
  $("queue").replaceChildren(...jobs.map((j) => {
    const li = document.createElement("li");
    li.dataset.job = j.id;
    const what = document.createElement("span");
    what.className = "what";
    what.textContent = `#${j.id} ${j.strategy} @ ${j.budget}/class` + (j.lr ? `, lr ${j.lr}` : "") + (j.message ? ` — ${j.message}` : "");
    const st = document.createElement("span");
    st.className = `state-${j.state}`;
    st.textContent = j.state;
    li.append(what, st);
    if (j.state === "queued" || j.state === "running") {
      const b = document.createElement("button");
      b.textContent = "cancel";
      b.onclick = () => api(`/api/jobs/${j.id}/cancel`, { method: "POST" }).catch((e) => alert(e.message));
      li.append(b);
    }
    return li;
  }));
  if (!jobs.length) $("queue").innerHTML = '<li class="hint">nothing queued yet</li>';
}

// ---- the training monitor ------------------------------------------------------------------------------------
function fillMonitorChoices() {
  const select = $("monitor-run");
  const options = (state.setting ? state.setting.entrants : []).filter((e) => e.strategy !== "probe")
    .map((e) => ({ key: e.key, label: `${ROLE_NAMES[e.role]}: ${e.strategy} @ ${state.setting.budget}/class` }));
  const keep = state.monitorKey && options.some((o) => o.key === state.monitorKey) ? state.monitorKey
    : (options.find((o) => state.live[o.key]) || options[options.length - 1] || {}).key;
  select.replaceChildren(...options.map((o) => Object.assign(document.createElement("option"), { value: o.key, textContent: o.label })));
  if (keep) select.value = keep;
  state.monitorKey = keep || null;
}

function monitorRun() {
  // epochs (last stage), stage plan and end state of the watched run: stored, or live
  const en = state.setting && state.setting.entrants.find((e) => e.key === state.monitorKey);
  if (!en) return null;
  const live = state.live[en.key];
  if (en.record) {
    const r = en.record, stage = (r.stages || [])[r.stages.length - 1] || {};
    return { en, epochs: curveOf(en), plan: stage, ended: { stop_reason: r.stop_reason, best_epoch: r.best_epoch }, stored: true };
  }
  if (!live) return { en, epochs: [], plan: null, ended: null };
  const plan = live.stages[live.stages.length - 1] || null;
  return { en, epochs: curveOf(en), plan, ended: live.ended, last: live.epochs[live.epochs.length - 1] };
}

function drawMonitor() {
  if (state.view !== "monitor") return;
  const m = monitorRun();
  if (!m) { $("monitor-status").textContent = "Pick a run (train one first)."; return; }
  const xs = m.epochs.map((e) => e.epoch);
  const best = m.ended ? m.ended.best_epoch : m.last ? m.last.best_epoch : null;
  const data = [xs.length ? xs : [0], m.epochs.map((e) => e.train_loss), m.epochs.map((e) => e.val_loss),
    m.epochs.map((e) => e.val_acc), m.epochs.map((e) => (e.epoch === best ? e.val_loss : null))];
  if (!xs.length) data.forEach((d, i) => { if (i) d.push(null); });
  makeChart("monitor-chart", {
    series: [{ label: "epoch" },
      { label: "training loss", stroke: "#667085", width: 2, scale: "loss", spanGaps: true },
      { label: "validation loss", stroke: "#7a5af8", width: 2, scale: "loss", spanGaps: true },
      { label: "validation accuracy", stroke: COLORS[m.en.role], width: 2, scale: "acc", spanGaps: true },
      { label: "best epoch (its weights are kept)", stroke: "#ff9f1c", width: 0, scale: "loss", paths: () => null,
        points: { show: true, size: 14, fill: "#ff9f1c", stroke: "#1d2330" } }],
    scales: { x: { time: false }, acc: { range: [0, 1] } },
    axes: [{ label: "epoch", incrs: EPOCH_TICKS }, { scale: "loss", label: "loss" }, { scale: "acc", side: 1, label: "accuracy", grid: { show: false } }],
  }, data);
  const plan = m.plan || {};
  let text;
  if (m.ended) {
    const reason = m.ended.stop_reason;
    const last = xs.length ? xs[xs.length - 1] : 0;
    text = reason === "early_stopped"
      ? `Early stopping fired after epoch ${last}: ${plan.patience} epochs without a better validation score. Restored epoch ${best}'s weights (marked).`
      : reason === "max_epochs" ? `Ran all ${plan.epochs ?? last} planned epochs; kept epoch ${best}'s weights (marked), the best on validation.`
      : reason === "schedule" ? `Ran all ${plan.epochs ?? last} planned epochs without early stopping (monitor=none, the fine-tunes' default); kept epoch ${last}'s weights, the last.`
      : reason === "interrupted" ? `Stopped on request after epoch ${last}; kept epoch ${best}'s weights.`
      : `Stopped: ${reason}; kept epoch ${best}'s weights.`;
  } else if (m.last) {
    const left = m.last.patience - m.last.wait;
    text = `Training: epoch ${m.last.epoch} of ${m.last.planned}. Best so far: epoch ${m.last.best_epoch}. `
      + (plan.monitor === "none" ? "No early stopping (monitor=none): the last epoch's weights are kept."
        : `Patience: ${left} of ${m.last.patience} epochs left` + (plan.min_epochs ? ` (never stops before epoch ${plan.min_epochs})` : "") + ".");
  } else {
    text = "Not trained yet: press Train all three (or Train this fine-tune).";
  }
  const lastEpoch = m.epochs[m.epochs.length - 1];
  if (lastEpoch && lastEpoch.terms && Object.keys(lastEpoch.terms).length) {  // a run with loss terms (a guard, CORAL)
    text += ` Loss at epoch ${lastEpoch.epoch}: ` + Object.entries(lastEpoch.terms)
      .map(([name, value]) => `${name} ${Number(value).toPrecision(3)}`).join(", ") + ".";
  }
  $("monitor-status").textContent = text;
  $("monitor-status").dataset.stopped = m.ended ? m.ended.stop_reason : "";
}

// ---- learning curves and verdict -----------------------------------------------------------------------------
async function loadCurves() {
  state.curves = await api("/api/curves");
  drawCurves();
}

function drawCurves() {
  if (state.view !== "curves" || !state.curves) return;
  const c = state.curves;
  const strategies = [...new Set(c.rows.map((r) => r.strategy))];
  const xs = [...new Set(c.rows.map((r) => r.per_class))].sort((a, b) => a - b);
  const palette = ["#d62728", "#9467bd", "#1f77b4", "#17becf", "#2ca02c", "#bcbd22", "#8c564b", "#e377c2", "#ff7f0e"];
  const data = [xs.length ? xs : [1]];
  const series = [{ label: "labels per class" }];
  strategies.forEach((s, i) => {
    data.push(xs.map((x) => { const r = c.rows.find((r) => r.strategy === s && r.per_class === x); return r ? r.acc_mean : null; }));
    series.push({ label: s, stroke: palette[i % palette.length], width: 2, spanGaps: true, points: { show: true, size: 7 } });
  });
  if (c.chance != null) {
    data.push(data[0].map(() => c.chance));
    series.push({ label: "chance (majority class)", stroke: "#b42318", width: 1, dash: [4, 4] });
  }
  makeChart("curves-chart", {
    // log in labels per class; with a zero-label budget (zero-shot), asinh: linear near 0, log beyond
    series, scales: { x: xs[0] === 0 ? { time: false, distr: 4, asinh: 1 } : { time: false, distr: 3, log: 2 }, y: { range: [0, 1] } },
    axes: [{ label: "labels per class" }, { label: "test accuracy" }],
  }, data);
  $("chosen-on").textContent = `${c.chosen_on} ${c.runs} runs.`;
  const head = "<tr><th>strategy</th><th>labels/class</th><th>seeds</th><th>selection</th><th>test</th><th>trainable</th><th>s/run</th></tr>";
  const rows = c.rows.map((r) => {
    const label = r.budget == null ? `all (${Math.round(r.per_class)})` : r.budget;
    const best = c.best[r.budget == null ? "all" : String(r.budget)] === r.strategy;
    const low = r.near_chance; // the report's rule: not clearly above the majority-class rate
    return `<tr class="${best ? "best" : ""}${low ? " chance" : ""}"><td>${r.strategy}${best ? " ★" : ""}</td><td>${label}</td>`
      + `<td>${r.seeds}</td><td>${r.sel_acc_mean.toFixed(3)}</td><td>${r.acc_mean.toFixed(3)} ± ${r.acc_std.toFixed(3)}</td>`
      + `<td>${fmt(r.trainable_params)}</td><td>${r.seconds.toFixed(1)}</td></tr>`;
  });
  $("curves-table").innerHTML = head + rows.join("");
  $("verdict").textContent = c.verdict;
  const rec = c.recommendation;
  const box = $("recommendation");
  box.replaceChildren();
  if (!rec) { box.textContent = "No runs yet."; return; }
  const title = document.createElement("p");
  title.innerHTML = `<b></b>`;
  title.firstChild.textContent = `${rec.strategy} at ${rec.budget == null ? "all" : rec.budget} labels per class`;
  const list = document.createElement("ul");
  list.replaceChildren(...rec.reasons.map((t) => Object.assign(document.createElement("li"), { textContent: t })));
  box.append(title, list);
}

// ---- live events ------------------------------------------------------------------------------------------------
function liveOf(key) {
  return (state.live[key] = state.live[key] || { stages: [], epochs: [], ended: null });
}

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => { loadSetting(); if (state.view === "curves") loadCurves(); }, 100);
}

function onEvent(ev) {
  state.lastEvent = Math.max(state.lastEvent, ev.id);
  if (ev.type === "job") {
    const prior = state.jobs[ev.job];
    state.jobs[ev.job] = { ...prior, ...ev, id: ev.job };
    if (ev.state === "running" && (!prior || prior.state !== "running")) state.live[ev.key] = { stages: [], epochs: [], ended: null };
    drawQueue();
    drawCounters();
    if (ev.state !== "running" && ev.state !== "queued") refreshSoon();
  } else if (ev.type === "stage") {
    liveOf(ev.key).stages.push(ev);
  } else if (ev.type === "epoch") {
    liveOf(ev.key).epochs.push(ev);
    if (!state.monitorKey) state.monitorKey = ev.key;
    drawRace();
    drawMonitor();
    state.metrics.epochLatency.push(Date.now() / 1000 - ev.time);
  } else if (ev.type === "stage_end") {
    const live = liveOf(ev.key);
    const stage = live.stages[live.stages.length - 1];
    if (stage && stage.stage === ev.stage) live.ended = ev;
    drawMonitor();
  } else if (ev.type === "run" || ev.type === "store") {
    refreshSoon();
  }
}

function connect() {
  const source = new EventSource(`/api/events?after=${state.lastEvent}`);
  source.onopen = () => { $("connection").textContent = "live"; $("connection").classList.add("live"); };
  source.onmessage = (m) => onEvent(JSON.parse(m.data));
  source.onerror = () => { $("connection").textContent = "reconnecting"; $("connection").classList.remove("live"); };
}

// ---- start --------------------------------------------------------------------------------------------------------
function showView(view) {
  state.view = view;
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.view === view));
  for (const v of ["race", "monitor", "curves"]) $(`view-${v}`).hidden = v !== view;
  if (view === "race") drawRace();
  if (view === "monitor") { fillMonitorChoices(); drawMonitor(); }
  if (view === "curves") loadCurves();
}

async function start() {
  const lab = await api("/api/lab");
  state.lab = lab;
  $("title").textContent = `${lab.data} × ${lab.backbone} · ${lab.classes.length} classes · runs in ${lab.folder}`;
  const frozen = $("frozen");
  frozen.max = String(lab.blocks.length);
  frozen.value = String(Math.max(0, lab.blocks.length - 2)); // partial:2 to start; 0 is full
  const budget = $("budget");
  budget.max = String(lab.budgets.length - 1);
  budget.value = String(Math.max(0, lab.budgets.indexOf(8)));
  $("lr").replaceChildren(Object.assign(document.createElement("option"), { value: "default", textContent: "default (the strategy's)" }),
    ...lab.lr_choices.map((r) => Object.assign(document.createElement("option"), { value: String(r), textContent: String(r) })));
  frozen.addEventListener("input", onSliders);
  budget.addEventListener("input", onSliders);
  // letting go of the budget slider re-races at that budget (settings already stored are not retrained)
  budget.addEventListener("change", () => train(null));
  $("lr").addEventListener("change", onSliders);
  $("train-all").onclick = () => train(null);
  $("train-finetune").onclick = () => train("finetune");
  $("monitor-run").onchange = (e) => { state.monitorKey = e.target.value; drawMonitor(); };
  document.querySelectorAll(".tab").forEach((t) => (t.onclick = () => showView(t.dataset.view)));
  drawStrip();
  await loadJobs();
  for (const j of Object.values(state.jobs)) { // a page opened mid-run catches up on the running job's epochs
    if (j.state === "running") {
      const full = await api(`/api/jobs/${j.id}`);
      const live = liveOf(full.key);
      for (const ev of full.live) {
        state.lastEvent = Math.max(state.lastEvent, ev.id);
        if (ev.type === "stage") live.stages.push(ev); else if (ev.type === "epoch") live.epochs.push(ev);
      }
    }
  }
  await loadSetting();
  connect();
  setInterval(drawCounters, 250); // the wall-clock counters tick while a run trains
  window.addEventListener("resize", () => showView(state.view));
  document.body.dataset.ready = "1";
}

start().catch((e) => { $("title").textContent = `error: ${e.message}`; });
