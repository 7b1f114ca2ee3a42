// Glass-to-glass latency, for test cameras whose picture carries its capture time (the test
// kit's GStreamer camera, `rtsp_camera.py`): the top 16 rows are 40 black or white blocks,
// the wall-clock milliseconds (mod 2^32) when the frame was captured, most significant bit
// first, then an 8-bit check (the sum of those four bytes, mod 256). Read back from the canvas
// right after the decoded frame is drawn, against this PC's clock: camera and browser on one
// machine (or on synchronised clocks) give capture → encode → RTSP → node → WebSocket → decode
// → canvas. Off unless asked for (`window.centinelaVideo.measureGlass = true`): a real
// camera's picture carries no stamp, and reading a canvas back costs a little per frame.

const STAMP_BLOCKS = 40;
const STAMP_ROW = 8; // the middle of the 16 stamp rows
// Samples kept (about 100 s at 30 frames/s); the oldest go first.
const SAMPLES_MAX = 3000;

export class GlassMeter {
  constructor() {
    this.enabled = false;
    this.samples = []; // ms, capture to canvas
    this.unreadable = 0; // frames drawn whose stamp did not check
  }

  // After `context`'s canvas got a frame `width` wide: one sample, if the stamp reads.
  sample(context, width) {
    if (!this.enabled) return;
    const block = Math.floor(width / STAMP_BLOCKS);
    if (block < 2) return;
    const row = context.getImageData(0, STAMP_ROW, block * STAMP_BLOCKS, 1).data;
    let captured = 0;
    let check = 0;
    for (let i = 0; i < STAMP_BLOCKS; i += 1) {
      const x = i * block + (block >> 1);
      const bit = row[x * 4] > 128 ? 1 : 0;
      if (i < 32) captured = captured * 2 + bit;
      else check = check * 2 + bit;
    }
    const sum = ((captured >>> 24) + ((captured >>> 16) & 255) + ((captured >>> 8) & 255) + (captured & 255)) % 256;
    if (sum !== check) {
      this.unreadable += 1;
      return;
    }
    const now = Date.now() % 2 ** 32;
    const ms = (now - captured + 2 ** 32) % 2 ** 32;
    if (this.samples.length >= SAMPLES_MAX) this.samples.shift();
    this.samples.push(ms);
  }
}
