//! `user@host[:port]`: parsing, display, and the name known_hosts gives the host.

use std::fmt;
use std::str::FromStr;

/// The SSH port used when the target names none.
pub const DEFAULT_PORT: u16 = 22;

/// Where to log in: `user@host[:port]`. The user is required; the port defaults to 22.
/// IPv6 addresses are written `user@[2001:db8::1]:2222`, or without brackets when there is
/// no port (`user@2001:db8::1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshTarget {
    pub user: String,
    pub host: String,
    pub port: u16,
}

/// Why a `user@host[:port]` string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SSH target '{input}': {reason}")]
pub struct TargetParseError {
    pub input: String,
    pub reason: String,
}

impl FromStr for SshTarget {
    type Err = TargetParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| TargetParseError { input: input.to_string(), reason };
        // Like ssh, the last '@' separates the user from the host.
        let Some((user, rest)) = input.rsplit_once('@') else {
            return Err(fail(
                "expected user@host[:port] (the user is required), e.g. root@10.0.0.5 or admin@node2:2222".into(),
            ));
        };
        if user.is_empty() {
            return Err(fail("the user before '@' is empty".into()));
        }
        if let Some(c) = user.chars().find(|c| c.is_whitespace() || c.is_control() || *c == ':') {
            return Err(fail(format!("the user contains {c:?}")));
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let Some((host, after)) = bracketed.split_once(']') else {
                return Err(fail("'[' without a closing ']'".into()));
            };
            let port = match after {
                "" => None,
                p => match p.strip_prefix(':') {
                    Some(p) => Some(p),
                    None => return Err(fail(format!("unexpected '{p}' after ']' (expected ':port')"))),
                },
            };
            (host, port)
        } else {
            match rest.matches(':').count() {
                0 => (rest, None),
                1 => {
                    let (h, p) = rest.split_once(':').unwrap_or((rest, ""));
                    (h, Some(p))
                }
                // An IPv6 address without brackets: no port can follow it.
                _ => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(fail("the host after '@' is empty".into()));
        }
        if host.starts_with('-') {
            return Err(fail("the host must not start with '-'".into()));
        }
        if let Some(c) = host
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '[' | ']' | '@' | ',' | '*' | '?' | '!'))
        {
            return Err(fail(format!("the host contains {c:?}")));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(fail(format!("port '{p}' is not a number from 1 to 65535"))),
            },
        };
        Ok(SshTarget { user: user.to_string(), host: host.to_string(), port })
    }
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

impl SshTarget {
    /// The host as known_hosts records it: lower case, `[host]:port` unless the port is 22.
    pub fn known_hosts_name(&self) -> String {
        let host = self.host.to_ascii_lowercase();
        if self.port == DEFAULT_PORT {
            host
        } else {
            format!("[{host}]:{}", self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;


    fn t(s: &str) -> Result<SshTarget, TargetParseError> {
        s.parse()
    }

    #[test]
    fn targets_parse() {
        assert_eq!(t("root@10.0.0.5").unwrap(), SshTarget { user: "root".into(), host: "10.0.0.5".into(), port: 22 });
        assert_eq!(t("admin@node2:2222").unwrap().port, 2222);
        let v6 = t("u@[2001:db8::1]:2200").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("2001:db8::1", 2200));
        assert_eq!(v6.to_string(), "u@[2001:db8::1]:2200");
        assert_eq!(v6.known_hosts_name(), "[2001:db8::1]:2200");
        assert_eq!(t("u@2001:db8::1").unwrap().port, 22);
        assert_eq!(t("me@corp@Host.Example").unwrap().user, "me@corp");
        assert_eq!(t("u@Host.Example").unwrap().known_hosts_name(), "host.example");
        for bad in [
            "host",
            "@host",
            "u@",
            "u@:22",
            "u@h:0",
            "u@h:x",
            "u@h:70000",
            "u@[::1",
            "u@[::1]x",
            "u@-oProxy",
            "u@a b",
            "u v@h",
        ] {
            let e = t(bad).expect_err(bad);
            assert!(e.to_string().contains(bad), "{e}");
        }
        assert!(t("host").unwrap_err().reason.contains("user@host"));
    }
}
