//! Container limits as written in a spec: `limits: { memory: 256MiB, pids: 512 }` at the top
//! (every router and host) or on a router (that router). Parsed into the node interface's
//! [`Limits`], whose bounds the agent enforces again: a spec cannot ask for unlimited.

use serde::{Deserialize, Serialize};
pub use vnet_te_agent::node::Limits;

use super::{Problem, Quantity};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// `256MiB`, `1GiB`, `512m`, or bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    /// Most processes and threads in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<Quantity>,
}

/// `base` with what `spec` sets; each problem at `loc.memory` / `loc.pids`.
pub fn resolve(loc: &str, spec: Option<&LimitsSpec>, base: Limits, p: &mut Vec<Problem>) -> Limits {
    let mut out = base;
    let Some(spec) = spec else { return out };
    if let Some(q) = &spec.memory {
        match parse_memory(&q.0) {
            Ok(m) if (Limits::MIN_MEMORY..=Limits::MAX_MEMORY).contains(&m) => out.memory = m,
            Ok(_) => {
                p.push(Problem::new(format!("{loc}.memory"), format!("'{}' is outside {}MiB..{}GiB", q.0, Limits::MIN_MEMORY >> 20, Limits::MAX_MEMORY >> 30)))
            }
            Err(m) => p.push(Problem::new(format!("{loc}.memory"), m)),
        }
    }
    if let Some(q) = &spec.pids {
        match q.0.trim().parse::<u32>() {
            Ok(n) if (Limits::MIN_PIDS..=Limits::MAX_PIDS).contains(&n) => out.pids = n,
            _ => p.push(Problem::new(format!("{loc}.pids"), format!("'{}' is not a number from {} to {}", q.0, Limits::MIN_PIDS, Limits::MAX_PIDS))),
        }
    }
    out
}

/// Bytes from `256MiB`, `1GiB`, `64KiB`, Docker's `256m`/`1g`/`64k` (also binary), or a bare
/// number of bytes.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = t.split_at(digits);
    let shift = match unit.trim() {
        "" | "B" | "b" => 0,
        "KiB" | "k" | "K" => 10,
        "MiB" | "m" | "M" => 20,
        "GiB" | "g" | "G" => 30,
        _ => return Err(format!("'{t}' is not a size (e.g. 256MiB, 1GiB)")),
    };
    let n: u64 = number.parse().map_err(|_| format!("'{t}' is not a size (e.g. 256MiB, 1GiB)"))?;
    n.checked_mul(1 << shift).ok_or_else(|| format!("'{t}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_memory("256MiB"), Ok(256 << 20));
        assert_eq!(parse_memory("1GiB"), Ok(1 << 30));
        assert_eq!(parse_memory("512m"), Ok(512 << 20));
        assert_eq!(parse_memory("65536"), Ok(65536));
        for bad in ["", "MiB", "-1MiB", "1.5GiB", "2 parsecs", "99999999999999999999GiB"] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_override_the_base_and_each_problem_has_its_location() {
        let mut p = Vec::new();
        let s = LimitsSpec { memory: Some("64MiB".into()), pids: Some("128".into()) };
        assert_eq!(resolve("limits", Some(&s), Limits::default(), &mut p), Limits { memory: 64 << 20, pids: 128 });
        assert_eq!(resolve("limits", None, Limits::default(), &mut p), Limits::default());
        assert!(p.is_empty(), "{p:?}");
        let bad = LimitsSpec { memory: Some("0".into()), pids: Some("unlimited".into()) };
        assert_eq!(resolve("routers[2].limits", Some(&bad), Limits::default(), &mut p), Limits::default());
        let at: Vec<&str> = p.iter().map(|p| p.location.as_str()).collect();
        assert_eq!(at, ["routers[2].limits.memory", "routers[2].limits.pids"]);
    }
}
