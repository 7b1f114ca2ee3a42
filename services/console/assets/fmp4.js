// Live video without WebCodecs: the node's H.264 access units written as fragmented MP4
// (ISO/IEC 14496-12) and played by a muted <video> through Media Source Extensions.
//
// The node sends exactly what an MP4 sample holds: the `avcC` record (from the camera's
// SPS/PPS) and each access unit as length-prefixed NAL units. So the writer only wraps them:
// one init segment (ftyp + moov, no samples, mvex) per decoder configuration, then one
// moof + mdat per access unit, its decode time the frame's presentation time (cameras stream
// without B-frames for live view; the WebCodecs path makes the same assumption).
//
// Bounded like the WebCodecs path: appends wait in a short queue (a full one skips to the next
// key frame), what is more than a few seconds behind the playhead is removed, and a playhead
// that lags the newest frame (a busy PC, a tab in the background) jumps to the live edge.

// Media timescale: the node's timestamps are microseconds.
const TIMESCALE = 1000000;
// Duration of a sample until the camera's frame interval is known (30 frames/s).
const DEFAULT_DURATION_US = 33333;
// Appends waiting for the SourceBuffer beyond which frames are skipped to the next key frame.
const APPEND_QUEUE_MAX = 30;
// Seconds of video kept behind the playhead; older video is removed once there is more than
// MSE_BEHIND_MAX_S (a live view is never scrubbed back, and MSE buffers are limited).
const MSE_BEHIND_KEEP_S = 2;
const MSE_BEHIND_MAX_S = 6;
// Lag behind the newest frame beyond which the playhead jumps to the live edge.
const MSE_LAG_MAX_S = 1;
// Where the playhead lands after a jump: this far before the newest frame.
const MSE_EDGE_S = 0.1;

const ascii = (s) => Array.from(s, (c) => c.charCodeAt(0));

function u32(n) { return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]; }
function u16(n) { return [(n >>> 8) & 255, n & 255]; }
function u64(n) { return [...u32(Math.floor(n / 0x100000000)), ...u32(n >>> 0)]; }

// A box: size, type, then the payload parts (arrays of bytes or Uint8Arrays).
function box(type, ...parts) {
  const size = 8 + parts.reduce((sum, p) => sum + p.length, 0);
  const out = new Uint8Array(size);
  out.set([...u32(size), ...ascii(type)], 0);
  let at = 8;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function fullBox(type, version, flags, ...parts) {
  return box(type, [version, (flags >>> 16) & 255, (flags >>> 8) & 255, flags & 255], ...parts);
}

const MATRIX = [...u32(0x10000), ...u32(0), ...u32(0), ...u32(0), ...u32(0x10000), ...u32(0), ...u32(0), ...u32(0), ...u32(0x40000000)];

/** The init segment for one H.264 track of `width` × `height` described by `avcC`. */
export function initSegment(avcC, width, height) {
  const ftyp = box('ftyp', ascii('isom'), u32(0x200), ascii('isom'), ascii('iso6'), ascii('avc1'), ascii('mp41'));
  const mvhd = fullBox('mvhd', 0, 0, u32(0), u32(0), u32(1000), u32(0), u32(0x10000), u16(0x100),
    new Uint8Array(10), MATRIX, new Uint8Array(24), u32(2));
  const tkhd = fullBox('tkhd', 0, 3, u32(0), u32(0), u32(1), u32(0), u32(0), new Uint8Array(8),
    u16(0), u16(0), u16(0), u16(0), MATRIX, u32(width * 0x10000), u32(height * 0x10000));
  const mdhd = fullBox('mdhd', 0, 0, u32(0), u32(0), u32(TIMESCALE), u32(0), u16(0x55c4), u16(0));
  const hdlr = fullBox('hdlr', 0, 0, u32(0), ascii('vide'), new Uint8Array(12), ascii('VideoHandler\0'));
  const vmhd = fullBox('vmhd', 0, 1, new Uint8Array(8));
  const dinf = box('dinf', fullBox('dref', 0, 0, u32(1), fullBox('url ', 0, 1)));
  const avc1 = box('avc1', new Uint8Array(6), u16(1), new Uint8Array(16), u16(width), u16(height),
    u32(0x480000), u32(0x480000), u32(0), u16(1), new Uint8Array(32), u16(0x18), u16(0xffff),
    box('avcC', avcC));
  const stbl = box('stbl', fullBox('stsd', 0, 0, u32(1), avc1), fullBox('stts', 0, 0, u32(0)),
    fullBox('stsc', 0, 0, u32(0)), fullBox('stsz', 0, 0, u32(0), u32(0)), fullBox('stco', 0, 0, u32(0)));
  const minf = box('minf', vmhd, dinf, stbl);
  const trak = box('trak', tkhd, box('mdia', mdhd, hdlr, minf));
  const mvex = box('mvex', fullBox('trex', 0, 0, u32(1), u32(1), u32(0), u32(0), u32(0)));
  const moov = box('moov', mvhd, trak, mvex);
  const out = new Uint8Array(ftyp.length + moov.length);
  out.set(ftyp, 0);
  out.set(moov, ftyp.length);
  return out;
}

/** One access unit as a media segment: moof (mfhd, traf: tfhd, tfdt, trun) + mdat. */
export function mediaSegment(sequence, decodeTime, duration, key, data) {
  // Key frames depend on nothing; others depend on earlier frames and are not sync samples.
  const flags = key ? 0x02000000 : 0x01010000;
  const trun = (offset) => fullBox('trun', 0, 0x000701, u32(1), u32(offset), u32(duration), u32(data.length), u32(flags));
  const moofOf = (offset) => box('moof', fullBox('mfhd', 0, 0, u32(sequence)),
    box('traf', fullBox('tfhd', 0, 0x020000, u32(1)), fullBox('tfdt', 1, 0, u64(decodeTime)), trun(offset)));
  const size = moofOf(0).length;
  const moof = moofOf(size + 8);
  const mdat = box('mdat', data);
  const out = new Uint8Array(moof.length + mdat.length);
  out.set(moof, 0);
  out.set(mdat, moof.length);
  return out;
}

/** Whether this browser can play `codec` through MSE. */
export function mseSupports(codec) {
  return 'MediaSource' in window && MediaSource.isTypeSupported(`video/mp4; codecs="${codec}"`);
}

/**
 * Plays one decoder configuration's access units in `video`. `onShown(n)` is called with the
 * number of frames shown so far whenever it grows; `onError(message)` when the browser refuses the stream.
 */
export class MsePlayer {
  constructor(video, config, onShown, onError) {
    this.video = video;
    this.config = config;
    this.onShown = onShown;
    this.onError = onError;
    this.queue = [];
    this.needKey = true;
    this.sequence = 0;
    this.base = null; // the first frame's timestamp: media time 0
    this.lastDecode = null;
    this.lastDuration = DEFAULT_DURATION_US;
    this.skipped = 0;
    this.closed = false;
    this.buffer = null;
    this.source = new MediaSource();
    this.url = URL.createObjectURL(this.source);
    this.source.addEventListener('sourceopen', () => this.open(), { once: true });
    video.muted = true;
    video.src = this.url;
    this.watchFrames();
  }

  open() {
    if (this.closed) return;
    const { codec, description, width, height } = this.config;
    try {
      this.buffer = this.source.addSourceBuffer(`video/mp4; codecs="${codec}"`);
    } catch (e) {
      this.fail(`${codec}: ${e.message}`);
      return;
    }
    this.buffer.addEventListener('updateend', () => { this.onTime(); this.pump(); });
    this.buffer.addEventListener('error', () => this.fail(`${codec}: the browser could not play the stream`));
    const avcC = Uint8Array.from(atob(description), (c) => c.charCodeAt(0));
    this.queue.unshift(initSegment(avcC, width, height));
    this.pump();
  }

  /** An access unit from the node: its key-frame flag, presentation time (µs), bytes. */
  push(key, timestamp, data) {
    if (this.closed) return;
    if (!key && (this.needKey || this.queue.length > APPEND_QUEUE_MAX)) {
      this.needKey = true;
      this.skipped += 1;
      return;
    }
    if (key && this.queue.length > APPEND_QUEUE_MAX) {
      this.skipped += this.queue.length;
      this.queue.length = 0;
    }
    this.needKey = false;
    if (this.base === null) this.base = timestamp;
    let decode = timestamp - this.base;
    if (this.lastDecode !== null) {
      const step = decode - this.lastDecode;
      if (step > 0 && step < TIMESCALE) this.lastDuration = step;
      // A camera whose clock restarted: carry on right after the last frame.
      if (step <= 0 || step >= 10 * TIMESCALE) {
        this.base = timestamp - (this.lastDecode + this.lastDuration);
        decode = this.lastDecode + this.lastDuration;
      }
    }
    this.lastDecode = decode;
    this.sequence += 1;
    this.queue.push(mediaSegment(this.sequence, decode, this.lastDuration, key, data));
    this.pump();
  }

  pump() {
    const buffer = this.buffer;
    if (this.closed || !buffer || buffer.updating || this.source.readyState !== 'open') return;
    const video = this.video;
    const ranges = buffer.buffered;
    if (ranges.length > 0) {
      const start = ranges.start(0);
      const end = ranges.end(ranges.length - 1);
      // Behind the live edge (or stuck in a gap left by skipped frames): jump to it.
      if (end - video.currentTime > MSE_LAG_MAX_S) {
        video.currentTime = Math.max(ranges.start(ranges.length - 1), end - MSE_EDGE_S);
      }
      if (video.currentTime - start > MSE_BEHIND_MAX_S) {
        buffer.remove(0, video.currentTime - MSE_BEHIND_KEEP_S);
        return; // the next step continues on 'updateend'
      }
    }
    const segment = this.queue.shift();
    if (!segment) return;
    try {
      buffer.appendBuffer(segment);
    } catch (e) {
      if (e.name === 'QuotaExceededError') {
        // Full: drop to the next key frame; the removal above makes room.
        this.queue.length = 0;
        this.needKey = true;
        return;
      }
      this.fail(`${this.config.codec}: ${e.message}`);
      return;
    }
    if (video.paused) video.play().catch(() => {});
  }

  // Frames shown, from the element's playback-quality counters (decoded for display, less
  // dropped), read after every append and on `timeupdate`: unlike requestVideoFrameCallback
  // this counts in a tab in the background too, as the WebCodecs path does.
  watchFrames() {
    let seen = 0;
    this.onTime = () => {
      if (this.closed) return;
      const quality = this.video.getVideoPlaybackQuality();
      const shown = quality.totalVideoFrames - quality.droppedVideoFrames;
      if (shown > seen) {
        seen = shown;
        this.onShown(shown);
      }
    };
    this.video.addEventListener('timeupdate', this.onTime);
  }

  fail(message) {
    if (this.closed) return;
    this.close();
    this.onError(message);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    if (this.onTime) this.video.removeEventListener('timeupdate', this.onTime);
    try {
      if (this.source.readyState === 'open') this.source.endOfStream();
    } catch (_) { /* already ended */ }
    this.video.removeAttribute('src');
    this.video.load();
    URL.revokeObjectURL(this.url);
  }
}
