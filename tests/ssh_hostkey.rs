//! `vnet_te::exec::ssh` against a real OpenSSH `sshd`: host-key policy (unknown, accept-new,
//! changed), exec status and output, streamed stdin, write_file.
//!
//! Each test starts its own `sshd -D -e -f <config>` on 127.0.0.1 with an ephemeral port, a
//! generated ed25519 host key and a temp authorized_keys holding a generated client key; it
//! is killed when the test ends, however it ends. Needs `sshd` and `ssh-keygen` (Debian:
//! openssh-server); without them each test prints SKIP and passes, unless
//! VNET_TE_REQUIRE_SSH=1, which turns the skip into a failure.

#[path = "common/skip.rs"]
mod skip;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};
use vnet_te::exec::ssh::{HostKeyPolicy, Session, SshError, SshErrorKind, SshTarget};

// ---------------------------------------------------------------------------------------
// Harness

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "vnet-te-ssh-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

struct Tools {
    sshd: PathBuf,
    keygen: PathBuf,
}

/// The OpenSSH tools, or None after printing why the test is skipped.
fn tools(test: &str) -> Option<Tools> {
    match (find_tool("sshd"), find_tool("ssh-keygen")) {
        (Some(sshd), Some(keygen)) => Some(Tools { sshd, keygen }),
        (sshd, _) => {
            let missing = if sshd.is_none() { "sshd" } else { "ssh-keygen" };
            let why = format!("{missing} is not installed (Debian: apt-get install openssh-server)");
            skip::skip_or_fail(&format!("ssh_hostkey::{test}"), skip::Requirement::Ssh, &why);
            None
        }
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn keygen(tools: &Tools, path: &Path) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    run(Command::new(&tools.keygen).args(["-q", "-t", "ed25519", "-N", "", "-C", ""]).arg("-f").arg(path));
}

/// `SHA256:…` of a public key file, as OpenSSH prints it.
fn fingerprint(tools: &Tools, pub_path: &Path) -> String {
    let out = run(Command::new(&tools.keygen).args(["-l", "-E", "sha256", "-f"]).arg(pub_path));
    out.split_whitespace().nth(1).unwrap().to_string()
}

/// The base64 field of an OpenSSH public key file.
fn pub_b64(pub_path: &Path) -> String {
    std::fs::read_to_string(pub_path).unwrap().split_whitespace().nth(1).unwrap().to_string()
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// A running `sshd -D -e`; killed and reaped on drop.
struct Sshd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Sshd {
    fn start(tools: &Tools, dir: &Path, host_key: &Path, port: u16) -> Result<Sshd, String> {
        // Debian's sshd insists on its privilege separation directory, which only the
        // service unit creates.
        let _ = std::fs::create_dir_all("/run/sshd");
        let user = run(Command::new("id").arg("-un")).trim().to_string();
        let config = dir.join(format!("sshd_config.{port}"));
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile none\n\
                 StrictModes no\nUsePAM no\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nAllowUsers {user}\n\
                 PrintMotd no\nLogLevel VERBOSE\n",
                hk = host_key.display(),
                ak = dir.join("authorized_keys").display(),
            ),
        )
        .unwrap();
        let log = dir.join(format!("sshd.{port}.log"));
        let child = Command::new(&tools.sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", tools.sshd.display()))?;
        let mut sshd = Sshd { child, port, log };
        sshd.wait_ready()?;
        Ok(sshd)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls until the server answers with an OpenSSH banner, within a deadline.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("sshd exited with {status} before accepting connections:\n{}", self.log()));
            }
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut banner = [0u8; 64];
                if let Ok(n) = s.read(&mut banner) {
                    if banner[..n].starts_with(b"SSH-2.0-OpenSSH") {
                        let _ = s.write_all(b"SSH-2.0-probe\r\n");
                        // Still ours (not another process on a reused port)?
                        if self.child.try_wait().unwrap().is_none() {
                            return Ok(());
                        }
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(format!("sshd did not answer on port {} within 15 s:\n{}", self.port, self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One sshd with its keys, a client key and a known_hosts path, all in one temp dir.
struct Fixture {
    sshd: Option<Sshd>,
    tools: Tools,
    host_key: PathBuf,
    client_key: PathBuf,
    known_hosts: PathBuf,
    target: SshTarget,
    dir: TempDir,
}

impl Fixture {
    fn new(test: &str) -> Option<Fixture> {
        let tools = tools(test)?;
        let dir = TempDir::new(test);
        let host_key = dir.0.join("host_ed25519");
        let client_key = dir.0.join("client_ed25519");
        keygen(&tools, &host_key);
        keygen(&tools, &client_key);
        std::fs::copy(client_key.with_extension("pub"), dir.0.join("authorized_keys")).unwrap();
        // A port picked free may be taken before sshd binds it: try a few.
        let mut errors = Vec::new();
        let sshd = (0..3).find_map(|_| match Sshd::start(&tools, &dir.0, &host_key, free_port()) {
            Ok(s) => Some(s),
            Err(e) => {
                errors.push(e);
                None
            }
        });
        let sshd = sshd.unwrap_or_else(|| panic!("could not start sshd:\n{}", errors.join("\n---\n")));
        let target: SshTarget =
            format!("{}@127.0.0.1:{}", run(Command::new("id").arg("-un")).trim(), sshd.port).parse().unwrap();
        Some(Fixture {
            known_hosts: dir.0.join("known_hosts"),
            sshd: Some(sshd),
            tools,
            host_key,
            client_key,
            target,
            dir,
        })
    }

    async fn connect(&self, policy: HostKeyPolicy) -> Result<Session, SshError> {
        Session::connect(&self.target, Some(&self.client_key), &self.known_hosts, policy).await
    }

    fn host_fingerprint(&self) -> String {
        fingerprint(&self.tools, &self.host_key.with_extension("pub"))
    }

    /// Stops sshd, gives it a new host key and starts it again on the same port.
    fn restart_with_new_host_key(&mut self) {
        let port = self.sshd.take().unwrap().port;
        keygen(&self.tools, &self.host_key);
        let sshd = Sshd::start(&self.tools, &self.dir.0, &self.host_key, port)
            .unwrap_or_else(|e| panic!("restarting sshd on port {port}: {e}"));
        self.sshd = Some(sshd);
    }

    fn sshd_log(&self) -> String {
        self.sshd.as_ref().map(Sshd::log).unwrap_or_default()
    }
}

fn read_opt(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

// ---------------------------------------------------------------------------------------
// Tests: each body runs under a deadline, so a hang fails (and Drop still stops sshd).

async fn within(body: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(240), body).await.expect("test timed out after 240 s")
}

async fn unknown_host_key_is_refused_under_strict_body() {
    let Some(f) = Fixture::new("unknown") else { return };
    let fp = f.host_fingerprint();

    // No known_hosts at all: refused, and no file is created.
    let err = f.connect(HostKeyPolicy::Strict).await.expect_err("an unknown host must be refused");
    assert!(matches!(err.kind(), SshErrorKind::UnknownHostKey { .. }), "wrong error: {err}");
    assert!(!f.known_hosts.exists(), "Strict must not create known_hosts");

    // known_hosts with other hosts only: refused with type, fingerprint and the way out.
    let other = pub_b64(&f.client_key.with_extension("pub"));
    let contents = format!("# test\nother.example ssh-ed25519 {other}\n[127.0.0.1]:1 ssh-ed25519 {other}\n");
    std::fs::write(&f.known_hosts, &contents).unwrap();
    let err = f.connect(HostKeyPolicy::Strict).await.expect_err("an unknown host must be refused");
    let msg = err.to_string();
    assert!(matches!(err.kind(), SshErrorKind::UnknownHostKey { .. }), "wrong error: {msg}");
    for needle in [
        fp.as_str(),
        "ssh-ed25519",
        "--accept-new-host-key",
        &f.known_hosts.display().to_string(),
        &f.target.to_string(),
    ] {
        assert!(msg.contains(needle), "message lacks {needle:?}: {msg}");
    }
    assert_eq!(std::fs::read_to_string(&f.known_hosts).unwrap(), contents, "Strict must not touch known_hosts");
}

async fn accept_new_records_the_key_then_strict_connects_and_exec_works_body() {
    let Some(f) = Fixture::new("acceptnew") else { return };
    let host_pub = pub_b64(&f.host_key.with_extension("pub"));

    let s = f.connect(HostKeyPolicy::AcceptNew).await.unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", f.sshd_log()));
    let kh = std::fs::read_to_string(&f.known_hosts).expect("AcceptNew must write known_hosts");
    let entry = format!("[127.0.0.1]:{} ssh-ed25519 {host_pub}", f.target.port);
    assert_eq!(kh.lines().collect::<Vec<_>>(), vec![entry.as_str()], "known_hosts: {kh}");
    // OpenSSH itself finds the entry.
    run(Command::new(&f.tools.keygen)
        .arg("-F")
        .arg(format!("[127.0.0.1]:{}", f.target.port))
        .arg("-f")
        .arg(&f.known_hosts));

    let out = s.exec("echo hi").await.unwrap();
    assert_eq!((out.status, out.stdout.as_slice(), out.stderr.as_slice()), (0, &b"hi\n"[..], &b""[..]));
    let out = s.exec("echo out; echo oops >&2; exit 3").await.unwrap();
    assert_eq!((out.status, out.stdout.as_slice(), out.stderr.as_slice()), (3, &b"out\n"[..], &b"oops\n"[..]));
    let out = s.exec("kill -TERM $$").await.unwrap();
    assert_eq!(out.status, 128 + 15, "killed by SIGTERM: {out:?}");
    s.close().await;

    // Known now: Strict connects, and nothing more is written.
    let s = f.connect(HostKeyPolicy::Strict).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.exec("echo again").await.unwrap().stdout, b"again\n");
    s.close().await;
    assert_eq!(std::fs::read_to_string(&f.known_hosts).unwrap(), kh);

    // Hashed entries (`ssh-keygen -H`, HashKnownHosts) are recognised too.
    run(Command::new(&f.tools.keygen).arg("-H").arg("-f").arg(&f.known_hosts));
    let hashed = std::fs::read_to_string(&f.known_hosts).unwrap();
    assert!(hashed.starts_with("|1|"), "{hashed}");
    let s = f.connect(HostKeyPolicy::Strict).await.unwrap_or_else(|e| panic!("hashed known_hosts: {e}"));
    assert_eq!(s.exec("true").await.unwrap().status, 0);
    s.close().await;
    assert_eq!(std::fs::read_to_string(&f.known_hosts).unwrap(), hashed);
}

/// Deterministic pseudo-random bytes, generated as they are read (never held whole).
struct Generated {
    pos: u64,
    len: u64,
    produced: Arc<AtomicU64>,
}

impl Generated {
    fn new(len: u64) -> Generated {
        Generated { pos: 0, len, produced: Arc::new(AtomicU64::new(0)) }
    }

    /// Byte `i` of the stream: a splitmix64 of `i / 8`, so any read size gives the same bytes.
    fn byte(i: u64) -> u8 {
        let mut z = (i / 8).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        z.to_le_bytes()[(i % 8) as usize]
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = Self::byte(self.pos);
            self.pos += 1;
        }
    }
}

impl AsyncRead for Generated {
    fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let n = (buf.remaining().min(16 * 1024) as u64).min(self.len - self.pos) as usize;
        let mut tmp = vec![0u8; n];
        self.fill(&mut tmp);
        buf.put_slice(&tmp);
        self.produced.fetch_add(n as u64, Ordering::SeqCst);
        Poll::Ready(Ok(()))
    }
}

fn generated_sha256(len: u64) -> String {
    let mut g = Generated::new(len);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut left = len;
    while left > 0 {
        let n = (buf.len() as u64).min(left) as usize;
        g.fill(&mut buf[..n]);
        h.update(&buf[..n]);
        left -= n as u64;
    }
    format!("{:x}", h.finalize())
}

async fn exec_with_stdin_streams_32_mib_body() {
    let Some(f) = Fixture::new("stream") else { return };
    f.connect(HostKeyPolicy::AcceptNew).await.unwrap().close().await;
    let s = f.connect(HostKeyPolicy::Strict).await.unwrap();

    const LEN: u64 = 32 * 1024 * 1024;
    let input = Generated::new(LEN);
    let produced = input.produced.clone();
    let out = tokio::time::timeout(Duration::from_secs(120), s.exec_with_stdin("sha256sum", input))
        .await
        .expect("streaming 32 MiB must finish (is EOF sent?)")
        .unwrap();
    assert_eq!(out.status, 0, "{}", out.stderr_lossy());
    assert_eq!(produced.load(Ordering::SeqCst), LEN);
    assert_eq!(out.stdout_lossy(), format!("{}  -\n", generated_sha256(LEN)));

    // A command that stops reading early ends the exec; the rest of the stream is not read.
    let input = Generated::new(1 << 40);
    let produced = input.produced.clone();
    let out =
        tokio::time::timeout(Duration::from_secs(60), s.exec_with_stdin("head -c 1000 >/dev/null; echo done", input))
            .await
            .expect("exec must end when the command exits without reading all its stdin")
            .unwrap();
    assert_eq!((out.status, out.stdout.as_slice()), (0, &b"done\n"[..]));
    assert!(produced.load(Ordering::SeqCst) < 1 << 30, "read far more than the command consumed");
    s.close().await;
}

async fn write_file_sets_content_and_mode_body() {
    let Some(f) = Fixture::new("writefile") else { return };
    f.connect(HostKeyPolicy::AcceptNew).await.unwrap().close().await;
    let s = f.connect(HostKeyPolicy::Strict).await.unwrap();
    let marker = format!("injected-{}", std::process::id());

    // A new directory, and a name full of shell syntax that must reach the disk verbatim.
    let dir = f.dir.0.join("new dir");
    let path = dir.join(format!("it's a \"key\" $(touch {marker}) `touch {marker}`; touch {marker}.pem"));
    let path_s = path.to_str().unwrap();
    let content: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    s.write_file(path_s, &content, 0o640).await.unwrap_or_else(|e| panic!("{e}"));

    // Read back over SSH; the path travels on stdin, so the test needs no quoting.
    let out = s
        .exec_with_stdin(
            r#"p=$(cat); stat -c %a -- "$p" && stat -c %a -- "$(dirname -- "$p")" && sha256sum < "$p""#,
            path_s.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(out.status, 0, "{}", out.stderr_lossy());
    let expected = format!("640\n700\n{:x}  -\n", Sha256::digest(&content));
    assert_eq!(out.stdout_lossy(), expected);
    assert_eq!(std::fs::read(&path).unwrap(), content);
    let listing: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(listing.len(), 1, "temporary files left behind: {listing:?}");
    let probe = s.exec(&format!("ls -d {marker}* 2>/dev/null; rm -f {marker}*")).await.unwrap();
    assert!(probe.stdout.is_empty(), "the path was interpreted by the shell: {}", probe.stdout_lossy());

    // Overwrite with a tighter mode.
    s.write_file(path_s, b"second\n", 0o600).await.unwrap();
    let out = s.exec_with_stdin(r#"p=$(cat); stat -c %a -- "$p" && cat -- "$p""#, path_s.as_bytes()).await.unwrap();
    assert_eq!(out.stdout_lossy(), "600\nsecond\n");

    // A failure is an error with the remote's reason.
    let bad = format!("{path_s}/below-a-file");
    let err = s.write_file(&bad, b"x", 0o600).await.expect_err("writing below a file must fail");
    match err.kind() {
        SshErrorKind::RemoteFailed { status, stderr, .. } => {
            assert!(
                *status != 0 && ["below-a-file", "exists", "Not a directory"].iter().any(|w| stderr.contains(w)),
                "{err}"
            )
        }
        other => panic!("expected RemoteFailed, got {other}"),
    }
    s.close().await;
}

async fn changed_host_key_is_refused_under_every_policy_body() {
    let Some(mut f) = Fixture::new("changed") else { return };
    std::fs::write(&f.known_hosts, "# known hosts of the vnet-te test\n").unwrap();
    let old_fp = f.host_fingerprint();
    f.connect(HostKeyPolicy::AcceptNew).await.unwrap_or_else(|e| panic!("{e}")).close().await;
    let recorded = read_opt(&f.known_hosts).unwrap();

    f.restart_with_new_host_key();
    let new_fp = f.host_fingerprint();
    assert_ne!(old_fp, new_fp);
    for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
        let err = f.connect(policy).await.expect_err("a changed host key must be refused");
        let msg = err.to_string();
        match err.kind() {
            SshErrorKind::HostKeyChanged { line, known_hosts, .. } => {
                assert_eq!(*line, 2, "{msg}");
                assert_eq!(known_hosts, &f.known_hosts);
            }
            other => panic!("{policy:?}: expected HostKeyChanged, got {other}"),
        }
        for needle in [new_fp.as_str(), old_fp.as_str(), "line 2", &f.known_hosts.display().to_string(), "CHANGED"] {
            assert!(msg.contains(needle), "{policy:?}: message lacks {needle:?}: {msg}");
        }
        assert_eq!(read_opt(&f.known_hosts).unwrap(), recorded, "{policy:?} changed known_hosts");
    }
}

#[tokio::test]
async fn unknown_host_key_is_refused_under_strict() {
    within(unknown_host_key_is_refused_under_strict_body()).await
}

#[tokio::test]
async fn accept_new_records_the_key_then_strict_connects_and_exec_works() {
    within(accept_new_records_the_key_then_strict_connects_and_exec_works_body()).await
}

#[tokio::test]
async fn exec_with_stdin_streams_32_mib() {
    within(exec_with_stdin_streams_32_mib_body()).await
}

#[tokio::test]
async fn write_file_sets_content_and_mode() {
    within(write_file_sets_content_and_mode_body()).await
}

#[tokio::test]
async fn changed_host_key_is_refused_under_every_policy() {
    within(changed_host_key_is_refused_under_every_policy_body()).await
}
