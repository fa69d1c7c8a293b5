// Audible cue for a new critical alarm: a two-tone chime made with WebAudio (no sound file), muted by
// the operator's toggle (remembered on this device). Browsers allow sound only after a user gesture:
// the context is created on the first click (the sign-in is one).
let ctx = null;
let muted = localStorage.getItem("pumpwatch.muted") === "1";

export function unlock() {
  if (!ctx && window.AudioContext) ctx = new AudioContext();
  if (ctx && ctx.state === "suspended") ctx.resume();
}

export function isMuted() { return muted; }
export function setMuted(m) { muted = m; localStorage.setItem("pumpwatch.muted", m ? "1" : "0"); }

export let played = 0; // how many cues sounded (the browser test reads it)

export function chime() {
  played += 1;
  window.__pumpwatchChimes = played;
  if (muted || !ctx) return;
  const t0 = ctx.currentTime;
  for (const [i, f] of [[0, 880], [1, 660], [2, 880], [3, 660]]) {
    const o = ctx.createOscillator(), g = ctx.createGain();
    o.type = "square"; o.frequency.value = f;
    g.gain.setValueAtTime(0.0001, t0 + i * 0.25);
    g.gain.exponentialRampToValueAtTime(0.15, t0 + i * 0.25 + 0.02);
    g.gain.exponentialRampToValueAtTime(0.0001, t0 + i * 0.25 + 0.22);
    o.connect(g).connect(ctx.destination);
    o.start(t0 + i * 0.25); o.stop(t0 + i * 0.25 + 0.24);
  }
}
