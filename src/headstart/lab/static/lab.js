// headstart lab: the page. Data come from /api/*, live updates from /api/events (server-sent events);
// charts are uPlot (vendored under /assets/vendor/uplot with its licence).
"use strict";

const EPOCH_TICKS = [1, 2, 5, 10, 20, 50, 100, 200, 500];
const ROLE_NAMES = { scratch: "from scratch", frozen: "frozen (probe)", finetune: "fine-tune" };
const CHANCE = "#8a8f98"; // grey and dashed everywhere: never a strategy's colour
const MAX_OVERLAYS = 6;
const $ = (id) => document.getElementById(id);
const fmt = (n) => n.toLocaleString("en-US");
const state = {
  lab: null, setting: null, live: {}, jobs: {}, view: "race", charts: {}, monitorKey: null,
  curves: null, lastEvent: 0, requestSeq: 0, paused: false, overlays: [], pendingBudget: null,
  // what the browser tests and benchmarks/lab.py read: seconds from an epoch's end (server clock) to its point
  // drawn here, when each setting was last drawn, and each counter's shown seconds as it ticked
  metrics: { epochLatency: [], redraws: [], firstPoint: {}, lastLive: {}, ended: {}, endedAt: {} },
};
window.labMetrics = state.metrics;

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// one colour per strategy, as the report draws it (the server's table, a stable hash for anything else)
function colorOf(strategy) {
  const known = (state.lab && state.lab.colors) || {};
  if (known[strategy]) return known[strategy];
  let h = 0;
  for (const ch of strategy) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360}, 55%, 45%)`;
}
const faded = (color) => (color.startsWith("#") ? `${color}55` : color.replace("hsl(", "hsla(").replace(")", ", 0.35)"));

// ---- controls: sliders, strip and pill (computed here from per-block counts: no round trip) --------------
function frozenValue() { return Number($("frozen").value); }
function budgetAt(i) { return state.lab.budgets[i]; }
function budgetValue() { return budgetAt(Number($("budget").value)); }
function lrValue() { return $("lr").value; }
function patienceValue() { return $("early-stop").checked ? $("patience").value : "off"; }

function finetuneName(frozen) {
  const n = state.lab.blocks.length;
  return frozen === 0 ? "full" : frozen === n ? "probe" : `partial:${n - frozen}`;
}

function trainableCount(frozen) {
  return state.lab.head + state.lab.blocks.slice(frozen).reduce((s, b) => s + b.params, 0);
}

function defaultLr(name) {
  const d = state.lab.default_lrs;
  return name === "full" ? d.full : d["partial:1"];
}

function drawStrip() {
  const frozen = frozenValue(), blocks = state.lab.blocks, name = finetuneName(frozen);
  const total = state.lab.head + blocks.reduce((s, b) => s + b.params, 0);
  $("strip").replaceChildren(...blocks.map((b, i) => {
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
    : name === "full" ? "nothing frozen: full fine-tune (costs about what scratch of this architecture costs)"
      : `${name}: the top ${blocks.length - frozen} blocks train`;
  $("arch-name").textContent = `${state.lab.backbone} · ${name}`;
  $("budget-value").textContent = String(budgetValue());
  $("train-finetune").disabled = name === "probe";
  const lr = defaultLr(name);
  $("lr").options[0].textContent = name === "probe" ? "default" : `default (${lr} for ${name.split(":")[0]})`;
  $("lr-default").textContent = name === "probe" ? "the probe is solved in closed form: no rate"
    : `the default, ${lr}, is ${name}'s; 1e-2 is where a fine-tune forgets or diverges`;
}

let settingTimer = null;
function onSliders() {
  drawStrip();
  clearTimeout(settingTimer);
  settingTimer = setTimeout(loadSetting, 30);
}

function settingQuery() {
  return new URLSearchParams({ frozen: frozenValue(), budget: budgetValue(), lr: lrValue(), patience: patienceValue() });
}

function keepAsOverlay(previous) {
  // a setting whose runs were drawn stays on the chart, faded, when another is shown
  if (!previous) return;
  const label = `${previous.budget}/class` + (previous.lr ? `, lr ${previous.lr}` : "")
    + (previous.patience ? `, patience ${previous.patience}` : "");
  for (const en of previous.entrants) {
    if (!en.record || en.strategy === "probe") continue;
    const curve = curveOf(en);
    if (!curve.length) continue;
    const id = `${en.key}`;
    if (state.overlays.some((o) => o.id === id)) continue;
    state.overlays.push({ id, strategy: en.strategy, label: `earlier: ${en.strategy} @ ${label}`,
      points: curve.map((e) => [e.epoch, e.val_acc]) });
  }
  state.overlays = state.overlays.slice(-MAX_OVERLAYS);
}

async function loadSetting() {
  const seq = ++state.requestSeq;
  const setting = await api(`/api/setting?${settingQuery()}`);
  if (seq !== state.requestSeq) return; // a newer slider position won
  if (state.setting && state.setting.entrants.map((e) => e.key).join() !== setting.entrants.map((e) => e.key).join()) {
    keepAsOverlay(state.setting);
  }
  state.setting = setting;
  state.paused = setting.paused;
  drawRace();
  state.metrics.redraws.push(performance.now());
  fillMonitorChoices();
  drawMonitor();
  loadCurves();
}

async function train(only) {
  const body = { frozen: frozenValue(), budget: budgetValue(), lr: lrValue(), patience: patienceValue() };
  if (only) body.only = only;
  try {
    await api("/api/train", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  } catch (e) { alert(e.message); }
  await loadSetting();
  await loadJobs();
}

async function raceAction(action) {
  try {
    const out = await api(`/api/race/${action}`, { method: "POST" });
    state.paused = out.paused;
  } catch (e) { alert(e.message); }
  drawControls();
  await loadJobs();
}

function drawControls() {
  $("pause").textContent = state.paused ? "▷ Resume" : "❚❚ Pause";
  $("pause").dataset.paused = state.paused ? "1" : "";
}

// the budget slider asks before it races: releasing it shows what would train
function onBudgetRelease() {
  if (!state.setting) return;
  const missing = state.setting.entrants.filter((e) => !e.record).length;
  if (!missing) return; // every run of that budget is stored: it is shown, nothing trains
  state.pendingBudget = budgetValue();
  $("confirm-text").textContent = `Race at ${state.pendingBudget} labels per class? ${missing} of `
    + `${state.setting.entrants.length} runs are not trained yet.`;
  $("confirm").hidden = false;
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

function keptEpoch(entrant, curve) {
  // where the test dot goes: the epoch whose weights the run kept (the best under early stopping, else the last)
  const r = entrant.record;
  if (!r || !curve.length) return null;
  return r.best_epoch != null && curve.some((e) => e.epoch === r.best_epoch) ? r.best_epoch : curve[curve.length - 1].epoch;
}

function lastValues(series, data) {
  // each series' legend shows its value at the cursor, or its own last value (never "--" for a drawn series)
  series.forEach((s, i) => {
    if (i === 0 || s.value) return;
    const values = data[i];
    s.value = (u, v, si, idx) => {
      let shown = v;
      if (shown == null) {
        for (let j = (idx == null ? values.length : idx + 1) - 1; j >= 0 && shown == null; j--) shown = values[j];
        if (shown == null) for (let j = values.length - 1; j >= 0 && shown == null; j--) shown = values[j];
      }
      return shown == null ? "–" : Number(shown).toFixed(3);
    };
  });
}

function makeChart(id, opts, data, legendAt) {
  const el = $(id);
  lastValues(opts.series, data);
  if (state.charts[id]) state.charts[id].destroy();
  el.replaceChildren();
  const width = Math.max(320, el.clientWidth || el.parentElement.clientWidth - 20);
  const hooks = { setCursor: [(u) => { // legends show values without hovering: the last point's when the cursor leaves
    if (u.cursor.idx == null && legendAt != null) u.setLegend({ idx: legendAt }, false);
  }] };
  const chart = new uPlot({ width, height: opts.height || 320, ...opts, hooks: { ...hooks, ...(opts.hooks || {}) } }, data, el);
  if (legendAt != null) chart.setLegend({ idx: legendAt }, false);
  state.charts[id] = chart;
  return chart;
}

function drawRace() {
  if (!state.setting) return;
  const entrants = state.setting.entrants;
  const curves = entrants.map(curveOf);
  const overlayMax = Math.max(0, ...state.overlays.map((o) => (o.points.length ? o.points[o.points.length - 1][0] : 0)));
  const maxEpoch = Math.max(1, overlayMax, ...curves.map((c) => (c.length ? c[c.length - 1].epoch : 0)));
  const xs = Array.from({ length: maxEpoch + 1 }, (_, i) => i);
  const data = [xs], series = [{ label: "epoch" }];
  entrants.forEach((en, i) => {
    const color = colorOf(en.strategy);
    const byEpoch = new Map(curves[i].map((e) => [e.epoch, e.val_acc]));
    const rec = en.record;
    if (en.strategy === "probe") { // closed form: no epochs; its cross-validated accuracy drawn flat across
      const solved = state.live[en.key] && state.live[en.key].solved;
      const level = rec ? rec.best_val_acc : solved != null ? solved : null;
      data.push(xs.map(() => level));
      series.push({ label: `${ROLE_NAMES[en.role]}: probe (closed form, cross-validated)`, stroke: color, width: 2, dash: [6, 4] });
    } else {
      data.push(xs.map((x) => (byEpoch.has(x) ? byEpoch.get(x) : null)));
      series.push({ label: `${ROLE_NAMES[en.role]}: ${en.strategy}`, stroke: color, width: 2, spanGaps: true });
    }
    const kept = en.strategy === "probe" ? (rec ? 0 : null) : keptEpoch(en, curves[i]);
    data.push(xs.map((x) => (rec && x === kept ? rec.test_acc : null)));
    series.push({ label: `${en.strategy}: test (kept weights)`, stroke: color, width: 0, paths: () => null,
                  points: { show: true, size: 11, fill: color, stroke: "#1d2330" } });
  });
  if (state.lab.chance != null) {
    data.push(xs.map(() => state.lab.chance));
    series.push({ label: "chance (majority class)", stroke: CHANCE, width: 1.5, dash: [4, 4] });
  }
  for (const o of state.overlays) {
    const m = new Map(o.points);
    data.push(xs.map((x) => (m.has(x) ? m.get(x) : null)));
    series.push({ label: o.label, stroke: faded(colorOf(o.strategy)), width: 1.5, spanGaps: true });
  }
  const nVal = state.setting.entrants.find((e) => e.record && e.record.n_val) || null;
  $("race-title").textContent = "Validation accuracy per epoch"
    + (nVal ? ` (on ${nVal.record.n_val} validation examples: steps of ${(1 / nVal.record.n_val).toFixed(2)})` : "")
    + "; dots: test accuracy of the weights each run kept, reported only";
  const lastIdx = Math.max(0, ...curves.map((c) => (c.length ? c[c.length - 1].epoch : 0)));
  makeChart("race-chart", {
    series, scales: { x: { time: false }, y: { range: [0, 1] } },
    axes: [{ label: "epoch", incrs: EPOCH_TICKS }, { label: "accuracy" }],
  }, data, lastIdx);
  const stored = entrants.filter((e) => e.record).length;
  $("race-note").textContent = `${state.lab.data} at ${state.setting.budget} labels per class: `
    + `${stored} of ${entrants.length} runs stored` + (stored < entrants.length ? "; Train all three runs the rest." : ".");
  $("clear-overlays").hidden = !state.overlays.length;
  drawCounters();
  drawStory();
}

// one sentence of what the race showed, from the stored runs' test accuracies (reported, never used to choose)
function drawStory() {
  const el = $("race-story");
  if (!state.setting) return;
  const entrants = state.setting.entrants;
  const done = entrants.filter((e) => e.record);
  const parts = [];
  const rows = state.curves ? state.curves.rows : [];
  const names = entrants.map((e) => e.strategy);
  const budgets = [...new Set(rows.filter((r) => names.includes(r.strategy) && r.budget != null).map((r) => r.budget))].sort((a, b) => a - b);
  const leaders = budgets.map((b) => {
    const at = rows.filter((r) => r.budget === b && names.includes(r.strategy));
    if (at.length < names.length) return null;
    const best = at.reduce((a, r) => (r.acc_mean > a.acc_mean ? r : a));
    return { b, role: entrants.find((e) => e.strategy === best.strategy).role, strategy: best.strategy };
  }).filter(Boolean);
  if (leaders.length) {
    let text = "", prev = null;
    for (const l of leaders) {
      if (!prev) text = `${ROLE_NAMES[l.role]} (${l.strategy}) leads at ${l.b} labels per class`;
      else if (l.role !== prev.role) text += `; ${ROLE_NAMES[l.role]} (${l.strategy}) overtakes at ${l.b}`;
      prev = l;
    }
    parts.push(text + " (test accuracy, mean over seeds).");
  }
  if (done.length) {
    const now = done.map((e) => `${e.strategy} ${e.record.test_acc.toFixed(3)}`).join(", ");
    parts.push(`At ${state.setting.budget} labels per class: ${now} on test`
      + (state.lab.chance != null ? ` (chance ${state.lab.chance.toFixed(3)})` : "") + ".");
    const low = done.filter((e) => state.lab.chance != null && e.record.test_acc <= state.lab.chance + 0.01);
    if (low.length) parts.push(`${low.map((e) => e.strategy).join(" and ")} ${low.length > 1 ? "are" : "is"} at chance.`);
  }
  const racing = entrants.some((e) => !e.record && Object.values(state.jobs).some((j) => j.key === e.key && j.state === "running"));
  if (racing) parts.unshift("The three are racing: each trains one epoch in turn, and each clock counts only its own compute.");
  el.textContent = parts.join(" ") || "Press ▷ Train all three: the three curves grow side by side.";
}

// how much pretrained competence a run that moved a pretrained body kept (race/forgetting.py), in words
function keptText(r) {
  const f = r.forgetting;
  if (!f || f.kept == null) return "";
  return ` · kept ${(100 * f.kept).toFixed(0)}% ${f.what} (drift ${f.drift.toFixed(3)})`;
}

function diverging(curve) {
  // training loss that ends well above where it began: a rate too high for this run
  const losses = curve.filter((e) => e.train_loss != null).map((e) => e.train_loss);
  return losses.length >= 3 && losses[losses.length - 1] > 1.5 * Math.min(...losses.slice(0, 2));
}

function liveClock(key) {
  // the run's own compute so far: the last event's figure, ticking only while it holds the turn and trains
  const live = state.live[key];
  if (!live || live.compute == null) return null;
  const ticking = live.holding && !state.paused && (live.phase === "training" || live.phase === "extracting features");
  return live.compute + (ticking ? Date.now() / 1000 - live.at : 0);
}

function queuedAhead(job) {
  return Object.values(state.jobs).filter((j) => j.id < job.id && (j.state === "queued" || j.state === "running")).length;
}

function drawCounters() {
  if (!state.setting) return;
  $("counters").replaceChildren(...state.setting.entrants.map((en) => {
    const el = document.createElement("div");
    el.className = `counter ${en.role}`;
    el.style.borderTopColor = colorOf(en.strategy);
    el.dataset.key = en.key;
    const job = Object.values(state.jobs).filter((j) => j.key === en.key).sort((a, b) => b.id - a.id)[0];
    const live = state.live[en.key];
    let clock = "–", status = "not trained", meta = "", phase = "", flag = "";
    if (en.record) {
      const r = en.record;
      clock = `${r.seconds.toFixed(1)} s`;
      status = "done";
      state.metrics.ended[en.key] = r.seconds;
      if (!(en.key in (state.metrics.endedAt))) state.metrics.endedAt[en.key] = Date.now() / 1000;
      meta = (r.seconds_per_epoch ? `${r.seconds_per_epoch.toFixed(2)} s/epoch · ${r.epochs} epochs · ` : "closed form · ")
        + `Δθ ${r.delta_l2 == null ? "–" : r.delta_l2.toFixed(3)}`
        + (r.delta_relative ? ` (${(100 * r.delta_relative).toFixed(2)}%)` : "")
        + ` · selection ${r.sel_acc.toFixed(3)} · test ${r.test_acc.toFixed(3)} · ${fmt(r.trainable_params)} trainable`
        + keptText(r)
        + (r.ood_acc == null ? "" : ` · out of domain ${r.ood_acc.toFixed(3)} (${(r.ood_acc - r.test_acc >= 0 ? "+" : "")}${(r.ood_acc - r.test_acc).toFixed(3)})`);
      phase = r.stop_reason === "early_stopped" ? `early stopping kept epoch ${r.best_epoch}`
        : r.stop_reason === "schedule" ? "ran its planned epochs, kept the last" : r.stop_reason === "solved" ? "solved in closed form" : "";
      if (diverging(curveOf(en))) flag = "diverging: its training loss rose; try a lower learning rate";
    } else if (job && job.state === "running") {
      const shown = liveClock(en.key);
      clock = shown == null ? "0.0 s" : `${shown.toFixed(1)} s`;
      if (shown != null) state.metrics.lastLive[en.key] = shown;
      const epochs = live ? live.epochs.filter((e) => e.epoch > 0) : [];
      const stage = live && live.stages.length ? live.stages[live.stages.length - 1] : null;
      const at = stage ? `epoch ${epochs.length ? epochs[epochs.length - 1].epoch : 0} of ${stage.epochs}` : "";
      if (state.paused) status = "paused";
      else if (live && !live.holding) status = "waiting its turn";
      else status = "training";
      phase = live && live.phase && live.phase !== "training" ? `${live.phase}: ${live.detail}` : at ? `${stage.stage}: ${at}` : "starting";
      if (live && !live.holding && at) phase = `${at} done, the others' epochs now`;
      if (epochs.length) meta = `${(epochs.reduce((s, e) => s + e.seconds, 0) / epochs.length).toFixed(2)} s/epoch of its own compute`;
      if (diverging(curveOf(en))) flag = "diverging: its training loss is rising";
    } else if (job && job.state === "queued") {
      const ahead = queuedAhead(job);
      status = "queued";
      phase = ahead ? `queued behind ${ahead} run${ahead > 1 ? "s" : ""}` : "about to start";
    } else if (job && (job.state === "failed" || job.state === "cancelled")) {
      status = job.state; meta = job.message || "";
    }
    el.classList.toggle("waiting", status === "waiting its turn" || status === "paused");
    el.innerHTML = `<span class="state"></span><div class="name"></div><div class="clock"></div><div class="phase"></div>`
      + `<div class="meta"></div><div class="flag"></div>`;
    el.querySelector(".state").textContent = status;
    el.querySelector(".name").textContent = `${ROLE_NAMES[en.role]}: ${en.strategy}`;
    el.querySelector(".clock").textContent = clock;
    el.querySelector(".phase").textContent = phase;
    el.querySelector(".meta").textContent = meta;
    el.querySelector(".flag").textContent = flag;
    return el;
  }));
  drawControls();
}

// every budget trained for the three current entrants, side by side ("scratch falls fastest" is visible here)
function drawBudgets() {
  if (!state.curves || !state.setting || state.view !== "race") return;
  const names = state.setting.entrants.map((e) => e.strategy);
  const rows = state.curves.rows.filter((r) => names.includes(r.strategy));
  const xs = [...new Set(rows.map((r) => r.per_class))].sort((a, b) => a - b);
  if (!xs.length) {
    if (state.charts["budgets-chart"]) { state.charts["budgets-chart"].destroy(); delete state.charts["budgets-chart"]; }
    $("budgets-chart").textContent = "No budget of these three is trained yet.";
    $("budgets-chart").classList.add("empty");
    return;
  }
  $("budgets-chart").classList.remove("empty");
  const data = [xs], series = [{ label: "labels per class" }];
  for (const s of names) {
    data.push(xs.map((x) => { const r = rows.find((r) => r.strategy === s && r.per_class === x); return r ? r.acc_mean : null; }));
    series.push({ label: s, stroke: colorOf(s), width: 2, spanGaps: true, points: { show: true, size: 7 } });
  }
  if (state.lab.chance != null) {
    data.push(xs.map(() => state.lab.chance));
    series.push({ label: "chance", stroke: CHANCE, width: 1.5, dash: [4, 4] });
  }
  makeChart("budgets-chart", {
    height: 220, series, scales: { x: { time: false, distr: 3, log: 2 }, y: { range: [0, 1] } },
    axes: [{ label: "labels per class" }, { label: "test accuracy" }],
  }, data, xs.length - 1);
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
    what.textContent = `#${j.id} ${j.strategy} @ ${j.budget}/class` + (j.lr ? `, lr ${j.lr}` : "")
      + (j.patience ? `, early stopping (patience ${j.patience})` : "") + (j.message ? ` — ${j.message}` : "");
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

function monitorMarks(m, best, patience) {
  // the patience window after the best epoch (shaded) and where early stopping fired (a vertical line)
  return (u) => {
    const ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
    if (best != null && patience) {
      const x0 = u.valToPos(best, "x", true), x1 = u.valToPos(best + patience, "x", true);
      ctx.save();
      ctx.fillStyle = "rgba(255, 159, 28, 0.12)";
      ctx.fillRect(x0, top, Math.max(0, x1 - x0), height);
      ctx.restore();
    }
    if (m.ended && m.ended.stop_reason === "early_stopped" && m.epochs.length) {
      const x = u.valToPos(m.epochs[m.epochs.length - 1].epoch, "x", true);
      ctx.save();
      ctx.strokeStyle = "#b42318";
      ctx.lineWidth = 2;
      ctx.setLineDash([6, 4]);
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
      ctx.restore();
    }
  };
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
  const plan = m.plan || {};
  const watching = plan.monitor && plan.monitor !== "none";
  makeChart("monitor-chart", {
    series: [{ label: "epoch" },
      { label: "training loss", stroke: "#667085", width: 2, scale: "loss", spanGaps: true },
      { label: "validation loss", stroke: "#7a5af8", width: 2, scale: "loss", spanGaps: true },
      { label: "validation accuracy", stroke: colorOf(m.en.strategy), width: 2, scale: "acc", spanGaps: true },
      { label: "best epoch (its weights are kept)", stroke: "#ff9f1c", width: 0, scale: "loss", paths: () => null,
        points: { show: true, size: 14, fill: "#ff9f1c", stroke: "#1d2330" } }],
    scales: { x: { time: false }, acc: { range: [0, 1] } },
    axes: [{ label: "epoch", incrs: EPOCH_TICKS }, { scale: "loss", label: "loss" }, { scale: "acc", side: 1, label: "accuracy", grid: { show: false } }],
    hooks: { draw: [monitorMarks(m, best, watching ? plan.patience : null)] },
  }, data, xs.length ? xs.length - 1 : null);
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
      + (plan.monitor === "none" ? "No early stopping (monitor=none): the last epoch's weights are kept; turn early stopping on above."
        : `Patience: ${left} of ${m.last.patience} epochs left` + (plan.min_epochs ? ` (never stops before epoch ${plan.min_epochs})` : "") + ".");
  } else {
    text = "Not trained yet: press ▷ Train all three (or Train this fine-tune).";
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
  if (state.curves.colors) state.lab.colors = { ...state.lab.colors, ...state.curves.colors };
  drawCurves();
  drawBudgets();
  drawStory();
}

function drawCurves() {
  if (state.view !== "curves" || !state.curves) return;
  const c = state.curves;
  const strategies = [...new Set(c.rows.map((r) => r.strategy))];
  const xs = [...new Set(c.rows.map((r) => r.per_class))].sort((a, b) => a - b);
  const data = [xs.length ? xs : [1]];
  const series = [{ label: "labels per class" }];
  strategies.forEach((s) => {
    data.push(xs.map((x) => { const r = c.rows.find((r) => r.strategy === s && r.per_class === x); return r ? r.acc_mean : null; }));
    series.push({ label: s, stroke: colorOf(s), width: 2, spanGaps: true, points: { show: true, size: 7 } });
  });
  if (c.chance != null) {
    data.push(data[0].map(() => c.chance));
    series.push({ label: "chance (majority class)", stroke: CHANCE, width: 1.5, dash: [4, 4] });
  }
  makeChart("curves-chart", {
    // log in labels per class; with a zero-label budget (zero-shot), asinh: linear near 0, log beyond
    series, scales: { x: xs[0] === 0 ? { time: false, distr: 4, asinh: 1 } : { time: false, distr: 3, log: 2 }, y: { range: [0, 1] } },
    axes: [{ label: "labels per class" }, { label: "test accuracy" }],
  }, data, xs.length ? xs.length - 1 : null);
  $("chosen-on").textContent = `${c.chosen_on} ${c.runs} runs.`;
  const head = "<tr><th>strategy</th><th>labels/class</th><th>seeds</th><th>selection</th><th>test</th><th>trainable</th><th>s/run</th></tr>";
  const rows = c.rows.map((r) => {
    const label = r.budget == null ? `all (${Math.round(r.per_class)})` : r.budget;
    const best = c.best[r.budget == null ? "all" : String(r.budget)] === r.strategy;
    const low = r.near_chance; // the report's rule: not clearly above the majority-class rate
    return `<tr class="${best ? "best" : ""}${low ? " chance" : ""}"><td><span class="dot" style="background:${colorOf(r.strategy)}"></span>`
      + `${r.strategy}${best ? " ★" : ""}${low ? " (≈ chance)" : ""}</td><td>${label}</td>`
      + `<td>${r.seeds}</td><td>${r.sel_acc_mean.toFixed(3)}</td><td>${r.acc_mean.toFixed(3)} ± ${r.acc_std.toFixed(3)}</td>`
      + `<td>${fmt(r.trainable_params)}</td><td>${r.seconds.toFixed(1)}</td></tr>`;
  });
  $("curves-table").innerHTML = head + rows.join("")
    + '<tr><td colspan="7" class="hint">★ best at that budget on selection accuracy; ≈ chance: not clearly above the majority-class rate</td></tr>';
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
  return (state.live[key] = state.live[key] || { stages: [], epochs: [], ended: null, phase: null, detail: "",
    compute: null, at: 0, holding: true });
}

function track(ev) {
  // the run's own compute (server-measured) as of this event, and whether it holds the turn now
  const live = liveOf(ev.key);
  const fitted = live.phase === "scoring" || live.phase === "measuring what it kept"; // the fit's figure is final
  if (ev.compute != null && !fitted) { live.compute = ev.compute; live.at = Date.now() / 1000; }
  live.holding = ev.type !== "wait";
  return live;
}

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => { loadSetting(); }, 100);
}

function onEvent(ev) {
  state.lastEvent = Math.max(state.lastEvent, ev.id);
  if (ev.type === "job") {
    const prior = state.jobs[ev.job];
    state.jobs[ev.job] = { ...prior, ...ev, id: ev.job };
    if (ev.state === "running" && (!prior || prior.state !== "running")) {
      state.live[ev.key] = { stages: [], epochs: [], ended: null, phase: null, detail: "", compute: null, at: 0, holding: false };
    }
    drawQueue();
    drawCounters();
    if (ev.state !== "running" && ev.state !== "queued") refreshSoon();
  } else if (ev.type === "race") {
    state.paused = ev.paused;
    drawCounters();
  } else if (ev.type === "phase") {
    const live = track(ev);
    live.phase = ev.phase; live.detail = ev.detail;
    drawCounters();
  } else if (ev.type === "wait" || ev.type === "turn") {
    track(ev);
    drawCounters();
  } else if (ev.type === "stage") {
    track(ev).stages.push(ev);
  } else if (ev.type === "epoch") {
    const live = track(ev);
    live.epochs.push(ev);
    live.phase = "training";
    if (!(ev.key in state.metrics.firstPoint)) state.metrics.firstPoint[ev.key] = Date.now() / 1000;
    if (!state.monitorKey) state.monitorKey = ev.key;
    drawRace();
    drawMonitor();
    state.metrics.epochLatency.push(Date.now() / 1000 - ev.time);
  } else if (ev.type === "solved") {
    const live = track(ev);
    live.solved = ev.val_acc;
    // the probe's point is its solution; a fine-tune's first stage (LP-FT's probe) draws nothing: its epoch 0 does
    if (ev.strategy === "probe" && !(ev.key in state.metrics.firstPoint)) state.metrics.firstPoint[ev.key] = Date.now() / 1000;
    drawRace();
  } else if (ev.type === "stage_end") {
    const live = track(ev);
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
  if (view === "race") { drawRace(); drawBudgets(); }
  if (view === "monitor") { fillMonitorChoices(); drawMonitor(); }
  if (view === "curves") loadCurves();
}

function describeSettings(lab) {
  const s = lab.settings || {};
  const train = Object.entries(s.train || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  const backbone = Object.entries(s.backbone || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  return `This lab's settings: fine-tunes ${train || "at their defaults"}`
    + (backbone ? `; ${backbone}` : "") + `; from scratch: ${s.scratch}`
    + (s.test_limit ? `; scored on ${s.test_limit} selection and ${s.test_limit} test examples` : "")
    + ". Each run is an ordinary race run keyed by these (headstart lab --set / --scratch change them).";
}

async function start() {
  const lab = await api("/api/lab");
  state.lab = lab;
  $("title").textContent = `${lab.data} × ${lab.backbone} · ${lab.classes.length} classes · runs in ${lab.folder}`;
  $("lab-settings").textContent = describeSettings(lab);
  const frozen = $("frozen");
  frozen.max = String(lab.blocks.length);
  frozen.value = String(Math.max(0, lab.blocks.length - 2)); // partial:2 to start; 0 is full
  const budget = $("budget");
  budget.max = String(lab.budgets.length - 1);
  budget.value = String(Math.max(0, lab.budgets.indexOf(8)));
  $("lr").replaceChildren(Object.assign(document.createElement("option"), { value: "default", textContent: "default" }),
    ...lab.lr_choices.map((r) => Object.assign(document.createElement("option"), { value: String(r), textContent: String(r) })));
  $("patience").replaceChildren(...lab.patience_choices.map((p) => Object.assign(document.createElement("option"),
    { value: String(p), textContent: `patience ${p}` })));
  $("patience").value = String(lab.patience_choices.includes(5) ? 5 : lab.patience_choices[0]);
  frozen.addEventListener("input", onSliders);
  budget.addEventListener("input", onSliders);
  budget.addEventListener("change", () => setTimeout(onBudgetRelease, 80)); // after the setting has loaded
  $("lr").addEventListener("change", onSliders);
  $("early-stop").addEventListener("change", () => { $("patience").disabled = !$("early-stop").checked; onSliders(); });
  $("patience").addEventListener("change", onSliders);
  $("train-all").onclick = () => { $("confirm").hidden = true; train(null); };
  $("train-finetune").onclick = () => train("finetune");
  $("pause").onclick = () => raceAction(state.paused ? "resume" : "pause");
  $("reset").onclick = () => raceAction("reset");
  $("confirm-yes").onclick = () => { $("confirm").hidden = true; train(null); };
  $("confirm-no").onclick = () => { $("confirm").hidden = true; };
  $("clear-overlays").onclick = () => { state.overlays = []; drawRace(); };
  $("monitor-run").onchange = (e) => { state.monitorKey = e.target.value; drawMonitor(); };
  document.querySelectorAll(".tab").forEach((t) => (t.onclick = () => showView(t.dataset.view)));
  drawStrip();
  await loadJobs();
  for (const j of Object.values(state.jobs)) { // a page opened mid-run catches up on the running job's epochs
    if (j.state === "running") {
      const full = await api(`/api/jobs/${j.id}`);
      for (const ev of full.live) {
        state.lastEvent = Math.max(state.lastEvent, ev.id);
        const live = track(ev);
        if (ev.type === "stage") live.stages.push(ev);
        else if (ev.type === "epoch") live.epochs.push(ev);
        else if (ev.type === "phase") { live.phase = ev.phase; live.detail = ev.detail; }
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
