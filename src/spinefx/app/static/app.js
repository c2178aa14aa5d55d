// spinefx concept visualisation page: vanilla JS over the app's JSON/PNG API.
"use strict";
const $ = (sel, root = document) => root.querySelector(sel);
const state = { scanId: null, label: null, panel: null, plane: "sagittal", index: 0 };

function showError(msg, where = "#error") {
  const box = $(where);
  box.textContent = msg;
  box.hidden = !msg;
}
function status(msg) { $("#status").textContent = msg || ""; }

// State-changing requests carry the page's per-session token (the server refuses them without).
const TOKEN = document.querySelector('meta[name="spinefx-token"]').content;

async function request(url, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if ((options.method || "GET") !== "GET") headers["X-Spinefx-Token"] = TOKEN;
  const resp = await fetch(url, Object.assign({}, options, { headers }));
  if (!resp.ok) {
    let detail = resp.statusText;
    try { detail = (await resp.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return resp;
}
async function api(url, options = {}) { return (await request(url, options)).json(); }

function download(blob, name) {
  const a = Object.assign(document.createElement("a"), { href: URL.createObjectURL(blob), download: name });
  document.body.appendChild(a); a.click(); a.remove();
}

async function analyse(promiseFactory, label) {
  showError("");
  status(`Analysing ${label}... (patch extraction and classification)`);
  document.querySelectorAll("button").forEach((b) => (b.disabled = true));
  try {
    const summary = await promiseFactory();
    showScan(summary);
    status("");
  } catch (err) {
    status("");
    showError(err.message);
  } finally {
    document.querySelectorAll("button").forEach((b) => (b.disabled = false));
  }
}

$("#upload-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const form = new FormData();
  const scan = $("#scan-file").files[0];
  if (!scan) { showError("Choose a CT file first."); return; }
  form.append("scan", scan);
  const ctd = $("#ctd-file").files[0];
  if (ctd) form.append("centroids", ctd);
  const mask = $("#mask-file").files[0];
  if (mask) { form.append("mask", mask); form.append("mask_numbering", $("#mask-numbering").value); }
  analyse(() => api("/api/scans", { method: "POST", body: form }), scan.name);
});
document.querySelectorAll("button.example").forEach((btn) =>
  btn.addEventListener("click", () =>
    analyse(() => api(`/api/examples/${btn.dataset.name}`, { method: "POST" }), btn.dataset.name)));

function showScan(s) {
  state.scanId = s.scan_id;
  $("#results").hidden = false;
  $("#scan-name").textContent = s.name;
  $("#scan-meta").textContent =
    `Grid ${s.shape.join(" x ")} voxels, ${s.spacing_mm.join(" x ")} mm. Decision threshold ` +
    `${s.decision_threshold.toFixed(2)}. Centroids ${s.centroid_source}.`;
  const notes = $("#notes");
  notes.replaceChildren(...s.notes.map((n) => Object.assign(document.createElement("li"), { textContent: n })));
  const body = $("#vertebra-table tbody");
  body.replaceChildren();
  const hasMorph = s.vertebrae.some((v) => v.morphometry);
  $("#morph-head").hidden = !hasMorph;
  for (const v of s.vertebrae) {
    const tr = document.createElement("tr");
    tr.className = !v.assessable ? "na" : v.flagged ? "fx" : "ok";
    tr.dataset.label = v.label;
    const pct = Math.round(v.probability * 100);
    tr.innerHTML = `<td></td><td class="prob"><span class="bar"><i style="width:${pct}%"></i></span><span class="p"></span></td><td><span class="badge"></span></td>`;
    tr.cells[0].textContent = v.level;
    $(".p", tr).textContent = v.probability.toFixed(2);
    const badge = $(".badge", tr);
    badge.classList.add(!v.assessable ? "na" : v.flagged ? "fx" : "ok");
    badge.textContent = !v.assessable ? "not assessable" : v.flagged ? "fracture" : "no fracture";
    if (!v.assessable) badge.title = v.note;
    const morph = tr.insertCell();  // the mask's morphometry beside the probability
    const m = v.morphometry;
    morph.className = "morph";
    morph.hidden = !hasMorph;
    morph.textContent = !m ? (hasMorph ? "not measured" : "")
      : `${m.middle_height_mm} mm (Hm), loss ${Math.round(m.height_loss * 100)} %, ` +
        (m.morph_grade === null ? (m.morph_note || "not graded") : `grade ${m.morph_grade}${m.morph_shape ? " " + m.morph_shape : ""}`);
    tr.addEventListener("click", () => selectVertebra(v.label));
    body.appendChild(tr);
  }
  $("#panel").hidden = true;
  loadDraft();
  const first = s.vertebrae.filter((v) => v.flagged)[0] || s.vertebrae.slice().sort((a, b) => b.probability - a.probability)[0];
  showViewer(s, first);
  if (first && s.has_atlas) selectVertebra(first.label, { fromViewer: true });
}

// The three-plane viewer when the browser has WebGL2, else (or when it fails) the PNG overview.
function showViewer(s, first) {
  const fallback = () => {
    $("#overview-fig").hidden = false;
    $("#overview").src = `/api/scans/${s.scan_id}/overview.png`;
  };
  $("#overview-fig").hidden = true;
  $("#no-webgl").hidden = ScanViewer.supported();
  if (!ScanViewer.supported()) { $("#viewer").hidden = true; fallback(); return; }
  document.querySelectorAll("#vertebra-table tbody tr").forEach((tr) => {
    const colour = ScanViewer.levelColour(s, Number(tr.dataset.label));
    if (colour) tr.cells[0].prepend(Object.assign(document.createElement("span"),
      { className: "swatch", title: "outline colour in the viewer", style: `border-color: ${colour}` }));
  });
  ScanViewer.show(s, {
    pick: (label) => selectVertebra(label, { fromViewer: true }),
    focus: first ? first.label : undefined,
  }).catch(fallback);
}

async function selectVertebra(label, { fromViewer = false } = {}) {
  state.label = label;
  if (!fromViewer) ScanViewer.goTo(label);
  document.querySelectorAll("#vertebra-table tbody tr").forEach((tr) =>
    tr.classList.toggle("selected", Number(tr.dataset.label) === label));
  $("#panel").hidden = false;
  showError("", "#panel-error");
  $("#panel-title").textContent = "loading...";
  try {
    const p = await api(`/api/scans/${state.scanId}/vertebrae/${label}/panel`);
    state.panel = p;
    $("#panel-body").hidden = false;
    $("#panel-title").textContent =
      `${p.level}: probability ${p.probability.toFixed(2)} (${!p.assessable ? "not assessable" : p.flagged ? "fracture" : "no fracture"}), layer ${p.layer}`;
    renderUnits(p);
    setPlane(state.plane);
  } catch (err) {
    $("#panel-title").textContent = "";
    $("#panel-body").hidden = true;
    showError(err.message, "#panel-error");
  }
}

function sliceUrl(layer, unit) {
  const u = unit === undefined ? "" : `&unit=${unit}`;
  return `/api/scans/${state.scanId}/vertebrae/${state.label}/slice.png?plane=${state.plane}&index=${state.index}&layer=${layer}${u}`;
}

function refreshImages() {
  $("#slice").value = state.index;
  const axis = { sagittal: "x", coronal: "y", axial: "z" }[state.plane];
  const mm = state.panel.positions_mm[state.plane][state.index];
  $("#slice-label").textContent = `${state.index + 1} / ${state.panel.slices[state.plane]} (${axis} = ${mm.toFixed(1)} mm)`;
  $("#ct-img").src = sliceUrl("ct");
  $("#gradcam-fig").hidden = !state.panel.has_gradcam;
  if (state.panel.has_gradcam) $("#gradcam-img").src = sliceUrl("gradcam");
  document.querySelectorAll("#units .unit").forEach((el) => {
    $(".unit-map", el).src = sliceUrl("unit", el.dataset.unit);
  });
}

function setPlane(plane) {
  state.plane = plane;
  document.querySelectorAll("#plane-seg button").forEach((b) => b.classList.toggle("on", b.dataset.plane === plane));
  $("#slice").max = state.panel.slices[plane] - 1;
  state.index = state.panel.start[plane];
  refreshImages();
}
document.querySelectorAll("#plane-seg button").forEach((b) => b.addEventListener("click", () => setPlane(b.dataset.plane)));
$("#slice").addEventListener("input", (ev) => { state.index = Number(ev.target.value); refreshImages(); });

function renderConcept(el, c) {
  const label = $(".concept-label", el);
  label.classList.toggle("none", !(c && c.label));
  label.textContent = c && c.label ? c.label : "no expert label yet";
  const ranks = $(".ranks", el);
  ranks.replaceChildren();
  const names = { tp: "true positives", fp: "false positives", tn: "true negatives" };
  const total = state.panel && state.panel.n_units ? ` of ${state.panel.n_units}` : "";
  if (c) for (const [k, r] of Object.entries(c.ranks)) {
    const frac = c.correlations && k in c.correlations ? `, enabled in ${Math.round(100 * c.correlations[k])}%` : "";
    ranks.appendChild(Object.assign(document.createElement("span"),
      { textContent: `${names[k] || k}: rank ${r}${total}${frac}`, title: "correlation rank (1 = most often enabled)" }));
  }
  const tbody = $(".scores tbody", el);
  tbody.replaceChildren();
  const scores = (c ? c.concept_scores : []).filter((s) => s.iou > 0);
  for (const s of scores) {
    const tr = document.createElement("tr");
    tr.append(Object.assign(document.createElement("td"), { textContent: s.name }),
              Object.assign(document.createElement("td"), { textContent: s.iou.toFixed(3) }));
    tbody.appendChild(tr);
  }
  $(".scores", el).hidden = !scores.length;
  $(".no-scores", el).hidden = !(c && c.concept_scores.length && !scores.length);
  $(".explanation", el).textContent = c ? c.explanation : "This unit is not in the concept atlas.";
  const form = $(".edit-form", el);
  form.label.value = c ? c.label : "";
  form.explanation.value = c ? c.explanation : "";
}

function renderUnits(p) {
  const box = $("#units");
  box.replaceChildren();
  for (const u of p.units) {
    const el = $("#unit-template").content.firstElementChild.cloneNode(true);
    el.dataset.unit = u.unit;
    $(".rank", el).textContent = `#${u.rank}`;
    $(".unit-name", el).textContent = `unit ${u.unit}`;
    $(".rk", el).textContent = `r = ${u.relevance.toPrecision(3)}, threshold ${u.threshold.toPrecision(3)}`;
    const c = u.concept;
    if (c && c.has_collage) $(".collage", el).src = `/api/units/${u.unit}/collage.png`;
    else $(".collage-fig", el).hidden = true;
    renderConcept(el, c);
    $(".peak", el).addEventListener("click", () => { state.index = u.peak[state.plane]; refreshImages(); });
    $(".edit-form", el).addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = ev.target;
      try {
        const updated = await api(`/api/units/${u.unit}`, {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ label: f.label.value, explanation: f.explanation.value }),
        });
        renderConcept(el, updated);
        $(".saved", el).textContent = "saved to the atlas (previous version kept)";
        loadDraft();
      } catch (err) { $(".saved", el).textContent = ""; showError(err.message, "#panel-error"); }
    });
    box.appendChild(el);
  }
}

async function loadDraft() {
  $("#report").hidden = false;
  try {
    const d = await api(`/api/scans/${state.scanId}/draft`);
    $("#findings").value = d.text;
  } catch (err) { $("#findings").value = `(draft unavailable: ${err.message})`; }
}
$("#report-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = new FormData();
  body.append("findings", $("#findings").value);
  try {
    const resp = await request(`/api/scans/${state.scanId}/report.html`, { method: "POST", body });
    const name = /filename="([^"]+)"/.exec(resp.headers.get("Content-Disposition") || "");
    download(await resp.blob(), name ? name[1] : "spinefx-report.html");
  } catch (err) { showError(err.message); }
});
$("#download-txt").addEventListener("click", () => {
  download(new Blob([$("#findings").value], { type: "text/plain" }), "spinefx-draft-findings.txt");
});
