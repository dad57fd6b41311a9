//! Distance as written in a spec: per-link delay, jitter, loss and rate (both directions,
//! or per direction), defaults for every link, a one-way latency budget for the path, how
//! the path converges, and verification tolerances. Parsed into numbers by `resolve`, which
//! is also the validation: every problem with its location.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use vnet_te_agent::delay::units::{parse_duration, parse_rate};

use super::Problem;

/// A value written as text or as a bare number (`loss: 10`, `delay: 20ms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Quantity(pub String);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Int(i64),
            Float(f64),
        }
        Ok(Quantity(match Raw::deserialize(d)? {
            Raw::Text(s) => s,
            Raw::Int(i) => i.to_string(),
            Raw::Float(f) => f.to_string(),
        }))
    }
}

impl From<&str> for Quantity {
    fn from(s: &str) -> Self {
        Quantity(s.to_string())
    }
}

/// Impairments of one direction (or both) of a link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpairSpec {
    /// One-way delay: `20ms`, `1.28s`, `4m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Quantity>,
    /// Each packet's delay varies uniformly within ± this (packets may reorder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Quantity>,
    /// Percent of packets dropped: `10` or `10%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<Quantity>,
    /// `100mbit`, `1gbit`, or bits per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Quantity>,
}

impl ImpairSpec {
    pub fn is_empty(&self) -> bool {
        self == &ImpairSpec::default()
    }

    /// `self` with the fields it leaves out taken from `under`.
    pub fn over(&self, under: &ImpairSpec) -> ImpairSpec {
        ImpairSpec {
            delay: self.delay.clone().or_else(|| under.delay.clone()),
            jitter: self.jitter.clone().or_else(|| under.jitter.clone()),
            loss: self.loss.clone().or_else(|| under.loss.clone()),
            rate: self.rate.clone().or_else(|| under.rate.clone()),
        }
    }
}

/// The path's one-way latency budget, spread over the links of the path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySpec {
    pub one_way: Quantity,
}

/// How a path with delays converges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Converge {
    /// BGP itself crosses the distance: the delay lines run from the start, and BGP and TCP
    /// get settings derived from each link's delay.
    #[default]
    WithDelay,
    /// The path converges and verifies at zero delay; then the delays are applied (for
    /// data-plane experiments at distances where a session could not form in useful time).
    ThenDelay,
}

/// How far a measured delay may be from the planned one: the larger of `absolute` and
/// `relative` percent of the planned value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToleranceSpec {
    pub absolute: Quantity,
    pub relative: Quantity,
}

impl Default for ToleranceSpec {
    fn default() -> Self {
        ToleranceSpec { absolute: "1ms".into(), relative: "2".into() }
    }
}

impl ToleranceSpec {
    /// (absolute µs, relative ppm) of a validated tolerance.
    pub fn resolve(&self) -> (u64, u32) {
        let mut ignore = Vec::new();
        (duration("tolerance.absolute", &self.absolute, &mut ignore), ppm("tolerance.relative", &self.relative, &mut ignore).unwrap_or(0))
    }
}

/// One direction's impairments as numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Impair {
    /// One-way delay, microseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delay_us: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub jitter_us: u64,
    /// Loss in parts per million (10 % = 100000).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub loss_ppm: u32,
    /// Bits per second; 0 = unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rate_bps: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}
fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

impl Impair {
    pub fn is_none(&self) -> bool {
        *self == Impair::default()
    }

    /// Needs a delay line (delay, jitter or loss); rate alone is a queueing discipline.
    pub fn needs_delay_line(&self) -> bool {
        self.delay_us > 0 || self.jitter_us > 0 || self.loss_ppm > 0
    }

    pub fn delay(&self) -> Duration {
        Duration::from_micros(self.delay_us)
    }
}

/// Parses one impairment spec at `loc` (`links[3]`, `links[3].from_a`, `link_defaults`).
/// The delay is left out when `delay` is None (the budget may fill it in).
pub fn resolve(loc: &str, s: &ImpairSpec, p: &mut Vec<Problem>) -> Impair {
    let mut out = Impair::default();
    if let Some(q) = &s.delay {
        out.delay_us = duration(&format!("{loc}.delay"), q, p);
    }
    if let Some(q) = &s.jitter {
        out.jitter_us = duration(&format!("{loc}.jitter"), q, p);
    }
    if let Some(q) = &s.loss {
        out.loss_ppm = ppm(&format!("{loc}.loss"), q, p).unwrap_or(0);
    }
    if let Some(q) = &s.rate {
        match parse_rate(&q.0) {
            Ok(bps) => out.rate_bps = bps,
            Err(e) => p.push(Problem::new(format!("{loc}.rate"), e)),
        }
    }
    out
}

/// Microseconds, or a problem at `loc`.
pub fn duration(loc: &str, q: &Quantity, p: &mut Vec<Problem>) -> u64 {
    match parse_duration(&q.0) {
        Ok(d) => d.as_micros() as u64,
        Err(e) => {
            p.push(Problem::new(loc, e));
            0
        }
    }
}

/// A rate of a change in bits per second, where `0` takes the limit away, or a problem at `loc`.
pub fn rate_or_off(loc: &str, q: &Quantity, p: &mut Vec<Problem>) -> Option<u64> {
    match q.0.trim() {
        "0" => Some(0),
        r => parse_rate(r).map_err(|m| p.push(Problem::new(loc, m))).ok(),
    }
}

/// A percentage as parts per million (10 % = 100000), or a problem at `loc`.
pub fn ppm(loc: &str, q: &Quantity, p: &mut Vec<Problem>) -> Option<u32> {
    percent(loc, q, p).map(|v| (v * 10_000.0).round() as u32)
}

/// A percentage from 0 to 100 (`10`, `10%`, `0.5`), or a problem at `loc`.
pub fn percent(loc: &str, q: &Quantity, p: &mut Vec<Problem>) -> Option<f64> {
    let t = q.0.trim();
    let number = t.strip_suffix('%').unwrap_or(t).trim();
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=100.0).contains(&v) => Some(v),
        Ok(_) => {
            p.push(Problem::new(loc, format!("'{t}' is not a percentage from 0 to 100")));
            None
        }
        Err(_) => {
            p.push(Problem::new(loc, format!("'{t}' is not a number (a percentage, e.g. 10 or 0.5%)")));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impairments_parse_with_their_units_and_refuse_what_is_out_of_range() {
        let mut p = Vec::new();
        let s = ImpairSpec {
            delay: Some("1.28s".into()),
            jitter: Some("2ms".into()),
            loss: Some("10%".into()),
            rate: Some("100mbit".into()),
        };
        let i = resolve("links[0]", &s, &mut p);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(i, Impair { delay_us: 1_280_000, jitter_us: 2_000, loss_ppm: 100_000, rate_bps: 100_000_000 });
        let bad = ImpairSpec {
            delay: Some("-5ms".into()),
            jitter: Some("3 parsecs".into()),
            loss: Some("150".into()),
            rate: Some("fast".into()),
        };
        resolve("links[2]", &bad, &mut p);
        let locations: Vec<&str> = p.iter().map(|p| p.location.as_str()).collect();
        assert_eq!(locations, ["links[2].delay", "links[2].jitter", "links[2].loss", "links[2].rate"]);
        assert!(p[2].message.contains("0 to 100"), "{}", p[2].message);
    }

    #[test]
    fn a_direction_takes_what_it_leaves_out_from_the_link_then_the_defaults() {
        let link = ImpairSpec { delay: Some("20ms".into()), ..Default::default() };
        let defaults = ImpairSpec { delay: Some("5ms".into()), loss: Some("1".into()), ..Default::default() };
        let from_a = ImpairSpec { loss: Some("2".into()), ..Default::default() };
        let r = from_a.over(&link.over(&defaults));
        assert_eq!(r.delay, Some("20ms".into()));
        assert_eq!(r.loss, Some("2".into()));
    }
}
