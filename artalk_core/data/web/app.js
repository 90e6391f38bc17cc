// The artalk app page: builds the form, posts a job, polls its status, shows the results.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  config: null,
  audio: null,      // {blob, name} from an upload or a recording
  example: null,    // id of a bundled example
  jobId: null,      // the job shown (or running) on this page
  recorder: null,
  previewUrl: null,
};
const DOWNLOAD_LABELS = {
  "video.mp4": "Video (.mp4)",
  "motion.safetensors": "Motion (.safetensors)",
  "motion.pt": "Motion, reference format (.pt)",
  "vertices.h5": "Vertices (.h5)",
};

function showMessage(text, kind = "error") {
  const box = $("message");
  box.textContent = text || "";
  box.className = "message " + kind;
  box.hidden = !text;
}

function setStatus(text, progress) {
  $("status").textContent = text;
  if (progress !== undefined) $("progress").value = progress;
}

function mode() {
  return $("mode-text").checked ? "text" : "audio";
}

function fillSelect(select, items) {
  select.innerHTML = "";
  for (const item of items) {
    const opt = document.createElement("option");
    opt.value = item.value;
    opt.textContent = item.label;
    select.appendChild(opt);
  }
}

function setPreview(src, name) {
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = src && src.startsWith("blob:") ? src : null;
  const audio = $("audio-preview");
  if (src) { audio.src = src; audio.hidden = false; } else { audio.removeAttribute("src"); audio.hidden = true; }
  $("audio-name").textContent = name ? "Selected: " + name : "";
}

function chooseAudio(blob, name) {
  state.audio = blob ? { blob, name } : null;
  state.example = null;
  document.querySelectorAll("#examples button").forEach((b) => b.classList.remove("selected"));
  setPreview(blob ? URL.createObjectURL(blob) : null, blob ? name : "");
}

function chooseExample(ex, button) {
  state.audio = null;
  state.example = ex.id;
  $("audio-file").value = "";
  $("mode-audio").checked = true;
  updateMode();
  document.querySelectorAll("#examples button").forEach((b) => b.classList.toggle("selected", b === button));
  setPreview(ex.url, ex.name);
}

function updateMode() {
  const text = mode() === "text";
  $("audio-box").hidden = text;
  $("text-box").hidden = !text;
}

async function loadConfig() {
  const res = await fetch("/api/config");
  const cfg = await res.json();
  state.config = cfg;
  if (cfg.notice) { $("notice").textContent = cfg.notice; $("notice").hidden = false; }
  fillSelect($("head"), cfg.heads.map((h) => ({ value: h.id, label: h.label })));
  fillSelect($("style"), cfg.styles.map((s) => ({ value: s, label: s })));
  fillSelect($("lang"), cfg.languages.map((l) => ({ value: l, label: l })));
  const row = $("examples");
  row.innerHTML = "";
  if (!cfg.examples.length) row.textContent = "No bundled examples.";
  for (const ex of cfg.examples) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = ex.name;
    b.dataset.example = ex.id;
    b.addEventListener("click", () => chooseExample(ex, b));
    row.appendChild(b);
  }
}

async function toggleRecord() {
  const button = $("record");
  if (state.recorder) { state.recorder.stop(); return; }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    showMessage("Recording needs a browser with microphone access (and a secure or localhost page).");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    showMessage("Cannot use the microphone: " + e.message);
    return;
  }
  const chunks = [];
  const rec = new MediaRecorder(stream);
  rec.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
  rec.onstop = () => {
    stream.getTracks().forEach((t) => t.stop());
    state.recorder = null;
    button.textContent = "\u25CF Record";
    button.classList.remove("recording");
    const type = rec.mimeType || "audio/webm";
    const ext = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
    const blob = new Blob(chunks, { type });
    $("audio-file").value = "";
    chooseAudio(blob, "recording." + ext);
    $("record-status").textContent = "";
  };
  rec.start();
  state.recorder = rec;
  button.textContent = "\u25A0 Stop";
  button.classList.add("recording");
  $("record-status").textContent = "Recording\u2026";
}

function buildForm() {
  const form = new FormData();
  form.append("mode", mode());
  form.append("head", $("head").value);
  form.append("style", $("style").value);
  const styleFile = $("style-file").files[0];
  if (styleFile) form.append("style_file", styleFile, styleFile.name);
  if (mode() === "audio") {
    if (state.audio) form.append("audio", state.audio.blob, state.audio.name);
    else if (state.example) form.append("example", state.example);
  } else {
    form.append("text", $("text").value);
    form.append("lang", $("lang").value);
  }
  return form;
}

function tooLarge() {
  const limit = state.config ? state.config.max_upload_bytes : Infinity;
  let size = 0;
  if (mode() === "audio" && state.audio) size += state.audio.blob.size;
  const styleFile = $("style-file").files[0];
  if (styleFile) size += styleFile.size;
  return size > limit ? size : 0;
}

async function generate() {
  showMessage("");
  const big = tooLarge();
  if (big) {
    const mb = (n) => (n / 1048576).toFixed(1);
    showMessage(`The upload is too large: ${mb(big)} MB (at most ${mb(state.config.max_upload_bytes)} MB)`);
    return;
  }
  const button = $("generate");
  button.disabled = true;
  setStatus("Uploading\u2026", 0);
  let res, body;
  try {
    res = await fetch("/api/jobs", { method: "POST", body: buildForm() });
    body = await res.json().catch(() => ({ error: `server answered ${res.status}` }));
  } catch (e) {
    showMessage("Cannot reach the server: " + e.message);
    button.disabled = false;
    setStatus("", 0);
    return;
  }
  if (!res.ok) {
    showMessage(body.error || `server answered ${res.status}`);
    button.disabled = false;
    setStatus("", 0);
    return;
  }
  const previous = state.jobId;
  state.jobId = body.job_id;
  await poll(body.job_id, previous);
  button.disabled = false;
}

function describe(st) {
  if (st.status === "queued") {
    return st.queue_position > 1 || st.busy
      ? `Queued: position ${st.queue_position}${st.busy ? " (another generation is running)" : ""}`
      : "Queued: starting\u2026";
  }
  if (st.status === "running") {
    const stage = st.stage || "starting";
    return st.stage_total ? `Running: ${stage} ${st.stage_done}/${st.stage_total}` : `Running: ${stage}`;
  }
  return st.status;
}

async function poll(jobId, previous) {
  for (;;) {
    let st;
    try {
      const res = await fetch(`/api/jobs/${jobId}`);
      st = await res.json();
      if (!res.ok) { showMessage(st.error || `server answered ${res.status}`); setStatus("", 0); return; }
    } catch (e) {
      showMessage("Lost the server: " + e.message);
      return;
    }
    if (st.status === "done") {
      showResult(st);
      setStatus(`Done: ${st.frames} frames (${st.seconds.toFixed(2)} s)`, 1);
      if (previous) deleteJob(previous);  // the page shows one result: free the old one's files
      return;
    }
    if (st.status === "error" || st.status === "cancelled") {
      showMessage(st.error || st.status);
      setStatus("Failed", 0);
      return;
    }
    setStatus(describe(st), st.progress);
    await new Promise((r) => setTimeout(r, 300));
  }
}

function showResult(st) {
  const video = $("video");
  video.src = st.files["video.mp4"].url;
  video.load();
  const box = $("downloads");
  box.innerHTML = "";
  for (const [name, file] of Object.entries(st.files)) {
    const a = document.createElement("a");
    a.href = name === "video.mp4" ? file.url + "?download=1" : file.url;
    a.download = file.download;
    a.textContent = "\u2B07 " + (DOWNLOAD_LABELS[name] || name);
    a.dataset.file = name;
    box.appendChild(a);
  }
}

function deleteJob(jobId) {
  fetch(`/api/jobs/${jobId}`, { method: "DELETE", keepalive: true }).catch(() => {});
}

function init() {
  $("mode-audio").addEventListener("change", updateMode);
  $("mode-text").addEventListener("change", updateMode);
  $("audio-file").addEventListener("change", (e) => {
    const f = e.target.files[0];
    chooseAudio(f || null, f ? f.name : "");
  });
  $("record").addEventListener("click", toggleRecord);
  $("generate").addEventListener("click", generate);
  window.addEventListener("pagehide", () => { if (state.jobId) deleteJob(state.jobId); });
  updateMode();
  loadConfig().catch((e) => showMessage("Cannot load the app settings: " + e.message));
}

init();
