/* The life-service dynamic map (生活服务动态地图): a tab of the regulator dashboard.
   Reads GET /regulator/map (the measures, then one measure per region and month) with the helpers of
   dashboard.js (api, el, state, fillTable, ...), and draws the vendored boundaries (geo-provinces.json,
   geo-prefectures.json, see geo-README.md) as plain SVG. A suppressed region arrives as
   {"value": null, "status": "suppressed"} and is drawn hatched, with its own legend entry. */
"use strict";

const MAP_NS = "http://www.w3.org/2000/svg";
const MAP_BINS = ["#e3f2fd", "#90caf9", "#42a5f5", "#1e88e5", "#0d47a1"];
const MAP_DIVERGING = ["#c62828", "#ef9a9a", "#f5f5f5", "#a5d6a7", "#2e7d32"];
const MAP_GEO = { province: "geo-provinces.json", prefecture: "geo-prefectures.json" };
const SOURCE_NAMES = { class_history: ["信用风险分类", "Credit-risk classes"], consumption: ["消费", "Consumption"],
  inspections: ["检查", "Inspections"] };

const MT = {
  zh: {
    tab_classes: "风险分类", tab_map: "生活服务动态地图", measure: "指标", level: "区划层级", sector: "行业",
    month: "月份", province: "省份", prefecture: "地市", all: "全部行业", table_title: "各地区数值", region: "地区",
    value: "数值", merchants: "商户数", no_data: "无数据", not_built: "（未生成）",
    indicative: "边界示意，仅供监管看板使用，不是正式出版地图。",
    map_title: "{measure}，{month}", map_desc: "按{level}着色的中国地图：{measure}，{month}。各地区数值见右侧表格。",
    sub: "{level}；{sector}；颜色越深数值越高", sub_change: "{level}；{sector}；红色为下降，绿色为上升",
    hint_sector: "行业筛选仅适用于消费类指标。", hint_level: "该指标只按省份公布。",
    tip: "{region}：{value}", legend_sup: "<{k}：少于{k}家（或为保护其他单元格而隐藏），不显示",
  },
  en: {
    tab_classes: "Credit-risk classes", tab_map: "Life-service dynamic map", measure: "Measure", level: "Level",
    sector: "Sector", month: "Month", province: "Province", prefecture: "Prefecture", all: "All sectors",
    table_title: "Values by region", region: "Region", value: "Value", merchants: "Merchants", no_data: "no data",
    not_built: " (not built)",
    indicative: "Boundaries are indicative, for this supervision dashboard only; not a published map.",
    map_title: "{measure}, {month}", map_desc: "Map of China coloured by {level}: {measure}, {month}. The table beside "
      + "lists every region's value.",
    sub: "{level}; {sector}; darker is higher", sub_change: "{level}; {sector}; red falls, green rises",
    hint_sector: "The sector filter applies to the consumption measures only.",
    hint_level: "This measure is published by province only.",
    tip: "{region}: {value}", legend_sup: "<{k}: fewer than {k} merchants (or hidden to protect one), not shown",
  },
};

const mapState = { meta: null, data: null, geo: {}, active: false, timer: null, month: null };

function mt(name, vars = {}) {
  const text = MT[state.lang][name] ?? name;
  return text.replace(/\{(\w+)\}/g, (_, k) => (vars[k] ?? ""));
}

function svgNode(tag, attrs = {}, text) {
  const node = document.createElementNS(MAP_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

/* -- formatting and colour ----------------------------------------------------------------------------- */
function mapFormat(kind, v) {
  if (v === null || v === undefined) return "–";
  if (kind === "count") return fmt(Math.round(v));
  if (kind === "index") return v.toFixed(1);
  if (kind === "amount") return `${fmt(Math.round(v))} ${state.lang === "zh" ? "元" : "yuan"}`;
  if (kind === "change") return `${v > 0 ? "+" : ""}${(100 * v).toFixed(1)}%`;
  return pct(v, kind === "rate" ? 2 : 1);
}

function mapScale(d) {
  /* Five equal bins over the shown values (a change measure: symmetric around zero, red falling, green rising). */
  const kind = d.measure.kind;
  const range = d.range || { min: 0, max: 0 };
  let lo = range.min, hi = range.max;
  const palette = kind === "change" ? MAP_DIVERGING : MAP_BINS;
  if (kind === "change") { const m = Math.max(Math.abs(lo), Math.abs(hi)) || 0.01; lo = -m; hi = m; }
  const step = (hi - lo) / palette.length || 1;
  const colour = (v) => palette[Math.min(palette.length - 1, Math.max(0, Math.floor((v - lo) / step)))];
  const bins = palette.map((c, i) => ({ colour: c, from: lo + i * step, to: lo + (i + 1) * step }));
  return { colour, bins: hi > lo ? bins : [{ colour: palette[palette.length - 1], from: lo, to: hi }] };
}

/* -- geometry -------------------------------------------------------------------------------------------- */
async function loadGeo(level) {
  if (!mapState.geo[level]) {
    const response = await fetch(`/regulator/static/${MAP_GEO[level]}`);
    if (!response.ok) throw new ApiError(response.status, `${MAP_GEO[level]}: ${response.statusText}`);
    mapState.geo[level] = project(await response.json());
  }
  return mapState.geo[level];
}

function project(geo) {
  /* Equirectangular with x shrunk by cos(36°), China's middle latitude: simple, and close enough for a choropleth. */
  const k = Math.cos((36 * Math.PI) / 180), scale = 10;
  const xy = ([lon, lat]) => [(lon - 73) * k * scale, (54 - lat) * scale];
  const features = geo.features.map((f) => {
    const polygons = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
    const d = polygons.map((rings) => rings.map((ring) => "M" + ring.map((p) => xy(p).map((c) => c.toFixed(1)).join(","))
      .join("L") + "Z").join("")).join("");
    return { code: f.properties.code, name: f.properties.name, d };
  });
  return { features, width: Math.ceil(62 * k * scale), height: 37 * scale };
}

/* -- the tab ------------------------------------------------------------------------------------------- */
function showTab(map) {
  mapState.active = map;
  $("tab-map").setAttribute("aria-selected", String(map));
  $("tab-classes").setAttribute("aria-selected", String(!map));
  $("tab-map").tabIndex = map ? 0 : -1;
  $("tab-classes").tabIndex = map ? -1 : 0;
  $("view-map").hidden = !map;
  $("filters").hidden = map;
  document.querySelector("#board > .grid").hidden = map;
  if (map) guarded(mapState.meta ? loadMap : loadMapMeta);
}

async function loadMapMeta() {
  mapState.meta = await api("map");
  buildMapFilters();
  await loadMap();
}

function currentMeasure() {
  return mapState.meta.measures.find((m) => m.key === $("m-measure").value) || mapState.meta.measures[0];
}

function buildMapFilters() {
  const meta = mapState.meta;
  const select = $("m-measure");
  const previous = select.value;
  const groups = {};
  for (const m of meta.measures) (groups[m.source] ||= []).push(m);
  select.replaceChildren(...Object.entries(groups).map(([source, ms]) => {
    const group = el("optgroup", { label: (SOURCE_NAMES[source] || [source, source])[state.lang === "zh" ? 0 : 1] },
      ...ms.map((m) => el("option", { value: m.key }, lbl(m.label) + (m.available ? "" : mt("not_built")))));
    ms.forEach((m, i) => { if (!m.available) group.children[i].disabled = true; });
    return group;
  }));
  if (meta.measures.some((m) => m.key === previous && m.available)) select.value = previous;
  options($("m-level"), meta.levels.map((l) => [l, mt(l)]), true);
  options($("m-sector"), [["", mt("all")], ...meta.sectors.map((s) => [s.key, lbl(s.label)])], true);
  setSlider();
}

function monthsFor(measure) {
  /* consumption: months of sales; the others: months of the class history (the classes as of the 1st) */
  return measure.source === "consumption" ? mapState.meta.consumption_months : mapState.meta.months;
}

function setSlider() {
  const months = monthsFor(currentMeasure());
  const slider = $("m-month");
  const kept = months.indexOf(mapState.month);
  slider.max = String(Math.max(0, months.length - 1));
  slider.value = String(kept >= 0 ? kept : months.length - 1);  // the latest month until one is chosen
  syncMapFilters();
}

function syncMapFilters() {
  const m = currentMeasure();
  $("m-sector").disabled = !m.sectors;
  if (!m.sectors) $("m-sector").value = "";
  const prefecture = $("m-level").querySelector('option[value="prefecture"]');
  if (prefecture) prefecture.disabled = !m.levels.includes("prefecture");
  if (!m.levels.includes($("m-level").value)) $("m-level").value = m.levels[0];
  $("m-hint").textContent = m.levels.length < 2 ? mt("hint_level") : m.sectors ? "" : mt("hint_sector");
  const month = monthsFor(m)[Number($("m-month").value)] || "";
  mapState.month = month;
  $("m-month-out").value = month;
  $("m-month").setAttribute("aria-valuetext", month);
}

async function loadMap() {
  syncMapFilters();
  const month = mapState.month;
  const level = $("m-level").value || "province";
  const [data, geo] = await Promise.all([
    api("map", { measure: currentMeasure().key, month, level, sector: $("m-sector").value || null }),
    loadGeo(level),
  ]);
  mapState.data = data;
  drawMap(geo);
}

function drawMap(geo) {
  const d = mapState.data;
  if (!d || !geo) return;
  const kind = d.measure.kind;
  const scale = mapScale(d);
  const byCode = new Map(d.regions.map((r) => [r.code, r]));
  const names = new Map(geo.features.map((f) => [f.code, f.name]));
  const levelName = mt(d.level);
  const sectorName = d.sector ? lbl(d.sector.label) : mt("all");
  const title = mt("map_title", { measure: lbl(d.measure.label), month: d.month });
  $("map-title").textContent = title;
  $("map-sub").textContent = mt(kind === "change" ? "sub_change" : "sub", { level: levelName, sector: sectorName })
    + (d.note ? ` — ${lbl(d.note)}` : "");

  const svg = svgNode("svg", { viewBox: `0 0 ${geo.width} ${geo.height}`, role: "img", "aria-labelledby": "map-svg-title map-svg-desc",
    "data-measure": d.measure.key, "data-month": d.month, "data-level": d.level, "data-sector": d.sector ? d.sector.key : "" });
  svg.append(svgNode("title", { id: "map-svg-title" }, title),
    svgNode("desc", { id: "map-svg-desc" }, mt("map_desc", { level: levelName, measure: lbl(d.measure.label), month: d.month })));
  svg.append(hatch("map-hatch"));
  for (const f of geo.features) {
    const r = byCode.get(f.code);
    const status = r ? r.status : "no_data";
    const fill = status === "shown" ? scale.colour(r.value) : status === "suppressed" ? "url(#map-hatch)" : "#eceff1";
    const path = svgNode("path", { d: f.d, class: `region ${status === "no_data" ? "nodata" : status}`, fill,
      "data-code": f.code || "" });
    const text = regionText(r, f.name, kind);
    path.append(svgNode("title", {}, text));
    path.addEventListener("mouseenter", () => { $("map-tip").textContent = text; });
    svg.append(path);
  }
  $("map-canvas").replaceChildren(svg);
  drawLegend(scale, kind);
  drawMapTable(d, names, kind);
  document.body.dataset.mapReady = "true";
}

function hatch(id) {
  /* The suppressed regions' fill: red diagonal stripes on pale red, unlike any colour of the scale. */
  const pattern = svgNode("pattern", { id, patternUnits: "userSpaceOnUse", width: 6, height: 6, patternTransform: "rotate(45)" });
  pattern.append(svgNode("rect", { width: 6, height: 6, fill: "#fbe9e7" }),
    svgNode("line", { x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#c62828", "stroke-width": 1.6 }));
  const defs = svgNode("defs");
  defs.append(pattern);
  return defs;
}

function regionName(r, name) {
  if (!r) return name || "";
  return name && !lbl(r.label).includes(name) ? `${name} (${lbl(r.label)})` : lbl(r.label);
}

function regionText(r, name, kind) {
  const value = !r || r.status === "no_data" ? mt("no_data") : r.status === "suppressed" ? mark() : mapFormat(kind, r.value);
  return mt("tip", { region: regionName(r, name), value });
}

function swatch(fill) {
  const s = svgNode("svg", { viewBox: "0 0 18 12", "aria-hidden": "true" });
  if (fill === "hatch") {
    s.append(hatch("map-hatch-key"));
    fill = "url(#map-hatch-key)";
  }
  s.append(svgNode("rect", { x: 0.5, y: 0.5, width: 17, height: 11, fill, stroke: "#90a4ae" }));
  return s;
}

function drawLegend(scale, kind) {
  const k = mapState.meta ? mapState.meta.min_cell_count : 10;
  const items = scale.bins.map((b) => el("span", { class: "bin" }, swatch(b.colour),
    `${mapFormat(kind, b.from)} – ${mapFormat(kind, b.to)}`));
  items.push(el("span", { class: "legend-suppressed", id: "map-legend-suppressed" }, swatch("hatch"), mt("legend_sup", { k })));
  items.push(el("span", { class: "legend-nodata" }, swatch("#eceff1"), mt("no_data")));
  $("map-legend").replaceChildren(...items);
}

function drawMapTable(d, names, kind) {
  const rows = d.regions.map((r) => {
    const value = r.status === "suppressed" ? el("span", { class: "sup", title: mt("legend_sup", { k: d.min_cell_count }) }, mark())
      : r.status === "no_data" ? mt("no_data") : mapFormat(kind, r.value);
    return [regionName(r, names.get(r.code)), value, r.merchants === null ? "–" : fmt(r.merchants)];
  });
  fillTable($("table-map"), [mt("region"), `${lbl(d.measure.label)}`, mt("merchants")], rows);
  $("table-map").querySelectorAll("tbody tr").forEach((tr, i) => { tr.className = d.regions[i].status; });
}

function applyMapLanguage() {
  for (const node of document.querySelectorAll("[data-map-i18n]")) node.textContent = mt(node.dataset.mapI18n);
  if (mapState.meta) {
    buildMapFilters();
    const level = $("m-level").value || "province";
    if (mapState.data) drawMap(mapState.geo[level]);
  }
}

function mapStart() {
  $("tab-classes").addEventListener("click", () => showTab(false));
  $("tab-map").addEventListener("click", () => showTab(true));
  $("board").querySelector(".tabs").addEventListener("keydown", (event) => {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    const next = !mapState.active;
    showTab(next);
    $(next ? "tab-map" : "tab-classes").focus();
  });
  $("lang").addEventListener("click", applyMapLanguage);
  $("m-measure").addEventListener("change", () => { setSlider(); guarded(loadMap); });
  $("m-level").addEventListener("change", () => guarded(loadMap));
  $("m-sector").addEventListener("change", () => guarded(loadMap));
  $("m-month").addEventListener("input", () => {
    syncMapFilters();
    clearTimeout(mapState.timer);
    mapState.timer = setTimeout(() => guarded(loadMap), 120);
  });
  // signing in (again) shows the board: start on the class view, read the measures afresh when the tab opens
  new MutationObserver(() => {
    if ($("board").hidden) {
      mapState.meta = null;
      mapState.data = null;
      mapState.month = null;
      showTab(false);
    }
  }).observe($("board"), { attributes: true, attributeFilter: ["hidden"] });
  applyMapLanguage();
}

document.addEventListener("DOMContentLoaded", mapStart);
