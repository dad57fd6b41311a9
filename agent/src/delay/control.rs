//! The control interface: a Unix stream socket, one JSON request per line, one JSON reply
//! per line.
//!
//! ```text
//! {"op":"status"}
//! {"op":"set","delay_ms":20}                  fields left out keep their value
//! {"op":"schedule","start_unix_ms":…,"ifname":"eth1","steps":[{"at_ms":5000,"delay_us":…},…]}
//!                                             runs a timeline (replacing any earlier one)
//! {"op":"stop"}                               releases every held packet, then exits
//! → {"ok":true,"status":{"queue":0,"settings":{…},"counters":{"queued":…,…},…}}
//! → {"ok":false,"error":"…"}
//! ```
//!
//! A filesystem path (not an abstract socket, which would belong to the link end's network
//! namespace), so a process on the node reaches every link end's line in any namespace.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::line::{Control, Settings, Status};
use super::schedule::{self, LineSchedule, LineStep};
use super::DelayError;

/// The longest a client may take to send its request or read its reply.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Status,
    Set {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delay_ms: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jitter_ms: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        loss_percent: Option<f64>,
    },
    /// A timeline for this line (see [`super::schedule`]); `ifname` is the line's interface,
    /// where the steps' rates go.
    Schedule {
        start_unix_ms: u64,
        ifname: String,
        steps: Vec<LineStep>,
    },
    Stop,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reads one request line.
pub fn parse_request(line: &str) -> Result<Request, String> {
    serde_json::from_str(line.trim()).map_err(|e| format!("bad request {:?}: {e}", line.trim()))
}

/// The settings after applying a `set` request to `current`.
pub fn patched(current: Settings, request: &Request) -> Settings {
    match *request {
        Request::Set { delay_ms, jitter_ms, loss_percent } => Settings {
            delay_ms: delay_ms.unwrap_or(current.delay_ms),
            jitter_ms: jitter_ms.unwrap_or(current.jitter_ms),
            loss_percent: loss_percent.unwrap_or(current.loss_percent),
        },
        _ => current,
    }
}

/// Answers one request line against a running line; true when the line should stop.
pub fn answer(line: &str, control: &Control) -> (Reply, bool) {
    let fail = |error: String| (Reply { ok: false, status: None, error: Some(error) }, false);
    let request = match parse_request(line) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if let Request::Set { .. } = request {
        if let Err(e) = control.set(patched(control.status().settings, &request)) {
            return fail(e.to_string());
        }
    }
    if let Request::Schedule { start_unix_ms, ifname, steps } = &request {
        if let Err(e) = super::units::check_ifname(ifname) {
            return fail(e);
        }
        let timeline = LineSchedule { start_unix_ms: *start_unix_ms, steps: steps.clone() };
        if let Err(e) = schedule::spawn(control.clone(), timeline, ifname.clone()) {
            return fail(e);
        }
    }
    let stop = request == Request::Stop;
    (Reply { ok: true, status: Some(control.status()), error: None }, stop)
}

/// A socket file as bound: a later line that binds the same path makes another file, which
/// an earlier line ending afterwards must leave alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketFile {
    dev: u64,
    ino: u64,
}

impl SocketFile {
    fn at(path: &Path) -> Option<SocketFile> {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(path).ok().map(|m| SocketFile { dev: m.dev(), ino: m.ino() })
    }

    /// Removes the socket at `path` if it is still this one.
    pub fn remove(&self, path: &Path) {
        if SocketFile::at(path) == Some(*self) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Serves the control socket at `path` until a `stop` request; then stops the line.
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    file: Option<SocketFile>,
}

impl Server {
    /// Binds `path`, replacing a socket left by an earlier run.
    pub fn bind(path: &Path) -> Result<Self, DelayError> {
        let io = |what: &str| {
            let what = format!("{what} {}", path.display());
            move |source| DelayError::Io { what, source }
        };
        if path.symlink_metadata().is_ok() {
            std::fs::remove_file(path).map_err(io("removing the old control socket"))?;
        }
        let listener = UnixListener::bind(path).map_err(io("binding the control socket"))?;
        Ok(Server { listener, path: path.to_path_buf(), file: SocketFile::at(path) })
    }

    /// The socket file this server bound (to remove it once done, and only it).
    pub fn file(&self) -> Option<SocketFile> {
        self.file
    }

    /// Serves connections one at a time; returns after answering `stop`.
    pub fn serve(self, control: &Control) {
        for stream in self.listener.incoming() {
            let Ok(stream) = stream else { continue };
            if serve_one(stream, control) {
                control.stop();
                return;
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(file) = self.file {
            file.remove(&self.path);
        }
    }
}

fn serve_one(stream: UnixStream, control: &Control) -> bool {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(writer) = stream.try_clone() else { return false };
    let mut writer = writer;
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return false };
        if line.trim().is_empty() {
            continue;
        }
        let (reply, stop) = answer(&line, control);
        let text = serde_json::to_string(&reply).expect("replies serialize");
        if writeln!(writer, "{text}").is_err() || stop {
            return stop;
        }
    }
    false
}

/// Sends one request to the delay line listening at `path` and returns its reply.
pub fn request(path: &Path, request: &Request) -> Result<Reply, DelayError> {
    let io = |what: &'static str| move |source| DelayError::Io { what: format!("{what} {}", path.display()), source };
    let mut stream = UnixStream::connect(path).map_err(io("connecting to the control socket"))?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io("setting a timeout on"))?;
    let line = serde_json::to_string(request).expect("requests serialize");
    writeln!(stream, "{line}").map_err(io("sending a request to"))?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).map_err(io("reading the reply from"))?;
    serde_json::from_str(&reply).map_err(|e| DelayError::Reply { path: path.display().to_string(), reason: format!("{e}: {reply:?}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_by_op_and_strict() {
        assert_eq!(parse_request(r#"{"op":"status"}"#), Ok(Request::Status));
        assert_eq!(
            parse_request(r#"{"op":"set","delay_ms":20}"#),
            Ok(Request::Set { delay_ms: Some(20.0), jitter_ms: None, loss_percent: None })
        );
        assert_eq!(parse_request(" {\"op\":\"stop\"}\n"), Ok(Request::Stop));
        let e = parse_request(r#"{"op":"set","delay":20}"#).unwrap_err();
        assert!(e.contains("unknown field `delay`"), "{e}");
        assert!(parse_request(r#"{"op":"reboot"}"#).unwrap_err().contains("unknown variant `reboot`"));
    }

    #[test]
    fn a_set_changes_only_the_fields_it_names() {
        let now = Settings { delay_ms: 50.0, jitter_ms: 1.0, loss_percent: 2.0 };
        let set = Request::Set { delay_ms: None, jitter_ms: None, loss_percent: Some(50.0) };
        assert_eq!(patched(now, &set), Settings { loss_percent: 50.0, ..now });
        assert_eq!(patched(now, &Request::Status), now);
    }

    #[test]
    fn a_server_removes_its_own_socket_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eth1.sock");
        let first = Server::bind(&path).unwrap();
        let old = first.file().unwrap();
        // A later line binds the same path while the first one is still ending.
        let second = Server::bind(&path).unwrap();
        assert_ne!(second.file(), Some(old));
        drop(first);
        old.remove(&path);
        assert!(path.exists(), "the first line left the second one's socket alone");
        drop(second);
        assert!(!path.exists(), "the second line removed its own socket");
    }

    #[test]
    fn a_set_request_serializes_without_the_fields_left_out() {
        let set = Request::Set { delay_ms: Some(1.5), jitter_ms: None, loss_percent: None };
        assert_eq!(serde_json::to_string(&set).unwrap(), r#"{"op":"set","delay_ms":1.5}"#);
    }
}
