//! The delay line against the real kernel: two network namespaces joined by a veth pair, the
//! queue rule on b's end (packets arriving at b), `vnet-te-delay` running in b, pings from a
//! to b (only a → b is delayed, so the RTT is the configured one-way delay plus the bare
//! veth's few µs).
//!
//! Needs root, `ip`, `iptables` and `ping`, and a kernel with NFQUEUE. Where any is missing the
//! tests say why on stderr and pass as skipped, unless VNET_TE_REQUIRE_DELAY=1.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vnet_te_agent::delay::control::{self, Reply, Request};
use vnet_te_agent::delay::rules::{Namespace, QueueRule, RuleOp};
use vnet_te_agent::delay::Status;

const A_ADDR: &str = "10.254.0.1/30";
const B_ADDR: &str = "10.254.0.2";
const QUEUE: u16 = 7;

/// One lab at a time: pings of two tests at once on a small machine would blur the timing.
static SERIAL: Mutex<()> = Mutex::new(());

/// Two namespaces and the delay line in the second; everything is removed on drop (deleting a
/// namespace takes its veth end and iptables rules with it).
struct Lab {
    a: String,
    b: String,
    control: PathBuf,
    line: Option<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.line.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        }
        let _ = std::fs::remove_file(&self.control);
    }
}

/// A helper process that must not outlive a failed assertion.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sh(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!("`{program} {}`: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Lab {
    /// Namespaces, veth pair, addresses, IPv6 off (no neighbour discovery in the counters).
    /// An error here is a reason to skip: the machine cannot run the test.
    fn new(name: &str) -> Result<Lab, String> {
        for tool in ["ping", "iptables", "ip6tables"] {
            if Command::new(tool).arg("-V").output().is_err() {
                return Err(format!("{tool} is not installed"));
            }
        }
        let id = format!("{}-{name}", std::process::id());
        let lab = Lab {
            a: format!("vtedl-a-{id}"),
            b: format!("vtedl-b-{id}"),
            control: std::env::temp_dir().join(format!("vtedl-{id}.sock")),
            line: None,
        };
        let (a, b) = (lab.a.clone(), lab.b.clone());
        sh("ip", &["netns", "add", &a]).map_err(|e| format!("cannot create network namespaces (not root?): {e}"))?;
        sh("ip", &["netns", "add", &b])?;
        for ns in [&a, &b] {
            for knob in ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"] {
                sh("ip", &["netns", "exec", ns, "sysctl", "-qw", knob])?;
            }
        }
        sh("ip", &["-n", &a, "link", "add", "vtedl-a", "type", "veth", "peer", "name", "vtedl-b", "netns", &b])?;
        sh("ip", &["-n", &a, "addr", "add", A_ADDR, "dev", "vtedl-a"])?;
        sh("ip", &["-n", &b, "addr", "add", &format!("{B_ADDR}/30"), "dev", "vtedl-b"])?;
        sh("ip", &["-n", &a, "link", "set", "vtedl-a", "up"])?;
        sh("ip", &["-n", &b, "link", "set", "vtedl-b", "up"])?;
        lab.rule().install(&lab.ns()).map_err(|e| format!("cannot install an NFQUEUE rule (kernel without NFQUEUE?): {e}"))?;
        Ok(lab)
    }

    /// Where the delay line and its rule live.
    fn ns(&self) -> Namespace {
        Namespace::Named(self.b.clone())
    }

    fn rule(&self) -> QueueRule {
        QueueRule { ifname: "vtedl-b".into(), queue: QUEUE, bypass: false }
    }

    /// Starts the delay line in b and waits (at most 5 s) until it answers.
    fn start(&mut self, extra: &[&str]) -> Result<(), String> {
        let queue = QUEUE.to_string();
        let control = self.control.to_str().unwrap().to_string();
        let mut args = vec!["netns", "exec", &self.b, env!("CARGO_BIN_EXE_vnet-te-delay"), "run", "--queue", &queue, "--control", &control];
        args.extend(extra);
        self.line = Some(Command::new("ip").args(&args).stdout(Stdio::null()).spawn().map_err(|e| format!("starting vnet-te-delay: {e}"))?);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(reply) = control::request(&self.control, &Request::Status) {
                assert!(reply.ok, "{reply:?}");
                return Ok(());
            }
            if let Some(status) = self.line.as_mut().unwrap().try_wait().unwrap() {
                return Err(format!("vnet-te-delay exited with {status} before answering (NFQUEUE unusable here?)"));
            }
            if Instant::now() > deadline {
                return Err("vnet-te-delay did not answer within 5 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ask(&self, request: Request) -> Status {
        let reply: Reply = control::request(&self.control, &request).expect("control socket answers");
        assert!(reply.ok, "{request:?}: {reply:?}");
        reply.status.expect("status in every good reply")
    }

    /// Pings b from a; the RTT of each reply in ms (lost ones are missing).
    fn ping(&self, count: u32, interval: &str) -> Vec<f64> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.a, "ping", "-n", "-c", &count.to_string(), "-i", interval, "-W", "3", B_ADDR])
            .output()
            .expect("running ping");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split("time=").nth(1)?.split_whitespace().next()?.parse().ok())
            .collect()
    }
}

/// Runs `test` on a fresh lab, or reports why it cannot run here.
fn with_lab(name: &str, extra: &[&str], test: impl FnOnce(&mut Lab)) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let lab = Lab::new(name).and_then(|mut lab| lab.start(extra).map(|()| lab));
    match lab {
        Ok(mut lab) => test(&mut lab),
        Err(reason) if std::env::var("VNET_TE_REQUIRE_DELAY").is_ok_and(|v| v == "1") => panic!("delay line cannot run: {reason}"),
        Err(reason) => eprintln!("SKIP: delay line test `{name}`: {reason}"),
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// Never early; the median within 1 ms of the delay (the bench measures the real error, which
/// is far smaller; 1 ms leaves room for a busy test machine).
fn assert_delayed(rtts: &[f64], delay_ms: f64, sent: usize) {
    assert_eq!(rtts.len(), sent, "every ping answered: {rtts:?}");
    let min = rtts.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(min >= delay_ms, "a reply came back before {delay_ms} ms: {rtts:?}");
    let m = median(rtts);
    assert!(m <= delay_ms + 1.0, "median RTT {m} ms for {delay_ms} ms: {rtts:?}");
}

#[test]
fn pings_take_the_delay_and_follow_changes_at_run_time() {
    with_lab("delay", &["--delay", "50ms"], |lab| {
        assert_delayed(&lab.ping(10, "0.1"), 50.0, 10);

        let status = lab.ask(Request::Set { delay_ms: Some(20.0), jitter_ms: None, loss_percent: None });
        assert_eq!(status.settings.delay_ms, 20.0);
        assert_delayed(&lab.ping(10, "0.05"), 20.0, 10);

        let c = lab.ask(Request::Status).counters;
        assert_eq!(c.queued, 20, "only the 20 echo requests pass the rule: {c:?}");
        assert_eq!((c.released, c.dropped, c.queue_len, c.verdict_errors), (20, 0, 0, 0), "{c:?}");

        // Removing the rule takes the delay away at once.
        lab.rule().remove(&lab.ns()).unwrap();
        let check = lab.rule().invocations(RuleOp::Check).remove(0).within(&lab.ns());
        let still = Command::new(&check.program).args(&check.args).stderr(Stdio::null()).status().unwrap();
        assert!(!still.success(), "rule still there");
        let bare = lab.ping(5, "0.05");
        assert_eq!(bare.len(), 5);
        assert!(median(&bare) < 5.0, "without the rule: {bare:?}");
    });
}

#[test]
fn loss_drops_about_the_share_asked_for_and_counts_each_drop() {
    with_lab("loss", &["--loss", "50"], |lab| {
        let sent = 200;
        let received = lab.ping(sent, "0.005").len() as u64;
        // Binomial(200, 0.5): mean 100, σ ≈ 7.07; ±5σ fails a correct line once in ~2 million.
        assert!((65..=135).contains(&received), "{received} of {sent} answered at 50 % loss");
        let c = lab.ask(Request::Status).counters;
        assert_eq!(c.queued, sent as u64, "{c:?}");
        assert_eq!(c.dropped, sent as u64 - received, "each lost ping is one drop in the line: {c:?}");
        assert_eq!(c.verdict_errors, 0, "{c:?}");
    });
}

#[test]
fn stop_releases_held_packets_at_once() {
    with_lab("stop", &["--delay", "3s"], |lab| {
        let t = Instant::now();
        let mut ping = KillOnDrop(
            Command::new("ip")
                .args(["netns", "exec", &lab.a, "ping", "-n", "-c", "1", "-W", "10", B_ADDR])
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(2);
        while lab.ask(Request::Status).counters.queue_len == 0 {
            assert!(Instant::now() < deadline, "the echo request never reached the queue");
            std::thread::sleep(Duration::from_millis(10));
        }
        lab.ask(Request::Stop);
        assert!(ping.0.wait().unwrap().success(), "the held echo request was released");
        assert!(t.elapsed() < Duration::from_secs(2), "released at stop, not after the 3 s delay: {:?}", t.elapsed());
        let exit = lab.line.as_mut().unwrap().wait().unwrap();
        assert!(exit.success(), "vnet-te-delay exits cleanly after stop: {exit}");
        lab.line = None;
    });
}

#[test]
fn jitter_spreads_the_delay_but_keeps_arrival_order() {
    with_lab("jitter", &["--delay", "20ms", "--jitter", "10ms"], |lab| {
        // Pings 5 ms apart with ±10 ms jitter would overtake each other if the line let them.
        let out = Command::new("ip")
            .args(["netns", "exec", &lab.a, "ping", "-n", "-c", "60", "-i", "0.005", "-W", "3", B_ADDR])
            .output()
            .expect("running ping");
        let replies: Vec<(u32, f64)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let seq = l.split("icmp_seq=").nth(1)?.split_whitespace().next()?.parse().ok()?;
                let rtt = l.split("time=").nth(1)?.split_whitespace().next()?.parse().ok()?;
                Some((seq, rtt))
            })
            .collect();
        assert_eq!(replies.len(), 60, "{replies:?}");
        let seqs: Vec<u32> = replies.iter().map(|r| r.0).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "replies out of order: {seqs:?}");
        let rtts: Vec<f64> = replies.iter().map(|r| r.1).collect();
        let (min, max) = rtts.iter().fold((f64::INFINITY, 0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        assert!(min >= 10.0, "below delay − jitter: {rtts:?}");
        assert!(max - min >= 5.0, "no spread from ±10 ms jitter: {rtts:?}");
    });
}

#[test]
fn a_schedule_changes_the_line_at_its_instants_by_itself() {
    use vnet_te_agent::delay::schedule::LineStep;
    with_lab("schedule", &[], |lab| {
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let step = |at_ms, delay_us, down, rate_bps| LineStep { at_ms, delay_us, jitter_us: 0, loss_ppm: 0, down, rate_bps };
        let steps = vec![
            step(0, 10_000, false, None),
            step(1_500, 40_000, false, None),
            step(3_000, 40_000, true, None),
            step(4_000, 5_000, false, Some(10_000_000)),
        ];
        let started = Instant::now();
        let status = lab.ask(Request::Schedule { start_unix_ms: now_ms, ifname: "vtedl-b".into(), steps });
        assert_eq!(status.schedule.map(|p| p.steps), Some(4));
        assert_delayed(&lab.ping(3, "0.05"), 10.0, 3);

        // 40 ms from +1.5 s, never before.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let rtts = lab.ping(1, "0.05");
            if rtts.first().is_some_and(|r| *r >= 40.0) {
                assert!(started.elapsed() >= Duration::from_millis(1_500), "40 ms before +1.5 s: {:?}", started.elapsed());
                break;
            }
            assert!(Instant::now() < deadline, "the delay never became 40 ms: {rtts:?}");
        }

        // Down from +3 s: every echo request dropped and counted as such.
        while started.elapsed() < Duration::from_millis(3_100) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let before = lab.ask(Request::Status).counters;
        assert!(lab.ask(Request::Status).down);
        let out = Command::new("ip").args(["netns", "exec", &lab.a, "ping", "-n", "-c", "3", "-i", "0.1", "-W", "0.3", B_ADDR]).output().unwrap();
        assert!(!out.status.success(), "pings crossed a line that is down");
        let after = lab.ask(Request::Status).counters;
        assert_eq!(after.dropped_down - before.dropped_down, 3, "{after:?}");

        // Up again at +4 s with 5 ms, and the rate on the line's interface (set by the line).
        while started.elapsed() < Duration::from_millis(4_100) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_delayed(&lab.ping(3, "0.05"), 5.0, 3);
        let s = lab.ask(Request::Status);
        assert_eq!((s.down, s.schedule.map(|p| (p.applied, p.rate_errors))), (false, Some((4, 0))), "{s:?}");
        let qdisc = sh("ip", &["netns", "exec", &lab.b, "tc", "qdisc", "show", "dev", "vtedl-b"]).unwrap();
        assert!(qdisc.contains("tbf") && qdisc.contains("10Mbit"), "{qdisc}");
    });
}
