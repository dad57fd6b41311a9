//! The nfnetlink_queue protocol, only as much as a delay line needs: bind a queue with
//! metadata-only copies, receive packet ids, send per-packet and batch verdicts.
//!
//! Encoding and decoding are pure functions over byte buffers; [`NfQueue`] adds the socket.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use rtnetlink::sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use super::DelayError;

const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;

const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQNL_MSG_VERDICT_BATCH: u16 = 3;

const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NLA_TYPE_MASK: u16 = 0x3fff;

const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_META: u8 = 1;
const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
const NFQA_CFG_F_GSO: u32 = 4;

/// What the kernel does with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Drop = 0,
    Accept = 1,
}

/// How the queue is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    pub queue: u16,
    /// Packets the kernel holds for this queue before it drops (or, fail-open, accepts) more.
    pub max_len: u32,
    /// Accept instead of drop when the queue is full.
    pub fail_open: bool,
    /// Hand GSO packets over unsegmented: one message per up to 64 KiB instead of per MTU.
    pub gso: bool,
}

/// One thing the kernel said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Packet { id: u32 },
    /// An acknowledgement (`errno` 0) or an error for the request with sequence number `seq`.
    Ack { seq: u32, errno: i32 },
}

/// Appends one nfnetlink message for the queue subsystem to `buf`, its attributes written by `attrs`.
fn message(buf: &mut Vec<u8>, msg_type: u16, flags: u16, seq: u32, queue: u16, attrs: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]); // length, set below
    buf.extend_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | msg_type).to_ne_bytes());
    buf.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: AF_UNSPEC, NFNETLINK_V0, the queue number (big-endian).
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&queue.to_be_bytes());
    attrs(buf);
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

fn attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    buf.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// One config message: bind the queue, metadata-only copies, max length and flags, acknowledged.
/// The kernel applies the command first, so one message binds and configures.
pub fn bind_message(buf: &mut Vec<u8>, seq: u32, o: &QueueOptions) {
    message(buf, NFQNL_MSG_CONFIG, NLM_F_ACK, seq, o.queue, |b| {
        // nfqnl_msg_config_cmd: command, pad, protocol family (unused since Linux 3.8).
        attr(b, NFQA_CFG_CMD, &[NFQNL_CFG_CMD_BIND, 0, 0, 0]);
        // nfqnl_msg_config_params (packed): copy range 0, copy mode META.
        let mut params = 0u32.to_be_bytes().to_vec();
        params.push(NFQNL_COPY_META);
        attr(b, NFQA_CFG_PARAMS, &params);
        attr(b, NFQA_CFG_QUEUE_MAXLEN, &o.max_len.to_be_bytes());
        let flags = if o.fail_open { NFQA_CFG_F_FAIL_OPEN } else { 0 } | if o.gso { NFQA_CFG_F_GSO } else { 0 };
        attr(b, NFQA_CFG_MASK, &(NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO).to_be_bytes());
        attr(b, NFQA_CFG_FLAGS, &flags.to_be_bytes());
    });
}

fn verdict_attr(b: &mut Vec<u8>, verdict: Verdict, id: u32) {
    let mut hdr = (verdict as u32).to_be_bytes().to_vec();
    hdr.extend_from_slice(&id.to_be_bytes());
    attr(b, NFQA_VERDICT_HDR, &hdr);
}

/// Appends a verdict on packet `id`.
pub fn verdict_message(buf: &mut Vec<u8>, queue: u16, id: u32, verdict: Verdict) {
    message(buf, NFQNL_MSG_VERDICT, 0, 0, queue, |b| verdict_attr(b, verdict, id));
}

/// Appends a verdict on every packet still queued whose id is `id` or earlier.
pub fn batch_verdict_message(buf: &mut Vec<u8>, queue: u16, id: u32, verdict: Verdict) {
    message(buf, NFQNL_MSG_VERDICT_BATCH, 0, 0, queue, |b| verdict_attr(b, verdict, id));
}

/// Reads the messages of one datagram, calling `f` for each packet and acknowledgement.
pub fn parse(datagram: &[u8], mut f: impl FnMut(Event)) -> Result<(), String> {
    let mut rest = datagram;
    while rest.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(format!("netlink message length {len} with {} bytes left", rest.len()));
        }
        let kind = u16::from_ne_bytes(rest[4..6].try_into().unwrap());
        let body = &rest[NLMSG_HDRLEN..len];
        match kind {
            NLMSG_ERROR if body.len() >= 4 + NLMSG_HDRLEN => {
                let errno = -i32::from_ne_bytes(body[0..4].try_into().unwrap());
                let seq = u32::from_ne_bytes(body[12..16].try_into().unwrap());
                f(Event::Ack { seq, errno });
            }
            NLMSG_DONE => {}
            k if k == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET && body.len() >= NFGENMSG_LEN => {
                let id = packet_id(&body[NFGENMSG_LEN..]).ok_or("packet message without a packet header")?;
                f(Event::Packet { id });
            }
            _ => {}
        }
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
    }
    Ok(())
}

fn packet_id(mut attrs: &[u8]) -> Option<u32> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > attrs.len() {
            return None;
        }
        // nfqnl_msg_packet_hdr: packet id (big-endian), hardware protocol, hook.
        if kind == NFQA_PACKET_HDR && len >= 8 {
            return Some(u32::from_be_bytes(attrs[4..8].try_into().unwrap()));
        }
        attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
    }
    None
}

/// A bound queue: one netlink socket in the network namespace it was opened in.
pub struct NfQueue {
    socket: Socket,
}

impl NfQueue {
    /// Binds queue `o.queue` in this thread's network namespace. Packets the kernel handed
    /// over before the bind was acknowledged are returned with it.
    pub fn open(o: &QueueOptions) -> Result<(Self, Vec<u32>), DelayError> {
        let io = |what: &'static str| move |source: io::Error| DelayError::Io { what: format!("{what} for queue {}", o.queue), source };
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(io("opening a netfilter netlink socket"))?;
        socket.bind(&SocketAddr::new(0, 0)).map_err(io("binding the netlink socket"))?;
        // Room for bursts: each held packet costs one small message until it is read.
        // FORCE (root) goes past net.core.rmem_max.
        if nix::sys::socket::setsockopt(&socket.as_fd(), nix::sys::socket::sockopt::RcvBufForce, &(16 << 20)).is_err() {
            let _ = socket.set_rx_buf_sz(16 << 20);
        }
        // The receiver wakes now and then to see whether it should stop.
        let timeout = nix::sys::time::TimeVal::new(0, 100_000);
        nix::sys::socket::setsockopt(&socket.as_fd(), nix::sys::socket::sockopt::ReceiveTimeout, &timeout)
            .map_err(|e| io("setting a receive timeout")(e.into()))?;
        let mut buf = Vec::new();
        bind_message(&mut buf, 1, o);
        socket.send(&buf, 0).map_err(io("sending the bind request"))?;
        let mut early = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if std::time::Instant::now() > deadline {
                return Err(DelayError::Bind { queue: o.queue, reason: "no answer from the kernel within 5 s".into() });
            }
            let mut rx = Vec::with_capacity(64 * 1024);
            match socket.recv(&mut rx, 0) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(io("waiting for the bind answer")(e)),
            }
            let mut answer = None;
            parse(&rx, |ev| match ev {
                Event::Packet { id } => early.push(id),
                Event::Ack { seq: 1, errno } => answer = Some(errno),
                Event::Ack { .. } => {}
            })
            .map_err(|reason| DelayError::Bind { queue: o.queue, reason })?;
            match answer {
                None => continue,
                Some(0) => return Ok((NfQueue { socket }, early)),
                Some(errno) => return Err(DelayError::Bind { queue: o.queue, reason: bind_failure(errno) }),
            }
        }
    }

    /// Receives one datagram into `buf` (cleared first); `WouldBlock` after the receive timeout.
    pub fn recv(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        buf.clear();
        self.socket.recv(buf, 0)
    }

    /// Sends messages built by [`verdict_message`] / [`batch_verdict_message`] (several may
    /// share one datagram: the kernel reads them in order).
    pub fn send(&self, buf: &[u8]) -> io::Result<()> {
        self.socket.send(buf, 0).map(|_| ())
    }
}

fn bind_failure(errno: i32) -> String {
    let e = io::Error::from_raw_os_error(errno);
    match errno {
        16 => format!("another process holds this queue ({e})"),
        1 => format!("not permitted: binding needs CAP_NET_ADMIN in the namespace ({e})"),
        95 => format!("this kernel does not support the fail-open or GSO flag ({e})"),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_verdict_is_one_message_with_the_highest_id() {
        let mut buf = Vec::new();
        batch_verdict_message(&mut buf, 7, 0x0102_0304, Verdict::Accept);
        let mut want = Vec::new();
        want.extend_from_slice(&32u32.to_ne_bytes());
        want.extend_from_slice(&0x0303u16.to_ne_bytes()); // queue subsystem, VERDICT_BATCH
        want.extend_from_slice(&1u16.to_ne_bytes()); // NLM_F_REQUEST, no ACK
        want.extend_from_slice(&[0; 8]);
        want.extend_from_slice(&[0, 0, 0, 7]);
        want.extend_from_slice(&12u16.to_ne_bytes());
        want.extend_from_slice(&2u16.to_ne_bytes());
        want.extend_from_slice(&[0, 0, 0, 1, 1, 2, 3, 4]);
        assert_eq!(buf, want);
    }

    #[test]
    fn the_bind_message_pads_the_packed_params_and_sets_only_chosen_flags() {
        let mut buf = Vec::new();
        bind_message(&mut buf, 1, &QueueOptions { queue: 3, max_len: 5000, fail_open: true, gso: false });
        // header 16 + nfgenmsg 4 + cmd 8 + params 12 (9 padded) + maxlen 8 + mask 8 + flags 8
        assert_eq!(buf.len(), 64);
        assert_eq!(u32::from_ne_bytes(buf[0..4].try_into().unwrap()), 64);
        let attr_head = |len: u16, kind: u16| [len.to_ne_bytes(), kind.to_ne_bytes()].concat();
        assert_eq!(&buf[28..40], &[attr_head(9, 2), vec![0, 0, 0, 0, NFQNL_COPY_META, 0, 0, 0]].concat()[..]);
        assert_eq!(&buf[40..48], &[attr_head(8, 3), 5000u32.to_be_bytes().to_vec()].concat()[..]);
        assert_eq!(&buf[48..56], &[attr_head(8, 4), 5u32.to_be_bytes().to_vec()].concat()[..]);
        assert_eq!(&buf[60..64], &1u32.to_be_bytes());
    }

    fn packet(id: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&32u32.to_ne_bytes());
        b.extend_from_slice(&0x0300u16.to_ne_bytes());
        b.extend_from_slice(&[0; 10]);
        b.extend_from_slice(&[2, 0, 0, 1]);
        b.extend_from_slice(&11u16.to_ne_bytes());
        b.extend_from_slice(&NFQA_PACKET_HDR.to_ne_bytes());
        b.extend_from_slice(&id.to_be_bytes());
        b.extend_from_slice(&[0x08, 0x00, 3, 0]);
        b
    }

    #[test]
    fn packets_and_acks_are_read_from_one_datagram() {
        let mut d = packet(41);
        d.extend(packet(42));
        let mut ack = Vec::new();
        ack.extend_from_slice(&36u32.to_ne_bytes());
        ack.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack.extend_from_slice(&[0; 10]);
        ack.extend_from_slice(&(-16i32).to_ne_bytes());
        ack.extend_from_slice(&[0; 8]);
        ack.extend_from_slice(&9u32.to_ne_bytes());
        ack.extend_from_slice(&[0; 4]);
        d.extend(ack);
        let mut seen = Vec::new();
        parse(&d, |e| seen.push(e)).unwrap();
        assert_eq!(seen, vec![Event::Packet { id: 41 }, Event::Packet { id: 42 }, Event::Ack { seq: 9, errno: 16 }]);
    }

    #[test]
    fn a_truncated_datagram_is_an_error() {
        let d = packet(1);
        assert!(parse(&d[..d.len() - 1], |_| {}).is_err());
    }
}
