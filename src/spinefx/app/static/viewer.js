// spinefx scan viewer: the whole scan in three planes with NiiVue (vendored, static/vendor/),
// the vertebra labels and their fracture probabilities as overlays. Radiological display:
// patient's right on screen left (axial, coronal), anterior on the left (sagittal).
// Without WebGL2 the viewer stays off and the page shows its PNG overview instead.
"use strict";
const ScanViewer = (() => {
  const LIBRARY = "/static/vendor/niivue.umd.js";
  const CT = 0, PROBABILITY = 1, LABELS = 2;  // order of the loaded volumes
  // Okabe-Ito colours, one per level in turn: neighbours always differ
  const LEVEL_COLOURS = [[230, 159, 0], [86, 180, 233], [0, 158, 115], [240, 228, 66],
    [0, 114, 178], [213, 94, 0], [204, 121, 167]];
  // fracture probability: green (low) - yellow - red (high); 0 = outside every vertebra
  const PROBABILITY_CMAP = {
    R: [0, 47, 240, 217], G: [0, 158, 200, 40], B: [0, 90, 0, 30], A: [0, 170, 200, 235],
    I: [0, 1, 128, 255],
  };
  const el = document.getElementById("viewer");
  let nv = null, scan = null, onPick = null, library = null;
  const $ = (sel) => el.querySelector(sel);

  function supported() {
    try { return !!document.createElement("canvas").getContext("webgl2"); } catch (e) { return false; }
  }

  function loadLibrary() {
    if (!library) library = new Promise((resolve, reject) => {
      const s = Object.assign(document.createElement("script"), { src: LIBRARY, async: true });
      s.onload = () => resolve(window.niivue);
      s.onerror = () => { library = null; reject(new Error("the viewer library did not load")); };
      document.head.appendChild(s);
    });
    return library;
  }

  function setState(state, message = "") {
    el.dataset.state = state;  // loading | ready | error (tests and CSS read it)
    $("#viewer-loading").hidden = state !== "loading";
    $("#viewer-loading-text").textContent = message;
    const err = $("#viewer-error");
    err.hidden = state !== "error";
    err.textContent = state === "error" ? message : "";
  }

  async function instance() {
    if (nv) return nv;
    const lib = await loadLibrary();
    nv = new lib.Niivue({
      isRadiologicalConvention: true,  // right on screen left in axial and coronal
      sagittalNoseLeft: true,          // anterior on the left in sagittal
      isOrientationTextVisible: true,
      showAllOrientationMarkers: true,
      multiplanarShowRender: lib.SHOW_RENDER.NEVER,
      multiplanarLayout: lib.MULTIPLANAR_TYPE.ROW,
      isColorbar: true,
      atlasOutline: 1,  // label maps drawn as outlines: the probability colour shows inside
      crosshairColor: [0.2, 0.9, 1.0, 0.6],
      backColor: [0, 0, 0, 1],
      dragMode: lib.DRAG_MODE.contrast,  // right drag: window/level
      loadingText: "loading the scan...",
      logLevel: "error",
    });
    await nv.attachToCanvas($("#viewer-canvas"));
    nv.addColormap("spinefx_fracture", PROBABILITY_CMAP);
    nv.setSliceType(nv.sliceTypeMultiplanar);
    nv.onLocationChange = showLocation;
    nv.onIntensityChange = (vol) => { if (vol === nv.volumes[CT]) showWindow(); };
    const canvas = $("#viewer-canvas");
    let down = null;  // a click opens a vertebra; a drag (crosshair, window) does not
    canvas.addEventListener("pointerdown", (ev) => { down = [ev.clientX, ev.clientY, ev.button]; });
    canvas.addEventListener("pointerup", (ev) => {
      if (!down || down[2] !== 0 || Math.hypot(ev.clientX - down[0], ev.clientY - down[1]) > 4) return;
      down = null;
      setTimeout(pickAtCrosshair, 0);  // after NiiVue moved the crosshair to the click
    });
    return nv;
  }

  function sortedLabels(levels) { return Object.keys(levels).map(Number).sort((a, b) => a - b); }

  // The outline colour of a vertebra in the viewer (CSS), for the table's swatches.
  function levelColour(summary, label) {
    const n = sortedLabels(summary.viewer.levels).indexOf(label);
    return n < 0 ? null : `rgb(${LEVEL_COLOURS[n % LEVEL_COLOURS.length].join(",")})`;
  }

  function labelLut(levels) {
    const cm = { R: [0], G: [0], B: [0], A: [0], I: [0], labels: [""] };
    sortedLabels(levels).forEach((label, n) => {
      const [r, g, b] = LEVEL_COLOURS[n % LEVEL_COLOURS.length];
      cm.R.push(r); cm.G.push(g); cm.B.push(b); cm.A.push(0); cm.I.push(label);
      cm.labels.push(levels[String(label)]);
    });
    return cm;
  }

  // Load a scan's volumes (summary: the app's /api/scans answer); pick(label) opens a vertebra.
  async function show(summary, { pick, focus } = {}) {
    scan = summary;
    onPick = pick;
    el.hidden = false;
    setState("loading", "Loading the scan and its overlays...");
    try {
      const viewer = await instance();
      const urls = summary.viewer.volumes;
      const w = currentWindow();
      await viewer.loadVolumes([
        { url: urls.ct, name: "ct.nii.gz", colormap: "gray", cal_min: w.level - w.width / 2,
          cal_max: w.level + w.width / 2, trustCalMinMax: false, colorbarVisible: false },
        { url: urls.probability, name: "probability.nii.gz", colormap: "spinefx_fracture",
          cal_min: 0, cal_max: 1, opacity: Number($("#opacity-probability").value) },
        { url: urls.labels, name: "labels.nii.gz", opacity: Number($("#opacity-labels").value),
          colorbarVisible: false },
      ]);
      if (scan !== summary) return;  // another scan was opened meanwhile
      viewer.volumes[LABELS].setColormapLabel(labelLut(summary.viewer.levels));
      setWindow(w.width, w.level);
      $("#viewer-source").textContent = summary.viewer.label_source === "vertebra mask"
        ? "vertebra labels from the uploaded mask"
        : `vertebra labels: spheres (${summary.viewer.sphere_radius_mm} mm) at the centroids`;
      setState("ready");
      if (focus !== undefined) goTo(focus); else showLocation();
    } catch (err) {
      if (scan === summary) setState("error", `The viewer could not load this scan: ${err.message}`);
      throw err;
    }
  }

  function currentWindow() {
    return { width: Number($("#window-width").value), level: Number($("#window-level").value) };
  }

  function setWindow(width, level) {
    $("#window-width").value = width;
    $("#window-level").value = level;
    if (!nv || !nv.volumes.length || !(width > 0)) return;
    const ct = nv.volumes[CT];
    ct.cal_min = level - width / 2;
    ct.cal_max = level + width / 2;
    nv.updateGLVolume();
    showWindow();
  }

  function showWindow() {
    const ct = nv.volumes[CT];
    el.dataset.calMin = ct.cal_min;
    el.dataset.calMax = ct.cal_max;
    $("#window-width").value = Math.round(ct.cal_max - ct.cal_min);
    $("#window-level").value = Math.round((ct.cal_max + ct.cal_min) / 2);
    el.querySelectorAll("[data-window]").forEach((b) => {
      const [w, l] = b.dataset.window.split(",").map(Number);
      b.classList.toggle("on", Math.abs(ct.cal_max - ct.cal_min - w) < 1 &&
        Math.abs((ct.cal_max + ct.cal_min) / 2 - l) < 1);
    });
  }

  function labelAt(mm) {
    const vol = nv.volumes[LABELS];
    const vox = vol.mm2vox([mm[0], mm[1], mm[2]]);
    const dims = vol.dimsRAS;
    if (vox.some((v, i) => v < 0 || v >= dims[i + 1])) return 0;
    return Math.round(vol.getValue(vox[0], vox[1], vox[2]));
  }

  function crosshairMM() { return Array.from(nv.frac2mm(nv.scene.crosshairPos)).slice(0, 3); }

  // The scan's own voxel index of a world point (the affine's inverse from the server).
  function scanVoxel(mm) {
    return scan.viewer.world_to_voxel.slice(0, 3).map((row) =>
      Math.round(row[0] * mm[0] + row[1] * mm[1] + row[2] * mm[2] + row[3]));
  }

  function vertebra(label) { return scan.vertebrae.find((v) => v.label === label); }

  function describe(label) {
    if (!label) return "";
    const name = scan.viewer.levels[String(label)] || `label ${label}`;
    const v = vertebra(label);
    if (!v) return `${name} (not classified: the classifier covers T1-L6)`;
    if (!v.assessable) return `${name}: not assessable`;
    return `${name}: fracture probability ${v.probability.toFixed(2)}`;
  }

  function showLocation() {
    if (!nv || !nv.volumes.length) return;
    const mm = crosshairMM();
    const vox = scanVoxel(mm);
    const ct = nv.volumes[CT];
    const rasVox = ct.mm2vox(mm);
    const hu = Math.round(ct.getValue(rasVox[0], rasVox[1], rasVox[2]));
    const label = labelAt(mm);
    el.dataset.vox = vox.join(",");
    el.dataset.mm = mm.map((v) => v.toFixed(1)).join(",");
    el.dataset.label = label;
    const side = (v, pos, neg) => `${v >= 0 ? pos : neg} ${Math.abs(v).toFixed(1)}`;
    $("#viewer-position").textContent =
      `${side(mm[0], "R", "L")}  ${side(mm[1], "A", "P")}  ${side(mm[2], "S", "I")} mm` +
      ` · voxel (${vox.join(", ")}) of ${scan.shape.join(" x ")} · ${hu} HU` +
      (label ? ` · ${describe(label)}` : "");
  }

  function pickAtCrosshair() {
    if (!nv || !nv.volumes.length) return;
    showLocation();
    const label = labelAt(crosshairMM());
    if (label && vertebra(label) && onPick) {
      onPick(label);
      $("#viewer-position").append(" · ", Object.assign(document.createElement("a"),
        { href: "#panel", textContent: "concept panel below" }));
    }
  }

  // Put the crosshair on a vertebra's centroid (a row chosen in the table).
  function goTo(label) {
    const v = scan && vertebra(label);
    if (!nv || !nv.volumes.length || !v) return;
    nv.scene.crosshairPos = nv.mm2frac(v.centroid_mm);
    nv.drawScene();
    showLocation();
  }

  function setOpacity(which, value) {
    if (nv && nv.volumes.length) nv.setOpacity(which === "labels" ? LABELS : PROBABILITY, value);
  }

  el.querySelectorAll("[data-window]").forEach((b) => b.addEventListener("click", () => {
    const [w, l] = b.dataset.window.split(",").map(Number);
    setWindow(w, l);
  }));
  ["#window-width", "#window-level"].forEach((id) => $(id).addEventListener("change", () => {
    const w = currentWindow();
    setWindow(w.width, w.level);
  }));
  ["probability", "labels"].forEach((which) => $(`#opacity-${which}`).addEventListener("input",
    (ev) => setOpacity(which, Number(ev.target.value))));

  return { supported, show, goTo, setWindow, levelColour, get niivue() { return nv; } };
})();
window.spinefxViewer = ScanViewer;  // state for tests and the console: spinefxViewer.niivue
