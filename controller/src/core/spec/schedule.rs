//! Schedules as written in a spec: changes to links at times after the path verified
//! (`schedule:`), and a contact plan in ION's format (`contact_plan:`). `resolve` turns both
//! into changes per link direction, and is also the validation: every problem with its
//! location (a contact plan's with its line number).
//!
//! ION's contact plan (`ionrc`, the `ionadmin` commands) as adopted here:
//!
//! - `a contact +T1 +T2 A B RATE [CONFIDENCE]`: node A may send to node B from T1 to T2 at
//!   RATE bytes per second. Directional. Outside every contact of its direction a link
//!   direction between two numbered routers is down. Contacts of one direction may not
//!   overlap (ION refuses that too). A contact of a node with itself is accepted and ignored.
//! - `a range +T1 +T2 A B OWLT`: from T1 to T2 the one-way light time from A to B is OWLT
//!   seconds (the delay); outside every range the link's own delay applies. With A < B it
//!   holds for B → A as well, unless a range from B to A is given; with A > B only for A → B.
//! - Times are `+seconds` after the moment the path verified. ION's absolute times, `@`
//!   (a reference time), registration (`-1`) and hypothetical (stop `0`) contacts and the
//!   other contact-plan commands (`c`, `d`) are refused; node set-up commands (`1`, `s`,
//!   `m …`, `e`, `v`, `x`, `w`, `h`) are skipped; `#` starts a comment.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::distance::{duration, ppm, rate_or_off, Quantity};
use super::{effective_links, LinkSpec, PathSpec, Problem};

/// One change of a link at a time after the path verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntrySpec {
    /// `30s`, `1.5m`, `500ms` after the path verified.
    pub at: Quantity,
    /// `r3-r4`.
    pub link: String,
    /// Only the packets this end sends; absent: both directions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<Quantity>,
    /// `0` removes the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Quantity>,
    /// Drops every packet from then on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub down: bool,
    /// Ends a `down`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub up: bool,
}

/// A contact plan in ION's format, inline or in a file beside the spec, and the ION node
/// number of each router it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactPlanSpec {
    /// A file, relative to the spec's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The plan itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Router → node number.
    pub nodes: BTreeMap<String, u64>,
    /// The file's text as read by the loader (or why it could not be read).
    #[serde(skip)]
    pub loaded: Option<Result<String, String>>,
}

/// One direction of a link: `a_to_b` for the packets `links[link].a` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Direction {
    pub link: usize,
    pub a_to_b: bool,
}

/// What changes in one direction at one time; fields left out keep their value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Change {
    pub delay_us: Option<u64>,
    /// Back to the link's own delay (a range ended).
    pub own_delay: bool,
    pub jitter_us: Option<u64>,
    pub loss_ppm: Option<u32>,
    pub rate_bps: Option<u64>,
    /// Some(true): down; Some(false): up.
    pub down: Option<bool>,
}

/// A change of one direction at `at_ms` after the path verified; `order` keeps the order in
/// which changes at the same time were written (contact plan first, then the schedule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timed {
    pub at_ms: u64,
    pub order: usize,
    pub direction: Direction,
    pub change: Change,
}

/// The link of `text` (`r3-r4`, either order; router names may contain `-`).
pub fn find_link(links: &[LinkSpec], text: &str) -> Option<usize> {
    text.match_indices(['-', '–']).find_map(|(i, sep)| {
        let (a, b) = (&text[..i], &text[i + sep.len()..]);
        links.iter().position(|l| l.joins(a, b))
    })
}

/// Every change the spec's schedule and contact plan make, in no particular order; problems
/// go to `p`.
pub fn resolve(spec: &PathSpec, p: &mut Vec<Problem>) -> Vec<Timed> {
    let links = effective_links(spec);
    let mut out = Vec::new();
    if let Some(cp) = &spec.contact_plan {
        contact_plan(cp, &links, spec, p, &mut out);
    }
    let first = out.len();
    let mut seen: BTreeMap<(u64, Direction), usize> = BTreeMap::new();
    for (k, e) in spec.schedule.iter().flatten().enumerate() {
        let loc = format!("schedule[{k}]");
        let at_ms = duration(&format!("{loc}.at"), &e.at, p) / 1000;
        let Some(li) = find_link(&links, &e.link) else {
            p.push(Problem::new(format!("{loc}.link"), format!("'{}': no link between two routers of the spec is named so (e.g. r3-r4)", e.link)));
            continue;
        };
        let l = &links[li];
        let dirs: Vec<bool> = match e.from.as_deref() {
            None => vec![true, false],
            Some(f) if f == l.a => vec![true],
            Some(f) if f == l.b => vec![false],
            Some(f) => {
                p.push(Problem::new(format!("{loc}.from"), format!("'{f}' is not an end of the link {}–{}", l.a, l.b)));
                continue;
            }
        };
        let mut c = Change::default();
        if let Some(q) = &e.delay {
            c.delay_us = Some(duration(&format!("{loc}.delay"), q, p));
        }
        if let Some(q) = &e.jitter {
            c.jitter_us = Some(duration(&format!("{loc}.jitter"), q, p));
        }
        if let Some(q) = &e.loss {
            c.loss_ppm = ppm(&format!("{loc}.loss"), q, p);
        }
        if let Some(q) = &e.rate {
            c.rate_bps = rate_or_off(&format!("{loc}.rate"), q, p);
        }
        match (e.down, e.up) {
            (true, true) => p.push(Problem::new(loc.clone(), "both down and up: a change is one or the other")),
            (true, false) => c.down = Some(true),
            (false, true) => c.down = Some(false),
            (false, false) => {}
        }
        if c == Change::default() {
            let named = e.delay.is_some() || e.jitter.is_some() || e.loss.is_some() || e.rate.is_some() || e.down || e.up;
            if !named {
                p.push(Problem::new(loc.clone(), "changes nothing: give delay, jitter, loss, rate, down or up"));
            }
            continue;
        }
        for a_to_b in dirs {
            let direction = Direction { link: li, a_to_b };
            if let Some(k0) = seen.insert((at_ms, direction), k) {
                let (from, to) = if a_to_b { (&l.a, &l.b) } else { (&l.b, &l.a) };
                p.push(Problem::new(
                    loc.clone(),
                    format!("schedule[{k0}] already changes {from}→{to} at {} s", at_ms as f64 / 1000.0),
                ));
                continue;
            }
            out.push(Timed { at_ms, order: first + k, direction, change: c });
        }
    }
    out
}

/// A parsed `a contact` or `a range` line.
#[derive(Debug, Clone, Copy, PartialEq)]
struct IonLine {
    line: usize,
    range: bool,
    start_ms: u64,
    stop_ms: u64,
    from: u64,
    to: u64,
    /// Contact: bytes per second; range: one-way light time in ms.
    value: u64,
}

/// The contact plan's changes, per direction of each link between two numbered routers.
fn contact_plan(cp: &ContactPlanSpec, links: &[LinkSpec], spec: &PathSpec, p: &mut Vec<Problem>, out: &mut Vec<Timed>) {
    let text = match (&cp.file, &cp.text) {
        (Some(_), Some(_)) => {
            p.push(Problem::new("contact_plan", "give either file or text, not both"));
            return;
        }
        (None, None) => {
            p.push(Problem::new("contact_plan", "give the plan as file (relative to the spec) or text"));
            return;
        }
        (None, Some(t)) => t.clone(),
        (Some(f), None) => match &cp.loaded {
            Some(Ok(t)) => t.clone(),
            Some(Err(e)) => {
                p.push(Problem::new("contact_plan.file", format!("'{f}': {e}")));
                return;
            }
            None => {
                p.push(Problem::new("contact_plan.file", format!("'{f}': a contact plan file is read relative to a spec file; none here")));
                return;
            }
        },
    };
    let loc = match &cp.file {
        Some(f) => format!("contact_plan ({f})"),
        None => "contact_plan.text".to_string(),
    };
    // Node numbers → routers.
    let mut router_of: BTreeMap<u64, &str> = BTreeMap::new();
    for (r, n) in &cp.nodes {
        let at = format!("contact_plan.nodes.{r}");
        if !spec.routers.iter().any(|x| &x.name == r) {
            p.push(Problem::new(at, format!("'{r}' is not a router of the spec")));
        } else if *n == 0 {
            p.push(Problem::new(at, "node numbers start at 1"));
        } else if let Some(first) = router_of.get(n) {
            p.push(Problem::new(at, format!("node number {n} is also {first}'s")));
        } else {
            router_of.insert(*n, r);
        }
    }
    let mark = p.len();
    let lines = parse_ion(&text, &loc, p);
    let direction_of = |l: &IonLine, p: &mut Vec<Problem>| -> Option<Direction> {
        let at = format!("{loc} line {}", l.line);
        let (Some(a), Some(b)) = (router_of.get(&l.from), router_of.get(&l.to)) else {
            let unknown: Vec<String> = [l.from, l.to].iter().filter(|n| !router_of.contains_key(n)).map(|n| n.to_string()).collect();
            p.push(Problem::new(at, format!("node {} is not in contact_plan.nodes", unknown.join(" and "))));
            return None;
        };
        let Some(li) = links.iter().position(|x| x.joins(a, b)) else {
            p.push(Problem::new(at, format!("nodes {} and {} ({a}, {b}) have no link between them", l.from, l.to)));
            return None;
        };
        Some(Direction { link: li, a_to_b: links[li].a == *a })
    };
    // Every direction of a link between two numbered routers follows the contacts.
    let mut contacts: BTreeMap<Direction, Vec<IonLine>> = BTreeMap::new();
    for (li, l) in links.iter().enumerate() {
        let numbered = |r: &str| cp.nodes.get(r).is_some_and(|n| router_of.get(n) == Some(&r));
        if numbered(&l.a) && numbered(&l.b) {
            for a_to_b in [true, false] {
                contacts.insert(Direction { link: li, a_to_b }, Vec::new());
            }
        }
    }
    let mut ranges: BTreeMap<Direction, Vec<IonLine>> = BTreeMap::new();
    let explicit: BTreeSet<(u64, u64)> = lines.iter().filter(|l| l.range).map(|l| (l.from, l.to)).collect();
    for l in lines.iter().filter(|l| l.from != l.to) {
        let Some(d) = direction_of(l, p) else { continue };
        if !l.range {
            contacts.entry(d).or_default().push(*l);
            continue;
        }
        ranges.entry(d).or_default().push(*l);
        // ION: a range from the lower node number to the higher holds both ways unless the
        // other way is given.
        if l.from < l.to && !explicit.contains(&(l.to, l.from)) {
            ranges.entry(Direction { a_to_b: !d.a_to_b, ..d }).or_default().push(*l);
        }
    }
    let overlap = |what: &str, all: &mut Vec<IonLine>, p: &mut Vec<Problem>| {
        all.sort_by_key(|l| (l.start_ms, l.line));
        let mut kept: Vec<IonLine> = Vec::new();
        for l in all.iter() {
            match kept.last() {
                Some(prev) if l.start_ms < prev.stop_ms => {
                    let msg = format!("this {what} overlaps the one on line {} ({} → {})", prev.line, l.from, l.to);
                    let problem = Problem::new(format!("{loc} line {}", l.line.max(prev.line)), msg);
                    if !p.contains(&problem) {
                        p.push(problem);
                    }
                }
                _ => kept.push(*l),
            }
        }
        *all = kept;
    };
    for (d, mut cs) in contacts {
        overlap("contact", &mut cs, p);
        let mut up_at_zero = false;
        for c in &cs {
            up_at_zero |= c.start_ms == 0;
            let up = Change { down: Some(false), rate_bps: Some(c.value * 8), ..Default::default() };
            out.push(Timed { at_ms: c.start_ms, order: 1, direction: d, change: up });
            out.push(Timed { at_ms: c.stop_ms, order: 0, direction: d, change: Change { down: Some(true), ..Default::default() } });
        }
        if !up_at_zero {
            out.push(Timed { at_ms: 0, order: 0, direction: d, change: Change { down: Some(true), ..Default::default() } });
        }
    }
    for (d, mut rs) in ranges {
        overlap("range", &mut rs, p);
        for r in &rs {
            out.push(Timed { at_ms: r.start_ms, order: 1, direction: d, change: Change { delay_us: Some(r.value * 1000), ..Default::default() } });
            out.push(Timed { at_ms: r.stop_ms, order: 0, direction: d, change: Change { own_delay: true, ..Default::default() } });
        }
    }
    // The plan's problems in line order.
    let line_of = |x: &Problem| x.location.rsplit(' ').next().and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
    p[mark..].sort_by_key(line_of);
}

/// Reads `a contact` and `a range` lines; every other line is a comment, blank, a skipped
/// node set-up command, or a problem naming its line.
fn parse_ion(text: &str, loc: &str, p: &mut Vec<Problem>) -> Vec<IonLine> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let at = format!("{loc} line {}", i + 1);
        let words: Vec<&str> = raw.split_whitespace().collect();
        match words.as_slice() {
            [] => continue,
            [w, ..] if w.starts_with('#') => continue,
            ["1" | "s" | "x" | "e" | "v" | "m" | "w" | "h" | "?", ..] => continue,
            ["a", kind @ ("contact" | "range"), rest @ ..] => {
                let range = *kind == "range";
                let want = if range { "a range +START +STOP NODE NODE OWLT" } else { "a contact +START +STOP FROM TO BYTES_PER_SECOND [CONFIDENCE]" };
                let arity_ok = if range { rest.len() == 5 } else { rest.len() == 5 || rest.len() == 6 };
                if !arity_ok {
                    p.push(Problem::new(at, format!("expected `{want}`, got {} fields after `a {kind}`", rest.len())));
                    continue;
                }
                let mut bad = Vec::new();
                let start = time(rest[0], false, &mut bad);
                let stop = time(rest[1], true, &mut bad);
                let from = number("node", rest[2], &mut bad);
                let to = number("node", rest[3], &mut bad);
                let value = if range { seconds_ms("one-way light time", rest[4], &mut bad) } else { number("rate", rest[4], &mut bad) };
                if !range && value == 0 && bad.is_empty() {
                    bad.push("rate: must be more than 0 bytes per second".into());
                }
                if let Some(c) = rest.get(5) {
                    if !c.parse::<f64>().is_ok_and(|v| v > 0.0 && v <= 1.0) {
                        bad.push(format!("confidence '{c}': a number above 0 and at most 1"));
                    }
                }
                if bad.is_empty() && stop <= start {
                    bad.push(format!("stop {} is not after start {}", rest[1], rest[0]));
                }
                if bad.is_empty() {
                    out.push(IonLine { line: i + 1, range, start_ms: start, stop_ms: stop, from, to, value });
                } else {
                    p.push(Problem::new(at, bad.join("; ")));
                }
            }
            ["@", ..] => p.push(Problem::new(at, "a reference time (`@`) is not supported: times are +seconds after the path verified")),
            _ => p.push(Problem::new(at, format!("'{}': not an ION contact plan line (`a contact …`, `a range …` or `#` comment)", raw.trim()))),
        }
    }
    out
}

/// `+seconds` (fractions allowed) as ms.
fn time(w: &str, stop: bool, bad: &mut Vec<String>) -> u64 {
    if w == "-1" && !stop {
        bad.push("registration contacts (start -1) are not supported".into());
        return 0;
    }
    if w == "0" && stop {
        bad.push("hypothetical contacts (stop 0) are not supported".into());
        return 0;
    }
    match w.strip_prefix('+') {
        Some(s) => seconds_ms("time", s, bad),
        None if w.contains('/') => {
            bad.push(format!("absolute time '{w}' is not supported: use +seconds after the path verified"));
            0
        }
        None => {
            bad.push(format!("time '{w}': expected +seconds"));
            0
        }
    }
}

fn seconds_ms(what: &str, w: &str, bad: &mut Vec<String>) -> u64 {
    match w.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86_400.0 * 366.0).contains(&v) => (v * 1000.0).round() as u64,
        _ => {
            bad.push(format!("{what} '{w}': expected seconds from 0 to a year"));
            0
        }
    }
}

fn number(what: &str, w: &str, bad: &mut Vec<String>) -> u64 {
    match w.parse::<u64>() {
        Ok(v) => v,
        Err(_) => {
            bad.push(format!("{what} '{w}': expected a whole number"));
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec::chain;

    fn spec_with(cp: &str, nodes: &[(&str, u64)]) -> PathSpec {
        let mut s = chain("p", 3).unwrap();
        s.contact_plan = Some(ContactPlanSpec {
            file: None,
            text: Some(cp.into()),
            nodes: nodes.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
            loaded: None,
        });
        s
    }

    fn at(t: &[Timed], li: usize, a_to_b: bool) -> Vec<(u64, Change)> {
        let mut v: Vec<&Timed> = t.iter().filter(|x| x.direction == Direction { link: li, a_to_b }).collect();
        v.sort_by_key(|x| (x.at_ms, x.order));
        v.iter().map(|x| (x.at_ms, x.change)).collect()
    }

    #[test]
    fn contacts_are_directional_and_a_lower_to_higher_range_holds_both_ways() {
        let s = spec_with(
            "# moon\n1 2 ''\na contact +0 +10 1 2 1000\na contact +20 +30 2 1 2000 0.9\na range +0 +100 1 2 1.5\n\
             a range +0 +100 3 2 2\na contact +0 +100 2 3 10\na contact +0 +100 3 2 10\na contact +0 +9 1 1 5\n",
            &[("r1", 1), ("r2", 2), ("r3", 3)],
        );
        let mut p = Vec::new();
        let t = resolve(&s, &mut p);
        assert!(p.is_empty(), "{p:?}");
        let down = |d| Change { down: Some(d), ..Default::default() };
        let up_at = |bytes: u64| Change { down: Some(false), rate_bps: Some(bytes * 8), ..Default::default() };
        let delay = |us| Change { delay_us: Some(us), ..Default::default() };
        let own = Change { own_delay: true, ..Default::default() };
        assert_eq!(at(&t, 0, true), [(0, up_at(1000)), (0, delay(1_500_000)), (10_000, down(true)), (100_000, own)]);
        // r2 → r1: down until its own contact; the range 1 → 2 holds back too.
        assert_eq!(at(&t, 0, false), [(0, down(true)), (0, delay(1_500_000)), (20_000, up_at(2000)), (30_000, down(true)), (100_000, own)]);
        // 3 → 2 has a range, 2 → 3 none (the higher number's range says nothing of the way back).
        assert!(at(&t, 1, true).iter().all(|(_, c)| c.delay_us.is_none()));
        assert!(at(&t, 1, false).contains(&(0, delay(2_000_000))));
    }

    #[test]
    fn an_explicit_reverse_range_overrides_the_implicit_one() {
        let s = spec_with("a range +0 +10 1 2 1\na range +0 +10 2 1 3\n", &[("r1", 1), ("r2", 2)]);
        let mut p = Vec::new();
        let t = resolve(&s, &mut p);
        assert!(p.is_empty(), "{p:?}");
        let d = |ab| at(&t, 0, ab).iter().filter_map(|(_, c)| c.delay_us).collect::<Vec<_>>();
        assert_eq!((d(true), d(false)), (vec![1_000_000], vec![3_000_000]));
    }

    #[test]
    fn every_bad_line_is_named_with_its_number() {
        let s = spec_with(
            "a contact +0 +10 1 9 100\na contact +5\na range 0 +10 1 2 1\na contact +0 +10 1 2 100\na contact +5 +20 1 2 100\n\
             a contact 2026/01/01-00:00:00 +10 1 2 5\nd contact +0 1 2\na contact +10 +5 1 2 1\na contact +0 +10 1 3 8\n",
            &[("r1", 1), ("r2", 2), ("r3", 3), ("r9", 3)],
        );
        let mut p = Vec::new();
        resolve(&s, &mut p);
        let got: Vec<String> = p.iter().map(|p| format!("{}: {}", p.location, p.message)).collect();
        let want = [
            "contact_plan.nodes.r9: 'r9' is not a router of the spec",
            "contact_plan.text line 1: node 9 is not in contact_plan.nodes",
            "contact_plan.text line 2: expected `a contact +START +STOP FROM TO BYTES_PER_SECOND [CONFIDENCE]`, got 1 fields after `a contact`",
            "contact_plan.text line 3: time '0': expected +seconds",
            "contact_plan.text line 5: this contact overlaps the one on line 4 (1 → 2)",
            "contact_plan.text line 6: absolute time '2026/01/01-00:00:00' is not supported: use +seconds after the path verified",
            "contact_plan.text line 7: 'd contact +0 1 2': not an ION contact plan line (`a contact …`, `a range …` or `#` comment)",
            "contact_plan.text line 8: stop +5 is not after start +10",
            "contact_plan.text line 9: nodes 1 and 3 (r1, r3) have no link between them",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn schedule_entries_are_checked_each_with_its_location() {
        let mut s = chain("p", 3).unwrap();
        let e = |at: &str, link: &str| ScheduleEntrySpec {
            at: at.into(),
            link: link.into(),
            from: None,
            delay: None,
            jitter: None,
            loss: None,
            rate: None,
            down: false,
            up: false,
        };
        s.schedule = Some(vec![
            ScheduleEntrySpec { delay: Some("2.5s".into()), ..e("30s", "r2-r1") },
            ScheduleEntrySpec { down: true, from: Some("r2".into()), ..e("30s", "r1-r2") },
            ScheduleEntrySpec { down: true, ..e("1m", "r1-r3") },
            ScheduleEntrySpec { down: true, up: true, from: Some("r9".into()), ..e("-5s", "r2-r3") },
            e("2 fortnights", "r2-r3"),
        ]);
        let mut p = Vec::new();
        let t = resolve(&s, &mut p);
        let got: Vec<String> = p.iter().map(|p| format!("{}: {}", p.location, p.message)).collect();
        assert_eq!(
            got,
            [
                "schedule[1]: schedule[0] already changes r2→r1 at 30 s",
                "schedule[2].link: 'r1-r3': no link between two routers of the spec is named so (e.g. r3-r4)",
                "schedule[3].at: duration '-5s': must be between 0 and one day",
                "schedule[3].from: 'r9' is not an end of the link r2–r3",
                "schedule[4].at: duration '2 fortnights': unknown unit 'fortnights' (us, ms, s or m)",
                "schedule[4]: changes nothing: give delay, jitter, loss, rate, down or up",
            ]
        );
        assert_eq!(t.len(), 2, "both directions of the first entry");
    }
}
