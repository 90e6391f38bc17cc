// The live page: speech (microphone or a file played at its own pace) -> 16 kHz PCM over the /live
// WebSocket -> motion frames -> the head drawn with three.js, shown by the audio clock, with the
// speech played back delayed so that lips and sound stay in sync.
import * as THREE from "three";
import { GLTFLoader } from "/live/static/vendor/three/examples/jsm/loaders/GLTFLoader.js";
import { applyFrame, headOf } from "/live/static/rig.js";

const FPS = 25;
const SAMPLES_PER_FRAME = 640;
const RATE = 16000;
const PIECE = 320; // samples per message (the worklet's 20-ms pieces)
const MARGIN_S = 0.08; // added to the measured delay: jitter of the network and of the worklet

const $ = (id) => document.getElementById(id);
const state = {
  frames: [], received: 0, maxT: -1, header: null, delay: null, lags: [], late: 0, shown: -1,
  errors: [], ended: false, closed: null, t0: null, sent: [], sentSamples: 0, running: false, head: null,
};
window.artalkLive = state; // for the browser test and the curious
window.addEventListener("error", (e) => state.errors.push(String(e.message || e)));
window.addEventListener("unhandledrejection", (e) => state.errors.push(String(e.reason)));

function status(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
  if (isError) state.errors.push(text);
}

// ---- the head ---------------------------------------------------------------------------------
const canvas = $("head");
const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(window.devicePixelRatio || 1);
const scene = new THREE.Scene();
scene.background = new THREE.Color(0xffffff);
const camera = new THREE.PerspectiveCamera(22, 1, 0.01, 10);
scene.add(new THREE.HemisphereLight(0xffffff, 0x8090a0, 1.6));
const key = new THREE.DirectionalLight(0xffffff, 1.8);
key.position.set(0.4, 1.0, 3.0);
scene.add(key);

function resize() {
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * renderer.getPixelRatio()) || canvas.height !== Math.round(h * renderer.getPixelRatio())) {
    renderer.setSize(w, h, false);
    camera.aspect = w / Math.max(h, 1);
    camera.updateProjectionMatrix();
  }
}

new GLTFLoader().load("/live/head.glb", (gltf) => {
  try {
    state.head = headOf(gltf);
  } catch (e) {
    status(`The head cannot be drawn: ${e.message}`, true);
    return;
  }
  gltf.scene.traverse((o) => { if (o.isMesh) o.frustumCulled = false; });
  scene.add(gltf.scene);
  gltf.scene.updateMatrixWorld(true);
  const box = new THREE.Box3().setFromObject(state.head.mesh);
  const center = box.getCenter(new THREE.Vector3());
  const size = box.getSize(new THREE.Vector3()).length();
  camera.position.set(center.x, center.y, center.z + size * 2.4);
  camera.lookAt(center);
  const extras = gltf.parser.json.asset.extras || {};
  status(extras.head_is_standin ? "Ready (the stand-in head: the licensed FLAME head is not installed)." : "Ready.");
  $("start").disabled = false;
}, undefined, (e) => status(`The head could not be loaded: ${e.message || e}`, true));

// ---- the server's options ----------------------------------------------------------------------
let config = { engines: ["energy"], styles: ["default"], engine: "energy", token_required: false };
fetch("/live/config.json").then((r) => r.json()).then((c) => {
  config = c;
  for (const [id, items, chosen] of [["engine", c.engines, c.engine], ["style", c.styles, "default"]]) {
    const sel = $(id);
    sel.innerHTML = "";
    for (const v of items) sel.add(new Option(v, v, v === chosen, v === chosen));
  }
  $("token-row").hidden = !c.token_required;
  $("back").hidden = !c.app;
  if (c.note) $("engine-note").textContent = c.note;
}).catch((e) => status(`The server's options could not be read: ${e}`, true));

for (const r of document.querySelectorAll("input[name=source]")) {
  r.addEventListener("change", () => { $("file").disabled = !document.querySelector("input[value=file]").checked; });
}

// ---- streaming ---------------------------------------------------------------------------------
let ctx = null, ws = null, capture = null, source = null, micStream = null, gate = null, delayNode = null;

function wsUrl() {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/live`;
}

// When (performance.now(), ms) the page sent the audio that made frame t final (the block holding t + delay).
function neededFrames(t) {
  const h = state.header;
  const block = h.block_frames || 100;
  // post-processed streams: frames 0..4 also wait for the first whole 9-frame smoothing window
  const first = h.meta.postprocessed === "true" ? 5 + h.delay_frames : 0;
  return Math.ceil(Math.max(t + 1 + h.delay_frames, first) / block) * block;
}

function sentTimeFor(t) {
  const need = neededFrames(t) * SAMPLES_PER_FRAME;
  for (const [samples, time] of state.sent) if (samples >= need) return time;
  return state.sent.length ? state.sent[state.sent.length - 1][1] : null; // the end of the speech
}

let lastBurstNeed = -1;
function onFrame(t, motion) {
  state.frames[t] = motion;
  state.received += 1;
  state.maxT = Math.max(state.maxT, t);
  const h = state.header;
  const block = h.block_frames || 100;
  const need = neededFrames(t);
  if (need === lastBurstNeed) return;
  lastBurstNeed = need;
  const sent = sentTimeFor(t);
  if (sent === null) return;
  const lag = Math.max(0, (performance.now() - sent) / 1000);
  state.lags.push(lag);
  const recent = state.lags.slice(-20);
  const mean = recent.reduce((a, b) => a + b, 0) / recent.length;
  $("lag").textContent = `${Math.round(lag * 1000)} ms`;
  $("rtf").textContent = (mean / (block / FPS)).toFixed(2);
  if (state.delay === null) {
    // frame t is heard at t0 + t/25 + delay and needs the audio up to (its block + delay_frames):
    // at worst (delay_frames + block_frames) / 25 s of speech after its own, plus the lag
    state.delay = (h.delay_frames + block) / FPS + lag + MARGIN_S + PIECE / RATE;
    delayNode.delayTime.setValueAtTime(state.delay, ctx.currentTime);
    gate.gain.setValueAtTime($("playback").checked ? 1 : 0, ctx.currentTime);
    $("delay").textContent = `${state.delay.toFixed(2)} s`;
  }
}

function onLine(text) {
  let obj;
  try { obj = JSON.parse(text); } catch (e) { status(`A line from the server is not JSON: ${text.slice(0, 80)}`, true); return; }
  if ("motion" in obj) {
    onFrame(obj.t, Float64Array.from(obj.motion));
    $("frames").textContent = String(state.received);
  } else if ("format" in obj) {
    state.header = obj;
    status(`Streaming: engine ${obj.meta.engine}, style ${obj.meta.style}. The head follows ${obj.block_frames === 1 ? "a few frames" : "about one 4-s chunk"} later.`);
  } else if (obj.end) {
    state.ended = true;
    status(`Done: ${obj.frames} frames.`);
  } else if ("error" in obj) {
    status(obj.error, true);
  }
}

async function start() {
  $("start").disabled = true;
  const useFile = document.querySelector("input[value=file]").checked;
  const file = $("file").files[0];
  if (useFile && !file) { status("Choose an audio file first.", true); $("start").disabled = false; return; }
  Object.assign(state, { frames: [], received: 0, maxT: -1, header: null, delay: null, lags: [], late: 0, shown: -1,
                         ended: false, closed: null, t0: null, sent: [], sentSamples: 0, running: true });
  lastBurstNeed = -1;
  for (const id of ["lag", "rtf", "delay"]) $(id).textContent = "–";
  ctx = new AudioContext();
  await ctx.audioWorklet.addModule("/live/static/capture-worklet.js");
  try {
    if (useFile) {
      const buffer = await ctx.decodeAudioData(await file.arrayBuffer());
      source = ctx.createBufferSource();
      source.buffer = buffer;
      source.onended = () => stop();
    } else {
      micStream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, channelCount: 1 } });
      source = ctx.createMediaStreamSource(micStream);
    }
  } catch (e) {
    status(`No speech to stream: ${e.message || e}`, true);
    $("start").disabled = false;
    return;
  }
  capture = new AudioWorkletNode(ctx, "artalk-capture", { numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1] });
  const mute = ctx.createGain();
  mute.gain.value = 0;
  source.connect(capture).connect(mute).connect(ctx.destination); // pulled by the graph, silent
  delayNode = ctx.createDelay(30);
  gate = ctx.createGain();
  gate.gain.value = 0; // silent until the delay is known
  source.connect(delayNode).connect(gate).connect(ctx.destination);

  ws = new WebSocket(wsUrl());
  ws.binaryType = "arraybuffer";
  const pending = [];
  ws.onopen = () => {
    const msg = { type: "start", sample_rate: RATE, format: "s16le", engine: $("engine").value, style: $("style").value, clip_length: 0 };
    if (config.token_required) msg.token = $("token").value;
    ws.send(JSON.stringify(msg));
    for (const p of pending.splice(0)) send(p);
    if (useFile) source.start();
  };
  ws.onmessage = (e) => onLine(e.data);
  ws.onerror = () => { if (!state.errors.length) status("The connection to the server failed.", true); };
  ws.onclose = (e) => {
    state.closed = e.code;
    if (!state.ended && e.code !== 1000 && !$("status").classList.contains("error")) {
      status(`The connection closed (${e.code}${e.reason ? ": " + e.reason : ""}).`, true);
    }
    stopCapture();
    $("start").disabled = false;
    $("stop").disabled = true;
  };
  function send(piece) {
    if (state.t0 === null) state.t0 = piece.end - (PIECE - 1) / RATE;
    ws.send(piece.pcm.buffer);
    state.sentSamples += piece.pcm.length;
    state.sent.push([state.sentSamples, performance.now()]);
    if (state.sent.length > 4000) state.sent.splice(0, 1000);
  }
  capture.port.onmessage = (e) => {
    if (!state.running) return;
    if (ws.readyState === WebSocket.OPEN) send(e.data); else if (ws.readyState === WebSocket.CONNECTING) pending.push(e.data);
  };
  if (!useFile) status("Listening: speak.");
  $("stop").disabled = false;
}

function stopCapture() {
  if (!state.running) return;
  state.running = false;
  if (capture) capture.port.postMessage("stop");
  if (micStream) { for (const tr of micStream.getTracks()) tr.stop(); micStream = null; }
}

function stop() {
  const wasRunning = state.running;
  stopCapture();
  if (wasRunning && ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "end" }));
  $("stop").disabled = true;
}

$("start").addEventListener("click", () => start().catch((e) => { status(`Could not start: ${e.message || e}`, true); $("start").disabled = false; }));
$("stop").addEventListener("click", stop);

// ---- drawing: the audio clock picks the frame ----------------------------------------------------
let lateSeen = -1;
function draw() {
  requestAnimationFrame(draw);
  resize();
  if (state.head && ctx && state.delay !== null && state.t0 !== null) {
    const heard = ctx.currentTime - (ctx.outputLatency || ctx.baseLatency || 0) - state.delay - state.t0;
    const f = Math.floor(heard * FPS);
    if (f >= 0 && f !== state.shown) {
      const motion = state.frames[f];
      if (motion) {
        applyFrame(state.head, motion);
        state.shown = f;
        if (f > 100) delete state.frames[f - 100];
      } else if (f > state.maxT && !state.ended && f > lateSeen) {
        lateSeen = f;
        state.late += 1;
        $("late").textContent = String(state.late);
      }
    }
  }
  renderer.render(scene, camera);
}
requestAnimationFrame(draw);
