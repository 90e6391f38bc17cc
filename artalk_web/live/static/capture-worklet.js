// AudioWorklet: the page's audio (microphone or a playing file) resampled to 16 kHz mono and posted
// to the page as 16-bit PCM in 20-ms pieces: {pcm: Int16Array(320), end: capture time (s) of the
// piece's last sample on the AudioContext clock}.
//
// Resampling: windowed-sinc interpolation (Hann window, 16 taps each side, cut-off 0.95 x 8 kHz),
// the usual band-limited resampler; the server takes the 16-bit PCM as it is (the motion equals
// `artalk generate` of the same 16-bit samples written to a 16 kHz WAV).

const OUT_RATE = 16000;
const PIECE = 320; // 20 ms at 16 kHz
const HALF = 16;

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / OUT_RATE;
    this.cut = Math.min(1, OUT_RATE / sampleRate) * 0.95;
    this.buf = new Float32Array(0); // input samples from index `base` on
    this.base = 0; // input index of buf[0]
    this.next = 0; // input position (fractional) of the next output sample
    this.out = new Int16Array(PIECE);
    this.n = 0;
    this.running = true;
    this.port.onmessage = (e) => { if (e.data === "stop") this.running = false; };
  }

  kernel(d) {
    if (Math.abs(d) >= HALF) return 0;
    const x = d * this.cut;
    const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
    const w = 0.5 + 0.5 * Math.cos(Math.PI * d / HALF);
    return this.cut * sinc * w;
  }

  process(inputs) {
    if (!this.running) return false;
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const len = input[0].length;
    const mono = new Float32Array(len);
    for (const ch of input) for (let i = 0; i < len; i++) mono[i] += ch[i] / input.length;
    const merged = new Float32Array(this.buf.length + len);
    merged.set(this.buf);
    merged.set(mono, this.buf.length);
    this.buf = merged;
    const end = this.base + this.buf.length; // input samples received
    while (this.next + HALF < end) {
      const c = Math.floor(this.next);
      let acc = 0;
      for (let k = c - HALF + 1; k <= c + HALF; k++) {
        if (k < 0) continue;
        acc += this.buf[k - this.base] * this.kernel(this.next - k);
      }
      const v = Math.max(-1, Math.min(1, acc));
      this.out[this.n++] = Math.round(v * 32767);
      this.next += this.step;
      if (this.n === PIECE) {
        // capture time of this output sample: the block started at currentTime, sample `end - len`
        const t = currentTime + (this.next - this.step - (end - len)) / sampleRate;
        this.port.postMessage({ pcm: this.out, end: t });
        this.out = new Int16Array(PIECE);
        this.n = 0;
      }
    }
    const keep = Math.max(0, Math.floor(this.next) - HALF - this.base);
    if (keep > 0) {
      this.buf = this.buf.slice(keep);
      this.base += keep;
    }
    return true;
  }
}

registerProcessor("artalk-capture", CaptureProcessor);
