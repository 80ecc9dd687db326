// zeroseg annotation page: plain JS modules, no build step, nothing fetched from outside the server.
//
// One `state` object holds what is on screen; `draw()` paints the overlay canvas from it, the
// render* functions fill the side panels and `renderVector()` the SVG layer (polygon handles,
// strokes, exemplar boxes). Zoom and pan are one CSS transform on #world (image canvas, overlay and
// SVG all in image pixels); captions live in #labels in screen pixels so that they stay sharp and
// can be moved apart. Masks arrive as compressed COCO RLE and are decoded here.
//
// Test hooks: data-* attributes on <body> (ready, imageId, predictions, candidates, maskPixels,
// annotations, busy, clickMs = click to mask drawn, drawMs = decode and draw, mode, zoom, edits =
// edits stored so far, activeClass, vertices, reviewing) and window.zeroseg (imageToClient,
// clientToImage, state).

const $ = (id) => document.getElementById(id);
const PAGE = 100;
const PALETTE = ["#e5484d", "#f5a524", "#4cc38a", "#3e8ed0", "#a66cff", "#ff6ac1", "#12b5b0", "#c4d94a"];
const CANDIDATE_COLOR = "#39c0ed";
const STATUSES = ["new", "in_progress", "auto_done", "annotated", "reviewed", "rejected"];
const SPINNER_AFTER_MS = 150;
const MIN_ZOOM = 0.02;
const MAX_ZOOM = 40;
// Letters the page's commands use: a class key cannot take them (digits can: a class key wins
// over picking candidate 1-3, which the candidates list still does by click).
const COMMAND_KEYS = new Set([..."abdefilmnopqrstv0+-=[]"]);

const state = {
  token: null,
  author: "",
  info: null,
  page: { offset: 0, total: 0, images: [] },
  index: -1, // position of the open image in the (filtered) image list
  image: null, // ImageOut of the open image
  bitmap: null,
  annotations: [], // AnnotationOut[] of the open image
  order: [], // annotation ids, bottom layer first
  hidden: new Set(), // annotation ids not drawn
  selected: null, // id of the selected annotation
  selectedByHand: false, // selected by a click on it (not as the mask just stored)
  picked: new Set(), // more selected annotations (for merge)
  session: newSession(),
  seq: 0, // prediction counter: answers to older clicks are dropped
  predictions: 0, // predictions drawn so far
  drag: null, // a pointer drag on the overlay: box, stroke or pan
  busy: false,
  mode: "prompt", // prompt | polygon | brush | erase | split | concept
  radius: 12, // brush radius, image pixels
  view: { z: 1, tx: 0, ty: 0 },
  fitZoom: 1,
  space: false, // space held: drag pans
  pointer: null, // last pointer position on the image (brush cursor)
  hover: null, // id of the mask under the pointer (its caption is placed first)
  poly: null, // {id, rings: [[[x, y], ...]], active: [ring, index] | null, dirty, past: []}
  vertexDrag: null,
  classes: [],
  classesAvailable: true,
  activeClass: null, // id
  editingClass: null, // id of the class whose editor is open
  exemplars: [], // concept exemplars [{box, positive}]
  reviewing: false,
  done: [], // edits of this page that undo can revert: {replay}
  redo: [], // undone edits to re-apply
  edits: 0,
};

function newSession(editing = null) {
  // The prompt being built: points [[x, y, label]], a box, the candidates of the last prediction.
  return { points: [], box: null, candidates: [], chosen: 0, editing };
}

// --- server ---------------------------------------------------------------------------------
let pending = 0;
let spinnerTimer = null;

async function api(path, { method = "GET", json, form, blob = false, quiet404 = false } = {}) {
  const headers = {};
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (/^[\x20-\x7e]+$/.test(state.author)) headers["X-Author"] = state.author;
  let body = form;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  // A spinner only for what takes longer than SPINNER_AFTER_MS: quick answers show no flicker.
  if (pending++ === 0) spinnerTimer = setTimeout(() => ($("spinner").hidden = false), SPINNER_AFTER_MS);
  try {
    const response = await fetch(path, { method, headers, body });
    if (response.status === 401) askToken();
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const error = await response.json();
        detail = typeof error.detail === "string" ? error.detail : JSON.stringify(error.detail);
      } catch { /* not JSON: keep the status text */ }
      const err = new Error(`${response.status}: ${detail}`);
      err.status = response.status;
      if (quiet404 && (response.status === 404 || response.status === 405)) err.quiet = true;
      throw err;
    }
    return blob ? response.blob() : response.json();
  } finally {
    if (--pending === 0) {
      clearTimeout(spinnerTimer);
      $("spinner").hidden = true;
    }
  }
}

function missing(err) {
  // An endpoint this server does not have (an older server): the feature is left out.
  return err.status === 404 || err.status === 405;
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
  line.title = text;
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

function edited() {
  state.edits++;
  hook({ edits: state.edits });
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
  // -> {x, y, w, h, area, cx, cy, mask}: the mask cropped to its box, row-major, 1 = inside;
  // (cx, cy) is the inside pixel nearest to the centroid (where its caption goes).
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
  if (area === 0) return { x: 0, y: 0, w: 0, h: 0, area, cx: 0, cy: 0, mask: new Uint8Array(0) };
  const w = x1 - x0 + 1, h = y1 - y0 + 1;
  const mask = new Uint8Array(w * h);
  let sx = 0, sy = 0;
  pos = 0;
  for (let i = 0; i < runs.length; pos += runs[i], i++) {
    if (i % 2 === 0) continue;
    let col = Math.floor(pos / height), row = pos % height;
    for (let n = 0; n < runs[i]; n++) {
      mask[(row - y0) * w + (col - x0)] = 1;
      sx += col;
      sy += row;
      if (++row === height) { row = 0; col++; }
    }
  }
  let [cx, cy] = [sx / area, sy / area];
  const at = (x, y) => mask[(Math.round(y) - y0) * w + (Math.round(x) - x0)] === 1;
  if (!at(cx, cy)) {
    // A ring or a C shape: the inside pixel nearest the centroid, on a coarse grid.
    let best = Infinity;
    const step = Math.max(1, Math.floor(Math.max(w, h) / 64));
    for (let y = 0; y < h; y += step) {
      for (let x = 0; x < w; x += step) {
        if (!mask[y * w + x]) continue;
        const d = (x + x0 - cx) ** 2 + (y + y0 - cy) ** 2;
        if (d < best) [best, cx, cy] = [d, x + x0, y + y0];
      }
    }
  }
  return { x: x0, y: y0, w, h, area, cx, cy, mask };
}

function rgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function paintMask(decoded, color, style) {
  // A canvas of the mask's box. "fill": the inside, opaque (drawn with the opacity slider's alpha);
  // "edge": the outline only; "candidate": fill and outline; "proposal": hatched, dashed outline.
  const { w, h, mask } = decoded;
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(w, 1);
  canvas.height = Math.max(h, 1);
  if (!w) return canvas;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(w, h);
  const px = image.data;
  const [r, g, b] = rgb(color);
  const inside = (x, y) => x >= 0 && y >= 0 && x < w && y < h && mask[y * w + x] === 1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!mask[y * w + x]) continue;
      const edge = !inside(x - 1, y) || !inside(x + 1, y) || !inside(x, y - 1) || !inside(x, y + 1);
      const hatch = ((x + y) >> 2) % 2;
      let alpha;
      if (style === "fill") alpha = 255;
      else if (style === "edge") alpha = edge ? 255 : 0;
      else if (style === "candidate") alpha = edge ? 255 : 110;
      else alpha = edge ? (hatch ? 0 : 255) : hatch ? 80 : 20;
      const i = (y * w + x) * 4;
      px[i] = r; px[i + 1] = g; px[i + 2] = b; px[i + 3] = alpha;
    }
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}

const decodedCache = new Map(); // "id:updated_at" -> decoded mask
const paintedCache = new Map(); // "id:updated_at:style:color" -> canvas

function cached(cache, key, make, limit = 600) {
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

function classOf(annotation) {
  return annotation.label ? state.classes.find((c) => c.name === annotation.label) ?? null : null;
}

function colorOf(annotation) {
  return classOf(annotation)?.color ?? PALETTE[annotation.id % PALETTE.length];
}

function painted(annotation, style) {
  const color = colorOf(annotation);
  return cached(paintedCache, `${annotation.id}:${annotation.updated_at}:${style}:${color}`, () =>
    paintMask(decodedOf(annotation), color, style),
  );
}

// --- view: zoom and pan ---------------------------------------------------------------------
const overlay = $("overlay");
const stage = $("stage");
const world = $("world");
const vector = $("vector");

function fit() {
  // The whole image in the stage, centred (small images up to 4x).
  if (!state.image) return;
  const box = stage.getBoundingClientRect();
  const { width, height } = state.image;
  const z = Math.min((box.width - 16) / width, (box.height - 16) / height, 4);
  state.fitZoom = z;
  setView(z, (box.width - width * z) / 2, (box.height - height * z) / 2);
}

function setView(z, tx, ty) {
  state.view = { z: Math.min(Math.max(z, MIN_ZOOM), MAX_ZOOM), tx, ty };
  const v = state.view;
  world.style.transform = `translate(${v.tx}px, ${v.ty}px) scale(${v.z})`;
  world.classList.toggle("pixelated", v.z >= 3);
  $("zoom-level").textContent = `${Math.round(v.z * 100)}%`;
  hook({ zoom: v.z.toFixed(4) });
  scheduleDraw();
}

function zoomAt(factor, sx, sy) {
  // Zoom by `factor` keeping the stage point (sx, sy) (CSS px from the stage's corner) in place.
  const { z, tx, ty } = state.view;
  const nz = Math.min(Math.max(z * factor, MIN_ZOOM), MAX_ZOOM);
  setView(nz, sx - ((sx - tx) * nz) / z, sy - ((sy - ty) * nz) / z);
}

function zoomCentre(factor) {
  const box = stage.getBoundingClientRect();
  zoomAt(factor, box.width / 2, box.height / 2);
}

function pan(dx, dy) {
  const { z, tx, ty } = state.view;
  setView(z, tx + dx, ty + dy);
}

function zoomedIn() {
  return state.view.z > state.fitZoom * 1.05;
}

function displayScale() {
  // Image pixels per screen pixel, so that points and handles keep their on-screen size.
  return 1 / state.view.z;
}

function clientToImage(clientX, clientY) {
  const r = overlay.getBoundingClientRect();
  return [((clientX - r.left) / r.width) * overlay.width, ((clientY - r.top) / r.height) * overlay.height];
}

function imageToClient(x, y) {
  const r = overlay.getBoundingClientRect();
  return [r.left + (x / overlay.width) * r.width, r.top + (y / overlay.height) * r.height];
}

function toImage(event) {
  const [x, y] = clientToImage(event.clientX, event.clientY);
  return [Math.min(Math.max(x, 0), overlay.width), Math.min(Math.max(y, 0), overlay.height)];
}

// --- drawing --------------------------------------------------------------------------------
let drawQueued = false;

function scheduleDraw() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    draw();
  });
}

function threshold() {
  return Number($("min-score").value);
}

function proposalScore(a) {
  // What the min score compares (the server's "accept above" does the same): the predicted IoU.
  return a.predicted_iou ?? 0;
}

function layers() {
  // Annotations bottom layer first, as ordered in the masks list.
  const byId = new Map(state.annotations.map((a) => [a.id, a]));
  return state.order.map((id) => byId.get(id)).filter(Boolean);
}

function visibleAnnotations() {
  const s = state.session;
  return layers().filter(
    (a) =>
      (a.status !== "rejected" || (state.reviewing && a.reviewer)) &&
      !state.hidden.has(a.id) &&
      !(a.status === "proposed" && proposalScore(a) < threshold()) &&
      !(s.editing === a.id && s.candidates.length) &&
      !(state.poly && state.poly.id === a.id),
  );
}

function draw() {
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  renderVector();
  if (!state.image) return renderLabels([]);
  const scale = displayScale();
  const shown = visibleAnnotations();
  const opacity = Number($("opacity").value);
  const outlines = $("outlines").checked;
  for (const a of shown) {
    const d = decodedOf(a);
    if (!d.area) continue;
    if (a.status === "proposed") {
      ctx.drawImage(painted(a, "proposal"), d.x, d.y);
      continue;
    }
    if (a.status === "rejected") {
      // In review mode a rejected mask stays in sight, hatched red.
      const key = `${a.id}:${a.updated_at}:rejected`;
      ctx.drawImage(cached(paintedCache, key, () => paintMask(d, "#e5484d", "proposal")), d.x, d.y);
      continue;
    }
    const chosen = a.id === state.selected || state.picked.has(a.id);
    if (!outlines || chosen) {
      ctx.globalAlpha = Math.min(1, chosen ? opacity + 0.25 : opacity);
      ctx.drawImage(painted(a, "fill"), d.x, d.y);
    }
    ctx.globalAlpha = 1;
    ctx.drawImage(painted(a, "edge"), d.x, d.y);
  }
  ctx.globalAlpha = 1;
  const candidate = state.session.candidates[state.session.chosen];
  if (candidate) {
    const decoded = cached(decodedCache, candidate.id, () => decodeRle(candidate.rle));
    const canvas = cached(paintedCache, candidate.id, () => paintMask(decoded, CANDIDATE_COLOR, "candidate"));
    ctx.drawImage(canvas, decoded.x, decoded.y);
    hook({ maskPixels: decoded.area });
  } else {
    hook({ maskPixels: 0 });
  }
  drawPrompts(ctx, scale);
  renderLabels(shown);
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
  const drag = state.drag;
  const boxes = [box, drag?.kind === "box" && drag.now ? boxOf(drag.start, drag.now) : null];
  ctx.setLineDash([6 * scale, 4 * scale]);
  ctx.strokeStyle = CANDIDATE_COLOR;
  for (const b of boxes) if (b) ctx.strokeRect(b[0], b[1], b[2] - b[0], b[3] - b[1]);
  ctx.setLineDash([]);
}

function captionRank(a) {
  // Captions placed first: the hovered mask's, then the selected one's.
  return (a.id === state.hover) * 2 + (a.id === state.selected);
}

function renderLabels(shown = visibleAnnotations()) {
  // Captions in screen pixels at each mask's centre; one that would overlap a caption placed
  // before it is nudged up or down, and left out if no place is free (the masks list names it).
  const layer = $("labels");
  if (!$("captions").checked || !state.image) return layer.replaceChildren();
  const { z, tx, ty } = state.view;
  const box = stage.getBoundingClientRect();
  const wanted = shown
    .filter((a) => a.status === "accepted" || a.status === "rejected" || a.id === state.selected)
    .map((a) => ({ a, d: decodedOf(a) }))
    .filter(({ d }) => d.area)
    .sort((p, q) => captionRank(q.a) - captionRank(p.a) || p.d.area - q.d.area);
  const placed = [];
  const nodes = [];
  const h = 18;
  for (const { a, d } of wanted) {
    const text = a.label ?? `#${a.id}`;
    const w = text.length * 7 + 14;
    const x = tx + (d.cx + 0.5) * z;
    let y = null;
    for (const dy of [0, h, -h, 2 * h, -2 * h, 3 * h, -3 * h]) {
      const r = [x - w / 2, ty + (d.cy + 0.5) * z + dy - h / 2, w, h];
      if (r[0] + w < 0 || r[1] + h < 0 || r[0] > box.width || r[1] > box.height) break;
      if (!placed.some((p) => r[0] < p[0] + p[2] && p[0] < r[0] + w && r[1] < p[1] + p[3] && p[1] < r[1] + h)) {
        placed.push(r);
        y = r[1] + h / 2;
        break;
      }
    }
    if (y === null) continue;
    const node = element("div", { textContent: text, className: a.id === state.selected ? "selected" : "" });
    node.style.cssText = `left:${x}px;top:${y}px;border-color:${colorOf(a)}`;
    node.dataset.id = a.id;
    nodes.push(node);
  }
  layer.replaceChildren(...nodes);
}

// --- SVG layer: polygon handles, strokes, exemplars -----------------------------------------
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function ringPath(ring) {
  return ring.length ? `M${ring.map(([x, y]) => `${x} ${y}`).join("L")}Z` : "";
}

function renderVector() {
  const s = displayScale();
  const nodes = [];
  const poly = state.poly;
  if (poly) {
    nodes.push(svg("path", { class: "ring", d: poly.rings.map(ringPath).join(""), "stroke-width": 1.5 * s }));
    poly.rings.forEach((ring, r) => {
      const edge = svg("path", { class: "edge", d: ringPath(ring), "stroke-width": 10 * s });
      edge.dataset.ring = r;
      nodes.push(edge);
    });
    poly.rings.forEach((ring, r) =>
      ring.forEach(([x, y], i) => {
        const active = poly.active && poly.active[0] === r && poly.active[1] === i;
        const dot = svg("circle", { class: `vertex${active ? " active" : ""}`, cx: x, cy: y, r: 4.5 * s, "stroke-width": 1.2 * s });
        Object.assign(dot.dataset, { ring: r, index: i });
        nodes.push(dot);
      }),
    );
  }
  const drag = state.drag;
  if (drag?.kind === "stroke") {
    const color = { brush: "#4cc38a", erase: "#e5484d", split: "#f5a524" }[drag.mode];
    const d = `M${drag.points.map(([x, y]) => `${x} ${y}`).join("L")}${drag.points.length === 1 ? "l0.01 0" : ""}`;
    nodes.push(svg("path", { class: "stroke", d, stroke: color, "stroke-width": 2 * state.radius }));
  }
  if (["brush", "erase", "split"].includes(state.mode) && state.pointer) {
    const [x, y] = state.pointer;
    nodes.push(svg("circle", { class: "brush-cursor", cx: x, cy: y, r: state.radius, "stroke-width": 1.2 * s }));
  }
  for (const { box, positive } of state.exemplars) {
    nodes.push(svg("rect", {
      class: "exemplar", x: box[0], y: box[1], width: box[2] - box[0], height: box[3] - box[1],
      stroke: positive ? "#4cc38a" : "#e5484d", "stroke-width": 2 * s,
    }));  // prettier-ignore
  }
  if (drag?.kind === "exemplar" && drag.now) {
    const b = boxOf(drag.start, drag.now);
    nodes.push(svg("rect", {
      class: "exemplar", x: b[0], y: b[1], width: b[2] - b[0], height: b[3] - b[1],
      stroke: drag.negative ? "#e5484d" : "#4cc38a", "stroke-width": 2 * s, "stroke-dasharray": `${6 * s} ${4 * s}`,
    }));  // prettier-ignore
  }
  vector.replaceChildren(...nodes);
  hook({ vertices: poly ? poly.rings.reduce((n, r) => n + r.length, 0) : 0 });
}

// --- panels ---------------------------------------------------------------------------------
function element(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

function actionButton(text, title, action, className = "") {
  const button = element("button", { textContent: text, title, type: "button", className });
  button.onclick = (event) => {
    event.stopPropagation();
    run(action);
  };
  return button;
}

function renderImages() {
  const { offset, total, images } = state.page;
  $("images").replaceChildren(
    ...images.map((image, i) => {
      const counts = image.counts;
      const li = element(
        "li",
        { className: image.id === state.image?.id ? "current" : "", title: image.path },
        element("span", { className: "grow", textContent: image.path }),
        element("span", { className: "meta", textContent: `✓${counts.accepted}${counts.proposed ? ` ?${counts.proposed}` : ""}` }),
        element("span", { className: `badge ${image.status}`, textContent: image.status.replace("_", " ") }),
      );
      Object.assign(li.dataset, { id: image.id, status: image.status });
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

function reviewBadge(a) {
  if (!a.reviewer) return null;
  const verdict = a.status === "rejected" ? "rejected" : "accepted";
  return element("span", { className: `badge v-${verdict}`, textContent: `${verdict} · ${a.reviewer}`, title: "review" });
}

function renderAnnotations() {
  // The layer list, top layer first: eye, swatch, name, provenance, up/down.
  const list = layers().filter((a) => a.status !== "proposed").reverse();
  $("annotations").replaceChildren(
    ...list.map((a) => {
      const hidden = state.hidden.has(a.id);
      const li = element(
        "li",
        {
          className: [a.status, a.id === state.selected ? "current" : "", state.picked.has(a.id) ? "picked" : "", hidden ? "hidden-layer" : ""].join(" "),
          title: `mask ${a.id}: ${a.status}${a.comment ? ` · “${a.comment}”` : ""}`,
        },
        actionButton(hidden ? "◌" : "●", hidden ? "show" : "hide", () => toggleHidden(a.id), "icon eye"),
        element("span", { className: "swatch", style: `background: ${colorOf(a)}` }),
        element(
          "span",
          { className: "grow" },
          element("span", { className: "label", textContent: a.label ?? "unnamed" }),
          element("span", { className: "meta", textContent: ` ${provenance(a)}` }),
          a.comment ? element("span", { className: "comment", textContent: `“${a.comment}”` }) : null,
        ),
        reviewBadge(a),
        actionButton("▲", "bring forward", () => moveLayer(a.id, 1), "icon up"),
        actionButton("▼", "send backward", () => moveLayer(a.id, -1), "icon down"),
      );
      Object.assign(li.dataset, { id: a.id, label: a.label ?? "", status: a.status, source: a.source, author: a.author ?? "" });
      if (a.reviewer) li.dataset.reviewer = a.reviewer;
      li.onclick = (event) => (event.ctrlKey || event.metaKey || event.shiftKey ? pick(a.id) : select(a.id));
      return li;
    }),
  );
  $("delete").disabled = state.selected === null;
  $("merge").disabled = pickedIds().length < 2;
  $("save-polygon").hidden = !state.poly;
  hook({ annotations: state.annotations.filter((a) => a.status === "accepted").length });
  renderProposals();
  renderReview();
}

function renderProposals() {
  const min = threshold();
  $("min-score-value").textContent = min.toFixed(2);
  const proposals = state.annotations.filter((a) => a.status === "proposed").sort((p, q) => proposalScore(q) - proposalScore(p));
  const above = proposals.filter((a) => proposalScore(a) >= min).length;
  $("proposal-count").textContent = proposals.length ? `${above} of ${proposals.length} ≥ ${min.toFixed(2)}` : "";
  const fmt = (v) => (v === null || v === undefined ? "–" : v.toFixed(2));
  $("proposals").replaceChildren(
    ...proposals.map((a) => {
      const li = element(
        "li",
        {
          className: [proposalScore(a) < min ? "below" : "", a.id === state.selected ? "current" : ""].join(" "),
          title: `proposal ${a.id}: predicted IoU ${fmt(a.predicted_iou)}, stability ${fmt(a.stability_score)}, name score ${fmt(a.label_score)}`,
        },
        element("span", { className: "swatch", style: `background: ${colorOf(a)}` }),
        element("span", { className: "grow", textContent: a.label ?? "unnamed" }),
        element("span", { className: "meta", textContent: `iou ${fmt(a.predicted_iou)} · st ${fmt(a.stability_score)} · nm ${fmt(a.label_score)}` }),
        actionButton("✓", "accept proposal", () => setStatus(a.id, "accepted")),
        actionButton("✗", "reject proposal", () => setStatus(a.id, "rejected")),
      );
      Object.assign(li.dataset, { id: a.id, score: proposalScore(a) });
      li.onclick = () => select(a.id);
      return li;
    }),
  );
}

function renderClasses() {
  const list = state.classes;
  const active = list.find((c) => c.id === state.activeClass);
  $("active-class").textContent = active ? `active: ${active.name}` : "";
  hook({ activeClass: active?.name ?? "" });
  const rows = [];
  for (const c of list) {
    const color = element("input", { type: "color", value: c.color, title: "colour" });
    color.onclick = (event) => event.stopPropagation();
    color.onchange = () => run(() => updateClass(c.id, { color: color.value }));
    const li = element(
      "li",
      { className: c.id === state.activeClass ? "active-class" : "", title: c.description ?? "" },
      color,
      c.key ? element("kbd", { textContent: c.key }) : element("kbd", { textContent: " ", title: "no key" }),
      element("span", { className: "grow name", textContent: c.name }),
      element("span", { className: "meta", textContent: c.count ?? "" }),
      actionButton("✎", "rename, key, merge or delete", () => toggleClassEditor(c.id), "icon edit"),
    );
    Object.assign(li.dataset, { id: c.id, name: c.name, key: c.key ?? "" });
    li.onclick = () => activateClass(c.id);
    rows.push(li);
    if (state.editingClass === c.id) rows.push(classEditor(c));
  }
  if (!state.classesAvailable) {
    rows.push(element("li", { className: "meta", textContent: "this server keeps no class list: names come from the vocabulary" }));
  }
  $("classes").replaceChildren(...rows);
  $("class-names").replaceChildren(...list.map((c) => element("option", { value: c.name })));
  const labelFilter = $("filter-label");
  const chosen = labelFilter.value;
  labelFilter.replaceChildren(
    element("option", { value: "", textContent: "any class" }),
    ...list.map((c) => element("option", { value: c.name, textContent: c.name })),
  );
  labelFilter.value = list.some((c) => c.name === chosen) ? chosen : "";
}

function classEditor(c) {
  // Inline editor under a class: name, key, colour, description; merge into another; delete.
  const form = element("form", { className: "class-editor" });
  const name = element("input", { value: c.name, maxLength: 200, className: "name-input", title: "name" });
  const key = element("input", { value: c.key ?? "", maxLength: 1, className: "key-input", title: "key" });
  const description = element("input", { value: c.description ?? "", placeholder: "description", className: "description-input" });
  const into = element(
    "select",
    { className: "merge-into", title: "merge this class into" },
    element("option", { value: "", textContent: "merge into…" }),
    ...state.classes.filter((o) => o.id !== c.id).map((o) => element("option", { value: o.id, textContent: o.name })),
  );
  const remove = element("button", { type: "button", textContent: "Delete", className: "delete-class" });
  remove.onclick = () => {
    if (remove.dataset.sure) return run(() => deleteClass(c.id));
    remove.dataset.sure = "1";
    remove.textContent = "Delete: sure?";
  };
  into.onchange = () => into.value && run(() => mergeClass(c.id, Number(into.value)));
  form.append(name, key, description, element("button", { type: "submit", textContent: "Save" }), into, remove);
  form.onsubmit = (event) => {
    event.preventDefault();
    run(() => updateClass(c.id, { name: name.value.trim(), key: key.value.trim() || null, description: description.value.trim() || null }));
  };
  return element("li", { className: "editor-row" }, form);
}

function renderReview() {
  $("review-panel").hidden = !state.reviewing;
  $("review-mode").classList.toggle("on", state.reviewing);
  document.body.classList.toggle("reviewing", state.reviewing);
  if (!state.reviewing) return;
  const masks = reviewTargets();
  const left = masks.filter((a) => !a.reviewer).length;
  $("review-count").textContent = `${masks.length - left}/${masks.length} masks`;
}

function renderModes() {
  for (const b of document.querySelectorAll("#toolbar [data-mode]")) b.classList.toggle("on", b.dataset.mode === state.mode);
  $("radius").textContent = state.radius;
  $("radius-box").hidden = !["brush", "erase", "split"].includes(state.mode);
  hook({ mode: state.mode });
}

function renderSide() {
  renderCandidates();
  renderAnnotations();
}

async function refreshProgress() {
  let progress;
  try {
    progress = await api("/api/progress", { quiet404: true });
  } catch (err) {
    if (missing(err)) return;
    throw err;
  }
  const total = progress.total || 0;
  const by = progress.by_status ?? {};
  $("progress-bar").replaceChildren(
    ...STATUSES.filter((s) => by[s]).map((s) =>
      element("span", { className: `st-${s}`, style: `width: ${(100 * by[s]) / Math.max(total, 1)}%`, title: `${s.replace("_", " ")}: ${by[s]}` }),
    ),
  );
  const done = (by.annotated ?? 0) + (by.reviewed ?? 0);
  $("progress-text").textContent = `${done}/${total} done · ${by.reviewed ?? 0} reviewed`;
  $("progress").title = STATUSES.map((s) => `${s.replace("_", " ")}: ${by[s] ?? 0}`).join("\n") + `\nmasks: ${progress.annotations ?? 0}`;
  for (const c of state.classes) if (progress.by_label && c.name in progress.by_label) c.count = progress.by_label[c.name];
}

// --- images ---------------------------------------------------------------------------------
function imageQuery() {
  const params = new URLSearchParams();
  const add = (key, value) => value && params.set(key, value);
  add("status", $("filter-status").value);
  add("label", $("filter-label").value);
  add("source", $("filter-source").value);
  add("author", $("filter-author").value.trim());
  add("reviewer", $("filter-reviewer").value.trim());
  add("q", $("search").value.trim());
  if ($("filter-unlabelled").checked) params.set("unlabelled", "true");
  return params;
}

async function loadPage(offset) {
  const params = imageQuery();
  params.set("offset", offset);
  params.set("limit", PAGE);
  state.page = await api(`/api/images?${params}`);
  const found = state.page.images.findIndex((i) => i.id === state.image?.id);
  if (found >= 0) state.index = state.page.offset + found;
  renderImages();
}

async function applyFilters() {
  await loadPage(0);
  if (state.page.total && !state.page.images.some((i) => i.id === state.image?.id)) await openIndex(0);
  say(`${state.page.total} image(s) match`);
}

async function openIndex(index) {
  if (index < 0 || index >= state.page.total) return say(index < 0 ? "first image" : "last image");
  const { offset, images } = state.page;
  if (index < offset || index >= offset + images.length) await loadPage(Math.floor(index / PAGE) * PAGE);
  const image = state.page.images[index - state.page.offset];
  Object.assign(state, {
    index, image, annotations: [], order: [], selected: null, session: newSession(), poly: null, exemplars: [], done: [], redo: [],
  });
  state.picked.clear();
  state.hidden.clear();
  state.seq++;
  if (state.mode !== "prompt" && state.mode !== "concept") setMode("prompt", { quiet: true });
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
  for (const node of [vector]) {
    node.setAttribute("width", image.width);
    node.setAttribute("height", image.height);
    node.setAttribute("viewBox", `0 0 ${image.width} ${image.height}`);
  }
  canvas.getContext("2d").drawImage(state.bitmap, 0, 0, image.width, image.height);
  fit();
  say("embedding…");
  const [embedded] = await Promise.all([api(`/api/images/${image.id}/embed`, { method: "POST" }), loadAnnotations()]);
  if (state.image !== image) return;
  say(`ready · embedded in ${embedded.seconds.toFixed(2)} s · ${state.reviewing ? "A accepts, R rejects the selected mask" : "click the object"}`);
  if (state.reviewing) selectNextUnreviewed();
  hook({ ready: "1" });
  if ($("auto-propose").checked && image.status === "new" && !image.counts.proposed && !state.reviewing) await propose();
}

async function loadAnnotations() {
  const image = state.image;
  const annotations = await api(`/api/images/${image.id}/annotations`);
  if (state.image !== image) return;
  state.annotations = annotations;
  // Layers in their stored draw order, bottom first; unordered ones above them: those shown already
  // keep their order, new masks go on top (big ones below small ones).
  const ids = new Set(annotations.map((a) => a.id));
  const placed = annotations.filter((a) => a.draw_order !== null && a.draw_order !== undefined).sort((p, q) => p.draw_order - q.draw_order);
  const loose = new Set(annotations.filter((a) => !placed.includes(a)).map((a) => a.id));
  const kept = state.order.filter((id) => loose.has(id));
  const fresh = annotations.filter((a) => loose.has(a.id) && !kept.includes(a.id)).sort((p, q) => q.area - p.area);
  state.order = placed.map((a) => a.id).concat(kept, fresh.map((a) => a.id));
  if (!ids.has(state.selected)) state.selected = null;
  for (const id of [...state.picked]) if (!ids.has(id)) state.picked.delete(id);
  image.counts = { proposed: 0, accepted: 0, rejected: 0 };
  for (const a of annotations) image.counts[a.status]++;
  renderImages();
  renderSide();
  draw();
  refreshCountsSoon();
}

let countsTimer = null;

function refreshCountsSoon() {
  // Class counts and the progress bar follow the edits, a moment later (one request for a burst).
  clearTimeout(countsTimer);
  countsTimer = setTimeout(() => run(async () => {
    await refreshProgress();
    renderClasses();
  }), 400);
}

async function reloadImage() {
  // The open image's summary (its status may have changed) and the list around it.
  const fresh = await api(`/api/images/${state.image.id}`);
  Object.assign(state.image, fresh);
  const listed = state.page.images.find((i) => i.id === fresh.id);
  if (listed) Object.assign(listed, fresh);
  renderImages();
  run(refreshProgress);
}

async function stepImage(delta) {
  // Next or previous image of the list; in review mode the list is refreshed first (reviewed
  // images leave the "annotated" filter), so "next" is the next one still to review.
  if (!state.reviewing) return openIndex(state.index + delta);
  const current = state.image?.id;
  await loadPage(state.page.offset);
  const at = state.page.images.findIndex((i) => i.id === current);
  const index = at >= 0 ? state.page.offset + at + delta : state.index + Math.min(delta, 0);
  if (index >= state.page.total) return say("no more images to review");
  await openIndex(Math.max(index, 0));
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
  run(refreshProgress);
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
  await loadClasses();
  run(refreshProgress);
  const already = done.skipped ? `, ${done.skipped} there already` : "";
  say(`imported ${done.added} mask(s) on ${done.images} image(s)${already}`);
}

async function markAnnotated() {
  // This image is done: "annotated" (ready for review); go on to the next one.
  if (!state.image) return;
  await api(`/api/images/${state.image.id}/status`, { method: "PUT", json: { status: "annotated" } });
  await reloadImage();
  say(`${state.image.path} is annotated · ready for review`);
  await openIndex(state.index + 1);
}

// --- prompts --------------------------------------------------------------------------------
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
  const active = activeClass();
  say(`${out.candidates.length} candidate(s) in ${(drawn - started).toFixed(0)} ms (model ${(out.seconds * 1000).toFixed(0)} ms) · Enter accepts${active && s.editing === null ? ` as ${active.name}` : ""}`);
}

function choose(index) {
  const s = state.session;
  if (index >= s.candidates.length) return;
  s.chosen = index;
  renderCandidates();
  draw();
}

function clear() {
  if (state.mode !== "prompt") return setMode("prompt");
  state.session = newSession();
  state.seq++;
  state.selected = null;
  state.picked.clear();
  closeName();
  renderSide();
  draw();
}

// --- undo and redo --------------------------------------------------------------------------
function remember(replay, what) {
  // An edit stored by this page: undo reverts it on the server (the image's newest edit), redo
  // replays `replay` ({path, method, json}) after an undo.
  state.done.push({ replay, what });
  state.redo = [];
}

async function undo() {
  const s = state.session;
  if (state.poly?.past.length) return undoPolygon();
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
  if (out.edit) {
    const entry = state.done.pop();
    if (entry) state.redo.push(entry);
  }
  say(out.edit ? `undo: ${undone[out.edit.action] ?? out.edit.action} mask ${out.edit.annotation_id}` : "nothing left to undo");
  await loadAnnotations();
  if (state.poly) await loadPolygon(state.poly.id);
  edited();
}

async function redo() {
  const entry = state.redo.pop();
  if (!entry) return say("nothing to redo (redo replays the edits undone on this page)");
  const { path, method, json } = entry.replay;
  const out = await api(path, { method, json });
  state.done.push(entry);
  say(`redo: ${entry.what}`);
  if (!Array.isArray(out) && out?.id && method === "POST" && path.endsWith("/annotations")) state.selected = out.id;
  await loadAnnotations();
  if (state.poly) await loadPolygon(state.poly.id);
  edited();
}

function replayMask(record, what) {
  // Redo of a mask change: store the mask (and name) it had after the change.
  return [{ path: `/api/annotations/${record.id}`, method: "PATCH", json: { rle: record.rle, label: record.label } }, what];
}

// --- annotations ----------------------------------------------------------------------------
function selectedAnnotation() {
  return state.annotations.find((a) => a.id === state.selected) ?? null;
}

function pickedIds() {
  const ids = new Set(state.picked);
  if (state.selected !== null) ids.add(state.selected);
  return [...ids].filter((id) => state.annotations.some((a) => a.id === id && a.status !== "proposed"));
}

function select(id) {
  if (state.poly && state.poly.id !== id) state.poly = null;
  state.selected = id;
  state.selectedByHand = id !== null;
  state.picked.clear();
  closeName();
  renderAnnotations();
  draw();
  if (id !== null && state.mode === "polygon") run(() => loadPolygon(id));
}

function pick(id) {
  // Add a mask to (or take it out of) the selection, for merge.
  if (state.selected === null) state.selected = id;
  else if (state.picked.has(id)) state.picked.delete(id);
  else if (id !== state.selected) state.picked.add(id);
  renderAnnotations();
  draw();
  say(`${pickedIds().length} mask(s) selected · M merges them`);
}

function maskAt([x, y]) {
  // The top visible mask under the point (the smallest, if layers were never reordered).
  const shown = visibleAnnotations();
  for (let i = shown.length - 1; i >= 0; i--) {
    const d = decodedOf(shown[i]);
    const [cx, cy] = [Math.floor(x) - d.x, Math.floor(y) - d.y];
    if (cx >= 0 && cy >= 0 && cx < d.w && cy < d.h && d.mask[cy * d.w + cx]) return shown[i];
  }
  return null;
}

function toggleHidden(id) {
  if (state.hidden.has(id)) state.hidden.delete(id);
  else state.hidden.add(id);
  renderAnnotations();
  draw();
}

async function moveLayer(id, step) {
  // Move a layer up or down and store the image's new layer order (undo reverts it).
  const at = state.order.indexOf(id);
  const to = Math.min(Math.max(at + step, 0), state.order.length - 1);
  if (at < 0 || to === at) return;
  state.order.splice(at, 1);
  state.order.splice(to, 0, id);
  renderAnnotations();
  draw();
  const replay = { path: `/api/images/${state.image.id}/order`, method: "PUT", json: { ids: [...state.order] } };
  await api(replay.path, { method: replay.method, json: replay.json });
  remember(replay, `layer order of mask ${id}`);
  await loadAnnotations();
  edited();
}

async function accept() {
  if (state.busy) return;
  if (state.poly) return savePolygon();
  const s = state.session;
  const candidate = s.candidates[s.chosen];
  if (!candidate) {
    if (selectedAnnotation()?.status === "proposed") await setStatus(state.selected, "accepted");
    return;
  }
  state.busy = true;
  try {
    const label = activeClass()?.name;
    let record;
    if (s.editing !== null) {
      record = await api(`/api/annotations/${s.editing}`, { method: "PATCH", json: { candidate: candidate.id } });
      remember(...replayMask(record, `mask ${record.id} refined`));
    } else {
      record = await api(`/api/images/${state.image.id}/annotations`, { method: "POST", json: { candidate: candidate.id, ...(label ? { label } : {}) } });
      const json = { rle: record.rle, ...(record.label ? { label: record.label } : {}) };
      remember({ path: `/api/images/${state.image.id}/annotations`, method: "POST", json }, `mask ${record.id} stored again`);
    }
    state.session = newSession();
    state.selected = record.id;
    state.selectedByHand = false;
    await loadAnnotations();
    say(`mask ${record.id} stored${record.label ? ` as ${record.label}` : " · N names it, a class key labels it"}`);
    if (state.image.status === "new") await reloadImage();
    edited();
  } finally {
    state.busy = false;
  }
}

function refineSelected() {
  const a = selectedAnnotation();
  if (!a) return say("select a mask first (alt-click it or pick it in the list)");
  setMode("prompt", { quiet: true });
  state.session = newSession(a.id);
  renderSide();
  draw();
  say(`refining mask ${a.id}: click to add or remove parts, Enter saves`);
}

async function remove() {
  if (state.poly?.active) return deleteVertex();
  const a = selectedAnnotation();
  if (!a) return;
  await api(`/api/annotations/${a.id}`, { method: "DELETE" });
  remember({ path: `/api/annotations/${a.id}`, method: "DELETE" }, `mask ${a.id} deleted`);
  state.selected = null;
  if (state.poly?.id === a.id) state.poly = null;
  say(`deleted mask ${a.id} · Ctrl+Z brings it back`);
  await loadAnnotations();
  edited();
}

async function setStatus(id, status) {
  await api(`/api/annotations/${id}`, { method: "PATCH", json: { status } });
  remember({ path: `/api/annotations/${id}`, method: "PATCH", json: { status } }, `mask ${id} ${status}`);
  await loadAnnotations();
  edited();
  run(refreshProgress);
}

async function reject() {
  const a = selectedAnnotation();
  if (a?.status === "proposed") {
    await setStatus(a.id, "rejected");
    nextProposal();
  }
}

function nextProposal() {
  const proposals = state.annotations.filter((a) => a.status === "proposed" && proposalScore(a) >= threshold());
  if (!proposals.length) return say("no proposals above the min score");
  const after = proposals.find((a) => a.id > (state.selected ?? -1)) ?? proposals[0];
  select(after.id);
}

async function acceptAbove() {
  // Every proposal at or above the min score (one request where the server has it).
  const min = threshold();
  let count;
  try {
    const out = await api(`/api/images/${state.image.id}/proposals/accept`, { method: "POST", json: { min_score: min }, quiet404: true });
    count = Array.isArray(out) ? out.length : out.accepted?.length ?? out.accepted ?? out.count ?? "the";
  } catch (err) {
    if (!missing(err)) throw err;
    const above = state.annotations.filter((a) => a.status === "proposed" && proposalScore(a) >= min);
    for (const a of above) await api(`/api/annotations/${a.id}`, { method: "PATCH", json: { status: "accepted" } });
    count = above.length;
  }
  say(`accepted ${count} proposal(s) ≥ ${min.toFixed(2)}`);
  await loadAnnotations();
  await reloadImage();
  edited();
}

async function propose() {
  const image = state.image;
  say("proposing masks…");
  const body = { min_score: threshold(), name: state.info.vocabulary.length > 0 };
  const out = await api(`/api/images/${image.id}/propose`, { method: "POST", json: body });
  if (state.image !== image) return;
  say(`${out.proposals.length} proposal(s) in ${out.seconds.toFixed(1)} s · Tab steps, A accepts, R rejects, “Accept ≥ min” takes all above the slider`);
  await loadAnnotations();
  const first = out.proposals.filter((a) => proposalScore(a) >= threshold()).sort((p, q) => proposalScore(q) - proposalScore(p))[0];
  if (first) select(first.id);
}

// --- polygon editing ------------------------------------------------------------------------
async function loadPolygon(id) {
  const out = await api(`/api/annotations/${id}/polygons`);
  if (state.selected !== id || state.mode !== "polygon") return;
  const rings = out.polygons
    .map((flat) => {
      const ring = [];
      for (let i = 0; i + 1 < flat.length; i += 2) ring.push([flat[i], flat[i + 1]]);
      return simplifyRing(ring, SIMPLIFY_PX);
    })
    .filter((ring) => ring.length >= 3);
  state.poly = { id, rings, active: null, dirty: false, past: [] };
  renderAnnotations();
  draw();
  say(`polygon of mask ${id}: ${rings.length} ring(s) · drag a vertex, double-click an edge adds one, right-click or Del removes one, Enter saves`);
}

const SIMPLIFY_PX = 1.0;

function simplifyRing(ring, epsilon) {
  // Douglas-Peucker on a closed ring: the server's exact outline has a vertex at every pixel step;
  // handles every pixel or so apart cannot be dragged. Kept within `epsilon` image pixels.
  if (ring.length <= 4) return ring;
  let far = 0, farD = -1;
  for (let i = 1; i < ring.length; i++) {
    const d = (ring[i][0] - ring[0][0]) ** 2 + (ring[i][1] - ring[0][1]) ** 2;
    if (d > farD) [far, farD] = [i, d];
  }
  const keep = new Uint8Array(ring.length);
  keep[0] = keep[far] = 1;
  const stack = [[0, far], [far, ring.length]];
  while (stack.length) {
    const [a, b] = stack.pop();
    const [ax, ay] = ring[a], [bx, by] = ring[b % ring.length];
    const len = Math.hypot(bx - ax, by - ay) || 1;
    let worst = -1, worstD = epsilon;
    for (let i = a + 1; i < b; i++) {
      const d = Math.abs((bx - ax) * (ay - ring[i][1]) - (ax - ring[i][0]) * (by - ay)) / len;
      if (d > worstD) [worst, worstD] = [i, d];
    }
    if (worst >= 0) {
      keep[worst] = 1;
      stack.push([a, worst], [worst, b]);
    }
  }
  return ring.filter((_, i) => keep[i]);
}

function polygonChange() {
  const poly = state.poly;
  poly.past.push(JSON.stringify(poly.rings));
  if (poly.past.length > 200) poly.past.shift();
  poly.dirty = true;
}

function undoPolygon() {
  const poly = state.poly;
  poly.rings = JSON.parse(poly.past.pop());
  poly.dirty = poly.past.length > 0;
  poly.active = null;
  draw();
  say("undid a vertex change (not saved yet)");
}

function deleteVertex(target = state.poly?.active) {
  const poly = state.poly;
  if (!poly || !target) return;
  const [r, i] = target;
  polygonChange();
  poly.rings[r].splice(i, 1);
  if (poly.rings[r].length < 3) poly.rings.splice(r, 1); // a ring needs three vertices
  poly.active = null;
  draw();
  say("vertex removed · Enter saves");
}

function insertVertex(r, [x, y]) {
  // A vertex on the edge of ring r nearest to (x, y).
  const ring = state.poly.rings[r];
  let best = 0, bestD = Infinity, bestP = null;
  for (let i = 0; i < ring.length; i++) {
    const [ax, ay] = ring[i], [bx, by] = ring[(i + 1) % ring.length];
    const len = (bx - ax) ** 2 + (by - ay) ** 2;
    const t = len ? Math.min(1, Math.max(0, ((x - ax) * (bx - ax) + (y - ay) * (by - ay)) / len)) : 0;
    const p = [ax + t * (bx - ax), ay + t * (by - ay)];
    const d = (p[0] - x) ** 2 + (p[1] - y) ** 2;
    if (d < bestD) [best, bestD, bestP] = [i, d, p];
  }
  polygonChange();
  ring.splice(best + 1, 0, bestP.map((v) => Math.round(v * 10) / 10));
  state.poly.active = [r, best + 1];
  draw();
  say("vertex added · Enter saves");
}

async function savePolygon() {
  const poly = state.poly;
  if (!poly) return;
  if (!poly.dirty) return say("the polygon has no changes to save");
  const polygons = poly.rings.filter((r) => r.length >= 3).map((r) => r.flat());
  const record = await api(`/api/annotations/${poly.id}`, { method: "PATCH", json: { polygons } });
  remember(...replayMask(record, `polygon of mask ${record.id}`));
  say(`mask ${record.id} saved from its polygon (${record.area} px)`);
  await loadAnnotations();
  await loadPolygon(poly.id);
  edited();
}

function onVertexDown(event) {
  const target = event.target;
  if (!target.classList?.contains("vertex") || event.button !== 0) return;
  event.stopPropagation();
  event.preventDefault();
  const r = Number(target.dataset.ring), i = Number(target.dataset.index);
  state.poly.active = [r, i];
  polygonChange();
  state.vertexDrag = { r, i, pointerId: event.pointerId, moved: false };
  target.classList.add("active");
  window.addEventListener("pointermove", onVertexMove);
  window.addEventListener("pointerup", onVertexUp, { once: true });
}

function onVertexMove(event) {
  const drag = state.vertexDrag;
  if (!drag || event.pointerId !== drag.pointerId) return;
  const [x, y] = toImage(event);
  state.poly.rings[drag.r][drag.i] = [Math.round(x * 10) / 10, Math.round(y * 10) / 10];
  drag.moved = true;
  // Move the handle and the outline in place (the circle keeps receiving the drag).
  const dot = vector.querySelector(`circle.vertex[data-ring="${drag.r}"][data-index="${drag.i}"]`);
  if (dot) {
    dot.setAttribute("cx", x);
    dot.setAttribute("cy", y);
  }
  vector.querySelector(".ring")?.setAttribute("d", state.poly.rings.map(ringPath).join(""));
}

function onVertexUp() {
  window.removeEventListener("pointermove", onVertexMove);
  const drag = state.vertexDrag;
  state.vertexDrag = null;
  if (drag && !drag.moved) state.poly.past.pop(); // a click only made the vertex active
  if (state.poly && state.poly.past.length === 0) state.poly.dirty = false;
  draw();
  if (drag?.moved) say("vertex moved · Enter saves, Ctrl+Z undoes");
}

// --- brush, eraser, split, merge ------------------------------------------------------------
async function sendStroke(mode, points) {
  const a = selectedAnnotation();
  if (!a) return say("select a mask first (alt-click it or pick it in the list)", true);
  const radius = state.radius;
  const rounded = points.map(([x, y]) => [Math.round(x * 10) / 10, Math.round(y * 10) / 10]);
  if (mode === "split") {
    const parts = await api(`/api/annotations/${a.id}/split`, { method: "POST", json: { points: rounded, radius } });
    remember({ path: `/api/annotations/${a.id}/split`, method: "POST", json: { points: rounded, radius } }, `mask ${a.id} split`);
    state.selected = parts[0]?.id ?? null;
    say(parts.length > 1 ? `mask ${a.id} split into ${parts.map((p) => p.id).join(", ")}` : "the stroke did not cut the mask in two");
  } else {
    const before = a.area;
    const record = await api(`/api/annotations/${a.id}/paint`, { method: "POST", json: { points: rounded, radius, mode } });
    remember(...replayMask(record, `${mode === "add" ? "brush" : "eraser"} on mask ${record.id}`));
    say(`${mode === "add" ? "painted" : "erased"}: mask ${record.id} ${before} → ${record.area} px`);
  }
  await loadAnnotations();
  edited();
}

async function newPaintedMask(points) {
  // A brush stroke where no mask is: a new manual mask (of the active class), the first dab as a
  // polygon, the rest of the stroke painted onto it.
  const r = state.radius;
  const [x0, y0] = points[0];
  const ring = [];
  for (let i = 0; i < 24; i++) ring.push(x0 + r * Math.cos((i * Math.PI) / 12), y0 + r * Math.sin((i * Math.PI) / 12));
  const label = activeClass()?.name;
  const body = { polygons: [ring.map((v) => Math.round(v * 10) / 10)], ...(label ? { label } : {}) };
  let record = await api(`/api/images/${state.image.id}/annotations`, { method: "POST", json: body });
  if (points.length > 1) {
    const rounded = points.map(([x, y]) => [Math.round(x * 10) / 10, Math.round(y * 10) / 10]);
    record = await api(`/api/annotations/${record.id}/paint`, { method: "POST", json: { points: rounded, radius: r, mode: "add" } });
  }
  const json = { rle: record.rle, ...(record.label ? { label: record.label } : {}) };
  remember({ path: `/api/images/${state.image.id}/annotations`, method: "POST", json }, `mask ${record.id} painted again`);
  state.selected = record.id;
  state.selectedByHand = false;
  say(`new mask ${record.id}${record.label ? ` (${record.label})` : ""} painted: ${record.area} px · more strokes add to it`);
  await loadAnnotations();
  edited();
}

async function merge() {
  const ids = pickedIds();
  if (ids.length < 2) return say("select two masks or more to merge (ctrl+alt-click, or ctrl-click in the list)");
  const record = await api("/api/annotations/merge", { method: "POST", json: { ids } });
  remember({ path: "/api/annotations/merge", method: "POST", json: { ids } }, `masks ${ids.join(", ")} merged`);
  state.picked.clear();
  state.selected = record.id;
  say(`merged ${ids.join(", ")} into mask ${record.id}`);
  await loadAnnotations();
  edited();
}

function setRadius(r) {
  state.radius = Math.min(Math.max(Math.round(r), 1), 400);
  renderModes();
  draw();
}

// --- modes ----------------------------------------------------------------------------------
function setMode(mode, { quiet = false } = {}) {
  if (mode === state.mode && mode !== "polygon") return;
  state.mode = mode;
  state.poly = null;
  state.drag = null;
  if (mode !== "concept") state.exemplars = [];
  renderModes();
  renderAnnotations();
  draw();
  if (mode === "polygon") {
    if (state.selected === null) say("polygon: select a mask (alt-click it or pick it in the list)");
    else run(() => loadPolygon(state.selected));
    return;
  }
  if (quiet) return;
  const hint = {
    prompt: "click an object, drag a box",
    brush: "brush: paint onto the selected mask · [ ] radius",
    erase: "eraser: erase from the selected mask · [ ] radius",
    split: "split: draw a stroke across the selected mask",
    concept: "concept: T finds every instance of the active class · drag a box adds an exemplar, right-drag a negative one",
  }[mode];
  say(hint);
}

// --- classes --------------------------------------------------------------------------------
async function loadClasses() {
  try {
    state.classes = await api("/api/classes", { quiet404: true });
    state.classesAvailable = true;
  } catch (err) {
    if (!missing(err)) throw err;
    // An older server: the vocabulary's names, without colours or keys.
    state.classesAvailable = false;
    state.classes = state.info.vocabulary.map((name, i) => ({ id: -(i + 1), name, color: PALETTE[i % PALETTE.length], key: null, description: null, count: null }));
  }
  state.info.vocabulary = state.classes.map((c) => c.name);
  if (!state.classes.some((c) => c.id === state.activeClass)) state.activeClass = null;
  renderClasses();
  draw();
}

function activeClass() {
  return state.classes.find((c) => c.id === state.activeClass) ?? null;
}

async function activateClass(id) {
  // The class for the next accepted mask; a selected stored mask (and no candidate) is labelled with it.
  state.activeClass = id;
  renderClasses();
  const c = activeClass();
  // A mask just stored with a class keeps it: the key only picks the class for the next object.
  const a = selectedAnnotation();
  const relabel = a && (state.selectedByHand || !a.label);
  if (relabel && a.status !== "rejected" && !state.session.candidates.length && a.label !== c.name) {
    const record = await api(`/api/annotations/${a.id}`, { method: "PATCH", json: { label: c.name } });
    remember({ path: `/api/annotations/${a.id}`, method: "PATCH", json: { label: c.name } }, `mask ${a.id} labelled`);
    say(`mask ${record.id} is ${c.name} · ${c.name} is the active class`);
    await loadAnnotations();
    await loadClasses();
    edited();
    return;
  }
  say(`active class: ${c.name} · click an object, Enter accepts it as ${c.name}${state.mode === "concept" ? "" : " · T finds every one"}`);
  if (state.mode === "concept") await concept();
}

function checkKey(key, id = null) {
  if (!key) return null;
  if (key.length !== 1) throw new Error("a class key is one character");
  if (COMMAND_KEYS.has(key.toLowerCase())) throw new Error(`the key ${key} is a command of the page: pick another (digits work)`);
  const other = state.classes.find((c) => c.key?.toLowerCase() === key.toLowerCase() && c.id !== id);
  if (other) throw new Error(`the key ${key} is ${other.name}'s`);
  return key;
}

function freeKey() {
  // The first digit no class uses (1-9, then 0 is the fit key, so none).
  for (const k of "123456789") if (!state.classes.some((c) => c.key === k)) return k;
  return null;
}

async function createClass() {
  const name = $("class-name").value.trim();
  if (!name) return say("type the class name first", true);
  const key = checkKey($("class-key").value.trim() || freeKey());
  const created = await api("/api/classes", { method: "POST", json: { name, color: $("class-color").value, ...(key ? { key } : {}) } });
  $("class-name").value = "";
  $("class-key").value = "";
  $("class-color").value = PALETTE[(state.classes.length + 1) % PALETTE.length];
  await loadClasses();
  state.activeClass = created.id;
  renderClasses();
  say(`class ${created.name}${created.key ? ` (key ${created.key})` : ""} is the active class`);
}

async function updateClass(id, changes) {
  if ("key" in changes) checkKey(changes.key, id);
  const before = state.classes.find((c) => c.id === id);
  await api(`/api/classes/${id}`, { method: "PATCH", json: changes });
  state.editingClass = null;
  await loadClasses();
  if (state.image) await loadAnnotations();
  say(changes.name && changes.name !== before?.name ? `renamed ${before?.name} to ${changes.name} (its masks too)` : "class saved");
}

async function mergeClass(id, into) {
  const [from, to] = [state.classes.find((c) => c.id === id), state.classes.find((c) => c.id === into)];
  await api(`/api/classes/${id}/merge`, { method: "POST", json: { into } });
  state.editingClass = null;
  await loadClasses();
  if (state.image) await loadAnnotations();
  say(`merged ${from?.name} into ${to?.name}`);
}

async function deleteClass(id) {
  const c = state.classes.find((o) => o.id === id);
  await api(`/api/classes/${id}`, { method: "DELETE" });
  state.editingClass = null;
  await loadClasses();
  if (state.image) await loadAnnotations();
  say(`deleted class ${c?.name}`);
}

function toggleClassEditor(id) {
  state.editingClass = state.editingClass === id ? null : id;
  renderClasses();
}

// --- concept prompts ------------------------------------------------------------------------
async function concept() {
  const c = activeClass();
  if (!c) return say("pick a class first (its key or a click in the classes list), then T", true);
  if (state.mode !== "concept") setMode("concept", { quiet: true });
  const image = state.image;
  const body = { min_score: threshold() };
  if (c.id > 0) body.class_id = c.id;
  else body.text = c.name;
  if (state.exemplars.length) body.exemplars = state.exemplars;
  say(`finding every ${c.name}…`);
  const started = performance.now();
  const out = await api(`/api/images/${image.id}/concept`, { method: "POST", json: body });
  if (state.image !== image) return;
  await loadAnnotations();
  const known = new Set(state.annotations.map((a) => a.id));
  const loose = out.proposals.filter((p) => !known.has(p.id)); // not stored: show them anyway
  if (loose.length) {
    state.annotations.push(...loose);
    state.order.push(...loose.map((p) => p.id));
    renderAnnotations();
    draw();
  }
  edited();
  say(`${out.proposals.length} ${c.name} proposal(s) in ${(performance.now() - started).toFixed(0)} ms (model ${(out.seconds * 1000).toFixed(0)} ms) · Accept ≥ min takes them · drag a box adds an exemplar`);
  hook({ concepts: (Number(document.body.dataset.concepts || 0) + 1) });
}

// --- review ---------------------------------------------------------------------------------
async function toggleReview() {
  // Review mode: the list shows the annotated images, the first mask not reviewed is selected.
  state.reviewing = !state.reviewing;
  $("filter-status").value = state.reviewing ? "annotated" : "";
  setMode("prompt", { quiet: true });
  renderReview();
  await loadPage(0);
  const at = state.page.images.findIndex((i) => i.id === state.image?.id);
  if (!state.page.total) {
    say(state.reviewing ? "no annotated images to review" : "no images");
  } else if (at >= 0) {
    state.index = state.page.offset + at;
    renderImages();
    if (state.reviewing) selectNextUnreviewed();
    say(state.reviewing ? "review: A accepts, R rejects the selected mask (comment optional) · PgDn next image" : "review mode off");
  } else {
    await openIndex(0);
  }
  hook({ reviewing: state.reviewing ? "1" : "0" });
}

function reviewTargets() {
  // The masks a reviewer judges: accepted ones, and those judged already (proposals the annotator
  // rejected are not).
  return layers().filter((a) => a.status === "accepted" || a.reviewer).reverse();
}

function selectNextUnreviewed() {
  const next = reviewTargets().find((a) => !a.reviewer);
  if (next) select(next.id);
  else {
    select(null);
    say("every mask of this image is reviewed · PgDn next image");
  }
}

async function review(verdict) {
  const a = selectedAnnotation();
  if (!a) return say("select a mask to review", true);
  const comment = $("review-comment").value.trim();
  // One request: the server also sets the image's status once every mask is judged (reviewed, or
  // rejected, back to its annotator, if one mask is).
  const record = await api(`/api/annotations/${a.id}/review`, { method: "POST", json: { verdict, ...(comment ? { comment } : {}) } });
  $("review-comment").value = "";
  await loadAnnotations();
  await reloadImage();
  selectNextUnreviewed();
  if (reviewTargets().every((t) => t.reviewer)) say(`mask ${record.id} ${verdict} · image ${record.image_status} · PgDn next image`);
  else say(`mask ${record.id} ${verdict}${comment ? ` · “${comment}”` : ""}`);
  edited();
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
    list.replaceChildren(element("span", { className: "note", textContent: "add classes for suggestions" }));
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
  const json = { label: text || null, label_score: text ? score : null };
  await api(`/api/annotations/${a.id}`, { method: "PATCH", json });
  remember({ path: `/api/annotations/${a.id}`, method: "PATCH", json }, `mask ${a.id} named`);
  closeName();
  say(text ? `mask ${a.id} is "${text}"` : `mask ${a.id} is unnamed`);
  await loadAnnotations();
  await loadClasses();
  edited();
}

function closeName() {
  $("name-panel").hidden = true;
  if (document.activeElement === $("name-input")) $("name-input").blur();
}

// --- pointer events -------------------------------------------------------------------------
function onPointerDown(event) {
  if (!state.image) return;
  if (event.button === 1 || (event.button === 0 && state.space)) {
    // Pan: middle button, or space + drag.
    event.preventDefault();
    overlay.setPointerCapture(event.pointerId);
    state.drag = { kind: "pan", client: [event.clientX, event.clientY], view: { ...state.view } };
    stage.classList.add("panning");
    return;
  }
  if (event.button !== 0 && event.button !== 2) return;
  const at = toImage(event);
  if (event.altKey) {
    const hit = maskAt(at);
    if (event.ctrlKey || event.metaKey) return hit && pick(hit.id);
    return select(hit ? hit.id : null);
  }
  overlay.setPointerCapture(event.pointerId);
  const mode = state.mode;
  if (["brush", "erase", "split"].includes(mode)) {
    let fresh = false;
    if (!selectedAnnotation()) {
      const hit = maskAt(at);
      if (hit) select(hit.id);
      else if (mode === "brush") fresh = true; // a stroke on nothing: a new mask
      else return say("select a mask first (alt-click it or pick it in the list)", true);
    }
    state.drag = { kind: "stroke", mode, points: [at], fresh };
    draw();
    return;
  }
  if (mode === "polygon") {
    const hit = maskAt(at);
    if (hit) select(hit.id);
    return;
  }
  if (mode === "concept" || (event.shiftKey && event.button === 0 && activeClass())) {
    // Concept mode: a drag is an exemplar box (right-drag: a negative one). Anywhere else, shift-drag
    // with an active class is one too (a shift-click stays a background point).
    state.drag = { kind: "exemplar", start: at, client: [event.clientX, event.clientY], now: null, negative: event.button === 2, shift: mode !== "concept" };
    return;
  }
  state.drag = { kind: "box", start: at, client: [event.clientX, event.clientY], now: null, negative: event.button === 2 || event.shiftKey };
}

function onPointerMove(event) {
  const drag = state.drag;
  if (!drag && state.mode === "prompt") hoverAt(toImage(event));
  if (["brush", "erase", "split"].includes(state.mode)) {
    state.pointer = toImage(event);
    if (!drag) return renderVector();
  }
  if (!drag) return;
  if (drag.kind === "pan") {
    const [x, y] = drag.client;
    setView(drag.view.z, drag.view.tx + event.clientX - x, drag.view.ty + event.clientY - y);
    return;
  }
  if (drag.kind === "stroke") {
    const at = toImage(event);
    const last = drag.points[drag.points.length - 1];
    if (Math.hypot(at[0] - last[0], at[1] - last[1]) >= Math.max(1, state.radius / 4)) drag.points.push(at);
    renderVector();
    return;
  }
  if (drag.now || Math.hypot(event.clientX - drag.client[0], event.clientY - drag.client[1]) > 5) {
    drag.now = toImage(event);
    if (drag.kind === "exemplar") renderVector();
    else draw();
  }
}

function onPointerUp(event) {
  const drag = state.drag;
  if (!drag) return;
  state.drag = null;
  if (drag.kind === "pan") {
    stage.classList.toggle("panning", state.space);
    return;
  }
  if (drag.kind === "stroke") {
    drag.points.push(toImage(event));
    const points = drag.points.filter((p, i) => i === 0 || p[0] !== drag.points[i - 1][0] || p[1] !== drag.points[i - 1][1]);
    const mode = { brush: "add", erase: "erase", split: "split" }[drag.mode];
    run(async () => {
      try {
        if (drag.fresh) await newPaintedMask(points);
        else await sendStroke(mode, points);
      } finally {
        renderVector();
      }
    });
    return;
  }
  if (drag.kind === "exemplar") {
    renderVector();
    if (!drag.now && drag.shift) {
      // A shift-click in the prompt tool: a background point after all.
      state.session.points.push([...drag.start, 0]);
      draw();
      run(predict);
      return;
    }
    if (!drag.now) return; // a click in concept mode: nothing to add
    const box = boxOf(drag.start, toImage(event));
    if (box[2] - box[0] < 2 || box[3] - box[1] < 2) return;
    state.exemplars.push({ box: box.map((v) => Math.round(v)), positive: !drag.negative });
    run(concept);
    return;
  }
  const s = state.session;
  if (drag.now && !drag.negative) {
    s.box = boxOf(drag.start, toImage(event));
  } else {
    s.points.push([...drag.start, drag.negative ? 0 : 1]);
  }
  draw();
  run(predict);
}

function hoverAt(at) {
  // The mask under the pointer gets its caption even where captions crowd (checked at most every 40 ms).
  const now = performance.now();
  if (now - (hoverAt.last ?? 0) < 40) return;
  hoverAt.last = now;
  const id = maskAt(at)?.id ?? null;
  if (id === state.hover) return;
  state.hover = id;
  if (state.image) renderLabels();
}

function onWheel(event) {
  if (!state.image) return;
  event.preventDefault();
  const box = stage.getBoundingClientRect();
  const delta = event.deltaMode === 1 ? event.deltaY * 16 : event.deltaY;
  zoomAt(Math.exp(-delta * 0.0015), event.clientX - box.left, event.clientY - box.top);
}

function onVectorContextMenu(event) {
  const target = event.target;
  if (!target.classList?.contains("vertex")) return;
  event.preventDefault();
  deleteVertex([Number(target.dataset.ring), Number(target.dataset.index)]);
}

function onVectorDoubleClick(event) {
  const target = event.target;
  if (!state.poly || !target.classList?.contains("edge")) return;
  event.preventDefault();
  insertVertex(Number(target.dataset.ring), toImage(event));
}

// --- keys -----------------------------------------------------------------------------------
const KEYS = {
  1: () => choose(0),
  2: () => choose(1),
  3: () => choose(2),
  Enter: accept,
  a: accept,
  n: openName,
  q: refineSelected,
  v: () => setMode("polygon"),
  b: () => setMode("brush"),
  e: () => setMode("erase"),
  s: () => setMode("split"),
  t: concept,
  m: merge,
  d: markAnnotated,
  o: () => { $("outlines").checked = !$("outlines").checked; draw(); },
  l: () => { $("captions").checked = !$("captions").checked; draw(); },
  "[": () => setRadius(state.radius / 1.25),
  "]": () => setRadius(state.radius * 1.25),
  "+": () => zoomCentre(1.25),
  "=": () => zoomCentre(1.25),
  "-": () => zoomCentre(0.8),
  0: fit,
  f: fit,
  Delete: remove,
  Backspace: remove,
  PageUp: () => stepImage(-1),
  PageDown: () => stepImage(1),
  ArrowLeft: () => (zoomedIn() ? pan(80, 0) : stepImage(-1)),
  ArrowRight: () => (zoomedIn() ? pan(-80, 0) : stepImage(1)),
  ArrowUp: () => zoomedIn() && pan(0, 80),
  ArrowDown: () => zoomedIn() && pan(0, -80),
  p: propose,
  r: reject,
  Tab: nextProposal,
  Escape: clear,
};

const REVIEW_KEYS = { a: () => review("accepted"), r: () => review("rejected"), Enter: () => review("accepted") };

function onKey(event) {
  // Keys type into text fields; sliders, checkboxes and buttons leave them to the page.
  if (event.target.closest("textarea, select, input:not([type='range']):not([type='checkbox']):not([type='color'])")) {
    if (event.key === "Escape") {
      closeName();
      event.target.blur();
    } else if (event.key === "Enter" && event.target.id === "review-comment") {
      event.preventDefault();
      run(() => review("accepted"));
    }
    return;
  }
  const lower = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if ((event.ctrlKey || event.metaKey) && (lower === "z" || lower === "y")) {
    event.preventDefault();
    run(event.shiftKey || lower === "y" ? redo : undo);
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey || !state.image) return;
  if (event.key === " ") {
    event.preventDefault();
    state.space = true;
    stage.classList.add("panning");
    return;
  }
  if (event.shiftKey && lower === "r") {
    event.preventDefault();
    run(toggleReview);
    return;
  }
  if (event.key === "Tab" && !state.annotations.some((a) => a.status === "proposed")) return; // normal focus move
  let action = state.reviewing ? REVIEW_KEYS[lower] : undefined;
  const cls = state.classes.find((c) => c.key && c.key.toLowerCase() === lower);
  if (!action && cls && !COMMAND_KEYS.has(lower)) action = () => activateClass(cls.id);
  action ??= KEYS[lower];
  if (action) {
    event.preventDefault();
    run(action);
  }
}

function onKeyUp(event) {
  if (event.key === " ") {
    state.space = false;
    if (state.drag?.kind !== "pan") stage.classList.remove("panning");
  }
}

function bindEvents() {
  overlay.addEventListener("pointerdown", onPointerDown);
  overlay.addEventListener("pointermove", onPointerMove);
  overlay.addEventListener("pointerup", onPointerUp);
  overlay.addEventListener("pointerleave", () => {
    state.pointer = null;
    state.hover = null;
    if (!state.drag) renderVector();
  });
  overlay.addEventListener("contextmenu", (event) => event.preventDefault());
  overlay.addEventListener("auxclick", (event) => event.preventDefault());
  stage.addEventListener("wheel", onWheel, { passive: false });
  vector.addEventListener("pointerdown", onVertexDown);
  vector.addEventListener("contextmenu", onVectorContextMenu);
  vector.addEventListener("dblclick", onVectorDoubleClick);
  document.addEventListener("keydown", onKey);
  document.addEventListener("keyup", onKeyUp);
  window.addEventListener("blur", () => (state.space = false));
  window.addEventListener("resize", () => {
    fit();
    draw();
  });
  const click = (id, action) => ($(id).onclick = () => run(action));
  click("accept", accept);
  click("clear", clear);
  click("undo", undo);
  click("redo", redo);
  click("merge", merge);
  click("delete", remove);
  click("save-polygon", savePolygon);
  click("propose", propose);
  click("accept-all", acceptAbove);
  click("mark-annotated", markAnnotated);
  click("review-mode", toggleReview);
  click("review-accept", () => review("accepted"));
  click("review-reject", () => review("rejected"));
  click("review-prev", () => stepImage(-1));
  click("review-next", () => stepImage(1));
  click("scan", scan);
  click("export", exportDataset);
  click("zoom-in", () => zoomCentre(1.25));
  click("zoom-out", () => zoomCentre(0.8));
  click("zoom-fit", fit);
  click("page-prev", () => loadPage(Math.max(0, state.page.offset - PAGE)));
  click("page-next", () => loadPage(state.page.offset + PAGE));
  for (const b of document.querySelectorAll("#toolbar [data-mode]")) {
    b.onclick = () => run(() => (b.dataset.mode === "concept" ? concept() : setMode(b.dataset.mode)));
  }
  $("opacity").oninput = () => draw();
  $("outlines").onchange = () => draw();
  $("captions").onchange = () => draw();
  $("min-score").oninput = () => {
    renderProposals();
    draw();
  };
  let searchTimer = null;
  $("search").oninput = () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => run(applyFilters), 250);
  };
  for (const id of ["filter-status", "filter-label", "filter-source", "filter-unlabelled", "filter-author", "filter-reviewer"]) {
    $(id).onchange = () => run(applyFilters);
  }
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
  $("class-form").onsubmit = (event) => {
    event.preventDefault();
    run(createClass);
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
  renderModes();
  window.zeroseg = { state, imageToClient, clientToImage, setView, fit };
  state.info = await api("/api/info");
  $("dataset").textContent = `${state.info.dataset} · ${state.info.model}`;
  $("author").value = state.author;
  $("author").placeholder = state.info.author;
  await loadClasses();
  run(refreshProgress);
  await loadPage(0);
  if (!state.page.total) return say("no images yet: upload one");
  const wanted = Number(location.hash.slice(1));
  await openIndex(Number.isInteger(wanted) && wanted < state.page.total ? wanted : 0);
}

run(start);
