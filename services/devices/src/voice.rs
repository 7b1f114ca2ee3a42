//! A voice-like signal for the simulated button's call, so the demo's operator hears
//! something that sounds like a caller rather than a test tone: a source-filter model, the
//! way speech synthesizers since Klatt's (1980) make vowels.
//!
//! - **Source**: a glottal pulse train (an impulse per pitch period, through a one-pole
//!   low-pass for the glottis's falling spectrum) whose pitch wanders between
//!   [`PITCH_MIN_HZ`] and [`PITCH_MAX_HZ`]: each syllable glides toward a pitch of its own,
//!   drifting down over a phrase, with a little jitter per period. A syllable may open with a
//!   burst of noise, like a consonant.
//! - **Filter**: three formant resonators (Klatt's second-order sections) in cascade, gliding
//!   toward the formants of a vowel chosen per syllable.
//! - **Envelope**: syllables of 180–320 ms (about 4 per second, the rate of speech), each a
//!   raised-sine swell, in phrases of 3–8 syllables separated by pauses of silence.
//!
//! Every choice comes from one seeded RNG: the same seed gives the same samples.

use std::f64::consts::PI;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// G.711's sampling rate.
pub const SAMPLE_RATE_HZ: u32 = 8_000;
/// The lowest pitch a syllable aims at (a low male voice).
pub const PITCH_MIN_HZ: f64 = 100.0;
/// The highest pitch a syllable aims at.
pub const PITCH_MAX_HZ: f64 = 200.0;

/// First three formants of five vowels (Hz): /a/, /e/, /i/, /o/, /u/ (Peterson and
/// Barney's averages, rounded).
const VOWELS: [[f64; 3]; 5] = [
    [730.0, 1090.0, 2440.0],
    [530.0, 1840.0, 2480.0],
    [270.0, 2290.0, 3010.0],
    [570.0, 840.0, 2410.0],
    [300.0, 870.0, 2240.0],
];
/// Formant bandwidths (Hz): narrow enough to ring, wide enough not to whistle.
const BANDWIDTHS_HZ: [f64; 3] = [90.0, 110.0, 170.0];
/// Output scale: syllables peak at about two thirds of full scale, their 20 ms frames' RMS
/// in the low thousands (a caller speaking up into a street intercom).
const GAIN: f64 = 7_500.0;

/// Klatt's formant resonator: `y = a·x + b·y[-1] + c·y[-2]`, unity gain at DC.
#[derive(Debug, Clone, Default)]
struct Resonator {
    frequency_hz: f64,
    y1: f64,
    y2: f64,
}

impl Resonator {
    fn run(&mut self, input: f64, bandwidth_hz: f64) -> f64 {
        let t = 1.0 / f64::from(SAMPLE_RATE_HZ);
        let c = -(-2.0 * PI * bandwidth_hz * t).exp();
        let b = 2.0 * (-PI * bandwidth_hz * t).exp() * (2.0 * PI * self.frequency_hz * t).cos();
        let a = 1.0 - b - c;
        let output = a * input + b * self.y1 + c * self.y2;
        self.y2 = self.y1;
        self.y1 = output;
        output
    }
}

/// The generator: call [`Voice::fill`] for each frame.
pub struct Voice {
    rng: StdRng,
    pitch_hz: f64,
    pitch_target_hz: f64,
    /// Samples until the next glottal pulse.
    to_next_pulse: f64,
    /// The glottal low-pass's state.
    glottis: f64,
    formants: [Resonator; 3],
    vowel: [f64; 3],
    /// Samples into the current syllable (or pause), and its length.
    position: u32,
    length: u32,
    /// Whether the current stretch is a pause between phrases.
    pause: bool,
    /// Samples of the syllable's opening noise burst.
    burst: u32,
    syllables_left: u32,
    /// The phrase's starting pitch: pitch declines over a phrase, as in speech.
    phrase_pitch_hz: f64,
}

impl Voice {
    pub fn new(seed: u64) -> Self {
        let mut voice = Self {
            rng: StdRng::seed_from_u64(seed),
            pitch_hz: 150.0,
            pitch_target_hz: 150.0,
            to_next_pulse: 0.0,
            glottis: 0.0,
            formants: Default::default(),
            vowel: VOWELS[0],
            position: 0,
            length: 0,
            pause: true,
            burst: 0,
            syllables_left: 0,
            phrase_pitch_hz: 150.0,
        };
        for (resonator, frequency) in voice.formants.iter_mut().zip(VOWELS[0]) {
            resonator.frequency_hz = frequency;
        }
        voice
    }

    /// The next `out.len()` samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        for sample in out {
            *sample = self.next_sample();
        }
    }

    fn next_stretch(&mut self) {
        let rate = f64::from(SAMPLE_RATE_HZ);
        if self.syllables_left == 0 && !self.pause {
            // End of a phrase: a breath.
            self.pause = true;
            self.length = (rate * self.rng.random_range(0.3..0.9)) as u32;
        } else {
            if self.pause {
                self.syllables_left = self.rng.random_range(3..=8);
                self.phrase_pitch_hz = self.rng.random_range(140.0..PITCH_MAX_HZ);
            }
            self.pause = false;
            self.syllables_left -= 1;
            self.length = (rate * self.rng.random_range(0.18..0.32)) as u32;
            self.vowel = VOWELS[self.rng.random_range(0..VOWELS.len())];
            // Declination: later syllables of a phrase aim lower.
            let drop = self.rng.random_range(0.0..40.0) + 8.0 * f64::from(self.syllables_left);
            self.pitch_target_hz =
                (self.phrase_pitch_hz - 40.0 + drop).clamp(PITCH_MIN_HZ, PITCH_MAX_HZ);
            self.burst = if self.rng.random_bool(0.5) {
                (rate * 0.03) as u32
            } else {
                0
            };
        }
        self.position = 0;
    }

    fn next_sample(&mut self) -> i16 {
        if self.position >= self.length {
            self.next_stretch();
        }
        self.position += 1;
        // The pitch glides toward the syllable's target.
        self.pitch_hz += (self.pitch_target_hz - self.pitch_hz) * 0.0008;
        for (resonator, target) in self.formants.iter_mut().zip(self.vowel) {
            resonator.frequency_hz += (target - resonator.frequency_hz) * 0.003;
        }
        let mut excitation = 0.0;
        self.to_next_pulse -= 1.0;
        if self.to_next_pulse <= 0.0 {
            excitation = 1.0;
            let jitter = self.rng.random_range(0.98..1.02);
            self.to_next_pulse += f64::from(SAMPLE_RATE_HZ) / self.pitch_hz * jitter;
        }
        // The glottal pulse's falling spectrum.
        self.glottis = 0.75 * self.glottis + excitation;
        let mut source = self.glottis;
        if self.position < self.burst {
            source += self.rng.random_range(-0.6..0.6);
        }
        let mut signal = source;
        for (resonator, bandwidth) in self.formants.iter_mut().zip(BANDWIDTHS_HZ) {
            signal = resonator.run(signal, bandwidth);
        }
        let envelope = if self.pause {
            0.0
        } else {
            let x = f64::from(self.position) / f64::from(self.length.max(1));
            (PI * x).sin().powi(2)
        };
        (signal * envelope * GAIN).clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(seed: u64, seconds: u32) -> Vec<i16> {
        let mut out = vec![0i16; (SAMPLE_RATE_HZ * seconds) as usize];
        Voice::new(seed).fill(&mut out);
        out
    }

    /// Energy per DFT bin (Hz resolution `rate / len`) of one window.
    fn spectrum(window: &[i16]) -> Vec<f64> {
        let n = window.len();
        (0..n / 2)
            .map(|k| {
                let (mut re, mut im) = (0.0, 0.0);
                for (i, sample) in window.iter().enumerate() {
                    let angle = 2.0 * PI * (k * i) as f64 / n as f64;
                    re += f64::from(*sample) * angle.cos();
                    im -= f64::from(*sample) * angle.sin();
                }
                re * re + im * im
            })
            .collect()
    }

    fn rms(window: &[i16]) -> f64 {
        let sum: f64 = window.iter().map(|s| f64::from(*s).powi(2)).sum();
        (sum / window.len() as f64).sqrt()
    }

    #[test]
    fn the_same_seed_gives_the_same_voice_and_another_seed_another() {
        assert_eq!(samples(7, 2), samples(7, 2));
        assert_ne!(samples(7, 2), samples(8, 2));
    }

    /// Speech's envelope: loud syllables and silent pauses, not a steady sound.
    #[test]
    fn the_level_rises_and_falls_with_syllables_and_pauses() {
        let voice = samples(3, 10);
        // 20 ms frames, like the RTP packets.
        let levels: Vec<f64> = voice.chunks(160).map(rms).collect();
        let silent = levels.iter().filter(|l| **l < 10.0).count();
        let loud = levels.iter().filter(|l| **l > 1_000.0).count();
        assert!(
            silent >= levels.len() / 20,
            "pauses: {silent} of {}",
            levels.len()
        );
        assert!(
            loud >= levels.len() / 5,
            "voiced: {loud} of {}",
            levels.len()
        );
        let peak = voice.iter().map(|s| i32::from(*s).abs()).max().unwrap();
        assert!(peak > 8_000 && peak < 32_000, "peak {peak}");
    }

    /// Its energy is in the telephone band, spread over harmonics and formants: no single
    /// frequency dominates, as it would in a tone.
    #[test]
    fn the_energy_is_in_the_speech_band_and_not_a_tone() {
        let voice = samples(5, 10);
        // The loudest 2048-sample window (a voiced stretch).
        let window = voice
            .chunks_exact(2048)
            .max_by(|a, b| rms(a).total_cmp(&rms(b)))
            .unwrap();
        let bins = spectrum(window);
        let hz_per_bin = f64::from(SAMPLE_RATE_HZ) / 2048.0;
        let total: f64 = bins.iter().sum();
        let band: f64 = bins
            .iter()
            .enumerate()
            .filter(|(k, _)| (80.0..=3_400.0).contains(&(*k as f64 * hz_per_bin)))
            .map(|(_, e)| e)
            .sum();
        assert!(band / total > 0.95, "speech band share {}", band / total);
        let strongest = bins.iter().cloned().fold(0.0, f64::max);
        assert!(
            strongest / total < 0.3,
            "one bin holds {}",
            strongest / total
        );
        // Energy above the first formant region too (the second and third formants).
        let upper: f64 = bins
            .iter()
            .enumerate()
            .filter(|(k, _)| (*k as f64 * hz_per_bin) > 1_000.0)
            .map(|(_, e)| e)
            .sum();
        assert!(upper / total > 0.01, "above 1 kHz {}", upper / total);
    }

    /// The pitch wanders from syllable to syllable, within the voice's range.
    #[test]
    fn the_pitch_wanders_within_the_voices_range() {
        let mut voice = Voice::new(11);
        let mut pitches = Vec::new();
        let mut scratch = [0i16; 160];
        for _ in 0..500 {
            voice.fill(&mut scratch);
            pitches.push(voice.pitch_hz);
        }
        let low = pitches.iter().cloned().fold(f64::MAX, f64::min);
        let high = pitches.iter().cloned().fold(0.0, f64::max);
        assert!(
            low >= PITCH_MIN_HZ - 1.0 && high <= PITCH_MAX_HZ + 1.0,
            "{low}..{high}"
        );
        assert!(high - low > 30.0, "pitch range {low}..{high}");
    }
}
