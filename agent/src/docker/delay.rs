//! Distance on the link ends in a node's containers: delay lines and rate limits.
//!
//! A delay line is one `vnet-te-delay run` process per link end, started detached (`setsid
//! -f`, so it outlives the request) in the container's network namespace (from a thread that
//! entered it, as its rules are installed: no `nsenter` per command, which a path's dozens of
//! lines would pay for several times each), with `--exit-with PID` for the container's init: it ends, releasing what it holds,
//! once the container has (otherwise it would keep the namespace alive after `docker rm`).
//! Its control socket is `/run/vnet-te/delay/<container>/<ifname>.sock`, its output in
//! `<ifname>.log` beside it; `remove_container` takes the directory away. Only once the line
//! answers is the queue rule installed (packets queued with no listener are dropped).
//!
//! The binary is `VNET_TE_DELAY_BINARY`, else `vnet-te-delay` beside the running executable
//! (`vnet-te` or `vnet-te-agent`).
//!
//! Names become paths and arguments here: containers must be vnet-te's (`vte-…`) and
//! interface names plain; anything else is refused.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::delay::control::{self, Request};
use crate::delay::rules::{self, Namespace, QueueRule};
use crate::delay::{Settings, Status};
use crate::node::{DelayLineSpec, DelayLineStatus, DelaySettings, NodeError, NodeResult};

use super::LocalNode;

/// Where the delay lines' control sockets and logs are, one directory per container.
pub const DELAY_DIR: &str = "/run/vnet-te/delay";
/// Names the delay line binary, overriding the one beside the running executable.
pub const BINARY_ENV: &str = "VNET_TE_DELAY_BINARY";
const BINARY_NAME: &str = "vnet-te-delay";
/// How long a line just started has to answer its control socket.
const READY_WITHIN: Duration = Duration::from_secs(5);
pub use crate::delay::schedule::RATE_LATENCY;
/// The most of its log quoted in an error.
const LOG_TAIL: u64 = 2000;

/// A name vnet-te gave a container (`scope::check_name`).
pub fn check_container(name: &str) -> Result<(), String> {
    crate::scope::check_name("container", name)
}

pub use crate::delay::units::check_ifname;

/// The directory of a container's delay lines.
pub fn control_dir(container: &str) -> PathBuf {
    Path::new(DELAY_DIR).join(container)
}

/// The control socket of the delay line of `container`'s `ifname`.
pub fn control_path(container: &str, ifname: &str) -> PathBuf {
    control_dir(container).join(format!("{ifname}.sock"))
}

/// The delay line binary: `env` (`VNET_TE_DELAY_BINARY`) when set, else `vnet-te-delay` beside
/// `exe` (the running executable); an error naming the path when it is not there.
pub fn binary_in(env: Option<std::ffi::OsString>, exe: std::io::Result<PathBuf>) -> Result<PathBuf, String> {
    let path = match env {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => exe.map_err(|e| format!("locating the running executable (to find {BINARY_NAME} beside it): {e}"))?.with_file_name(BINARY_NAME),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "the delay line binary {} is not there (install {BINARY_NAME} beside vnet-te / vnet-te-agent, or name it with {BINARY_ENV})",
            path.display()
        ))
    }
}

fn binary() -> Result<PathBuf, String> {
    binary_in(std::env::var_os(BINARY_ENV), std::env::current_exe())
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn percent(ppm: u32) -> f64 {
    f64::from(ppm) / 10_000.0
}

/// The settings a spec asks for, checked as the line would.
pub fn settings_of(spec: &DelayLineSpec) -> Result<Settings, String> {
    let s = Settings { delay_ms: ms(spec.delay_us), jitter_ms: ms(spec.jitter_us), loss_percent: percent(spec.loss_ppm) };
    s.validate().map(|()| s)
}

/// The control request for new settings.
pub fn set_request(s: DelaySettings) -> Request {
    Request::Set { delay_ms: s.delay_us.map(ms), jitter_ms: s.jitter_us.map(ms), loss_percent: s.loss_ppm.map(percent) }
}

/// `vnet-te-delay run …` for `spec`, its socket at `control`, ending with process `owner`.
pub fn run_args(spec: &DelayLineSpec, control: &Path, owner: u32) -> Vec<String> {
    let mut args = vec![
        "run".to_string(),
        "--queue".into(),
        spec.queue.to_string(),
        "--control".into(),
        control.display().to_string(),
        "--delay".into(),
        format!("{}us", spec.delay_us),
        "--jitter".into(),
        format!("{}us", spec.jitter_us),
        "--loss".into(),
        percent(spec.loss_ppm).to_string(),
        "--exit-with".into(),
        owner.to_string(),
    ];
    if let Some(n) = spec.queue_max_len {
        args.extend(["--queue-max-len".into(), n.to_string()]);
    }
    args
}

/// The command that starts the line detached (in the namespace it is run from), ending with
/// process `pid`.
fn launch(binary: &Path, spec: &DelayLineSpec, control: &Path, pid: u32) -> rules::Invocation {
    let mut args = vec!["-f".to_string(), binary.display().to_string()];
    args.extend(run_args(spec, control, pid));
    rules::Invocation { program: "setsid".into(), args }
}

fn ns_of(pid: i64) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()
}

/// Whether the line serving `control` runs in the network namespace of process `pid` (and
/// not, say, in that of an earlier container of the same name, ending).
fn serves_namespace_of(control: &Path, pid: u32) -> bool {
    let Ok(stream) = UnixStream::connect(control) else { return false };
    let Ok(peer) = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials) else {
        return false;
    };
    let theirs = ns_of(i64::from(peer.pid()));
    theirs.is_some() && theirs == ns_of(i64::from(pid))
}

/// The status of the line at `control`.
fn ask(control: &Path, request: &Request) -> Result<Status, String> {
    let reply = control::request(control, request).map_err(|e| e.to_string())?;
    match (reply.ok, reply.status, reply.error) {
        (true, Some(status), _) => Ok(status),
        (_, _, Some(e)) => Err(e),
        _ => Err("the delay line answered without its status".into()),
    }
}

/// The last lines of a log file, for an error message.
fn log_tail(path: &Path) -> String {
    let Ok(mut f) = std::fs::File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL)));
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    if text.is_empty() {
        String::new()
    } else {
        format!("; its log ({}): {text}", path.display())
    }
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> String {
    move |e| format!("{what}: {e}")
}

/// Starts (or updates) the line of `spec` for the container whose init is process `pid`, from
/// a thread inside that container's network namespace. Blocking.
fn start_blocking(spec: &DelayLineSpec, settings: Settings, pid: u32) -> Result<(), String> {
    let control = control_path(&spec.container, &spec.ifname);
    let rule = QueueRule { ifname: spec.ifname.clone(), queue: spec.queue, bypass: false };
    let ns = Namespace::Current;
    if let Ok(status) = ask(&control, &Request::Status) {
        if serves_namespace_of(&control, pid) {
            if status.queue != spec.queue {
                return Err(format!("its delay line runs on queue {}, not {}", status.queue, spec.queue));
            }
            let set = Request::Set {
                delay_ms: Some(settings.delay_ms),
                jitter_ms: Some(settings.jitter_ms),
                loss_percent: Some(settings.loss_percent),
            };
            ask(&control, &set)?;
            rule.install(&ns).map_err(|e| e.to_string())?;
            return give_schedule(spec, &control);
        }
        // The line of an earlier container of this name, about to end with it: end it now.
        let _ = control::request(&control, &Request::Stop);
    }
    let dir = control_dir(&spec.container);
    std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let binary = binary()?;
    let log_path = dir.join(format!("{}.log", spec.ifname));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_err(format!("opening {}", log_path.display())))?;
    let err_log = log.try_clone().map_err(io_err(format!("opening {}", log_path.display())))?;
    let inv = launch(&binary, spec, &control, pid);
    // `setsid -f` forks the line off and returns at once.
    let status = Command::new(&inv.program)
        .args(&inv.args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .status()
        .map_err(io_err(format!("running {}", inv.display())))?;
    if !status.success() {
        return Err(format!("`{}` failed ({status}){}", inv.display(), log_tail(&log_path)));
    }
    let deadline = Instant::now() + READY_WITHIN;
    while !(ask(&control, &Request::Status).is_ok() && serves_namespace_of(&control, pid)) {
        if Instant::now() >= deadline {
            return Err(format!(
                "the delay line did not answer at {} within {} s{}",
                control.display(),
                READY_WITHIN.as_secs(),
                log_tail(&log_path)
            ));
        }
        // A line answers some milliseconds after it was forked: a finer poll than that
        // would only spin, a coarser one adds up over a path's lines.
        std::thread::sleep(Duration::from_millis(5));
    }
    rule.append(&ns).map_err(|e| e.to_string())?;
    give_schedule(spec, &control)
}

/// Hands the line its timeline, if the spec has one.
fn give_schedule(spec: &DelayLineSpec, control: &Path) -> Result<(), String> {
    let Some(s) = &spec.schedule else { return Ok(()) };
    let request = Request::Schedule { start_unix_ms: s.start_unix_ms, ifname: spec.ifname.clone(), steps: s.steps.clone() };
    ask(control, &request).map(|_| ())
}

/// Runs blocking work (sockets, commands) off the runtime's threads.
async fn blocking<T: Send + 'static>(
    doing: &(dyn Fn() -> String + Sync),
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> NodeResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(message)) => Err(NodeError::Failed { doing: doing(), message }),
        Err(e) => Err(NodeError::Failed { doing: doing(), message: e.to_string() }),
    }
}

fn refused(doing: &(dyn Fn() -> String + Sync), message: String) -> NodeError {
    NodeError::Refused { doing: doing(), message }
}

/// Refuses names that are not vnet-te's container and a plain interface.
fn check_end(container: &str, ifname: Option<&str>, doing: &(dyn Fn() -> String + Sync)) -> NodeResult<()> {
    check_container(container).map_err(|m| refused(doing, m))?;
    if let Some(ifname) = ifname {
        check_ifname(ifname).map_err(|m| refused(doing, m))?;
    }
    Ok(())
}

pub(super) async fn start(node: &LocalNode, spec: &DelayLineSpec) -> NodeResult<()> {
    let doing = || format!("starting the delay line of {}:{}", spec.container, spec.ifname);
    check_end(&spec.container, Some(&spec.ifname), &doing)?;
    let settings = settings_of(spec).map_err(|message| NodeError::Failed { doing: doing(), message })?;
    if let Some(s) = &spec.schedule {
        s.validate().map_err(|m| refused(&doing, format!("its schedule: {m}")))?;
    }
    let pid = node.pid_of(&spec.container, &doing).await?;
    let spec = spec.clone();
    blocking(&doing, move || within(pid, move || start_blocking(&spec, settings, pid))).await
}

/// Runs `f` on a thread inside the network namespace of process `pid`.
fn within<T: Send + 'static>(pid: u32, f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    crate::netns::in_namespace(pid, move || Ok(f()))
        .map_err(|e| format!("entering the network namespace of process {pid}: {e}"))?
}

pub(super) async fn set(container: &str, ifname: &str, settings: DelaySettings) -> NodeResult<()> {
    let doing = || format!("changing the delay line of {container}:{ifname}");
    check_end(container, Some(ifname), &doing)?;
    let control = control_path(container, ifname);
    blocking(&doing, move || ask(&control, &set_request(settings)).map(|_| ())).await
}

pub(super) async fn list(container: &str) -> NodeResult<Vec<DelayLineStatus>> {
    let doing = || format!("reading the delay lines of {container}");
    check_end(container, None, &doing)?;
    let dir = control_dir(container);
    blocking(&doing, move || {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("listing {}: {e}", dir.display())),
        };
        let mut ends: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".sock").map(str::to_string))
            .filter(|ifname| check_ifname(ifname).is_ok())
            .collect();
        ends.sort();
        Ok(ends
            .into_iter()
            .map(|ifname| match ask(&dir.join(format!("{ifname}.sock")), &Request::Status) {
                Ok(status) => DelayLineStatus { ifname, status: Some(status), error: None },
                Err(e) => DelayLineStatus { ifname, status: None, error: Some(e) },
            })
            .collect())
    })
    .await
}

/// Takes away the directory of a container's delay lines (its lines end with it).
pub(super) fn forget(container: &str) {
    if check_container(container).is_ok() {
        let _ = std::fs::remove_dir_all(control_dir(container));
    }
}


pub(super) async fn set_rate(node: &LocalNode, container: &str, ifname: &str, rate_bps: Option<u64>) -> NodeResult<()> {
    let doing = || format!("setting the rate of {container}:{ifname}");
    check_end(container, Some(ifname), &doing)?;
    if let Some(rate) = rate_bps {
        if !(1..=1_000_000_000_000).contains(&rate) {
            return Err(NodeError::Failed { doing: doing(), message: format!("rate {rate} bit/s: must be between 1 bit/s and 1 Tbit/s") });
        }
    }
    let pid = node.pid_of(container, &doing).await?;
    let ifname = ifname.to_string();
    blocking(&doing, move || within(pid, move || rules::set_rate(&ifname, rate_bps, |inv| inv).map_err(|e| e.to_string()))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DelayLineSpec {
        DelayLineSpec {
            container: "vte-p1-r2".into(),
            ifname: "eth1".into(),
            queue: 3,
            delay_us: 1_280_000,
            jitter_us: 500,
            loss_ppm: 5_000,
            queue_max_len: None,
            schedule: None,
        }
    }

    #[test]
    fn only_vnet_te_containers_and_plain_interfaces() {
        assert_eq!(check_container("vte-p1-r2"), Ok(()));
        assert_eq!(check_container("vte-dltest-42-a"), Ok(()));
        for bad in ["vte-", "r1", "vte-../etc", "vte-a/b", "vte-a b", "VTE-a", ""] {
            let e = check_container(bad).unwrap_err();
            assert!(e.contains("is not vnet-te's"), "{bad}: {e}");
        }
        for good in ["eth1", "vx-1", "e.100", "a@b", "abcdefghijklmno"] {
            assert_eq!(check_ifname(good), Ok(()), "{good}");
        }
        for bad in ["", ".", "..", "eth/1", "eth 1", "abcdefghijklmnop", "eth1\n", "a:b"] {
            assert!(check_ifname(bad).unwrap_err().contains("not a plain interface name"), "{bad:?}");
        }
    }

    #[test]
    fn each_end_has_its_socket_under_its_containers_directory() {
        assert_eq!(control_path("vte-p1-r2", "eth1"), PathBuf::from("/run/vnet-te/delay/vte-p1-r2/eth1.sock"));
        assert_eq!(control_dir("vte-p1-r2"), PathBuf::from("/run/vnet-te/delay/vte-p1-r2"));
    }

    #[test]
    fn the_line_runs_detached_and_ends_with_the_container() {
        let inv = launch(Path::new("/usr/local/bin/vnet-te-delay"), &spec(), &control_path("vte-p1-r2", "eth1"), 4242);
        assert_eq!(
            inv.display(),
            "setsid -f /usr/local/bin/vnet-te-delay run --queue 3 \
             --control /run/vnet-te/delay/vte-p1-r2/eth1.sock --delay 1280000us --jitter 500us --loss 0.5 --exit-with 4242"
        );
        let mut s = spec();
        s.queue_max_len = Some(20_000);
        s.loss_ppm = 0;
        let args = run_args(&s, Path::new("/x.sock"), 7);
        assert_eq!(args[args.len() - 2..], ["--queue-max-len".to_string(), "20000".to_string()]);
        assert!(args.windows(2).any(|w| w == ["--loss", "0"]), "{args:?}");
    }

    #[test]
    fn settings_go_over_in_the_lines_units() {
        assert_eq!(settings_of(&spec()), Ok(Settings { delay_ms: 1280.0, jitter_ms: 0.5, loss_percent: 0.5 }));
        let mut s = spec();
        s.loss_ppm = 1_000_001;
        assert!(settings_of(&s).unwrap_err().contains("loss_percent"));
        assert_eq!(
            set_request(DelaySettings { delay_us: Some(20_000), jitter_us: None, loss_ppm: Some(1) }),
            Request::Set { delay_ms: Some(20.0), jitter_ms: None, loss_percent: Some(0.0001) }
        );
    }

    #[test]
    fn the_binary_is_named_by_the_environment_or_found_beside_the_executable() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("vnet-te-agent");
        let beside = dir.path().join("vnet-te-delay");
        let e = binary_in(None, Ok(exe.clone())).unwrap_err();
        assert!(e.contains(&beside.display().to_string()) && e.contains(BINARY_ENV), "{e}");
        std::fs::write(&beside, "").unwrap();
        assert_eq!(binary_in(None, Ok(exe.clone())), Ok(beside.clone()));
        assert_eq!(binary_in(Some("".into()), Ok(exe.clone())), Ok(beside.clone()));
        let named = dir.path().join("elsewhere");
        let e = binary_in(Some(named.clone().into()), Ok(exe)).unwrap_err();
        assert!(e.contains(&named.display().to_string()), "{e}");
        std::fs::write(&named, "").unwrap();
        assert_eq!(binary_in(Some(named.clone().into()), Err(std::io::Error::other("no exe"))), Ok(named));
    }

    #[test]
    fn removing_a_rate_that_is_not_there_is_no_error() {
        assert!(crate::delay::rules::no_root_qdisc("Error: Cannot delete qdisc with handle of zero."));
        assert!(!crate::delay::rules::no_root_qdisc("Cannot find device \"eth9\""));
    }
}
