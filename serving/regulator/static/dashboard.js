/* Regulator dashboard: signs in with a regulator key (kept in sessionStorage), reads the /regulator/* JSON API
   and draws it with the vendored Chart.js. Every number comes from the API, suppression included: a
   suppressed cell arrives as {"count": null, "suppressed": true} and is shown as "<k". */
"use strict";

const KEY_STORE = "lifecredit.regulatorKey";
const LANG_STORE = "lifecredit.lang";
const CLASSES = ["A", "B", "C", "D"];
const COLOURS = { A: "#2e7d32", B: "#9ccc65", C: "#ffa726", D: "#c62828" };
const DECISION_COLOURS = { approve: "#2e7d32", refer: "#ffa726", decline: "#c62828" };
const OBJECTION_COLOURS = { received: "#0d47a1", corrected: "#2e7d32", upheld: "#78909c", open: "#ffa726", overdue: "#c62828" };

const T = {
  zh: {
    title: "信用风险分类监管看板", signout: "退出", signin_title: "监管机构登录",
    signin_help: "请输入监管机构API密钥（角色 regulator）。密钥只保存在本标签页中，关闭即清除。", signin_button: "登录",
    f_by: "维度", f_month: "月份", f_sector: "行业", f_province: "省份", all: "全部",
    s_distribution: "风险分类分布", s_shares: "各类占比走势", s_psi: "稳定性（PSI）", s_migration: "分类迁移",
    s_outcomes: "各类违约率（95% Jeffreys区间）", s_inclusion: "普惠金融", s_model: "模型卡片与验证证据",
    psi_sub: "本月相对上月；0.10以下稳定，0.10–0.25漂移，0.25以上显著变化",
    sup_note: "不公布：少于{k}户商户，或为防止由合计推算出此类单元格而隐藏。",
    hint_sector: "行业筛选适用于“行业”维度和占比走势；", hint_province: "省份筛选适用于“省份”“地市”维度和占比走势；",
    hint_both: "行业与省份不能同时筛选（不公布交叉表）。",
    share: "占比", count: "户数", total: "合计", segment: "分组", month: "月份", class_psi: "分类PSI",
    score_psi: "评分PSI", stable: "稳定", drifting: "漂移", shifted: "显著变化",
    dist_sub: "{month}，按{by}：各组内A–D类占比（表中为户数与占比）", shares_sub: "{scope}各月A–D类占比",
    all_merchants: "全部商户", mig_sub: "行：{from}分类（新进入：上月未评分）；列：{to}分类（退出：本月未评分）；格内为行占比",
    mig_summary: "两月均有评分的商户{n}户：升级{up}，降级{down}，维持{stable}。",
    mig_withheld: "升级/降级/维持占比不公布（会暴露被隐藏的单元格）。", mig_none: "所选月份之前没有历史月份。",
    from_class: "上月分类", to_class: "本月分类", new: "新进入", exited: "退出",
    outcomes_sub: "有12个月表现的月份：{months}（合并）；竖条为95% Jeffreys区间，黑线为平均PD",
    no_outcomes: "所选期间尚无完整的12个月表现期。", rate: "违约率", interval: "95%区间", mean_pd: "平均PD",
    n: "户月数", defaults: "违约数", jeffreys_p: "Jeffreys p", observed: "观察违约率",
    inclusion_sub: "通过本服务作出的授信决策（{n}笔）；右图：平均PD与观察违约率", no_decisions: "审计日志中尚无授信决策。",
    decisions: "决策数", approve: "批准", refer: "转人工", decline: "拒绝", approval_ratio: "批准率比值",
    avg_limit: "平均额度（元）", approval_rate: "批准率", pd_minus: "PD−违约率", no_calibration: "尚无可用于校准对比的表现数据。",
    metric: "指标", value: "值", model: "模型", version: "版本", trained: "训练时间", windows: "测试窗口",
    feature_set: "特征集", policy: "决策政策", calib_class: "分类", rejected: "拒绝", yes: "是", no: "否",
    signin_bad: "密钥无效或已吊销。", signin_role: "此密钥不是监管机构密钥（需要角色 regulator）。",
    failed: "无法读取：", interval_legend: "95% Jeffreys区间",
    s_objections: "异议与信用修复", o_month: "受理月份", o_kind: "类型", both_kinds: "异议及信用修复",
    objection: "异议", repair: "信用修复", median_days: "办结天数中位数", within_deadline: "20日内办结占比",
    obj_sub_month: "{kind}，按受理月份（{from} – {to}）；逾期：受理后超过{days}日未办结或超期办结；统计时点 {asof}",
    obj_sub: "{kind}，{month}受理，按{by}；逾期：受理后超过{days}日未办结或超期办结；统计时点 {asof}",
    no_objections: "尚未收到商户异议或信用修复申请。",
    s_inspections: "双随机抽查：按分类的问题发现率", s_plans: "抽查计划（种子公开，可复核）",
    insp_sub: "{from} – {to} 已录入的检查，按检查当月的信用风险分类；发现问题：一般或严重；区间：95% Jeffreys。分类有效时D类应高于A类。",
    no_inspections: "尚未录入检查结果（lifecredit inspections record）。", inspections: "检查数", any_finding: "发现问题",
    serious: "严重问题", plan: "计划", seed: "种子", insp_policy: "抽查政策", eligible: "可抽范围", drawn: "抽取", no_plans: "尚无抽查计划。",
  },
  en: {
    title: "Credit-risk classes: regulator dashboard", signout: "Sign out", signin_title: "Regulator sign-in",
    signin_help: "Enter a regulator API key (role regulator). It is kept in this tab only and cleared when the tab closes.",
    signin_button: "Sign in", f_by: "Dimension", f_month: "Month", f_sector: "Sector", f_province: "Province",
    all: "All", s_distribution: "Distribution over credit-risk classes", s_shares: "Share of each class over time",
    s_psi: "Stability (PSI)", s_migration: "Class migration", s_outcomes: "Default rate per class (95% Jeffreys)",
    s_inclusion: "Inclusive finance", s_model: "Model card and validation evidence",
    psi_sub: "Each month against the month before; below 0.10 stable, 0.10–0.25 drifting, 0.25 and above shifted",
    sup_note: "not published: fewer than {k} merchants, or hidden so that such a cell cannot be worked out from the totals.",
    hint_sector: "The sector filter applies to the sector dimension and the time series; ",
    hint_province: "the province filter to the province and city dimensions and the time series; ",
    hint_both: "sector and province cannot be combined (no cross-table is published).",
    share: "Share", count: "Merchants", total: "Total", segment: "Segment", month: "Month", class_psi: "Class PSI",
    score_psi: "Score PSI", stable: "stable", drifting: "drifting", shifted: "shifted",
    dist_sub: "{month}, by {by}: share of each class within the segment (table: counts and shares)",
    shares_sub: "{scope}: share of classes A–D per month", all_merchants: "All merchants",
    mig_sub: "Rows: class in {from} (new: not scored then); columns: class in {to} (left: not scored now); row shares",
    mig_summary: "{n} merchants scored in both months: {up} upgraded, {down} downgraded, {stable} stable.",
    mig_withheld: "Upgrade / downgrade / stable shares withheld (they would expose a hidden cell).",
    mig_none: "No month before the selected one.", from_class: "Class before", to_class: "Class now", new: "New",
    exited: "Left", outcomes_sub: "Months with 12-month outcomes: {months} (pooled); bars: 95% Jeffreys interval, black dash: mean PD",
    no_outcomes: "No month in range has a fully observed 12-month outcome yet.", rate: "Default rate",
    interval: "95% interval", mean_pd: "Mean PD", n: "Merchant-months", defaults: "Defaults", jeffreys_p: "Jeffreys p",
    observed: "Observed default rate",
    inclusion_sub: "Credit decisions made through the service ({n}); right: mean PD against observed default rate",
    no_decisions: "No credit decisions in the audit log yet.", decisions: "Decisions", approve: "Approve",
    refer: "Refer", decline: "Decline", approval_ratio: "Approval ratio", avg_limit: "Avg limit (yuan)",
    approval_rate: "Approval rate", pd_minus: "PD − observed", no_calibration: "No outcomes to compare with yet.",
    metric: "Metric", value: "Value", model: "Model", version: "Version", trained: "Trained", windows: "Test window",
    feature_set: "Feature set", policy: "Decision policy", calib_class: "Class", rejected: "Rejected", yes: "yes",
    no: "no", signin_bad: "Unknown or revoked key.", signin_role: "This key is not a regulator key (role regulator needed).",
    failed: "Could not read: ", interval_legend: "95% Jeffreys interval",
    s_objections: "Objections and credit repair", o_month: "Month received", o_kind: "Kind",
    both_kinds: "Objections and repair requests", objection: "Objections", repair: "Credit repair",
    median_days: "Median days to resolve", within_deadline: "Resolved within 20 days",
    obj_sub_month: "{kind} by month of receipt ({from} – {to}); overdue: open more than {days} days after receipt, "
      + "or resolved after that; as of {asof}",
    obj_sub: "{kind} received in {month}, by {by}; overdue: open more than {days} days after receipt, or resolved "
      + "after that; as of {asof}",
    no_objections: "No objections or repair requests from merchants yet.",
    s_inspections: "Random inspections: finding rate by class", s_plans: "Inspection plans (seed published, anyone can redraw)",
    insp_sub: "Inspections recorded {from} – {to}, by the merchant's class in the month inspected; any finding: minor or serious; interval: 95% Jeffreys. A class system that works finds more in D than in A.",
    no_inspections: "No inspection results recorded yet (lifecredit inspections record).", inspections: "Inspections",
    any_finding: "Any finding", serious: "Serious", plan: "Plan", seed: "Seed", insp_policy: "Policy", eligible: "Eligible",
    drawn: "Drawn", no_plans: "No inspection plans yet.",
  },
};

const state = { lang: sessionStorage.getItem(LANG_STORE) || (navigator.language.startsWith("zh") ? "zh" : "en"),
  meta: null, data: {}, charts: {} };
const $ = (id) => document.getElementById(id);

function t(name, vars = {}) {
  const text = T[state.lang][name] ?? name;
  return text.replace(/\{(\w+)\}/g, (_, k) => (vars[k] ?? ""));
}
function lbl(label) { return label ? label[state.lang] : ""; }
function mark() { return `<${state.meta ? state.meta.min_cell_count : 10}`; }
function pct(v, digits = 1) { return v === null || v === undefined ? "–" : `${(100 * v).toFixed(digits)}%`; }
function num(v, digits = 4) { return v === null || v === undefined ? "–" : (typeof v === "number" ? v.toFixed(digits) : String(v)); }
function fmt(v) { return v.toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB"); }

/* -- the API ------------------------------------------------------------------------------------------ */
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== ""));
  const url = `/regulator/${path}${query.toString() ? "?" + query : ""}`;
  const response = await fetch(url, { headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY_STORE)}` } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.error || response.statusText);
  return body;
}

/* -- DOM helpers (text only: no HTML strings, so the page needs no inline styles or scripts) ----------- */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  return node;
}

function countNode(cell, share) {
  if (!cell) return document.createTextNode("–");
  if (cell.suppressed) {
    return el("span", { class: "sup", title: t("sup_note", { k: state.meta.min_cell_count }) }, mark());
  }
  const frag = document.createDocumentFragment();
  frag.append(fmt(cell.count));
  if (share !== undefined) frag.append(" ", el("small", {}, pct(share)));
  return frag;
}

function fillTable(table, head, rows) {
  table.replaceChildren(el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", {}, c))))));
}

function chart(id, config) {
  if (state.charts[id]) state.charts[id].destroy();
  const base = { responsive: true, maintainAspectRatio: false, animation: false };
  state.charts[id] = new Chart($(id), { ...config, options: { ...base, ...config.options } });
  return state.charts[id];
}

const percentAxis = { ticks: { callback: (v) => `${Math.round(v * 100)}%` } };

/* -- filters ------------------------------------------------------------------------------------------ */
function options(select, items, keep) {
  const previous = keep ? select.value : null;
  select.replaceChildren(...items.map(([value, text]) => el("option", { value }, text)));
  if (previous !== null && items.some(([v]) => v === previous)) select.value = previous;
}

function buildFilters() {
  const m = state.meta;
  options($("f-by"), m.dimensions.map((d) => [d, dimName(d)]), true);
  options($("f-month"), [...m.months].reverse().map((mo) => [mo, mo]), true);
  options($("f-sector"), [["", t("all")], ...m.sectors.map((s) => [s.key, lbl(s.label)])], true);
  options($("f-province"), [["", t("all")], ...m.provinces.map((p) => [p.key, lbl(p.label)])], true);
  options($("i-by"), m.inclusion_dimensions.map((d) => [d, dimName(d)]), true);
  options($("o-by"), ["month", "sector", "province"].map((d) => [d, dimName(d)]), true);
  options($("o-kind"), [["", t("both_kinds")], ["objection", t("objection")], ["repair", t("repair")]], true);
  syncFilters();
}

const DIM_NAMES = {
  month: ["受理月份", "Month received"], sector: ["行业", "Sector"], province: ["省份", "Province"], city: ["地市", "City"],
  business_form: ["经营主体类型", "Business form"], urban_rural: ["城乡", "Urban / rural"],
};
function dimName(d) { return DIM_NAMES[d] ? DIM_NAMES[d][state.lang === "zh" ? 0 : 1] : d; }

function syncFilters() {
  // sector and province both narrow the time series; together they would ask for a cross-table nobody publishes
  $("f-sector").disabled = $("f-province").value !== "";
  $("f-province").disabled = $("f-sector").value !== "";
  $("f-hint").textContent = t("hint_sector") + t("hint_province") + t("hint_both");
}

function filterParams(by) {
  const sector = $("f-sector").value || null;
  const province = $("f-province").value || null;
  return {
    sector: by === "sector" || by === "month" ? sector : null,
    province: (by === "province" || by === "city" || by === "month") && !sector ? province : null,
  };
}

/* -- views -------------------------------------------------------------------------------------------- */
async function loadDistribution() {
  const by = $("f-by").value;
  const month = $("f-month").value;
  const d = await api("distribution", { by, month, ...filterParams(by) });
  state.data.distribution = d;
  drawDistribution();
}

function drawDistribution() {
  const d = state.data.distribution;
  if (!d) return;
  $("distribution-sub").textContent = t("dist_sub", { month: d.month, by: lbl(d.by_label) });
  chart("chart-distribution", {
    type: "bar",
    data: {
      labels: d.rows.map((r) => lbl(r.label)),
      datasets: CLASSES.map((c) => ({
        label: lbl(d.classes.find((x) => x.class === c).label), backgroundColor: COLOURS[c],
        data: d.rows.map((r) => r.cells[c].share), counts: d.rows.map((r) => r.cells[c]),
      })),
    },
    options: {
      indexAxis: d.rows.length > 8 ? "y" : "x",
      scales: { x: { stacked: true, ...(d.rows.length > 8 ? { max: 1, ...percentAxis } : {}) },
        y: { stacked: true, ...(d.rows.length > 8 ? {} : { max: 1, ...percentAxis }) } },
      plugins: { tooltip: { callbacks: { label: cellTooltip } } },
    },
  });
  const head = [lbl(d.by_label), t("total"), t("share"), ...d.classes.map((c) => lbl(c.label))];
  const rows = d.rows.map((r) => [lbl(r.label), countNode(r.total), pct(r.total.share),
    ...CLASSES.map((c) => countNode(r.cells[c], r.cells[c].share))]);
  rows.push([t("total"), countNode(d.total.total), "", ...CLASSES.map((c) => countNode(d.total.cells[c], d.total.cells[c].share))]);
  fillTable($("table-distribution"), head, rows);
}

function cellTooltip(ctx) {
  const cell = ctx.dataset.counts ? ctx.dataset.counts[ctx.dataIndex] : null;
  if (cell && cell.suppressed) return `${ctx.dataset.label}: ${mark()}`;
  return `${ctx.dataset.label}: ${pct(ctx.raw)}${cell ? ` (${fmt(cell.count)})` : ""}`;
}

async function loadShares() {
  const d = await api("distribution", { by: "month", ...filterParams("month") });
  state.data.shares = d;
  drawShares();
}

function drawShares() {
  const d = state.data.shares;
  if (!d) return;
  const f = d.filters;
  const scope = f.sector ? lbl(state.meta.sectors.find((s) => s.key === f.sector)?.label)
    : f.province ? lbl(state.meta.provinces.find((p) => p.key === f.province)?.label) : t("all_merchants");
  $("shares-sub").textContent = t("shares_sub", { scope });
  chart("chart-shares", {
    type: "bar",
    data: {
      labels: d.rows.map((r) => r.key),
      datasets: CLASSES.map((c) => ({ label: c, backgroundColor: COLOURS[c], data: d.rows.map((r) => r.cells[c].share),
        counts: d.rows.map((r) => r.cells[c]) })),
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true, max: 1, ...percentAxis } },
      plugins: { tooltip: { callbacks: { label: cellTooltip } } } },
  });
}

const psiBands = {
  id: "psiBands",
  beforeDatasetsDraw(c) {
    const { ctx, chartArea: a, scales: { y } } = c;
    const bands = [[0, 0.10, "rgba(46,125,50,0.10)"], [0.10, 0.25, "rgba(255,167,38,0.16)"], [0.25, y.max, "rgba(198,40,40,0.10)"]];
    ctx.save();
    for (const [lo, hi, colour] of bands) {
      if (lo >= y.max) continue;
      const top = y.getPixelForValue(Math.min(hi, y.max));
      ctx.fillStyle = colour;
      ctx.fillRect(a.left, top, a.right - a.left, y.getPixelForValue(lo) - top);
    }
    ctx.restore();
  },
};

async function loadStability() {
  state.data.stability = await api("stability");
  drawStability();
}

function drawStability() {
  const s = state.data.stability;
  if (!s) return;
  const top = Math.max(0.3, ...s.rows.flatMap((r) => [r.psi_class || 0, r.psi_score || 0])) * 1.1;
  chart("chart-psi", {
    type: "line",
    data: {
      labels: s.rows.map((r) => r.month),
      datasets: [
        { label: t("class_psi"), data: s.rows.map((r) => r.psi_class), borderColor: "#0d47a1", backgroundColor: "#0d47a1" },
        { label: t("score_psi"), data: s.rows.map((r) => r.psi_score), borderColor: "#6a1b9a", backgroundColor: "#6a1b9a",
          borderDash: [5, 4] },
      ],
    },
    options: {
      scales: { y: { min: 0, max: Number(top.toFixed(2)) } },
      plugins: { tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${num(ctx.raw)} (${t(bandOf(ctx.raw))})` } } },
    },
    plugins: [psiBands],
  });
}

function bandOf(v) { return v < 0.10 ? "stable" : v < 0.25 ? "drifting" : "shifted"; }

async function loadMigration() {
  const months = state.meta.months;
  const to = $("f-month").value;
  const i = months.indexOf(to);
  if (i < 1) {
    state.data.migration = null;
    $("heatmap").replaceChildren();
    $("migration-sub").textContent = t("mig_none");
    $("migration-summary").textContent = "";
    return;
  }
  state.data.migration = await api("migration", { from: months[i - 1], to });
  drawMigration();
}

function drawMigration() {
  const m = state.data.migration;
  if (!m) return;
  $("migration-sub").textContent = t("mig_sub", { from: m.from, to: m.to });
  const cols = [...CLASSES, "exited"];
  const rows = m.rows;
  const cw = 92, ch = 40, left = 90, topPad = 46;
  const width = left + cw * cols.length + 10, height = topPad + ch * rows.length + 10;
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  add("text", { x: left + (cw * cols.length) / 2, y: 14, "text-anchor": "middle", "font-weight": "600" }, `${t("to_class")} (${m.to})`);
  const middle = topPad + (ch * rows.length) / 2;
  add("text", { x: 16, y: middle, "text-anchor": "middle", "font-weight": "600", transform: `rotate(-90 16 ${middle})` },
    `${t("from_class")} (${m.from})`);
  cols.forEach((c, j) => add("text", { x: left + j * cw + cw / 2, y: topPad - 6, "text-anchor": "middle" }, c === "exited" ? t("exited") : c));
  rows.forEach((r, i) => {
    const y = topPad + i * ch;
    add("text", { x: left - 8, y: y + ch / 2 + 4, "text-anchor": "end" }, r.key === "new" ? t("new") : r.key);
    cols.forEach((c, j) => {
      const cell = r.cells[c];
      const x = left + j * cw;
      const share = cell.share;
      const fill = cell.suppressed ? "#eceff1" : share === null ? "#fafafa" : shade(share);
      const rect = add("rect", { x: x + 1, y: y + 1, width: cw - 2, height: ch - 2, fill, class: cell.suppressed ? "cell sup-cell" : "cell" });
      const title = document.createElementNS(NS, "title");
      title.textContent = cell.suppressed ? mark() : `${fmt(cell.count)} (${pct(share)})`;
      rect.append(title);
      const text = cell.suppressed ? mark() : cell.count === 0 || share === null ? fmt(cell.count)
        : `${pct(share, 0)} · ${fmt(cell.count)}`;
      add("text", { x: x + cw / 2, y: y + ch / 2 + 4, "text-anchor": "middle",
        fill: cell.suppressed ? "#b71c1c" : share !== null && share > 0.55 ? "#fff" : "#1a1a1a",
        "font-weight": cell.suppressed ? "700" : "400" }, text);
    });
  });
  $("heatmap").replaceChildren(svg);
  const s = m.summary;
  $("migration-summary").textContent = s.suppressed ? t("mig_withheld")
    : t("mig_summary", { n: fmt(s.merchants_in_both), up: pct(s.upgrades_share), down: pct(s.downgrades_share), stable: pct(s.stable_share) });
}

function when(value) {
  if (value === null || value === undefined || value === "") return "–";
  const date = new Date(typeof value === "number" ? value : String(value));
  return Number.isNaN(date.getTime()) ? String(value) : date.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

function shade(share) {
  const a = Math.max(0, Math.min(1, share));
  const mix = (from, to) => Math.round(from + (to - from) * a);
  return `rgb(${mix(232, 13)},${mix(240, 71)},${mix(254, 161)})`;
}

async function loadOutcomes() {
  state.data.outcomes = await api("outcomes", { by: "class" });
  drawOutcomes();
}

function drawOutcomes() {
  const o = state.data.outcomes;
  if (!o) return;
  const months = o.months_with_outcomes;
  $("outcomes-sub").textContent = months.length ? t("outcomes_sub", { months: `${months[0]} – ${months[months.length - 1]}` })
    : t("no_outcomes");
  chart("chart-outcomes", {
    type: "bar",
    data: {
      labels: o.rows.map((r) => r.key),
      datasets: [
        { type: "bar", label: t("interval_legend"), data: o.rows.map((r) => (r.interval ? [r.interval.low, r.interval.high] : null)),
          backgroundColor: o.rows.map((r) => `${COLOURS[r.key]}66`), borderColor: o.rows.map((r) => COLOURS[r.key]),
          borderWidth: 1, barPercentage: 0.35 },
        { type: "line", label: t("observed"), data: o.rows.map((r) => r.default_rate), showLine: false, pointRadius: 6,
          pointBackgroundColor: o.rows.map((r) => COLOURS[r.key]), borderColor: "#333" },
        { type: "line", label: t("mean_pd"), data: o.rows.map((r) => r.mean_pd), showLine: false, pointStyle: "line",
          pointRadius: 14, borderWidth: 3, borderColor: "#111", pointBorderColor: "#111" },
      ],
    },
    options: { scales: { y: { min: 0, ...percentAxis } },
      plugins: { legend: { labels: { usePointStyle: true } },
        tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${Array.isArray(ctx.raw)
        ? `${pct(ctx.raw[0], 2)} – ${pct(ctx.raw[1], 2)}` : pct(ctx.raw, 2)}` } } } },
  });
  fillTable($("table-outcomes"), [t("calib_class"), t("n"), t("defaults"), t("rate"), t("interval"), t("mean_pd"), t("jeffreys_p")],
    [...o.rows, { ...o.total, label: { zh: "合计", en: "Total" } }].map((r) => [lbl(r.label), countNode(r.n), countNode(r.defaults),
      pct(r.default_rate, 2), r.interval ? `${pct(r.interval.low, 2)} – ${pct(r.interval.high, 2)}` : "–", pct(r.mean_pd, 2),
      num(r.jeffreys_p, 3)]));
}

async function loadInclusion() {
  state.data.inclusion = await api("inclusion", { by: $("i-by").value });
  drawInclusion();
}

function drawInclusion() {
  const inc = state.data.inclusion;
  if (!inc) return;
  const total = inc.total.decisions;
  const none = !total.suppressed && !total.count;
  $("inclusion-sub").textContent = none ? t("no_decisions") : t("inclusion_sub", { n: total.suppressed ? mark() : fmt(total.count) });
  const decisions = ["approve", "refer", "decline"];
  chart("chart-approval", {
    type: "bar",
    data: {
      labels: inc.rows.map((r) => lbl(r.label)),
      datasets: decisions.map((d) => ({ label: t(d), backgroundColor: DECISION_COLOURS[d], data: inc.rows.map((r) => r.cells[d].rate),
        counts: inc.rows.map((r) => r.cells[d]) })),
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true, max: 1, ...percentAxis } },
      plugins: { tooltip: { callbacks: { label: cellTooltip } } } },
  });
  fillTable($("table-inclusion"), [lbl(inc.by_label), t("decisions"), ...decisions.map((d) => t(d)), t("approval_ratio"), t("avg_limit")],
    [...inc.rows, { ...inc.total, label: { zh: "合计", en: "Total" } }].map((r) => [lbl(r.label), countNode(r.decisions),
      ...decisions.map((d) => countNode(r.cells[d], r.cells[d].rate)), num(r.approval_ratio, 2),
      r.average_approved_limit_fen === null ? "–" : fmt(Math.round(r.average_approved_limit_fen / 100))]));
  const cal = inc.calibration;
  const rows = cal ? cal.rows : [];
  chart("chart-calibration", {
    type: "bar",
    data: {
      labels: rows.map((r) => lbl(r.label)),
      datasets: [
        { label: t("mean_pd"), backgroundColor: "#546e7a", data: rows.map((r) => r.mean_pd) },
        { label: t("observed"), backgroundColor: "#ef6c00", data: rows.map((r) => r.default_rate) },
      ],
    },
    options: { scales: { y: { min: 0, ...percentAxis } },
      plugins: { tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${pct(ctx.raw, 2)}` } } } },
  });
  fillTable($("table-calibration"), [lbl(inc.by_label), t("n"), t("defaults"), t("mean_pd"), t("observed"), t("interval"), t("pd_minus")],
    cal ? [...cal.rows, { ...cal.total, label: { zh: "合计", en: "Total" } }].map((r) => [lbl(r.label), countNode(r.n),
      countNode(r.defaults), pct(r.mean_pd, 2), pct(r.default_rate, 2),
      r.interval ? `${pct(r.interval.low, 2)} – ${pct(r.interval.high, 2)}` : "–", pct(r.pd_minus_observed, 2)])
      : [[t("no_calibration"), "", "", "", "", "", ""]]);
}

async function loadInspections() {
  const [findings, plans] = await Promise.all([api("inspections/findings"), api("inspections")]);
  state.data.inspections = { findings, plans };
  drawInspections();
}

function drawInspections() {
  const d = state.data.inspections;
  if (!d) return;
  const f = d.findings;
  const total = f.total.inspections;
  const none = !total.suppressed && !total.count;
  $("inspections-sub").textContent = none ? t("no_inspections") : t("insp_sub", { from: f.from, to: f.to });
  const rows = f.rows.filter((r) => r.key !== "unclassified" || r.inspections.count || r.inspections.suppressed);
  chart("chart-inspections", {
    type: "bar",
    data: {
      labels: rows.map((r) => lbl(r.label)),
      datasets: [
        { type: "bar", label: t("interval"), backgroundColor: "rgba(120,144,156,0.35)",
          data: rows.map((r) => r.any_finding.interval ? [r.any_finding.interval.low, r.any_finding.interval.high] : null) },
        { type: "line", label: t("any_finding"), data: rows.map((r) => r.any_finding.rate), showLine: false, pointRadius: 6,
          pointBackgroundColor: rows.map((r) => COLOURS[r.key] || "#607d8b"), borderColor: "#333" },
      ],
    },
    options: { scales: { y: { min: 0, ...percentAxis } },
      plugins: { tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${Array.isArray(ctx.raw)
        ? `${pct(ctx.raw[0], 1)} – ${pct(ctx.raw[1], 1)}` : pct(ctx.raw, 1)}` } } } },
  });
  const interval = (c) => c.interval ? `${pct(c.interval.low)} – ${pct(c.interval.high)}` : "–";
  fillTable($("table-inspections"), [t("calib_class"), t("inspections"), t("any_finding"), t("interval"), t("serious")],
    [...rows, { ...f.total, label: { zh: "合计", en: "Total" } }].map((r) => [lbl(r.label), countNode(r.inspections),
      countNode(r.any_finding, r.any_finding.rate), interval(r.any_finding), countNode(r.serious, r.serious.share)]));
  const plans = d.plans.plans || [];
  fillTable($("table-plans"), [t("plan"), t("month"), t("seed"), t("insp_policy"), t("eligible"), t("drawn"), "A / B / C / D"],
    plans.length ? plans.map((p) => [p.plan_id, p.month, String(p.seed), p.policy_version, fmt(p.eligible), fmt(p.drawn),
      ["A", "B", "C", "D"].map((c) => fmt(p.drawn_by_class[c])).join(" / ")]) : [[t("no_plans"), "", "", "", "", "", ""]]);
}

async function loadObjections() {
  const by = $("o-by").value || "month";
  const month = by === "month" ? null : $("o-month").value || null;
  state.data.objections = await api("objections", { by, month, kind: $("o-kind").value || null });
  drawObjections();
}

function drawObjections() {
  const o = state.data.objections;
  if (!o) return;
  const months = [...o.months].reverse();
  options($("o-month"), months.map((mo) => [mo, mo]), true);
  if (o.month && months.includes(o.month)) $("o-month").value = o.month;
  $("o-month").disabled = o.by === "month" || !months.length;
  const vars = { kind: o.kind ? t(o.kind) : t("both_kinds"), from: o.from, to: o.to, month: o.month, by: lbl(o.by_label),
    days: o.deadline_days, asof: when(o.as_of) };
  $("objections-sub").textContent = !o.months.length ? t("no_objections") : t(o.by === "month" ? "obj_sub_month" : "obj_sub", vars);
  const name = (key) => lbl(o.measures.find((m) => m.key === key).label);
  const series = (m, stack) => ({ label: name(m), backgroundColor: OBJECTION_COLOURS[m], stack,
    data: o.rows.map((r) => r.cells[m].count), counts: o.rows.map((r) => r.cells[m]) });
  chart("chart-objections", {
    type: "bar",
    data: { labels: o.rows.map((r) => lbl(r.label)),
      datasets: [series("received", "received"), series("corrected", "state"), series("upheld", "state"),
        series("open", "state"), series("overdue", "overdue")] },
    options: { scales: { x: { stacked: true }, y: { stacked: true, min: 0, ticks: { precision: 0 } } },
      plugins: { tooltip: { callbacks: { label: (ctx) => {
        const cell = ctx.dataset.counts[ctx.dataIndex];
        return `${ctx.dataset.label}: ${cell.suppressed ? mark() : fmt(cell.count)}`;
      } } } } },
  });
  const measures = ["received", "resolved", "corrected", "upheld", "open", "overdue"];
  const rows = o.total ? [...o.rows, { ...o.total, label: { zh: "合计", en: "Total" } }] : o.rows;
  fillTable($("table-objections"), [lbl(o.by_label), ...measures.map(name), t("median_days"), t("within_deadline")],
    rows.length ? rows.map((r) => [lbl(r.label), ...measures.map((m) => countNode(r.cells[m])),
      num(r.median_days_to_resolve, 1), pct(r.resolved_within_deadline_share)])
      : [[t("no_objections"), ...measures.map(() => ""), "", ""]]);
}

async function loadModel() {
  const [card, validation] = await Promise.all([
    fetch("/model", { headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY_STORE)}` } }).then((r) => r.json()),
    api("validation"),
  ]);
  state.data.card = card;
  state.data.validation = validation;
  drawModel();
}

function drawModel() {
  const card = state.data.card, v = state.data.validation;
  if (!card || !v) return;
  const test = (card.windows && card.windows.test) || {};
  const d = v.discrimination, c = v.calibration;
  $("model-badge").hidden = false;
  $("model-badge").textContent = `${card.name} v${card.version}`;
  fillTable($("table-model"), [t("metric"), t("value")], [
    [t("model"), `${card.name} (${card.alias || ""})`], [t("version"), String(card.version)],
    [t("trained"), when(card.trained_at || v.model.trained_at)], [t("windows"), `${test.from || "?"} – ${test.to || "?"}`],
    [t("feature_set"), card.feature_set ? `${card.feature_set.name} ${card.feature_set.version}` : "–"],
    [t("policy"), card.policy ? String(card.policy.version) : "–"],
    ["AUC", num(d.auc)], ["Gini", num(d.gini)], ["KS", num(d.ks)], ["Brier", num(c.brier)], ["ECE", num(c.ece)],
    ["PSI (train → test)", num(v.stability.psi_score_train_test)],
  ]);
  fillTable($("table-validation"), [t("calib_class"), "n", t("defaults"), t("mean_pd"), t("rate"), t("jeffreys_p"), t("rejected")],
    (c.by_class || []).map((r) => [String(r.group), fmt(r.n), fmt(r.defaults), pct(r.mean_pd, 2), pct(r.default_rate, 2),
      num(r.jeffreys_p, 3), r.rejected ? t("yes") : t("no")]));
  $("validation-note").textContent = state.lang === "zh" ? v.note_zh : v.note_en;
}

/* -- wiring ------------------------------------------------------------------------------------------- */
function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.title = state.lang === "zh" ? "信用风险分类监管看板" : "Regulator dashboard";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  $("lang").textContent = state.lang === "zh" ? "English" : "中文";
  if (state.meta) {
    $("sup-mark").textContent = mark();
    $("sup-note").textContent = t("sup_note", { k: state.meta.min_cell_count });
    buildFilters();
    drawDistribution(); drawShares(); drawStability(); drawMigration(); drawOutcomes(); drawInclusion(); drawObjections(); drawInspections();
    drawModel();
  }
}

async function guarded(work) {
  try {
    await work();
    $("board-error").textContent = "";
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return signOut(err);
    $("board-error").textContent = t("failed") + err.message;
  }
}

async function refreshAll() {
  await guarded(() => Promise.all([loadDistribution(), loadShares(), loadStability(), loadMigration(), loadOutcomes(),
    loadInclusion(), loadObjections(), loadInspections(), loadModel()]));
  document.body.dataset.ready = "true";
}

async function signIn(key) {
  sessionStorage.setItem(KEY_STORE, key);
  try {
    state.meta = await api("months");
  } catch (err) {
    return signOut(err);
  }
  $("signin").hidden = true;
  $("board").hidden = false;
  $("signout").hidden = false;
  applyLanguage();
  await refreshAll();
}

function signOut(err) {
  sessionStorage.removeItem(KEY_STORE);
  Object.values(state.charts).forEach((c) => c.destroy());
  state.charts = {};
  state.meta = null;
  state.data = {};
  $("board").hidden = true;
  $("signout").hidden = true;
  $("model-badge").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = !err ? "" : err.status === 401 ? t("signin_bad") : err.status === 403 ? t("signin_role")
    : t("failed") + err.message;
}

function start() {
  $("lang").addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    sessionStorage.setItem(LANG_STORE, state.lang);
    applyLanguage();
  });
  $("signout").addEventListener("click", () => signOut(null));
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key").value.trim();
    $("key").value = "";
    if (key) signIn(key);
  });
  $("f-by").addEventListener("change", () => { syncFilters(); guarded(loadDistribution); });
  $("f-month").addEventListener("change", () => guarded(() => Promise.all([loadDistribution(), loadMigration()])));
  for (const id of ["f-sector", "f-province"]) {
    $(id).addEventListener("change", () => { syncFilters(); guarded(() => Promise.all([loadDistribution(), loadShares()])); });
  }
  $("i-by").addEventListener("change", () => guarded(loadInclusion));
  for (const id of ["o-by", "o-month", "o-kind"]) $(id).addEventListener("change", () => guarded(loadObjections));
  applyLanguage();
  const saved = sessionStorage.getItem(KEY_STORE);
  if (saved) signIn(saved);
}

document.addEventListener("DOMContentLoaded", start);
