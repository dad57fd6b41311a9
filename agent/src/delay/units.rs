//! Durations and rates as people write them (`50ms`, `1.5s`, `10mbit`), and the queue length
//! that holds a rate for a delay.

use std::time::Duration;

/// `250us`, `50ms`, `1.5s`, `4m` (minutes) or `0`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+')).unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    let scale = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "" => return Err(format!("duration '{text}': expected a number with us, ms, s or m (e.g. 50ms)")),
        other => return Err(format!("duration '{text}': unknown unit '{other}' (us, ms, s or m)")),
    };
    let value: f64 = number.parse().map_err(|_| format!("duration '{text}': '{number}' is not a number"))?;
    if !value.is_finite() || value < 0.0 || value * scale > 86_400.0 {
        return Err(format!("duration '{text}': must be between 0 and one day"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// `800kbit`, `10mbit`, `1gbit` or plain bits per second; returns bits per second.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let (number, scale) = [("kbit", 1e3), ("mbit", 1e6), ("gbit", 1e9), ("bit", 1.0)]
        .iter()
        .find_map(|(unit, scale)| t.strip_suffix(unit).map(|n| (n.to_string(), *scale)))
        .unwrap_or((t.clone(), 1.0));
    let value: f64 = number.parse().map_err(|_| format!("rate '{text}': expected e.g. 10mbit, 1gbit or bits per second"))?;
    let bits = value * scale;
    if !(1.0..=1e12).contains(&bits) {
        return Err(format!("rate '{text}': must be between 1 bit/s and 1 Tbit/s"));
    }
    Ok(bits as u64)
}

/// The kernel's own default queue length, and the least the delay line asks for.
pub const MIN_QUEUE_LEN: u32 = 1024;

/// Packets to hold so that `rate_bps` of full-size (`mtu`) packets can be in flight for `delay`:
/// rate × delay ÷ packet size, doubled for smaller packets, at least [`MIN_QUEUE_LEN`].
pub fn queue_len_for(rate_bps: u64, delay: Duration, mtu: u32) -> u32 {
    let packets = (rate_bps as f64 / 8.0 * delay.as_secs_f64() / mtu.max(1) as f64).ceil() * 2.0;
    (packets.min(u32::MAX as f64) as u32).max(MIN_QUEUE_LEN)
}

/// The rate a line's queue is sized for when no rate is given (`run --rate`).
pub const DEFAULT_LINE_RATE_BPS: u64 = 1_000_000_000;

/// A plain interface name: at most 15 letters, digits, `-`, `_`, `.`, `@`, not `.` or `..`
/// (safe in a path and as an argument).
pub fn check_ifname(name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if plain {
        Ok(())
    } else {
        Err(format!("{name:?} is not a plain interface name (at most 15 letters, digits, '-', '_', '.', '@')"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_us_ms_and_s() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("4m"), Ok(Duration::from_secs(240)));
        assert_eq!(parse_duration("1.5min"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("50").unwrap_err(), "duration '50': expected a number with us, ms, s or m (e.g. 50ms)");
        assert_eq!(parse_duration("-1ms").unwrap_err(), "duration '-1ms': must be between 0 and one day");
        assert_eq!(parse_duration("xms").unwrap_err(), "duration 'xms': unknown unit 'xms' (us, ms, s or m)");
        assert_eq!(parse_duration("1.2.3ms").unwrap_err(), "duration '1.2.3ms': '1.2.3' is not a number");
        assert_eq!(parse_duration("3 parsecs").unwrap_err(), "duration '3 parsecs': unknown unit 'parsecs' (us, ms, s or m)");
    }

    #[test]
    fn rates_take_si_bit_units() {
        assert_eq!(parse_rate("10mbit"), Ok(10_000_000));
        assert_eq!(parse_rate("1Gbit"), Ok(1_000_000_000));
        assert_eq!(parse_rate("800kbit"), Ok(800_000));
        assert_eq!(parse_rate("9600"), Ok(9600));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0bit").is_err());
    }

    #[test]
    fn the_queue_holds_twice_the_full_size_packets_in_flight() {
        // 1 Gbit/s for 100 ms: 12.5 MB = 8334 packets of 1500 bytes, doubled.
        assert_eq!(queue_len_for(1_000_000_000, Duration::from_millis(100), 1500), 16_668);
        assert_eq!(queue_len_for(10_000_000, Duration::from_millis(1), 1500), MIN_QUEUE_LEN);
        assert_eq!(queue_len_for(1_000_000_000_000, Duration::from_secs(86_400), 1), u32::MAX);
    }
}
