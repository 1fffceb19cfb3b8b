// The search page: plain JS against the gateway's JSON API (no build step, no dependencies).
"use strict";

const PAGE_SIZE = 24;
const MAX_CHIPS = 4; // metadata values shown on a card; the rest are in the asset's JSON
const $ = (id) => document.getElementById(id);

const state = {
  query: null, // {kind: "text", text} | {kind: "image", file} | {kind: "asset", assetId}
  apiKey: sessionStorage.getItem("xmodal-api-key") || "",
  categories: new Set(),
  objectUrls: [],
  searches: 0, // finished searches, exposed as data-searches on the results (tests wait on it)
};

function target() {
  return document.querySelector("input[name=target]:checked").value;
}

function options() {
  const body = { target: target(), limit: PAGE_SIZE };
  const category = $("category").value;
  if (category) body.filters = { field: "category", eq: category };
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
  if (q.kind === "image") {
    const form = new FormData();
    form.append("image", q.file, q.file.name || "upload");
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

async function runSearch() {
  if (!state.query) return;
  showError(null);
  $("search-btn").disabled = true;
  $("status").textContent = "Searching…";
  try {
    const res = await searchRequest();
    render(res.results);
    const n = res.results.length;
    $("status").textContent = `model ${res.model} · ${res.took_ms.toFixed(1)} ms · ${n} result${n === 1 ? "" : "s"}`;
  } catch (err) {
    releaseObjectUrls();
    $("results").replaceChildren(); // results of an earlier query would look like answers to this one
    $("empty").hidden = true;
    showError(err);
    $("status").textContent = "The search failed.";
  } finally {
    $("search-btn").disabled = false;
    state.searches += 1;
    $("results").dataset.searches = String(state.searches);
  }
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

function releaseObjectUrls() {
  state.objectUrls.forEach((u) => URL.revokeObjectURL(u));
  state.objectUrls = [];
}

async function loadThumb(img, url) {
  if (!state.apiKey) {
    img.src = url; // no key: let the browser load and cache it directly
    return;
  }
  try {
    const resp = await fetch(url, { headers: headers({}) });
    if (!resp.ok) return;
    const objectUrl = URL.createObjectURL(await resp.blob());
    state.objectUrls.push(objectUrl);
    img.src = objectUrl;
  } catch (e) {
    // a missing thumbnail leaves the grey tile; the result itself is still shown
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
    const media = card.querySelector(".media");
    if (r.preview) {
      const img = document.createElement("img");
      img.alt = r.asset_id;
      img.loading = "lazy";
      loadThumb(img, r.preview);
      media.append(img);
    } else {
      const p = document.createElement("p");
      p.className = "text";
      p.textContent = r.text || r.asset_id;
      media.append(p);
    }
    card.querySelector(".score").textContent = r.score.toFixed(3);
    card.querySelector(".modality").textContent = r.modality;
    const meta = card.querySelector(".meta");
    const shown = new Set();
    for (const [k, v] of Object.entries(r.metadata || {})) {
      const text = Array.isArray(v) ? v.join(", ") : String(v);
      if (shown.has(text) || shown.size >= MAX_CHIPS) continue; // e.g. category repeating shape
      shown.add(text);
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.title = `${k}: ${text}`;
      chip.textContent = text;
      meta.append(chip);
    }
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

function setActive(label, previewUrl) {
  $("active").hidden = !label;
  $("active-label").textContent = label || "";
  const preview = $("drop-preview");
  preview.onerror = () => { preview.hidden = true; }; // not an image the browser can show
  preview.hidden = !previewUrl;
  if (previewUrl) preview.src = previewUrl;
  else preview.removeAttribute("src");
  $("drop-label").textContent = previewUrl
    ? "Searching by this image. Drop another, or choose a file."
    : "Drop an image here or choose a file to search by image";
}

function moreLikeThis(r) {
  state.query = { kind: "asset", assetId: r.asset_id };
  $("q").value = "";
  $("modifier").value = "";
  setActive(`More like ${r.asset_id}`, null);
  window.scrollTo({ top: 0, behavior: "smooth" });
  runSearch();
}

function useImage(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) {
    showError(new Error(`${file.name} is not an image`));
    return;
  }
  state.query = { kind: "image", file };
  $("q").value = "";
  const url = URL.createObjectURL(file);
  setActive(`Image: ${file.name || "upload"}`, url);
  runSearch();
}

function clearActive() {
  state.query = null;
  $("modifier").value = "";
  $("file").value = "";
  setActive(null, null);
}

function wire() {
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("q").value.trim();
    if (text) {
      state.query = { kind: "text", text };
      setActive(null, null);
    }
    runSearch();
  });
  const drop = $("drop");
  drop.addEventListener("click", () => $("file").click());
  drop.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      $("file").click();
    }
  });
  $("file").addEventListener("change", (ev) => useImage(ev.target.files[0]));
  drop.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    useImage(ev.dataTransfer.files[0]);
  });
  $("clear-active").addEventListener("click", clearActive);
  $("modifier").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      runSearch();
    }
  });
  document.querySelectorAll("input[name=target]").forEach((el) => el.addEventListener("change", runSearch));
  $("category").addEventListener("change", runSearch);
  const key = $("api-key");
  key.value = state.apiKey;
  if (state.apiKey) $("key-box").hidden = false;
  key.addEventListener("change", () => {
    state.apiKey = key.value.trim();
    sessionStorage.setItem("xmodal-api-key", state.apiKey);
  });
}

document.addEventListener("DOMContentLoaded", wire);
