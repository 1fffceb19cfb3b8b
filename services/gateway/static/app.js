// The search page: plain JS against the gateway's JSON API (no build step, no dependencies).
"use strict";

const PAGE_SIZE = 24;
const MAX_CHIPS = 4; // metadata values shown on a card; the rest are in the asset's JSON
const MAX_ENTRIES = 50; // history entries whose query is remembered in memory (each may hold a File)
const TARGETS = ["image", "text", "audio", "video", "any"];
const DEFAULT_TARGET = "image";
const AUDIO_NAME = /\.(wav|flac|ogg|opus|mp3)$/i; // browsers leave the type empty for some of these
const CAPTION_KEYS = ["caption", "description", "title"]; // metadata shown as an audio result's text
const $ = (id) => document.getElementById(id);

const state = {
  query: null, // {kind: "text", text} | {kind: "image" | "audio", file} | {kind: "asset", assetId}
  apiKey: sessionStorage.getItem("xmodal-api-key") || "",
  categories: new Set(),
  objectUrls: [], // blob URLs of result media, released with the results
  dropUrl: null, // blob URL of the dropped file's preview
  entries: new Map(), // history entry id -> {query, modifier}: what back/forward returns to
  lastEntry: 0,
  // Entry ids are unique to this page load: after a reload the history still holds the old ids, which must
  // not name this load's entries (their queries are gone; the URL is all that is left of them).
  load: Date.now().toString(36) + Math.random().toString(36).slice(2, 8),
  running: 0, // id of the newest search; answers to older ones are dropped
  searches: 0, // finished searches, exposed as data-searches on the results (tests wait on it)
};

// "re-ranked by X in N ms", or why the order is the retrieval order (a degraded re-ranking).
function reranked(info) {
  if (!info) return "";
  if (info.degraded) return ` · not re-ranked: ${info.reason || "degraded"}`;
  return ` · re-ranked by ${info.name} in ${info.took_ms.toFixed(1)} ms`;
}

function target() {
  return document.querySelector("input[name=target]:checked").value;
}

// The Match choice (picture, caption or both) means nothing for videos, which have no captions: hidden there.
function showPartChoice() {
  $("part").closest("label").hidden = target() === "video";
}

function options() {
  const body = { target: target(), limit: PAGE_SIZE };
  const category = $("category").value;
  if (category) body.filters = { field: "category", eq: category };
  if ($("rerank").checked) body.rerank = true;
  const part = $("part").value; // empty: the gateway's default (fused where captions exist)
  if (part && target() !== "video") body.part = part; // videos have no captions: one part

  const modifier = $("modifier").value.trim();
  if (modifier && state.query && state.query.kind !== "text") body.modifier = { text: modifier, weight: 0.5 };
  return body;
}

function headers(extra) {
  const h = Object.assign({}, extra);
  if (state.apiKey) h["X-API-Key"] = state.apiKey;
  return h;
}

async function request(url, init) {
  const resp = await fetch(url, init);
  let body = null;
  try {
    body = await resp.json();
  } catch (e) {
    body = null;
  }
  if (!resp.ok) {
    const err = (body && body.error) || { code: "http_" + resp.status, message: resp.statusText };
    const error = new Error(err.message);
    error.code = err.code;
    error.status = resp.status;
    error.retryAfter = resp.headers.get("Retry-After");
    throw error;
  }
  return body;
}

function searchRequest() {
  const q = state.query;
  if (q.kind === "image" || q.kind === "audio") {
    const form = new FormData();
    form.append(q.kind, q.file, q.file.name || "upload"); // the field names the query's modality
    form.append("query", JSON.stringify(options()));
    return request("/v1/search/upload", { method: "POST", body: form, headers: headers({}) });
  }
  const body = options();
  if (q.kind === "text") body.text = q.text;
  else body.asset_id = q.assetId;
  return request("/v1/search", {
    method: "POST", body: JSON.stringify(body), headers: headers({ "Content-Type": "application/json" }),
  });
}

// -- state in the URL ---------------------------------------------------------------------------------------
// The URL holds what a link can carry: a text query (q), the target and the category filter, so a search can
// be shared or bookmarked. Uploads and more-like-this are not in it (the file is not on the server, and an
// asset id alone is a poor link): such a search leaves only target and category in the URL. Its history
// entry remembers the query in memory (state.entries), so back/forward in this tab still returns to it.

function urlFor(query) {
  const params = new URLSearchParams();
  if (query && query.kind === "text") params.set("q", query.text);
  params.set("target", target());
  const category = $("category").value;
  if (category) params.set("category", category);
  if ($("rerank").checked) params.set("rerank", "true");
  if ($("part").value) params.set("part", $("part").value);
  return location.pathname + "?" + params.toString();
}

// Sets the controls from the URL; returns its text query, or null.
function readUrl() {
  const params = new URLSearchParams(location.search);
  const wanted = params.get("target");
  const t = TARGETS.includes(wanted) ? wanted : DEFAULT_TARGET;
  document.querySelector(`input[name=target][value=${t}]`).checked = true;
  showPartChoice();
  setCategory(params.get("category") || "");
  $("rerank").checked = params.get("rerank") === "true";
  $("part").value = ["content", "caption"].includes(params.get("part")) ? params.get("part") : "";
  const text = (params.get("q") || "").trim();
  return text ? { kind: "text", text } : null;
}

function sameQuery(a, b) {
  if (!a || !b || a.kind !== b.kind) return a === b;
  if (a.kind === "text") return a.text === b.text;
  if (a.kind === "asset") return a.assetId === b.assetId;
  return a.file === b.file;
}

// Writes the search about to run into the history: "push" adds an entry (unless it would repeat the current
// one), "replace" rewrites the current one (the search the page opened with), "none" leaves it (back/forward).
function record(how) {
  if (how === "none") return;
  const url = urlFor(state.query);
  const modifier = $("modifier").value;
  const currentId = history.state && history.state.entry;
  const current = state.entries.get(currentId);
  const repeat = current && url === location.pathname + location.search
    && sameQuery(current.query, state.query) && current.modifier === modifier;
  const push = how === "push" && !repeat;
  if (!push) state.entries.delete(currentId);
  const id = `${state.load}-${++state.lastEntry}`;
  state.entries.set(id, { query: state.query, modifier });
  while (state.entries.size > MAX_ENTRIES) state.entries.delete(state.entries.keys().next().value);
  if (push) history.pushState({ entry: id }, "", url);
  else history.replaceState({ entry: id }, "", url);
}

function onPopState(ev) {
  const fromUrl = readUrl();
  const remembered = ev.state && state.entries.get(ev.state.entry);
  showQuery(remembered ? remembered.query : fromUrl, remembered ? remembered.modifier : "");
  if (state.query) {
    runSearch("none");
    return;
  }
  state.running += 1; // an answer still on its way is not for this page any more
  $("search-btn").disabled = false;
  clearResults("Type a query, or drop an image or a sound.");
}

// -- searching --------------------------------------------------------------------------------------------

async function runSearch(how = "push") {
  if (!state.query) return;
  record(how);
  const id = ++state.running;
  showError(null);
  $("search-btn").disabled = true;
  $("status").textContent = "Searching…";
  try {
    const res = await searchRequest();
    if (id !== state.running) return; // a newer search is under way; this answer is out of date
    render(res.results);
    const n = res.results.length;
    $("status").textContent = `space ${res.space} · model ${res.model} · ${res.took_ms.toFixed(1)} ms · `
      + `${n} result${n === 1 ? "" : "s"}${res.part && res.part !== "content" ? ` · ${res.part}` : ""}`
      + reranked(res.rerank);
  } catch (err) {
    if (id !== state.running) return;
    clearResults("The search failed."); // results of an earlier query would look like answers to this one
    showError(err);
  } finally {
    if (id === state.running) {
      $("search-btn").disabled = false;
      state.searches += 1;
      $("results").dataset.searches = String(state.searches);
    }
  }
}

function clearResults(status) {
  releaseObjectUrls();
  $("results").replaceChildren();
  $("empty").hidden = true;
  showError(null);
  $("status").textContent = status;
}

function showError(err) {
  const box = $("error");
  if (!err) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  let text = err.message || String(err);
  if (err.code) text += ` (${err.code}${err.status ? ", HTTP " + err.status : ""})`;
  if (err.retryAfter) text += ` Retry in ${err.retryAfter} s.`;
  if (err.status === 401) {
    $("key-box").hidden = false;
    text += " Enter the API key above and search again.";
  }
  box.textContent = text;
  box.hidden = false;
}

// -- results ------------------------------------------------------------------------------------------------

function releaseObjectUrls() {
  state.objectUrls.forEach((u) => URL.revokeObjectURL(u));
  state.objectUrls = [];
}

// Points an <img> or <audio> at a preview; with an API key it is fetched with the key and given as a blob.
async function loadMedia(el, url) {
  if (!state.apiKey) {
    el.src = url; // no key: let the browser load and cache it directly
    return;
  }
  try {
    const resp = await fetch(url, { headers: headers({}) });
    if (!resp.ok) return;
    const objectUrl = URL.createObjectURL(await resp.blob());
    state.objectUrls.push(objectUrl);
    el.src = objectUrl;
  } catch (e) {
    // a missing preview leaves the grey tile (or no player); the result itself is still shown
  }
}

function captionOf(r) {
  if (r.caption) return r.caption;
  const meta = r.metadata || {};
  const key = CAPTION_KEYS.find((k) => typeof meta[k] === "string" && meta[k]);
  return key ? meta[key] : r.text || r.asset_id;
}

function imageMedia(r) {
  const img = document.createElement("img");
  img.alt = r.asset_id;
  img.loading = "lazy";
  loadMedia(img, r.preview);
  return [img];
}

function soundMedia(r) {
  const caption = document.createElement("p");
  caption.className = "caption";
  caption.textContent = captionOf(r);
  if (!r.preview) return [caption];
  const player = document.createElement("audio");
  player.controls = true;
  player.preload = "metadata";
  player.setAttribute("aria-label", `Play ${r.asset_id}`);
  loadMedia(player, r.preview);
  return [caption, player];
}

function textMedia(r) {
  const p = document.createElement("p");
  p.className = "text";
  p.textContent = r.text || r.asset_id;
  return [p];
}

function seconds(t) {
  return `${t.toFixed(1)} s`;
}

// A video's card: its poster frame with the best match's time code; a click puts the player in its place,
// playing from that moment. The segments below it (best first) seek the player to theirs.
function videoMedia(r) {
  const poster = document.createElement("button");
  poster.type = "button";
  poster.className = "poster";
  poster.setAttribute("aria-label", `Play ${r.asset_id} from ${seconds(r.start_s || 0)}`);
  const img = document.createElement("img");
  img.alt = r.asset_id;
  const shown = r.preview ? loadMedia(img, r.preview) : Promise.resolve();
  const badge = document.createElement("span");
  badge.className = "timecode";
  badge.textContent = `\u25B6 ${seconds(r.start_s || 0)}`;
  poster.append(img, badge);
  // the stored poster is the first keyframe: once it is shown, the matched frame replaces it
  if (r.video && (r.start_s || 0) > 0) shown.then(() => matchedFrame(img, r));
  if (r.video) poster.addEventListener("click", () => playFrom(poster, r, r.start_s || 0));
  else poster.disabled = true; // not stored for playback (too big, or a format browsers do not play)
  return [poster];
}

// The poster shows the frame at the matched time, not the video's first: a muted, unattached video seeks there
// and its frame is drawn into the image (the first keyframe stays when the video cannot be read).
function matchedFrame(img, r) {
  const video = document.createElement("video");
  video.muted = true;
  video.preload = "auto";
  video.addEventListener("loadedmetadata", () => { video.currentTime = r.start_s; }, { once: true });
  video.addEventListener("seeked", () => {
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    img.src = canvas.toDataURL("image/jpeg", 0.85);
    img.dataset.frameAt = String(r.start_s);
    video.removeAttribute("src");
    video.load(); // let the decoder go
  }, { once: true });
  loadMedia(video, r.video);
}

function playFrom(el, r, start) {
  let player = el.closest(".media").querySelector("video");
  if (!player) {
    player = document.createElement("video");
    player.controls = true;
    player.muted = true; // autoplay needs it; the controls unmute
    player.playsInline = true;
    player.preload = "auto";
    player.setAttribute("aria-label", `Video ${r.asset_id}`);
    el.replaceWith(player);
    loadMedia(player, r.video);
  }
  const seek = () => {
    player.currentTime = start;
    player.play().catch(() => {}); // a browser that refuses to autoplay still shows the frame at `start`
  };
  if (player.readyState >= 1) seek();
  else player.addEventListener("loadedmetadata", seek, { once: true });
}

function segmentsOf(r, media) {
  const list = document.createElement("div");
  list.className = "segments";
  for (const s of r.segments || []) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "segment";
    b.title = `score ${s.score.toFixed(3)}`;
    b.textContent = `${seconds(s.start_s)}\u2013${seconds(s.end_s)}`;
    b.disabled = !r.video;
    b.addEventListener("click", () => playFrom(media.firstElementChild, r, s.start_s));
    list.append(b);
  }
  return list;
}

function mediaOf(r) {
  if (r.modality === "audio") return soundMedia(r);
  if (r.modality === "video") return videoMedia(r);
  return r.preview ? imageMedia(r) : textMedia(r);
}

function chips(meta, r, cardText) {
  const shown = new Set();
  for (const [key, v] of Object.entries(r.metadata || {})) {
    const text = Array.isArray(v) ? v.join(", ") : String(v);
    // e.g. category repeating shape, or a caption that is the card's own text
    if (text === cardText || shown.has(text) || shown.size >= MAX_CHIPS) continue;
    shown.add(text);
    const chip = document.createElement("span");
    chip.className = "chip";
    chip.title = `${key}: ${text}`;
    chip.textContent = text;
    meta.append(chip);
  }
}

function render(results) {
  releaseObjectUrls();
  const grid = $("results");
  grid.replaceChildren();
  $("empty").hidden = results.length > 0;
  const template = $("card");
  for (const r of results) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.dataset.assetId = r.asset_id;
    card.dataset.modality = r.modality;
    card.dataset.score = String(r.score);
    card.dataset.meta = JSON.stringify(r.metadata || {});
    card.classList.toggle("sound", r.modality === "audio");
    const media = card.querySelector(".media");
    media.classList.toggle("sound", r.modality === "audio");
    media.append(...mediaOf(r));
    card.querySelector(".score").textContent = r.score.toFixed(3);
    card.querySelector(".modality").textContent = r.modality;
    if (r.caption && r.modality === "image") {
      const caption = document.createElement("p");
      caption.className = "image-caption";
      caption.textContent = r.caption;
      card.querySelector(".info").insertBefore(caption, card.querySelector(".meta"));
    }
    if (r.modality === "video") {
      card.querySelector(".info").insertBefore(segmentsOf(r, media), card.querySelector(".meta"));
    }
    chips(card.querySelector(".meta"), r, media.textContent);
    card.querySelector(".more").addEventListener("click", () => moreLikeThis(r));
    grid.append(card);
    const category = r.metadata && r.metadata.category;
    if (typeof category === "string") state.categories.add(category);
  }
  fillCategories();
}

function fillCategories() {
  const select = $("category");
  const current = select.value;
  const known = new Set(Array.from(select.options).map((o) => o.value));
  for (const c of Array.from(state.categories).sort()) {
    if (known.has(c)) continue;
    const opt = document.createElement("option");
    opt.value = c;
    opt.textContent = c;
    select.append(opt);
  }
  const sorted = Array.from(select.options).slice(1).sort((a, b) => a.value.localeCompare(b.value));
  sorted.forEach((o) => select.append(o));
  select.value = current;
}

function setCategory(category) {
  if (category) {
    state.categories.add(category); // a category from a link may not have been seen in results yet
    fillCategories();
  }
  $("category").value = category;
}

// -- the query ------------------------------------------------------------------------------------------------

function fileKind(file) {
  const type = file.type || "";
  if (type.startsWith("audio/") || AUDIO_NAME.test(file.name || "")) return "audio";
  return type.startsWith("image/") ? "image" : null;
}

// Shows ``query`` in the form (the text box, or the dropped file / asset above the refine box) and makes it
// the current query, without searching.
function showQuery(query, modifier) {
  state.query = query;
  $("q").value = query && query.kind === "text" ? query.text : "";
  $("modifier").value = modifier || "";
  if (!query || query.kind === "text") setActive(null, null);
  else if (query.kind === "asset") setActive(`More like ${query.assetId}`, null);
  else setActive(`${query.kind === "audio" ? "Sound" : "Image"}: ${query.file.name || "upload"}`, query);
}

function setActive(label, fileQuery) {
  $("active").hidden = !label;
  $("active-label").textContent = label || "";
  if (state.dropUrl) URL.revokeObjectURL(state.dropUrl);
  state.dropUrl = fileQuery ? URL.createObjectURL(fileQuery.file) : null;
  const image = $("drop-preview");
  const audio = $("drop-audio");
  image.onerror = () => { image.hidden = true; }; // not an image the browser can show
  audio.onerror = () => { audio.hidden = true; }; // nor a clip it can play (the gateway may decode it)
  for (const [el, kind] of [[image, "image"], [audio, "audio"]]) {
    const shown = fileQuery !== null && fileQuery.kind === kind;
    el.hidden = !shown;
    if (shown) el.src = state.dropUrl;
    else el.removeAttribute("src");
  }
  $("drop-label").textContent = fileQuery
    ? `Searching by this ${fileQuery.kind === "audio" ? "sound" : "image"}. Drop another, or choose a file.`
    : "Drop an image or a sound clip here, or choose a file, to search with it";
}

function moreLikeThis(r) {
  showQuery({ kind: "asset", assetId: r.asset_id }, "");
  window.scrollTo({ top: 0, behavior: "smooth" });
  runSearch();
}

function useFile(file) {
  if (!file) return;
  const kind = fileKind(file);
  $("file").value = ""; // choosing the same file again searches again
  if (!kind) {
    showError(new Error(`${file.name} is neither an image nor a sound clip`));
    return;
  }
  showQuery({ kind, file }, "");
  runSearch();
}

function clearActive() {
  showQuery(null, "");
  $("file").value = "";
}

// -- wiring ---------------------------------------------------------------------------------------------------

function wireDrop() {
  const drop = $("drop");
  drop.addEventListener("click", (ev) => {
    if (ev.target !== $("drop-audio")) $("file").click(); // the query clip's player takes its own clicks
  });
  drop.addEventListener("keydown", (ev) => {
    if (ev.target === drop && (ev.key === "Enter" || ev.key === " ")) {
      ev.preventDefault();
      $("file").click();
    }
  });
  $("file").addEventListener("change", (ev) => useFile(ev.target.files[0]));
  drop.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    useFile(ev.dataTransfer.files[0]);
  });
}

function wire() {
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("q").value.trim();
    if (text) showQuery({ kind: "text", text }, "");
    runSearch();
  });
  wireDrop();
  $("clear-active").addEventListener("click", clearActive);
  $("modifier").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      runSearch();
    }
  });
  document.querySelectorAll("input[name=target]").forEach((el) => el.addEventListener("change", () => {
    showPartChoice();
    runSearch();
  }));
  $("category").addEventListener("change", () => runSearch());
  $("rerank").addEventListener("change", () => runSearch());
  $("part").addEventListener("change", () => runSearch());
  // One result plays at a time: starting one pauses the others (play does not bubble; capture sees it).
  $("results").addEventListener("play", (ev) => {
    document.querySelectorAll("#results audio").forEach((a) => { if (a !== ev.target) a.pause(); });
  }, true);
  const key = $("api-key");
  key.value = state.apiKey;
  if (state.apiKey) $("key-box").hidden = false;
  key.addEventListener("change", () => {
    state.apiKey = key.value.trim();
    sessionStorage.setItem("xmodal-api-key", state.apiKey);
  });
  window.addEventListener("popstate", onPopState);
}

function start() {
  wire();
  const query = readUrl(); // a shared or bookmarked search runs at once
  if (query) {
    showQuery(query, "");
    runSearch("replace");
  }
}

document.addEventListener("DOMContentLoaded", start);
