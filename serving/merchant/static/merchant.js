/* The merchant's own credit report: signs in with the merchant's key (kept in sessionStorage), reads
   /merchant/report and files objections (异议) and credit-repair requests (信用修复) through
   /merchant/objections. Every value comes from the API; the page only words and arranges it, in
   zh-CN or English. Written for older and disabled owners: real buttons and labels, one dialog that
   takes focus and gives it back, errors announced through live regions. No HTML strings: the page needs
   no inline script or style (Content-Security-Policy 'self'). */
"use strict";

const KEY_STORE = "lifecredit.merchantKey";
const LANG_STORE = "lifecredit.merchantLang";
const CLASSES = ["A", "B", "C", "D"];
const RECORD_TABLES = ["complaints", "public_records", "loans"];

const T = {
  zh: {
    title: "我的信用报告", doc_title: "我的信用报告 · 生活服务商户信用", skip: "跳到主要内容", tools: "页面工具",
    signout: "退出登录", signin_title: "商户登录", key_label: "商户密钥",
    signin_help: "请输入您的商户密钥。密钥只保存在本标签页中，关闭标签页即清除。", signin_button: "登录",
    s_current: "当前信用状况", s_scale: "信用风险分类的含义", s_history: "分类历史", s_reasons: "影响评分的主要原因",
    s_advice: "改善建议", s_records: "我的信用记录", s_complaints: "投诉", s_public: "公示记录", s_loans: "贷款与还款",
    s_objections: "我的异议", s_queries: "查询记录",
    queries_sub: "最近 {n} 次查询或处理您记录的机构与用途。", no_queries: "还没有机构查询过您的记录。",
    records_help: "如果某条记录有误，请点击该记录下的“提出异议”。我们将在收到异议后20日内核查并答复。",
    history_caption: "图：每月的信用风险分类（A最好，D最差）；菱形为更正后重新评分。数据见下表。",
    reason_label: "理由", required: "（必填）", reason_help: "请说明这条记录哪里有误。", evidence_label: "证据",
    optional: "（选填）", evidence_help: "例如：收据编号、相关部门的证明、付款记录。", submit: "提交", cancel: "取消",
    loading: "正在读取您的信用报告……", signed_out: "您已退出登录。", signed_in: "已登录，信用报告已显示。",
    headline: "信用风险分类：{class}类 — {text}", class_word: "{class}类",
    pd: "违约概率（未来12个月）", score: "信用评分", grade: "评级", klass: "信用风险分类",
    grade_range: "评级{grade}（违约概率 {min} 至 {max}）", class_range: "{class}类：{text}（违约概率 {min} 至 {max}）",
    features_as_of: "数据截至", model: "评分模型", generated: "报告生成时间", merchant: "商户编号", sector: "行业",
    rescored: "您的评分已于 {at} 因记录更正重新计算。", version: "第{v}版",
    scale_item: "违约概率 {min} 至 {max}，评级 {grades}", yours: "您当前的分类",
    history_sub: "共 {n} 个月（{from} 至 {to}），由早到晚。", no_history: "暂无分类历史。",
    month: "月份", note: "说明", th_class: "分类", th_grade: "评级", th_score: "评分", th_pd: "违约概率", rescore: "重新评分", monthly: "月度评分", kind: "类型",
    history_chart: "分类历史图", no_reasons: "暂无影响评分的主要原因。",
    your_value: "您的数值", peer_median: "同行中位数", peer_of: "{n} 户同行", peers: "同行",
    peer_hidden: "同行少于 {k} 户——不显示", peer_group: "同行：同一行业（{sector}）、同一省份的 {n} 户商户。",
    peer_group_hidden: "您所在行业和省份的商户少于 {k} 户，为保护其他商户的隐私，不显示同行对比。",
    no_value: "无数据", no_advice: "暂无改善建议。", no_records: "没有记录。",
    complaint: "投诉", public_record: "公示记录", loan: "贷款", loan_performance: "还款状态",
    record_kind_complaints: "投诉", record_kind_public_records: "公示记录", record_kind_loans: "贷款",
    record_kind_loan_performance: "还款状态", record_kind_transactions: "交易", record_kind_merchants: "商户信息",
    date: "日期", source: "来源", category: "类别", severity: "严重程度", status: "状态", received_at: "收到时间",
    resolved_at: "解决时间", open: "未解决", resolved: "已解决", record_type: "记录类型", published_on: "公示日期",
    removed_on: "移出日期", current: "当前有效", removed: "已移出", penalty: "罚款金额", product: "产品",
    principal: "本金", term: "期限", term_months: "{n} 个月", repayment: "还款状态", days_past_due: "逾期 {n} 天",
    outstanding: "未还余额", reported_on: "报告日期", yuan: "{v} 元",
    under_objection: "异议处理中", objection_no: "异议编号 {id}",
    object: "提出异议", repair: "申请信用修复", object_repayment: "对还款状态提出异议",
    dialog_object: "对{record}提出异议", dialog_repair: "申请信用修复：{record}",
    dialog_help: "我们会在收到后20日内核查并答复。提交后，这条记录会标注为“异议处理中”。",
    dialog_help_repair: "已纠正失信行为的，可申请信用修复。我们会在收到后20日内核查并答复。",
    need_reason: "请填写理由：说明这条记录哪里有误。", sending: "正在提交……",
    filed: "已提交，编号 {id}，状态：已收到。我们将在 {due} 前答复。",
    objections_sub: "共 {n} 条，其中 {open} 条正在处理；{marked} 条记录标注为异议处理中。", no_objections: "您还没有提出过异议。",
    objection: "异议", repair_request: "信用修复申请", record: "记录", reason: "理由", evidence: "证据",
    received_on: "收到日期", due_by: "答复期限（收到后20日）", overdue: "已逾期", late: "超过期限才答复", outcome: "处理结果",
    resolved_on: "处理日期", note_label: "说明",
    st_received: "已收到，处理中", st_overdue: "已逾期，仍在处理", st_resolved: "已处理",
    out_corrected: "已更正", out_upheld: "记录维持不变",
    err_network: "无法连接服务，请检查网络后重试。", err_401: "密钥无法识别（无效或已吊销），请检查后重新输入。",
    err_403: "这不是商户密钥，请使用您商户的密钥登录。", err_404_report: "找不到您的商户记录。",
    err_404_record: "找不到这条记录，或它不属于您的商户。", err_409: "这条记录已有异议正在处理。",
    err_413: "内容太长，请缩短后再提交。", err_422: "请检查填写的内容：{detail}",
    err_429: "操作太频繁，请在 {s} 秒后重试。", err_5xx: "服务暂时出错（{status}），请稍后重试。",
    err_other: "出错了（{status}）：{detail}", field_reason: "理由", field_evidence: "证据", field_table: "记录类别",
    field_record_id: "记录编号", field_kind: "类型",
    need_key: "请输入您的商户密钥。",
  },
  en: {
    title: "My credit report", doc_title: "My credit report · life-service merchant credit", skip: "Skip to main content",
    tools: "Page tools", signout: "Sign out", signin_title: "Merchant sign-in", key_label: "Merchant key",
    signin_help: "Enter your merchant key. It is kept in this tab only and cleared when the tab closes.",
    signin_button: "Sign in",
    s_current: "Your credit rating now", s_scale: "What the credit-risk classes mean", s_history: "Class history",
    s_reasons: "Main reasons behind your score", s_advice: "How to improve", s_records: "Your credit records",
    s_complaints: "Complaints", s_public: "Public records", s_loans: "Loans and repayments", s_objections: "Your objections", s_queries: "Who looked at your record",
    queries_sub: "The last {n} lookups or handlings of your record: who and why.", no_queries: "No institution has looked up your record yet.",
    records_help: "If a record is wrong, press “Object” under it. We check it and answer within 20 days of receiving your objection.",
    history_caption: "Chart: your credit-risk class each month (A best, D worst); a diamond is a re-score after a correction. The table below has the same data.",
    reason_label: "Reason", required: "(required)", reason_help: "Say what is wrong with this record.",
    evidence_label: "Evidence", optional: "(optional)",
    evidence_help: "For example: a receipt number, a letter from an authority, a payment record.", submit: "Submit",
    cancel: "Cancel", loading: "Reading your credit report…", signed_out: "You are signed out.",
    signed_in: "Signed in; your credit report is shown.",
    headline: "Credit-risk class {class}: {text}", class_word: "class {class}",
    pd: "Probability of default (next 12 months)", score: "Credit score", grade: "Rating grade", klass: "Credit-risk class",
    grade_range: "grade {grade} (probability of default {min} to {max})",
    class_range: "class {class}: {text} (probability of default {min} to {max})", features_as_of: "Data as of",
    model: "Scoring model", generated: "Report made", merchant: "Merchant number", sector: "Sector",
    rescored: "Your score was worked out again on {at} after a record was corrected.", version: "version {v}",
    scale_item: "probability of default {min} to {max}, grades {grades}", yours: "your class now",
    history_sub: "{n} months ({from} to {to}), oldest first.", no_history: "No class history yet.",
    month: "Month", note: "Note", th_class: "Class", th_grade: "Grade", th_score: "Score", th_pd: "Default prob.", rescore: "Re-score", monthly: "Monthly score", kind: "Kind",
    history_chart: "Class history chart", no_reasons: "No main reasons to show.",
    your_value: "Your value", peer_median: "Peer median", peer_of: "{n} peers", peers: "Peers",
    peer_hidden: "fewer than {k} peers — not shown",
    peer_group: "Peers: the {n} merchants in the same sector ({sector}) and province.",
    peer_group_hidden: "Fewer than {k} merchants share your sector and province: to protect their privacy no peer comparison is shown.",
    no_value: "no data", no_advice: "No advice at the moment.", no_records: "No records.",
    complaint: "Complaint", public_record: "Public record", loan: "Loan", loan_performance: "Repayment status",
    record_kind_complaints: "complaint", record_kind_public_records: "public record", record_kind_loans: "loan",
    record_kind_loan_performance: "repayment status", record_kind_transactions: "transaction",
    record_kind_merchants: "merchant details",
    date: "Date", source: "Source", category: "Category", severity: "Severity", status: "Status",
    received_at: "Received", resolved_at: "Resolved", open: "open", resolved: "resolved", record_type: "Record type",
    published_on: "Published", removed_on: "Removed", current: "current", removed: "removed", penalty: "Penalty",
    product: "Product", principal: "Principal", term: "Term", term_months: "{n} months", repayment: "Repayment status",
    days_past_due: "{n} days past due", outstanding: "Outstanding", reported_on: "Reported on", yuan: "{v} yuan",
    under_objection: "Under objection", objection_no: "objection {id}",
    object: "Object", repair: "Ask for credit repair", object_repayment: "Object to the repayment status",
    dialog_object: "Object to {record}", dialog_repair: "Ask for credit repair: {record}",
    dialog_help: "We check it and answer within 20 days of receipt. Until then the record is marked “Under objection”.",
    dialog_help_repair: "If the cause of a public record has been put right, you may ask for credit repair. We answer within 20 days of receipt.",
    need_reason: "Please give a reason: say what is wrong with this record.", sending: "Sending…",
    filed: "Sent: objection {id}, status received. We will answer by {due}.",
    objections_sub: "{n} in all, {open} being handled; {marked} records are marked under objection.",
    no_objections: "You have not objected to any record.",
    objection: "Objection", repair_request: "Credit-repair request", record: "Record", reason: "Reason",
    evidence: "Evidence", late: "answered after the due date", received_on: "Received on", due_by: "Answer due by (20 days)", overdue: "Overdue",
    outcome: "Outcome", resolved_on: "Resolved on", note_label: "Note",
    st_received: "received, being handled", st_overdue: "overdue, still being handled", st_resolved: "resolved",
    out_corrected: "corrected", out_upheld: "upheld (the record stands)",
    err_network: "Could not reach the service; check the connection and try again.",
    err_401: "Key not recognised (unknown or revoked): check it and enter it again.",
    err_403: "This is not a merchant key: sign in with your merchant's key.",
    err_404_report: "Your merchant record was not found.",
    err_404_record: "This record was not found, or it is not your merchant's.",
    err_409: "This record already has an objection being handled.",
    err_413: "Too long: please shorten it and send again.", err_422: "Please check what you entered: {detail}",
    err_429: "Too many requests: try again in {s} seconds.", err_5xx: "The service had a problem ({status}); try again later.",
    err_other: "Something went wrong ({status}): {detail}", field_reason: "reason", field_evidence: "evidence",
    field_table: "record kind", field_record_id: "record number", field_kind: "kind",
    need_key: "Please enter your merchant key.",
  },
};

/* Display words for the codes the records carry; an unknown code shows as itself. */
const CODES = {
  category: {
    food_safety: ["食品安全", "Food safety"], hygiene: ["卫生", "Hygiene"], service_quality: ["服务质量", "Service quality"],
    service: ["服务", "Service"], price_dispute: ["价格争议", "Price dispute"], refund_dispute: ["退款纠纷", "Refund dispute"],
    false_advertising: ["虚假宣传", "False advertising"], property_damage: ["财产损失", "Property damage"],
    other: ["其他", "Other"],
  },
  source: {
    hotline_12315: ["12315热线", "12315 hotline"], platform: ["平台", "Platform"],
    regulator_referral: ["监管部门转办", "Referred by a regulator"],
  },
  record_type: {
    administrative_penalty: ["行政处罚", "Administrative penalty"],
    abnormal_operation: ["经营异常名录", "Abnormal-operation list"],
    abnormal_operation_listed: ["列入经营异常名录", "Listed as abnormal operation"],
    abnormal_operation_removed: ["移出经营异常名录", "Removed from the abnormal-operation list"],
    serious_violation: ["严重违法失信名单", "Serious-violation list"],
    serious_violation_listed: ["列入严重违法失信名单", "Listed for serious violation"],
    serious_violation_removed: ["移出严重违法失信名单", "Removed from the serious-violation list"],
  },
  product: { term_loan: ["定期贷款", "Term loan"], revenue_based: ["按流水还款贷款", "Revenue-based loan"] },
  loan_status: {
    current: ["正常", "Current"], delinquent: ["逾期", "Past due"], default: ["违约", "In default"],
    written_off: ["核销", "Written off"], closed: ["已结清", "Closed"],
  },
  sector: {
    catering: ["餐饮", "catering"], restaurant: ["餐饮", "restaurant"], retail: ["零售", "retail"],
    accommodation: ["住宿", "accommodation"], housekeeping: ["家政", "housekeeping"],
    laundry_dyeing: ["洗染", "laundry and dyeing"], appliance_repair: ["家电维修", "appliance repair"],
    portrait_photography: ["人像摄影", "portrait photography"], beauty_hairdressing: ["美容美发", "beauty and hairdressing"],
    convenience: ["社区便利店", "community convenience store"],
  },
};

function readLang() {
  try { return localStorage.getItem(LANG_STORE) === "en" ? "en" : "zh"; } catch { return "zh"; }
}

const state = { lang: readLang(), report: null, target: null, opener: null, returnTo: null, busy: false };
const $ = (id) => document.getElementById(id);

function t(name, vars = {}) {
  const text = T[state.lang][name] ?? T.en[name] ?? name;
  return text.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
}
function source(value) {
  // "lender B01"; "english words (中文)": one language at a time
  if (typeof value !== "string") return code("source", value);
  const lender = /^lender (\S+)$/.exec(value);
  if (lender) return state.lang === "zh" ? `贷款机构 ${lender[1]}` : value;
  const pair = /^(.*\S) \(([^()]*[\u4e00-\u9fff][^()]*)\)$/.exec(value);
  if (pair) return state.lang === "zh" ? pair[2] : pair[1];
  return code("source", value);
}
function code(kind, value) {
  const words = CODES[kind] && CODES[kind][value];
  return words ? words[state.lang === "zh" ? 0 : 1] : value === null || value === undefined ? "–" : String(value);
}
function pick(obj, base) {
  // the API's bilingual pairs: {zh, en} or {base_zh, base_en}
  if (!obj) return "";
  if (base) return obj[`${base}_${state.lang}`] ?? obj[`${base}_en`] ?? "";
  return obj[state.lang] ?? obj.en ?? "";
}
function locale() { return state.lang === "zh" ? "zh-CN" : "en-GB"; }
function pct(v, digits = 2) {
  if (v === null || v === undefined) return "–";
  return `${(100 * v).toLocaleString(locale(), { maximumFractionDigits: digits })}%`;
}
function number(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return t("no_value");
  if (typeof v !== "number") return String(v);
  return v.toLocaleString(locale(), { maximumFractionDigits: Number.isInteger(v) ? 0 : 2 });
}
function yuan(fen) {
  if (fen === null || fen === undefined) return "–";
  return t("yuan", { v: (fen / 100).toLocaleString(locale(), { minimumFractionDigits: 2, maximumFractionDigits: 2 }) });
}
const DAY = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit" });
function day(iso) {
  if (!iso) return "–";
  if (/^\d{4}-\d{2}-\d{2}$/.test(iso)) return iso;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : DAY.format(d);
}
function safeId(...parts) { return parts.join("-").replace(/[^A-Za-z0-9_-]/g, "_"); }

/* -- the API ------------------------------------------------------------------------------------------ */
class ApiError extends Error {
  constructor(status, body) {
    super((body && (typeof body.error === "string" ? body.error : JSON.stringify(body.error))) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY_STORE)}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`/merchant/${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, null);
  }
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, answer);
  return answer;
}

/* An API error in words, for the owner rather than the developer. */
function words(err, context) {
  if (!(err instanceof ApiError)) return t("err_other", { status: "–", detail: String(err && err.message) });
  const s = err.status;
  if (s === 0) return t("err_network");
  if (s === 401) return t("err_401");
  if (s === 403) return t("err_403");
  if (s === 404) return t(context === "record" ? "err_404_record" : "err_404_report");
  if (s === 409) return t("err_409");
  if (s === 413) return t("err_413");
  if (s === 422 || s === 400) {
    const detail = Array.isArray(err.body.detail)
      ? err.body.detail.map((d) => {
        const field = Array.isArray(d.loc) ? d.loc[d.loc.length - 1] : "";
        const name = T[state.lang][`field_${field}`] || field;
        return name ? `${name}: ${d.msg}` : d.msg;
      }).join("; ")
      : err.message;
    return t("err_422", { detail });
  }
  if (s === 429) return t("err_429", { s: err.body.retry_after_seconds ?? 60 });
  if (s >= 500) return `${t("err_5xx", { status: s })} ${err.body.error ? `(${err.message})` : ""}`.trim();
  return t("err_other", { status: s, detail: err.message });
}

/* -- DOM helpers (text only) -------------------------------------------------------------------------- */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v; else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
function facts(pairs) {
  // a <dl> of label: value pairs; a value may be a node
  return pairs.filter(Boolean).flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]);
}
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}
function say(text) {
  // polite announcement; cleared first so the same words are read again
  const status = $("status");
  status.textContent = "";
  window.setTimeout(() => { status.textContent = text; }, 50);
}

/* -- the report --------------------------------------------------------------------------------------- */
function scaleEntry(klass) {
  return (state.report.master_scale || []).find((s) => s.class === klass);
}

function drawCurrent() {
  const r = state.report;
  const c = r.current || {};
  const entry = scaleEntry(c.class);
  const classText = c.class_text ? pick(c.class_text) : entry ? pick(entry) : "";
  $("current-class").replaceChildren(
    el("span", { class: `class-badge class-${c.class}`, "aria-hidden": "true" }, c.class ?? "–"),
    el("span", {}, t("headline", { class: c.class ?? "–", text: classText })),
  );
  const range = c.grade_pd_range || [];
  $("current-facts").replaceChildren(...facts([
    [t("pd"), el("strong", {}, pct(c.pd))],
    [t("score"), el("strong", {}, number(c.score))],
    [t("grade"), t("grade_range", { grade: c.grade ?? "–", min: pct(range[0]), max: pct(range[1]) })],
    [t("klass"), entry
      ? t("class_range", { class: c.class, text: classText, min: pct(entry.pd_min), max: pct(entry.pd_max) })
      : `${c.class ?? "–"} ${classText}`],
    [t("merchant"), r.merchant_id],
    r.profile && r.profile.sector ? [t("sector"), code("sector", r.profile.sector)] : null,
    [t("features_as_of"), day(c.features_as_of)],
    [t("model"), `${c.model_name ?? "–"} ${c.model_version ? t("version", { v: c.model_version }) : ""}`.trim()],
    [t("generated"), day(r.generated_at)],
  ]));
  $("current-note").textContent = c.rescored_at ? t("rescored", { at: day(c.rescored_at) }) : "";
  $("current-note").hidden = !c.rescored_at;
}

function drawScale() {
  const current = (state.report.current || {}).class;
  const scale = state.report.master_scale || [];
  $("scale").replaceChildren(...scale.map((s) => {
    const mine = s.class === current;
    return el("li", { class: mine ? "current" : null, "aria-current": mine ? "true" : null },
      el("span", { class: `class-badge class-${s.class}`, "aria-hidden": "true" }, s.class),
      el("span", { class: "scale-text" },
        el("strong", {}, `${t("class_word", { class: s.class })}: ${pick(s)}`), " ",
        el("span", {}, t("scale_item", { min: pct(s.pd_min), max: pct(s.pd_max), grades: (s.grades || []).join(", ") })),
        mine ? el("strong", { class: "yours" }, ` (${t("yours")})`) : null));
  }));
}

function drawHistory() {
  const rows = state.report.history || [];
  $("history-sub").textContent = rows.length
    ? t("history_sub", { n: new Set(rows.map((h) => h.month)).size, from: rows[0].month, to: rows[rows.length - 1].month })
    : t("no_history");
  $("history-figure").hidden = !rows.length;
  drawHistoryChart(rows);
  const head = [t("month"), t("th_class"), t("th_grade"), t("th_score"), t("th_pd"), t("note")];
  $("history-table").replaceChildren(
    el("caption", { class: "sr-only" }, t("s_history")),
    el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((h) => {
      const rescore = h.kind === "rescore";
      const note = pick(h, "note");
      return el("tr", { class: rescore ? "rescore" : null },
        el("th", { scope: "row" }, h.month),
        el("td", {}, h.class ?? "–"), el("td", {}, h.grade ?? "–"), el("td", {}, number(h.score)), el("td", {}, pct(h.pd)),
        el("td", { class: "note-cell" }, rescore ? [el("strong", {}, `${t("rescore")} (${day(h.at)})`), note ? `: ${note}` : ""] : note || ""));
    })),
  );
}

function drawHistoryChart(rows) {
  // a step chart of the class (A top, D bottom) per month; a re-score is a diamond on its month
  const months = [...new Set(rows.map((h) => h.month))];
  const W = 600, H = 240, left = 40, right = 14, top = 16, bottom = 46;
  const x = (m) => left + (months.length < 2 ? (W - left - right) / 2 : months.indexOf(m) * (W - left - right) / (months.length - 1));
  const y = (c) => top + Math.max(0, CLASSES.indexOf(c)) * (H - top - bottom) / (CLASSES.length - 1);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "history-caption", focusable: "false" });
  for (const c of CLASSES) {
    chart.append(svg("line", { x1: left, x2: W - right, y1: y(c), y2: y(c), class: "grid" }));
    chart.append(svg("text", { x: left - 14, y: y(c) + 6, class: "axis", "text-anchor": "end" }, c));
  }
  // about five month labels, the first and last among them, none overlapping
  const step = Math.max(1, Math.ceil((months.length - 1) / 4));
  months.forEach((m, i) => {
    const last = i === months.length - 1;
    if ((i % step === 0 && months.length - 1 - i >= step / 2) || last) {
      const anchor = i === 0 && months.length > 1 ? "start" : last && months.length > 1 ? "end" : "middle";
      chart.append(svg("text", { x: x(m), y: H - 10, class: "axis", "text-anchor": anchor }, m));
    }
  });
  const monthly = rows.filter((h) => h.kind !== "rescore" && CLASSES.includes(h.class));
  if (monthly.length) {
    chart.append(svg("polyline", { points: monthly.map((h) => `${x(h.month)},${y(h.class)}`).join(" "), class: "line" }));
    for (const h of monthly) chart.append(svg("circle", { cx: x(h.month), cy: y(h.class), r: 6, class: `dot class-${h.class}` }));
  }
  for (const h of rows.filter((r) => r.kind === "rescore" && CLASSES.includes(r.class))) {
    const cx = x(h.month), cy = y(h.class);
    chart.append(svg("polygon", { points: `${cx},${cy - 10} ${cx + 10},${cy} ${cx},${cy + 10} ${cx - 10},${cy}`, class: "rescore" }));
  }
  $("history-chart").replaceChildren(chart);
}

function drawReasons() {
  const r = state.report;
  const group = r.peer_group || {};
  const k = group.min_cell_count ?? 10;
  $("reasons-sub").textContent = group.suppressed
    ? t("peer_group_hidden", { k })
    : group.merchants ? t("peer_group", { n: group.merchants, sector: code("sector", group.sector) }) : "";
  const reasons = r.reasons || [];
  if (!reasons.length) {
    $("reasons").replaceChildren(el("li", {}, t("no_reasons")));
    return;
  }
  $("reasons").replaceChildren(...reasons.map((reason) => {
    const description = pick(reason, "description");
    const peer = reason.peer_suppressed || reason.peer_median === null || reason.peer_median === undefined
      ? el("span", { class: "hidden-peer" }, t("peer_hidden", { k }))
      : [number(reason.peer_median), reason.peer_count ? ` (${t("peer_of", { n: reason.peer_count })})` : ""];
    return el("li", { class: "reason" },
      el("p", { class: "reason-text" }, pick(reason)),
      description && description !== pick(reason) ? el("p", { class: "sub" }, description) : null,
      el("dl", { class: "facts compare" }, facts([[t("your_value"), el("strong", {}, number(reason.value))], [t("peer_median"), peer]])));
  }));
}

function drawAdvice() {
  const advice = state.report.advice || [];
  $("advice").replaceChildren(...(advice.length ? advice.map((a) => el("li", {}, pick(a))) : [el("li", {}, t("no_advice"))]));
}

function recordTitle(table, record) {
  const name = { complaints: "complaint", public_records: "public_record", loans: "loan" }[table];
  return `${t(name)} ${record.record_id}`;
}

function recordFacts(table, r) {
  if (table === "complaints") {
    return [
      [t("date"), day(r.date)], [t("source"), source(r.source)], [t("category"), code("category", r.category)],
      r.severity !== undefined && r.severity !== null ? [t("severity"), String(r.severity)] : null,
      [t("received_at"), day(r.received_at || r.date)],
      [t("status"), r.status === "resolved" || r.resolved_at ? t("resolved") : t("open")],
      r.resolved_at ? [t("resolved_at"), day(r.resolved_at)] : null,
    ];
  }
  if (table === "public_records") {
    const current = r.current ?? !r.removed_on;
    return [
      [t("date"), day(r.date)], [t("source"), source(r.source)], [t("record_type"), code("record_type", r.record_type)],
      [t("published_on"), day(r.published_on || r.date)],
      [t("status"), current ? t("current") : t("removed")],
      r.removed_on ? [t("removed_on"), day(r.removed_on)] : null,
      r.penalty_fen ? [t("penalty"), yuan(r.penalty_fen)] : null,
    ];
  }
  return [
    [t("date"), day(r.date)], [t("source"), source(r.source)], [t("product"), code("product", r.product)],
    [t("principal"), yuan(r.principal_fen)], [t("term"), t("term_months", { n: r.term_months ?? "–" })],
    [t("repayment"), [code("loan_status", r.status), r.days_past_due ? ` (${t("days_past_due", { n: r.days_past_due })})` : ""].join("")],
    [t("outstanding"), yuan(r.outstanding_fen)], [t("reported_on"), day(r.reported_on)],
  ];
}

function actionButton(label, title, target) {
  // the visible words first; the record it acts on follows for screen readers
  const button = el("button", { type: "button", class: "action" }, label, el("span", { class: "sr-only" }, `: ${title}`));
  button.addEventListener("click", () => openDialog(target, button));
  return button;
}

function drawRecords() {
  const records = state.report.records || {};
  for (const table of RECORD_TABLES) {
    const list = records[table] || [];
    $(`records-${table}`).replaceChildren(...(list.length ? list.map((r) => recordItem(table, r)) : [el("li", { class: "empty" }, t("no_records"))]));
  }
}

function recordItem(table, r) {
  const title = recordTitle(table, r);
  const headingId = safeId("rec", table, r.record_id);
  const item = el("li", { class: r.under_objection ? "record objected" : "record", "data-table": table, "data-record-id": r.record_id });
  item.append(el("h4", { id: headingId, tabindex: "-1" }, title));
  if (r.under_objection) {
    item.append(el("p", { class: "mark", "data-objection-id": r.objection_id || "" },
      el("strong", {}, t("under_objection")), r.objection_id ? ` · ${t("objection_no", { id: r.objection_id })}` : ""));
  }
  item.append(el("dl", { class: "facts" }, facts(recordFacts(table, r))));
  if (!r.under_objection) {
    const actions = el("div", { class: "actions" });
    actions.append(actionButton(t("object"), title, { kind: "objection", table, record_id: r.record_id, title, heading: headingId }));
    if (table === "public_records" && (r.current ?? !r.removed_on)) {
      actions.append(actionButton(t("repair"), title, { kind: "repair", table, record_id: r.record_id, title, heading: headingId }));
    }
    if (table === "loans" && r.performance_record_id) {
      const what = `${t("loan_performance")} ${r.record_id} (${day(r.reported_on)})`;
      actions.append(actionButton(t("object_repayment"), what,
        { kind: "objection", table: "loan_performance", record_id: r.performance_record_id, title: what, heading: headingId }));
    }
    item.append(actions);
  }
  return item;
}

function drawObjections() {
  const r = state.report;
  const all = r.objections || [];
  const open = all.filter((o) => o.status !== "resolved").length;
  $("objections-sub").textContent = all.length
    ? t("objections_sub", { n: all.length, open, marked: r.records_under_objection ?? open })
    : t("no_objections");
  $("objections").replaceChildren(...[...all].reverse().map((o) => {
    const status = o.status || (o.resolved_at ? "resolved" : o.overdue ? "overdue" : "received");
    const overdue = status === "overdue" || (status !== "resolved" && o.overdue);
    const late = status === "resolved" && o.overdue;
    const item = el("li", { class: overdue ? "record overdue" : "record", "data-objection-id": o.objection_id, "data-status": status });
    item.append(el("h3", { class: "h4" }, `${o.kind === "repair" ? t("repair_request") : t("objection")} ${o.objection_id}`));
    if (overdue) item.append(el("p", { class: "mark overdue-mark" }, el("strong", {}, t("overdue"))));
    item.append(el("dl", { class: "facts" }, facts([
      [t("record"), `${t(`record_kind_${o.table}`)} ${o.record_id}`],
      [t("status"), el("strong", {}, t(`st_${status}`))],
      [t("received_on"), day(o.received_at)],
      [t("due_by"), overdue || late ? [day(o.due_by), " ", el("strong", {}, `(${t(late ? "late" : "overdue")})`)] : day(o.due_by)],
      [t("reason"), o.reason || "–"],
      o.evidence ? [t("evidence"), o.evidence] : null,
      o.resolved_at ? [t("resolved_on"), day(o.resolved_at)] : null,
      o.outcome ? [t("outcome"), t(`out_${o.outcome}`)] : null,
      o.note ? [t("note_label"), o.note] : null,
    ])));
    return item;
  }));
}

function drawQueries() {
  const all = state.report.queries || [];
  $("queries-sub").textContent = all.length ? t("queries_sub", { n: all.length }) : t("no_queries");
  $("queries").replaceChildren(...all.map((q) =>
    el("li", { class: "record" }, `${day(q.at)} · ${q.by} · ${state.lang === "zh" ? q.zh : q.en}`)));
}

function drawAll() {
  if (!state.report) return;
  drawCurrent(); drawScale(); drawHistory(); drawReasons(); drawAdvice(); drawRecords(); drawObjections(); drawQueries();
  const colon = state.lang === "zh" ? "：" : ": ";
  $("foot").textContent = `${t("merchant")}${colon}${state.report.merchant_id} · ${t("generated")}${colon}${day(state.report.generated_at)}`;
}

/* -- the objection dialog ----------------------------------------------------------------------------- */
function openDialog(target, opener) {
  state.target = target;
  state.opener = opener;
  state.returnTo = null;
  const record = `${t(`record_kind_${target.table}`)} ${target.record_id}`;
  $("dialog-title").textContent = target.kind === "repair" ? t("dialog_repair", { record }) : t("dialog_object", { record });
  $("dialog-record").textContent = target.title;
  $("dialog-help").textContent = target.kind === "repair" ? t("dialog_help_repair") : t("dialog_help");
  $("reason").value = "";
  $("evidence").value = "";
  setFormError("");
  $("dialog-submit").disabled = false;
  $("object-dialog").showModal();
  $("reason").focus();
}

function setFormError(text) {
  $("form-error").textContent = text;
  if (text) $("reason").setAttribute("aria-invalid", $("reason").value.trim() ? "false" : "true");
  else $("reason").removeAttribute("aria-invalid");
}

function dialogClosed() {
  // focus goes back where it came from: the button, or (after a filed objection) the record it marked
  const back = (state.returnTo && $(state.returnTo)) || (state.opener && state.opener.isConnected ? state.opener : null);
  state.target = null;
  state.opener = null;
  state.returnTo = null;
  if (back) back.focus();
}

async function submitObjection() {
  if (state.busy || !state.target) return;
  const reason = $("reason").value.trim();
  const evidence = $("evidence").value.trim();
  if (!reason) {
    setFormError(t("need_reason"));
    $("reason").focus();
    return;
  }
  const target = state.target;
  state.busy = true;
  $("dialog-submit").disabled = true;
  setFormError("");
  $("form-error").textContent = t("sending");
  try {
    const objection = await api("objections", {
      method: "POST",
      body: { table: target.table, record_id: target.record_id, reason, evidence: evidence || null, kind: target.kind },
    });
    try {
      state.report = await api("report");
      drawAll();
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return signOut(err);
      $("report-error").textContent = words(err, "report");
    }
    state.returnTo = target.heading;
    $("object-dialog").close();
    say(t("filed", { id: objection.objection_id, due: day(objection.due_by) }));
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      $("object-dialog").close();
      return signOut(err);
    }
    setFormError(words(err, "record"));
    $("dialog-submit").disabled = false;
    $("reason").focus();
  } finally {
    state.busy = false;
    $("dialog-submit").disabled = false;
  }
}

/* -- signing in and out, language --------------------------------------------------------------------- */
function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.title = t("doc_title");
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-label]")) node.setAttribute("aria-label", t(node.dataset.i18nLabel));
  const other = state.lang === "zh" ? "en" : "zh-CN";
  $("lang").textContent = state.lang === "zh" ? "English" : "中文";
  $("lang").setAttribute("lang", other);
  drawAll();
  if ($("object-dialog").open && state.target) {
    const target = state.target;
    const record = `${t(`record_kind_${target.table}`)} ${target.record_id}`;
    $("dialog-title").textContent = target.kind === "repair" ? t("dialog_repair", { record }) : t("dialog_object", { record });
    $("dialog-help").textContent = target.kind === "repair" ? t("dialog_help_repair") : t("dialog_help");
  }
}

async function signIn(key) {
  sessionStorage.setItem(KEY_STORE, key);
  $("signin-error").textContent = "";
  say(t("loading"));
  document.body.dataset.ready = "false";
  try {
    state.report = await api("report");
  } catch (err) {
    return signOut(err);
  }
  $("signin").hidden = true;
  $("report").hidden = false;
  $("signout").hidden = false;
  $("report-error").textContent = "";
  drawAll();
  say(t("signed_in"));
  document.body.dataset.ready = "true";
  $("h-current").setAttribute("tabindex", "-1");
  $("h-current").focus();
}

function signOut(err) {
  sessionStorage.removeItem(KEY_STORE);
  state.report = null;
  if ($("object-dialog").open) $("object-dialog").close();
  $("report").hidden = true;
  $("signout").hidden = true;
  $("signin").hidden = false;
  for (const id of ["current-class", "current-facts", "scale", "history-chart", "history-table", "reasons", "advice",
    "records-complaints", "records-public_records", "records-loans", "objections", "queries"]) $(id).replaceChildren();
  $("signin-error").textContent = err ? words(err, "report") : "";
  if (err) $("key").setAttribute("aria-invalid", "true"); else $("key").removeAttribute("aria-invalid");
  if (!err) say(t("signed_out"));
  document.body.dataset.ready = err ? "error" : "signed-out";
  $("key").focus();
}

function start() {
  $("lang").addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    $("status").textContent = "";
    try { localStorage.setItem(LANG_STORE, state.lang); } catch { /* private mode: the choice lasts this page */ }
    applyLanguage();
  });
  $("signout").addEventListener("click", () => signOut(null));
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key").value.trim();
    $("key").value = "";
    if (key) signIn(key);
    else {
      $("signin-error").textContent = t("need_key");
      $("key").setAttribute("aria-invalid", "true");
      $("key").focus();
    }
  });
  $("object-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submitObjection();
  });
  $("dialog-cancel").addEventListener("click", () => $("object-dialog").close());
  $("object-dialog").addEventListener("close", dialogClosed);
  $("reason").addEventListener("input", () => { if ($("reason").value.trim()) setFormError(""); });
  applyLanguage();
  const saved = sessionStorage.getItem(KEY_STORE);
  if (saved) signIn(saved);
  else document.body.dataset.ready = "signed-out";
}

document.addEventListener("DOMContentLoaded", start);
