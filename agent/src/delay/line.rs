//! The delay line: a receiver thread records each queued packet's due time, a release thread
//! sleeps until the earliest one is due and gives the verdicts.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::nfqueue::{self, NfQueue, QueueOptions, Verdict};
use super::schedule::Progress;
use super::DelayError;

/// What a link end does to each packet; changeable while running.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub delay_ms: f64,
    /// Each packet's delay is drawn uniformly from delay ± jitter (never below 0).
    pub jitter_ms: f64,
    /// Share of packets dropped, in percent (0–100).
    pub loss_percent: f64,
}

impl Settings {
    pub fn validate(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        for (name, v) in [("delay_ms", self.delay_ms), ("jitter_ms", self.jitter_ms)] {
            if !v.is_finite() || !(0.0..=86_400_000.0).contains(&v) {
                errors.push(format!("{name}: {v} is not a duration in milliseconds between 0 and one day"));
            }
        }
        if !(0.0..=100.0).contains(&self.loss_percent) {
            errors.push(format!("loss_percent: {} is not between 0 and 100", self.loss_percent));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// A delay line's fixed configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineConfig {
    pub queue: QueueOptions,
    pub settings: Settings,
    /// With jitter, let a packet overtake an earlier one whose drawn delay is longer (as netem
    /// does). Without, packets leave in arrival order: a packet is never released before the
    /// one ahead of it, which also lets one batch verdict release everything due.
    pub reorder: bool,
}

/// Packet counts since start. `queued` = `released` + `dropped` + `queue_len`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub queued: u64,
    pub released: u64,
    /// Dropped by the loss setting or while down.
    pub dropped: u64,
    /// Of those, dropped while the line was down (by its schedule).
    #[serde(default)]
    pub dropped_down: u64,
    pub queue_len: u64,
    pub max_queue_len: u64,
    /// Times the kernel could not hand packets over (socket buffer full): those packets wait
    /// for the next batch verdict, or, with reordering, for the queue to be closed.
    pub overruns: u64,
    /// Verdicts the kernel refused (an id no longer queued).
    pub verdict_errors: u64,
}

/// Settings and counters, as the control interface reports them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub queue: u16,
    pub settings: Settings,
    pub reorder: bool,
    pub queue_max_len: u32,
    pub counters: Counters,
    /// Dropping everything that arrives (a schedule's `down`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub down: bool,
    /// The schedule the line runs, and how far it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Progress>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    due: Instant,
    seq: u64,
    id: u32,
}

struct State {
    settings: Settings,
    held: BinaryHeap<Reverse<Held>>,
    seq: u64,
    /// The latest due time handed out: in arrival order no packet is due before it.
    last_due: Option<Instant>,
    counters: Counters,
    rng: SplitMix64,
    stopping: bool,
    down: bool,
    schedule: Option<Progress>,
    /// Bumped by each schedule given: an older one's runner ends.
    schedule_generation: u64,
}

struct Shared {
    config: LineConfig,
    state: Mutex<State>,
    wake: Condvar,
    nfq: NfQueue,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicked thread leaves counters, not invariants that could hurt: carry on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stop(&self) {
        self.lock().stopping = true;
        self.wake.notify_all();
    }
}

/// A running delay line on one queue.
pub struct DelayLine {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// Changes settings, reads counters and stops a running [`DelayLine`].
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
}

impl DelayLine {
    /// Binds the queue in this thread's network namespace and starts holding packets.
    pub fn start(config: LineConfig) -> Result<Self, DelayError> {
        config.settings.validate().map_err(DelayError::Settings)?;
        let (nfq, early) = NfQueue::open(&config.queue)?;
        let state = State {
            settings: config.settings,
            held: BinaryHeap::new(),
            seq: 0,
            last_due: None,
            counters: Counters::default(),
            rng: SplitMix64::seeded(),
            stopping: false,
            down: false,
            schedule: None,
            schedule_generation: 0,
        };
        let shared = Arc::new(Shared { config, state: Mutex::new(state), wake: Condvar::new(), nfq });
        if !early.is_empty() {
            admit(&shared, &early, Instant::now());
        }
        let spawn = |name: &str, f: fn(&Shared)| {
            let s = shared.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || f(&s))
                .map_err(|source| DelayError::Io { what: format!("starting the {name} thread"), source })
        };
        let threads = vec![spawn("delay-recv", receive)?, spawn("delay-release", release)?];
        Ok(DelayLine { shared, threads })
    }

    pub fn control(&self) -> Control {
        Control { shared: self.shared.clone() }
    }

    /// Waits until [`Control::stop`] has released everything held and both threads ended.
    pub fn wait(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

impl Control {
    pub fn status(&self) -> Status {
        let s = self.shared.lock();
        let c = &self.shared.config;
        Status {
            queue: c.queue.queue,
            settings: s.settings,
            reorder: c.reorder,
            queue_max_len: c.queue.max_len,
            counters: s.counters,
            down: s.down,
            schedule: s.schedule,
        }
    }

    /// One schedule step: new settings and whether everything arriving is dropped.
    pub fn apply_step(&self, settings: Settings, down: bool) -> Result<(), DelayError> {
        settings.validate().map_err(DelayError::Settings)?;
        let mut s = self.shared.lock();
        s.settings = settings;
        s.down = down;
        Ok(())
    }

    /// Registers a schedule starting to run (ending any earlier one's runner); its generation.
    pub fn begin_schedule(&self, progress: Progress) -> u64 {
        let mut s = self.shared.lock();
        s.schedule_generation += 1;
        s.schedule = Some(progress);
        s.schedule_generation
    }

    /// Whether the schedule of `generation` is still the line's and the line runs.
    pub fn runs_schedule(&self, generation: u64) -> bool {
        let s = self.shared.lock();
        s.schedule_generation == generation && !s.stopping
    }

    /// Records how many steps of the schedule of `generation` are applied.
    pub fn schedule_applied(&self, generation: u64, applied: usize, rate_failed: bool) {
        let mut s = self.shared.lock();
        if s.schedule_generation == generation {
            if let Some(p) = &mut s.schedule {
                p.applied = applied;
                p.rate_errors += u64::from(rate_failed);
            }
        }
    }

    /// New settings for packets that arrive from now on; held packets keep their due time.
    pub fn set(&self, settings: Settings) -> Result<(), DelayError> {
        settings.validate().map_err(DelayError::Settings)?;
        self.shared.lock().settings = settings;
        Ok(())
    }

    /// Releases every held packet at once and ends the line's threads.
    pub fn stop(&self) {
        self.shared.stop();
    }
}

/// What passing through the line costs a packet beyond its delay, with nobody else busy:
/// the kernel's message to this process, the wake-up and the verdict (0.05–0.13 ms added
/// over a bare veth at every delay in `tests/bench/delay-line.sh`).
const OWN_LATENCY: Duration = Duration::from_micros(60);

/// Records newly queued packets: decides loss, draws the due time, wakes the release thread
/// when a packet becomes the earliest due. False once the line is stopping: those packets are
/// accepted at once and the caller should stop reading.
fn admit(shared: &Shared, ids: &[u32], now: Instant) -> bool {
    let queue = shared.config.queue.queue;
    let mut s = shared.lock();
    if s.stopping {
        let mut out = Vec::new();
        for &id in ids {
            nfqueue::verdict_message(&mut out, queue, id, Verdict::Accept);
        }
        s.counters.queued += ids.len() as u64;
        s.counters.released += ids.len() as u64;
        if shared.nfq.send(&out).is_err() {
            s.counters.verdict_errors += 1;
        }
        return false;
    }
    let mut drops = Vec::new();
    let mut new_head = false;
    for &id in ids {
        s.counters.queued += 1;
        let settings = s.settings;
        if s.down {
            s.counters.dropped += 1;
            s.counters.dropped_down += 1;
            nfqueue::verdict_message(&mut drops, queue, id, Verdict::Drop);
            continue;
        }
        if settings.loss_percent > 0.0 && s.rng.next_f64() * 100.0 < settings.loss_percent {
            s.counters.dropped += 1;
            nfqueue::verdict_message(&mut drops, queue, id, Verdict::Drop);
            continue;
        }
        let mut delay = settings.delay_ms;
        if settings.jitter_ms > 0.0 {
            delay = (delay + settings.jitter_ms * (2.0 * s.rng.next_f64() - 1.0)).max(0.0);
        }
        // The line's own latency (the packet's trip to this process and the verdict's back)
        // is part of the delay, not added to it.
        let mut due = now + Duration::from_secs_f64((delay / 1000.0 - OWN_LATENCY.as_secs_f64()).max(0.0));
        if !shared.config.reorder {
            due = due.max(s.last_due.unwrap_or(due));
        }
        s.last_due = Some(s.last_due.map_or(due, |l| l.max(due)));
        s.seq += 1;
        let seq = s.seq;
        new_head |= s.held.peek().is_none_or(|Reverse(h)| due < h.due);
        s.held.push(Reverse(Held { due, seq, id }));
        s.counters.queue_len = s.held.len() as u64;
        s.counters.max_queue_len = s.counters.max_queue_len.max(s.counters.queue_len);
    }
    // Dropped under the lock: a batch verdict for a later packet must not reach the kernel
    // first, or it would accept this one.
    if !drops.is_empty() && shared.nfq.send(&drops).is_err() {
        s.counters.verdict_errors += 1;
    }
    drop(s);
    if new_head {
        shared.wake.notify_one();
    }
    true
}

fn receive(shared: &Shared) {
    let mut buf = Vec::with_capacity(256 * 1024);
    let mut ids = Vec::new();
    loop {
        match shared.nfq.recv(&mut buf) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                if shared.lock().stopping {
                    return;
                }
                continue;
            }
            // ENOBUFS: the socket overflowed and the kernel dropped messages (not packets).
            Err(e) if e.raw_os_error() == Some(105) => {
                shared.lock().counters.overruns += 1;
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "receiving from the queue; stopping");
                shared.stop();
                return;
            }
        }
        let now = Instant::now();
        ids.clear();
        let mut errors = 0;
        let parsed = nfqueue::parse(&buf, |e| match e {
            nfqueue::Event::Packet { id } => ids.push(id),
            nfqueue::Event::Ack { errno, .. } if errno != 0 => errors += 1,
            nfqueue::Event::Ack { .. } => {}
        });
        if let Err(e) = parsed {
            tracing::warn!(error = %e, "unreadable message from the queue");
        }
        if errors > 0 {
            shared.lock().counters.verdict_errors += errors;
        }
        if !ids.is_empty() && !admit(shared, &ids, now) {
            return;
        }
    }
}

fn release(shared: &Shared) {
    // Wake-ups land within microseconds of the due time instead of the default 50 µs slack.
    let _ = nix::sys::prctl::set_timerslack(1_000);
    let queue = shared.config.queue.queue;
    let mut out = Vec::new();
    let mut s = shared.lock();
    loop {
        let now = Instant::now();
        let stopping = s.stopping;
        let due = match s.held.peek() {
            None if stopping => return,
            None => None,
            Some(Reverse(h)) if h.due > now && !stopping => Some(h.due),
            Some(_) => {
                out.clear();
                let mut last = None;
                while let Some(Reverse(h)) = s.held.peek() {
                    if h.due > now && !stopping {
                        break;
                    }
                    let h = s.held.pop().expect("peeked").0;
                    s.counters.released += 1;
                    if shared.config.reorder {
                        nfqueue::verdict_message(&mut out, queue, h.id, Verdict::Accept);
                    }
                    last = Some(h.id);
                }
                s.counters.queue_len = s.held.len() as u64;
                if let (false, Some(id)) = (shared.config.reorder, last) {
                    // In arrival order, everything up to this id is due (drops were sent already).
                    nfqueue::batch_verdict_message(&mut out, queue, id, Verdict::Accept);
                }
                drop(s);
                let failed = shared.nfq.send(&out).is_err();
                s = shared.lock();
                if failed {
                    s.counters.verdict_errors += 1;
                }
                continue;
            }
        };
        s = match due {
            None => shared.wake.wait(s).unwrap_or_else(|p| p.into_inner()),
            Some(due) => shared.wake.wait_timeout(s, due - now).unwrap_or_else(|p| p.into_inner()).0,
        };
    }
}

/// A small, fast generator for loss and jitter draws (no cryptographic needs).
struct SplitMix64(u64);

impl SplitMix64 {
    fn seeded() -> Self {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        SplitMix64(t.as_nanos() as u64 ^ ((std::process::id() as u64) << 32))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_are_all_named() {
        let bad = Settings { delay_ms: -1.0, jitter_ms: f64::NAN, loss_percent: 101.0 };
        let e = bad.validate().unwrap_err();
        assert!(e.contains("delay_ms: -1") && e.contains("jitter_ms: NaN") && e.contains("loss_percent: 101"), "{e}");
        assert!(Settings { delay_ms: 1000.0, jitter_ms: 0.0, loss_percent: 100.0 }.validate().is_ok());
    }

    #[test]
    fn the_generator_is_uniform_enough_for_loss() {
        let mut r = SplitMix64(1);
        let n = 100_000;
        let below = (0..n).filter(|_| r.next_f64() < 0.3).count();
        // 0.3 ± 5σ (σ = sqrt(n·0.3·0.7) ≈ 145).
        assert!((30_000 - 725..=30_000 + 725).contains(&below), "{below}");
    }
}
