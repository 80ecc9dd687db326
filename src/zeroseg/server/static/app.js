// zeroseg annotation page: plain JS modules, no build step.
//
// One `state` object holds what is on screen; `draw()` paints the overlay canvas from it and the
// render* functions fill the side panels. Masks arrive as compressed COCO RLE and are decoded here.
// Test hooks: data-* attributes on <body> (ready, imageId, predictions, candidates, maskPixels,
// annotations, busy, clickMs = click to mask drawn, drawMs = decode and draw).

const $ = (id) => document.getElementById(id);
const PAGE = 100;
const PALETTE = ["#e5484d", "#f5a524", "#4cc38a", "#3e8ed0", "#a66cff", "#ff6ac1", "#12b5b0", "#c4d94a"];
const CANDIDATE_COLOR = "#39c0ed";

const state = {
  token: null,
  author: "",
  info: null,
  page: { offset: 0, total: 0, images: [] },
  index: -1, // position of the open image in the dataset
  image: null, // ImageOut of the open image
  bitmap: null,
  annotations: [], // AnnotationOut[] of the open image
  selected: null, // id of the selected annotation
  session: newSession(),
  seq: 0, // prediction counter: answers to older clicks are dropped
  predictions: 0, // predictions drawn so far
  drag: null,
  busy: false,
};

function newSession(editing = null) {
  // The prompt being built: points [[x, y, label]], a box, the candidates of the last prediction.
  return { points: [], box: null, candidates: [], chosen: 0, editing };
}

// --- server ---------------------------------------------------------------------------------
async function api(path, { method = "GET", json, form, blob = false } = {}) {
  const headers = {};
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (/^[\x20-\x7e]+$/.test(state.author)) headers["X-Author"] = state.author;
  let body = form;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  const response = await fetch(path, { method, headers, body });
  if (response.status === 401) askToken();
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const error = await response.json();
      detail = typeof error.detail === "string" ? error.detail : JSON.stringify(error.detail);
    } catch { /* not JSON: keep the status text */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return blob ? response.blob() : response.json();
}

function askToken() {
  if (askToken.asked) return;
  askToken.asked = true;
  const token = prompt("This server needs an access token:");
  if (token) {
    sessionStorage.setItem("zeroseg.token", token);
    location.reload();
  }
}

function say(text, error = false) {
  const line = $("message");
  line.textContent = text;
  line.classList.toggle("error", error);
}

function fail(err) {
  console.error(err);
  say(err.message || String(err), true);
  hook({ busy: "0" });
}

function run(action) {
  Promise.resolve().then(action).catch(fail);
}

function hook(values) {
  Object.assign(document.body.dataset, values);
}

// --- masks ----------------------------------------------------------------------------------
function rleRuns(counts) {
  // pycocotools' compressed counts: 5-bit groups (char - 48), 0x20 = more follow, 0x10 = negative;
  // from the third run on, each value is a delta to the run two places back.
  const runs = [];
  let p = 0;
  while (p < counts.length) {
    let value = 0;
    let scale = 1;
    let more = true;
    while (more) {
      const c = counts.charCodeAt(p++) - 48;
      value += (c & 0x1f) * scale;
      scale *= 32;
      more = (c & 0x20) !== 0;
      if (!more && c & 0x10) value -= scale;
    }
    if (runs.length > 2) value += runs[runs.length - 2];
    runs.push(value);
  }
  return runs;
}

function decodeRle(rle) {
  // -> {x, y, w, h, area, mask}: the mask cropped to its box, row-major, 1 = inside.
  const [height, width] = rle.size;
  const runs = rleRuns(rle.counts);
  let x0 = width, y0 = height, x1 = -1, y1 = -1, area = 0, pos = 0;
  for (let i = 0; i < runs.length; pos += runs[i], i++) {
    if (i % 2 === 0 || runs[i] === 0) continue;
    const first = pos, last = pos + runs[i] - 1;
    const c0 = Math.floor(first / height), c1 = Math.floor(last / height);
    x0 = Math.min(x0, c0);
    x1 = Math.max(x1, c1);
    y0 = Math.min(y0, c0 === c1 ? first % height : 0);
    y1 = Math.max(y1, c0 === c1 ? last % height : height - 1);
    area += runs[i];
  }
  if (area === 0) return { x: 0, y: 0, w: 0, h: 0, area, mask: new Uint8Array(0) };
  const w = x1 - x0 + 1, h = y1 - y0 + 1;
  const mask = new Uint8Array(w * h);
  pos = 0;
  for (let i = 0; i < runs.length; pos += runs[i], i++) {
    if (i % 2 === 0) continue;
    let col = Math.floor(pos / height), row = pos % height;
    for (let n = 0; n < runs[i]; n++) {
      mask[(row - y0) * w + (col - x0)] = 1;
      if (++row === height) { row = 0; col++; }
    }
  }
  return { x: x0, y: y0, w, h, area, mask };
}

function rgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function paintMask(decoded, color, style) {
  // A canvas of the mask's box: translucent fill, opaque outline. Proposals are hatched with a
  // dashed outline; the selected mask and candidates are filled more strongly.
  const { w, h, mask } = decoded;
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(w, 1);
  canvas.height = Math.max(h, 1);
  if (!w) return canvas;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(w, h);
  const px = image.data;
  const [r, g, b] = rgb(color);
  const fill = { stored: 90, selected: 140, candidate: 100, proposal: 0 }[style];
  const inside = (x, y) => x >= 0 && y >= 0 && x < w && y < h && mask[y * w + x] === 1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!mask[y * w + x]) continue;
      const edge = !inside(x - 1, y) || !inside(x + 1, y) || !inside(x, y - 1) || !inside(x, y + 1);
      let alpha = fill;
      if (style === "proposal") alpha = ((x + y) >> 2) % 2 ? 70 : 20;
      if (edge) alpha = style === "proposal" && ((x + y) >> 2) % 2 ? 0 : 255;
      const i = (y * w + x) * 4;
      px[i] = r; px[i + 1] = g; px[i + 2] = b; px[i + 3] = alpha;
    }
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}

const decodedCache = new Map(); // "id:updated_at" -> decoded mask
const paintedCache = new Map(); // "id:updated_at:style" -> canvas

function cached(cache, key, make, limit = 500) {
  let value = cache.get(key);
  if (value === undefined) {
    if (cache.size >= limit) cache.delete(cache.keys().next().value);
    value = make();
    cache.set(key, value);
  }
  return value;
}

function decodedOf(annotation) {
  return cached(decodedCache, `${annotation.id}:${annotation.updated_at}`, () => decodeRle(annotation.rle));
}

function colorOf(annotation) {
  return PALETTE[annotation.id % PALETTE.length];
}

function styleOf(annotation) {
  if (annotation.status === "proposed") return "proposal";
  return annotation.id === state.selected ? "selected" : "stored";
}

// --- drawing --------------------------------------------------------------------------------
const overlay = $("overlay");

const MAX_ZOOM = 4;

function fit() {
  // Show the image as large as the viewer allows (small images up to MAX_ZOOM times).
  const canvas = $("image-canvas");
  const box = $("viewer").getBoundingClientRect();
  const width = box.width - 20;
  const height = box.height - $("keys").offsetHeight - 30;
  const zoom = Math.min(width / canvas.width, height / canvas.height, MAX_ZOOM);
  for (const c of [canvas, overlay]) {
    c.style.width = `${Math.floor(canvas.width * zoom)}px`;
    c.style.height = `${Math.floor(canvas.height * zoom)}px`;
  }
}

function displayScale() {
  // Image pixels per screen pixel, so that points and text keep their on-screen size.
  const shown = overlay.getBoundingClientRect().width;
  return shown ? overlay.width / shown : 1;
}

function visibleAnnotations() {
  const s = state.session;
  return state.annotations.filter(
    (a) => a.status !== "rejected" && !(s.editing === a.id && s.candidates.length),
  );
}

function draw() {
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  if (!state.image) return;
  const scale = displayScale();
  const shown = visibleAnnotations();
  for (const a of shown) {
    const decoded = decodedOf(a);
    const style = styleOf(a);
    const canvas = cached(paintedCache, `${a.id}:${a.updated_at}:${style}`, () => paintMask(decoded, colorOf(a), style));
    ctx.drawImage(canvas, decoded.x, decoded.y);
  }
  const candidate = state.session.candidates[state.session.chosen];
  if (candidate) {
    const decoded = cached(decodedCache, candidate.id, () => decodeRle(candidate.rle));
    const canvas = cached(paintedCache, candidate.id, () => paintMask(decoded, CANDIDATE_COLOR, "candidate"));
    ctx.drawImage(canvas, decoded.x, decoded.y);
    hook({ maskPixels: decoded.area });
  } else {
    hook({ maskPixels: 0 });
  }
  for (const a of shown) if (a.status === "accepted" || a.id === state.selected) drawCaption(ctx, a, scale);
  drawPrompts(ctx, scale);
}

function drawCaption(ctx, annotation, scale) {
  const { x, y, area } = decodedOf(annotation);
  if (!area) return;
  const text = `${annotation.label ?? "#" + annotation.id} · ${annotation.author ?? annotation.source}`;
  const size = Math.round(13 * scale);
  ctx.font = `${size}px system-ui, sans-serif`;
  const width = ctx.measureText(text).width + size * 0.6;
  const top = Math.max(0, y - size * 1.4);
  ctx.fillStyle = "rgba(0, 0, 0, 0.65)";
  ctx.fillRect(x, top, width, size * 1.4);
  ctx.fillStyle = colorOf(annotation);
  ctx.fillText(text, x + size * 0.3, top + size * 1.05);
}

function drawPrompts(ctx, scale) {
  const { points, box } = state.session;
  ctx.lineWidth = 2 * scale;
  for (const [x, y, label] of points) {
    ctx.beginPath();
    ctx.arc(x, y, 6 * scale, 0, 2 * Math.PI);
    ctx.fillStyle = label ? "#4cc38a" : "#e5484d";
    ctx.fill();
    ctx.strokeStyle = "#fff";
    ctx.stroke();
  }
  const boxes = [box, state.drag?.now ? boxOf(state.drag.start, state.drag.now) : null];
  ctx.setLineDash([6 * scale, 4 * scale]);
  ctx.strokeStyle = CANDIDATE_COLOR;
  for (const b of boxes) if (b) ctx.strokeRect(b[0], b[1], b[2] - b[0], b[3] - b[1]);
  ctx.setLineDash([]);
}

// --- panels ---------------------------------------------------------------------------------
function element(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function renderImages() {
  const { offset, total, images } = state.page;
  $("images").replaceChildren(
    ...images.map((image, i) => {
      const counts = image.counts;
      const li = element(
        "li",
        { className: offset + i === state.index ? "current" : "", title: image.path },
        element("span", { className: "grow", textContent: image.path }),
        element("span", { className: "meta", textContent: `✓${counts.accepted}${counts.proposed ? ` ?${counts.proposed}` : ""}` }),
        element("span", { className: `badge ${image.status}`, textContent: image.status.replace("_", " ") }),
      );
      li.dataset.id = image.id;
      li.onclick = () => run(() => openIndex(offset + i));
      return li;
    }),
  );
  $("page-info").textContent = total ? `${offset + 1}–${offset + images.length} of ${total}` : "no images";
  $("page-prev").disabled = offset === 0;
  $("page-next").disabled = offset + images.length >= total;
  $("position").textContent = state.image ? `${state.index + 1}/${total} · ${state.image.path}` : "";
}

function renderCandidates() {
  const s = state.session;
  $("candidates").replaceChildren(
    ...s.candidates.map((c, i) => {
      const li = element(
        "li",
        { className: i === s.chosen ? "current" : "" },
        element("kbd", { textContent: String(i + 1) }),
        element("span", { className: "grow", textContent: `score ${c.score.toFixed(2)}` }),
        element("span", { className: "meta", textContent: `${c.area} px` }),
      );
      li.onclick = () => choose(i);
      return li;
    }),
  );
  $("accept").disabled = !s.candidates.length;
  $("editing").hidden = s.editing === null;
  $("editing-id").textContent = `#${s.editing}`;
}

function provenance(a) {
  // Who or what made the mask: source (manual, assisted, auto), author, model.
  const parts = [a.source, a.author !== a.source ? a.author : null, a.model_name];
  return parts.filter(Boolean).join(" · ");
}

function renderAnnotations() {
  $("annotations").replaceChildren(
    ...state.annotations.map((a) => {
      const li = element(
        "li",
        { className: [a.status, a.id === state.selected ? "current" : ""].join(" "), title: `mask ${a.id}: ${a.status}` },
        element("span", { className: "swatch", style: `background: ${colorOf(a)}` }),
        element(
          "span",
          { className: "grow" },
          element("span", { className: "label", textContent: a.label ?? "unnamed" }),
          element("span", { className: "meta", textContent: ` ${provenance(a)}` }),
        ),
        a.status === "proposed" ? actionButton("✓", "accept proposal", () => setStatus(a.id, "accepted")) : null,
        a.status === "proposed" ? actionButton("✗", "reject proposal", () => setStatus(a.id, "rejected")) : null,
      );
      Object.assign(li.dataset, { id: a.id, label: a.label ?? "", status: a.status, source: a.source, author: a.author ?? "" });
      li.onclick = () => select(a.id);
      return li;
    }),
  );
  $("delete").disabled = state.selected === null;
  hook({ annotations: state.annotations.filter((a) => a.status !== "rejected").length });
}

function actionButton(text, title, action) {
  const button = element("button", { textContent: text, title });
  button.onclick = (event) => {
    event.stopPropagation();
    run(action);
  };
  return button;
}

function renderSide() {
  renderCandidates();
  renderAnnotations();
}

// --- images ---------------------------------------------------------------------------------
async function loadPage(offset) {
  state.page = await api(`/api/images?offset=${offset}&limit=${PAGE}`);
  renderImages();
}

async function openIndex(index) {
  if (index < 0 || index >= state.page.total) return;
  const { offset, images } = state.page;
  if (index < offset || index >= offset + images.length) await loadPage(Math.floor(index / PAGE) * PAGE);
  const image = state.page.images[index - state.page.offset];
  Object.assign(state, { index, image, annotations: [], selected: null, session: newSession() });
  state.seq++;
  closeName();
  history.replaceState(null, "", `#${index}`);
  hook({ ready: "0", imageId: image.id, candidates: 0, annotations: 0 });
  renderImages();
  renderSide();

  const blob = await api(`/api/images/${image.id}/file`, { blob: true });
  if (state.image !== image) return; // moved on meanwhile
  state.bitmap = await createImageBitmap(blob, { imageOrientation: "from-image" });
  const canvas = $("image-canvas");
  for (const c of [canvas, overlay]) {
    c.width = image.width;
    c.height = image.height;
  }
  canvas.getContext("2d").drawImage(state.bitmap, 0, 0, image.width, image.height);
  fit();
  say("embedding…");
  const [embedded] = await Promise.all([api(`/api/images/${image.id}/embed`, { method: "POST" }), loadAnnotations()]);
  if (state.image !== image) return;
  say(`ready · embedded in ${embedded.seconds.toFixed(2)} s · click the object`);
  hook({ ready: "1" });
  if ($("auto-propose").checked && image.status === "new" && !image.counts.proposed) await propose();
}

async function loadAnnotations() {
  const image = state.image;
  const annotations = await api(`/api/images/${image.id}/annotations`);
  if (state.image !== image) return;
  state.annotations = annotations;
  if (!annotations.some((a) => a.id === state.selected)) state.selected = null;
  image.counts = { proposed: 0, accepted: 0, rejected: 0 };
  for (const a of annotations) image.counts[a.status]++;
  renderImages();
  renderSide();
  draw();
}

async function upload(file) {
  const form = new FormData();
  form.append("file", file);
  say(`uploading ${file.name}…`);
  const image = await api("/api/images", { method: "POST", form });
  await loadPage(state.page.offset);
  const found = state.page.images.findIndex((i) => i.id === image.id);
  await openIndex(found >= 0 ? state.page.offset + found : state.page.total - 1);
}

async function scan() {
  const found = await api("/api/images/scan", { method: "POST" });
  await loadPage(state.page.offset);
  say(`${found.images.length} new image(s) found`);
  if (!state.image && state.page.total) await openIndex(0);
}

async function exportDataset() {
  // The same files as `zeroseg engine export`: COCO as JSON, YOLO-seg and PNG masks zipped.
  const format = $("export-format").value;
  say(`exporting ${format}…`);
  const blob = await api(`/api/export?format=${encodeURIComponent(format)}`, { blob: true });
  const suffix = blob.type === "application/zip" ? "zip" : "json";
  const link = element("a", { href: URL.createObjectURL(blob), download: `${state.info.dataset}-${format}.${suffix}` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  say(`exported ${format}`);
}

async function importCoco(file) {
  const form = new FormData();
  form.append("file", file);
  say(`importing ${file.name}…`);
  const done = await api("/api/import", { method: "POST", form });
  await loadPage(state.page.offset);
  if (state.image) await loadAnnotations();
  else if (state.page.total) await openIndex(0);
  const already = done.skipped ? `, ${done.skipped} there already` : "";
  say(`imported ${done.added} mask(s) on ${done.images} image(s)${already}`);
}

async function markReviewed() {
  const image = await api(`/api/images/${state.image.id}/status`, { method: "PUT", json: { status: "reviewed" } });
  Object.assign(state.image, image);
  renderImages();
  say("marked reviewed");
}

// --- prompts --------------------------------------------------------------------------------
function toImage(event) {
  const r = overlay.getBoundingClientRect();
  const x = ((event.clientX - r.left) / r.width) * overlay.width;
  const y = ((event.clientY - r.top) / r.height) * overlay.height;
  return [Math.min(Math.max(x, 0), overlay.width), Math.min(Math.max(y, 0), overlay.height)];
}

function boxOf([ax, ay], [bx, by]) {
  return [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)];
}

async function predict() {
  const s = state.session;
  if (!s.points.length && !s.box) {
    s.candidates = [];
    renderCandidates();
    draw();
    return;
  }
  const previous = s.candidates[s.chosen];
  const body = { points: s.points, box: s.box, multimask: s.points.length === 1 && !s.box && !previous && s.editing === null };
  if (previous) body.mask_input = previous.id;
  else if (s.editing !== null) body.annotation = s.editing;
  const seq = ++state.seq;
  const started = performance.now();
  hook({ busy: "1" });
  const out = await api(`/api/images/${state.image.id}/predict`, { method: "POST", json: body });
  if (seq !== state.seq || s !== state.session) return; // a newer click or another image
  s.candidates = out.candidates;
  s.chosen = 0;
  const received = performance.now();
  renderCandidates();
  draw();
  const drawn = performance.now();
  state.predictions++;
  hook({ busy: "0", predictions: state.predictions, candidates: out.candidates.length, clickMs: (drawn - started).toFixed(1), drawMs: (drawn - received).toFixed(1) });
  say(`${out.candidates.length} candidate(s) in ${(drawn - started).toFixed(0)} ms (model ${(out.seconds * 1000).toFixed(0)} ms) · Enter accepts`);
}

function choose(index) {
  const s = state.session;
  if (index >= s.candidates.length) return;
  s.chosen = index;
  renderCandidates();
  draw();
}

function clear() {
  state.session = newSession();
  state.seq++;
  state.selected = null;
  closeName();
  renderSide();
  draw();
}

async function undo() {
  const s = state.session;
  if (s.points.length || s.box) {
    // Undo inside the prompt being built: drop the last point (or the box) and predict afresh.
    if (s.points.length) s.points.pop();
    else s.box = null;
    s.candidates = [];
    await predict();
    return;
  }
  const out = await api(`/api/images/${state.image.id}/undo`, { method: "POST" });
  const undone = { restore: "brought back", delete: "removed", update: "reverted a change to" };
  say(out.edit ? `undo: ${undone[out.edit.action]} mask ${out.edit.annotation_id}` : "nothing left to undo");
  await loadAnnotations();
}

// --- annotations ----------------------------------------------------------------------------
function selectedAnnotation() {
  return state.annotations.find((a) => a.id === state.selected) ?? null;
}

function select(id) {
  state.selected = id;
  closeName();
  renderAnnotations();
  draw();
}

function selectAt([x, y]) {
  // The smallest visible mask under the point.
  let best = null;
  for (const a of visibleAnnotations()) {
    const d = decodedOf(a);
    const [cx, cy] = [Math.floor(x) - d.x, Math.floor(y) - d.y];
    const hit = cx >= 0 && cy >= 0 && cx < d.w && cy < d.h && d.mask[cy * d.w + cx];
    if (hit && (!best || d.area < decodedOf(best).area)) best = a;
  }
  select(best ? best.id : null);
}

async function accept() {
  if (state.busy) return;
  const s = state.session;
  const candidate = s.candidates[s.chosen];
  if (!candidate) {
    if (selectedAnnotation()?.status === "proposed") await setStatus(state.selected, "accepted");
    return;
  }
  state.busy = true;
  try {
    const record =
      s.editing !== null
        ? await api(`/api/annotations/${s.editing}`, { method: "PATCH", json: { candidate: candidate.id } })
        : await api(`/api/images/${state.image.id}/annotations`, { method: "POST", json: { candidate: candidate.id } });
    state.session = newSession();
    state.selected = record.id;
    await loadAnnotations();
    say(`mask ${record.id} stored · N names it`);
  } finally {
    state.busy = false;
  }
}

function editSelected() {
  const a = selectedAnnotation();
  if (!a) return say("select a mask first (alt-click it or pick it in the list)");
  state.session = newSession(a.id);
  renderSide();
  draw();
  say(`editing mask ${a.id}: click to add or remove parts, Enter saves`);
}

async function remove() {
  const a = selectedAnnotation();
  if (!a) return;
  await api(`/api/annotations/${a.id}`, { method: "DELETE" });
  state.selected = null;
  say(`deleted mask ${a.id} · Ctrl+Z brings it back`);
  await loadAnnotations();
}

async function setStatus(id, status) {
  await api(`/api/annotations/${id}`, { method: "PATCH", json: { status } });
  await loadAnnotations();
}

async function reject() {
  const a = selectedAnnotation();
  if (a?.status === "proposed") {
    await setStatus(a.id, "rejected");
    nextProposal();
  }
}

function nextProposal() {
  const proposals = state.annotations.filter((a) => a.status === "proposed");
  if (!proposals.length) return say("no proposals left");
  const after = proposals.find((a) => a.id > (state.selected ?? -1)) ?? proposals[0];
  select(after.id);
}

async function acceptAll() {
  const proposals = state.annotations.filter((a) => a.status === "proposed");
  for (const a of proposals) await api(`/api/annotations/${a.id}`, { method: "PATCH", json: { status: "accepted" } });
  say(`accepted ${proposals.length} proposal(s)`);
  await loadAnnotations();
}

async function propose() {
  const image = state.image;
  say("proposing masks…");
  const body = { min_score: Number($("min-score").value), name: state.info.vocabulary.length > 0 };
  const out = await api(`/api/images/${image.id}/propose`, { method: "POST", json: body });
  if (state.image !== image) return;
  say(`${out.proposals.length} proposal(s) in ${out.seconds.toFixed(1)} s · Tab to step, A accepts, R rejects`);
  await loadAnnotations();
  if (out.proposals.length) select(out.proposals[0].id);
}

// --- names ----------------------------------------------------------------------------------
async function openName() {
  const a = selectedAnnotation();
  if (!a) return say("select a mask first (accept one, or pick it in the list)");
  $("name-panel").hidden = false;
  $("name-target").textContent = `#${a.id}`;
  $("name-input").value = a.label ?? "";
  $("name-input").focus();
  $("name-input").select();
  const list = $("suggestions");
  if (!state.info.vocabulary.length) {
    list.replaceChildren(element("span", { className: "note", textContent: "set a vocabulary for suggestions" }));
    return;
  }
  list.replaceChildren(element("span", { className: "note", textContent: "naming…" }));
  try {
    const out = await api(`/api/names?image=${state.image.id}&mask=${a.id}`);
    list.replaceChildren(
      ...out.suggestions.map(({ name, score }) => {
        const button = element("button", { type: "button", textContent: `${name} ${score.toFixed(2)}` });
        if (name === out.best) button.className = "best";
        button.onclick = () => run(() => saveName(name, score));
        return button;
      }),
    );
  } catch (err) {
    list.replaceChildren(element("span", { className: "note", textContent: `no suggestions: ${err.message}` }));
  }
}

async function saveName(label, score = null) {
  const a = selectedAnnotation();
  if (!a) return;
  const text = label.trim();
  await api(`/api/annotations/${a.id}`, { method: "PATCH", json: { label: text || null, label_score: text ? score : null } });
  closeName();
  say(text ? `mask ${a.id} is "${text}"` : `mask ${a.id} is unnamed`);
  await loadAnnotations();
}

function closeName() {
  $("name-panel").hidden = true;
  if (document.activeElement === $("name-input")) $("name-input").blur();
}

async function saveVocabulary(text) {
  const out = await api("/api/vocabulary", { method: "PUT", json: { names: text.split(/[,\n]/) } });
  state.info.vocabulary = out.names;
  $("vocabulary").value = out.names.join(", ");
  say(`vocabulary: ${out.names.length} name(s)`);
}

// --- events ---------------------------------------------------------------------------------
function onPointerDown(event) {
  if (!state.image || (event.button !== 0 && event.button !== 2)) return;
  if (event.altKey) return selectAt(toImage(event));
  overlay.setPointerCapture(event.pointerId);
  state.drag = { start: toImage(event), client: [event.clientX, event.clientY], now: null, negative: event.button === 2 || event.shiftKey };
}

function onPointerMove(event) {
  const drag = state.drag;
  if (!drag) return;
  if (drag.now || Math.hypot(event.clientX - drag.client[0], event.clientY - drag.client[1]) > 5) {
    drag.now = toImage(event);
    draw();
  }
}

function onPointerUp(event) {
  const drag = state.drag;
  if (!drag) return;
  state.drag = null;
  const s = state.session;
  if (drag.now && !drag.negative) {
    s.box = boxOf(drag.start, toImage(event));
  } else {
    s.points.push([...drag.start, drag.negative ? 0 : 1]);
  }
  draw();
  run(predict);
}

const KEYS = {
  1: () => choose(0),
  2: () => choose(1),
  3: () => choose(2),
  Enter: accept,
  a: accept,
  n: openName,
  e: editSelected,
  Delete: remove,
  Backspace: remove,
  ArrowLeft: () => openIndex(state.index - 1),
  ArrowRight: () => openIndex(state.index + 1),
  p: propose,
  r: reject,
  Tab: nextProposal,
  Escape: clear,
};

function onKey(event) {
  if (event.target.closest("input, textarea")) {
    if (event.key === "Escape") closeName();
    return;
  }
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
    event.preventDefault();
    run(undo);
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey || !state.image) return;
  if (event.key === "Tab" && !state.annotations.some((a) => a.status === "proposed")) return; // normal focus move
  const action = KEYS[event.key.length === 1 ? event.key.toLowerCase() : event.key];
  if (action) {
    event.preventDefault();
    run(action);
  }
}

function bindEvents() {
  overlay.addEventListener("pointerdown", onPointerDown);
  overlay.addEventListener("pointermove", onPointerMove);
  overlay.addEventListener("pointerup", onPointerUp);
  overlay.addEventListener("contextmenu", (event) => event.preventDefault());
  document.addEventListener("keydown", onKey);
  window.addEventListener("resize", () => {
    fit();
    draw();
  });
  const click = (id, action) => ($(id).onclick = () => run(action));
  click("accept", accept);
  click("clear", clear);
  click("undo", undo);
  click("delete", remove);
  click("propose", propose);
  click("accept-all", acceptAll);
  click("reviewed", markReviewed);
  click("scan", scan);
  click("export", exportDataset);
  click("page-prev", () => loadPage(Math.max(0, state.page.offset - PAGE)));
  click("page-next", () => loadPage(state.page.offset + PAGE));
  $("upload").onchange = (event) => {
    const [file] = event.target.files;
    event.target.value = "";
    if (file) run(() => upload(file));
  };
  $("import").onchange = (event) => {
    const [file] = event.target.files;
    event.target.value = "";
    if (file) run(() => importCoco(file));
  };
  $("name-form").onsubmit = (event) => {
    event.preventDefault();
    run(() => saveName($("name-input").value));
  };
  $("vocabulary-form").onsubmit = (event) => {
    event.preventDefault();
    run(() => saveVocabulary($("vocabulary").value));
  };
  $("author").onchange = (event) => {
    state.author = event.target.value.trim();
    localStorage.setItem("zeroseg.author", state.author);
  };
}

async function start() {
  const params = new URLSearchParams(location.search);
  if (params.has("token")) {
    // Keep the token for this tab and take it out of the address bar (and out of the history).
    sessionStorage.setItem("zeroseg.token", params.get("token"));
    params.delete("token");
    history.replaceState(null, "", location.pathname + (params.size ? `?${params}` : "") + location.hash);
  }
  state.token = sessionStorage.getItem("zeroseg.token");
  state.author = localStorage.getItem("zeroseg.author") ?? "";
  bindEvents();
  state.info = await api("/api/info");
  $("dataset").textContent = `${state.info.dataset} · ${state.info.model}`;
  $("author").value = state.author;
  $("author").placeholder = state.info.author;
  $("vocabulary").value = state.info.vocabulary.join(", ");
  await loadPage(0);
  if (!state.page.total) return say("no images yet: upload one");
  const wanted = Number(location.hash.slice(1));
  await openIndex(Number.isInteger(wanted) && wanted < state.page.total ? wanted : 0);
}

run(start);
