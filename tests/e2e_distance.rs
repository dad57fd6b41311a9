//! End-to-end: distance on the real engine. A 24-hop chain with 5 ms per link verifies with
//! the planned round trips per link and end to end; a link whose delay is changed behind
//! vnet-te's back (straight through its delay line's control socket) is named by
//! `path verify`; `path impair` makes the change the plan's and verify passes again; the Moon
//! example forms its BGP session across 1.28 s each way; a `then-delay` path verifies at zero
//! delay and then holds packets in its delay lines; a link of 60 s each way forms its session
//! and verifies (minutes, overlapping the other tests). A schedule changes a delay, takes a
//! link down and up again at its times after the path verified (pings from the host see the
//! delay; verify names the link down by schedule, then passes); an ION contact plan does the
//! same through contacts and a range. Delete leaves no delay-line process.
//!
//! Without an engine, the images or NFQUEUE they report a skip (fail with
//! VNET_TE_REQUIRE_DOCKER=1 / VNET_TE_REQUIRE_DELAY=1).

mod common;

use std::process::Command;
use std::time::Duration;

use common::skip::{skip_or_fail, Requirement};
use common::*;

/// NFQUEUE in this kernel: the delay lines need it.
fn nfqueue_ready(test: &str) -> bool {
    let modules = std::fs::read_to_string("/proc/modules").unwrap_or_default();
    let config = Command::new("sh").args(["-c", "zcat /proc/config.gz 2>/dev/null | grep -E '^CONFIG_NETFILTER_NETLINK_QUEUE=(y|m)'"]).output();
    let built_in = config.map(|o| o.status.success()).unwrap_or(false);
    if built_in || modules.contains("nfnetlink_queue") {
        return true;
    }
    skip_or_fail(test, Requirement::Delay, "this kernel has no nfnetlink_queue (NFQUEUE)");
    false
}

/// `vnet-te-delay` processes whose command line names a container of `path`.
fn delay_processes(path: &str) -> usize {
    let needle = format!("vte-{path}-");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("vnet-te-delay") && c.contains(&needle))
        .count()
}

fn delay_report<'a>(report: &'a serde_json::Value, from: &str) -> &'a serde_json::Value {
    report["distance"].as_array().unwrap().iter().find(|d| d["from"] == from).unwrap_or_else(|| panic!("no delay report from {from}: {report}"))
}

fn ms(v: &serde_json::Value) -> f64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}")) as f64 / 1000.0
}

#[test]
fn distance_24_hops_at_5ms_verify_a_changed_link_is_named_and_impair_makes_it_the_plan() {
    let test = "distance_24_hops_at_5ms_verify_a_changed_link_is_named_and_impair_makes_it_the_plan";
    let _serial = serial();
    if !docker_ready(test) || !nfqueue_ready(test) {
        return;
    }
    let name = "dist24";
    let c = Cleanup::new(name);
    let out = vnet(&["path", "create", "--hops", "24", "--name", name, "--delay", "5ms", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "create did not verify");
    let report = json(&out);
    assert_eq!(report["verified"], true);
    let there = delay_report(&report, "src");
    assert_eq!(there["hops"].as_array().unwrap().len(), 23);
    assert_eq!(there["end_to_end"]["planned_us"], 230_000);
    let rtt = ms(&there["end_to_end"]["measured_us"]);
    assert!((225.4..234.6).contains(&rtt), "end-to-end round trip {rtt} ms for 23 links of 5 ms each way (2 % of 230)");
    for h in there["hops"].as_array().unwrap() {
        assert_eq!(h["ok"], true, "{h}");
    }
    assert!(delay_processes(name) >= 46, "one delay line per link end");

    // Behind vnet-te's back: r11's delay line on its link from r10 holds 25 ms instead of 5.
    let plan = plan_of(name);
    let r11 = router(&plan, "r11");
    let container = r11["container"].as_str().unwrap();
    let ifname = r11["interfaces"].as_array().unwrap().iter().find(|i| i["peer"] == "r10").unwrap()["ifname"].as_str().unwrap();
    let socket = format!("/run/vnet-te/delay/{container}/{ifname}.sock");
    let delay_bin = std::path::Path::new(bin()).with_file_name("vnet-te-delay");
    let set = Command::new(&delay_bin).args(["set", "--control", &socket, "--delay", "25ms"]).output().expect("vnet-te-delay set");
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let out = vnet(&["path", "verify", name, "--timeout", "5", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "verify must fail on the changed link");
    let report = json(&out);
    let there = delay_report(&report, "src");
    let problems = there["problems"].to_string();
    assert!(problems.contains("link r10–r11: round trip to r11 "), "{problems}");
    let r11 = there["hops"].as_array().unwrap().iter().find(|h| h["hop"] == "r11").unwrap();
    assert_eq!(r11["planned_us"], 100_000);
    assert!(ms(&r11["measured_us"]) > 115.0, "20 ms more one way: {r11}");
    assert!(!problems.contains("link r11–r12") && !problems.contains("link r9–r10"), "only the changed link is named: {problems}");

    // The same change through vnet-te: now it is the plan, and the path verifies again.
    let out = vnet(&["path", "impair", name, "--link", "r10-r11", "--from", "r10", "--delay", "25ms"]);
    assert_eq!(out.status.code(), Some(0));
    let out = vnet(&["path", "verify", name, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "verify after impair");
    assert_eq!(delay_report(&json(&out), "src")["end_to_end"]["planned_us"], 250_000);
    let show = vnet(&["path", "show", name]);
    assert!(String::from_utf8_lossy(&show.stdout).contains("r10 → r11: delay 25 ms"), "path show lists the change");

    drop(c);
    wait_for("the delay lines to end with their containers", Duration::from_secs(10), || (delay_processes(name) == 0).then_some(()));
    assert_eq!(labelled(name), (0, 0));
}

#[test]
fn moon_distance_bgp_forms_across_1_28_s_each_way() {
    let test = "moon_distance_bgp_forms_across_1_28_s_each_way";
    let _serial = serial();
    if !docker_ready(test) || !nfqueue_ready(test) {
        return;
    }
    let name = "moon";
    let c = Cleanup::new(name);
    let spec = c.example("moon.yaml", None);
    let out = vnet(&["path", "create", "-f", &spec, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "moon path did not verify");
    let report = json(&out);
    let there = delay_report(&report, "src");
    assert_eq!(there["end_to_end"]["planned_us"], 2_570_000);
    let rtt = ms(&there["end_to_end"]["measured_us"]);
    assert!((2518.6..2621.4).contains(&rtt), "round trip {rtt} ms for 2570 planned (± 2 %)");
    // The session across the long link is up and runs with the planned timers.
    let plan = plan_of(name);
    let container = router(&plan, "relay")["container"].as_str().unwrap().to_string();
    let far = neighbor(&plan, "relay", "moon-gw")["address"].as_str().unwrap().to_string();
    let summary = exec_json(&container, &["vtysh", "-c", "show bgp summary json"]);
    assert_eq!(summary["ipv4Unicast"]["peers"][&far]["state"], "Established", "{summary}");
    let running = exec(&container, &["vtysh", "-c", "show running-config"]);
    assert!(running.contains(&format!("neighbor {far} timers 3 13")), "{running}");
    drop(c);
    wait_for("the delay lines to end", Duration::from_secs(10), || (delay_processes(name) == 0).then_some(()));
}

#[test]
fn then_delay_verifies_at_zero_delay_then_holds_packets() {
    let test = "then_delay_verifies_at_zero_delay_then_holds_packets";
    let _serial = serial();
    if !docker_ready(test) || !nfqueue_ready(test) {
        return;
    }
    let name = "far";
    let c = Cleanup::new(name);
    let spec = c.spec(
        "far.yaml",
        "name: far\nrouters: [{ name: r1 }, { name: r2 }, { name: r3 }]\nlinks:\n  - { a: r1, b: r2 }\n  - { a: r2, b: r3, delay: 4m }\nconverge: then-delay\n",
    );
    let out = vnet(&["path", "create", "-f", &spec, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "then-delay path did not verify at zero delay");
    assert!(String::from_utf8_lossy(&out.stderr).contains("delays applied to 2 link directions"));
    // A ping now waits in the delay line: its request is held there.
    let plan = plan_of(name);
    let (src, dst) = (host(&plan, "src")["container"].as_str().unwrap(), host(&plan, "dst")["address"].as_str().unwrap());
    let _ = docker_out(&["exec", src, "ping", "-c", "3", "-i", "0.2", "-W", "1", dst]);
    let show = vnet(&["path", "show", name, "--output", "json"]);
    let lines = json(&show)["delay_lines"].clone();
    let held: u64 = lines.as_array().unwrap().iter().filter_map(|l| l["status"]["counters"]["queued"].as_u64()).sum();
    assert!(held >= 3, "the pings are held in the delay lines: {lines}");
    drop(c);
    wait_for("the delay lines to end", Duration::from_secs(10), || (delay_processes(name) == 0).then_some(()));
}

#[test]
fn loss_of_10_percent_on_one_link_is_measured_within_its_bound() {
    let test = "loss_of_10_percent_on_one_link_is_measured_within_its_bound";
    let _serial = serial();
    if !docker_ready(test) || !nfqueue_ready(test) {
        return;
    }
    let name = "lossy";
    let c = Cleanup::new(name);
    let spec = c.spec(
        "lossy.yaml",
        "name: lossy\nrouters: [{ name: r1 }, { name: r2 }, { name: r3 }]\nlinks:\n  - { a: r1, b: r2 }\n  - { a: r2, b: r3, loss: 10 }\n",
    );
    let out = vnet(&["path", "create", "-f", &spec, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "lossy path did not verify");
    let report = json(&out);
    for from in ["src", "dst"] {
        let loss = &delay_report(&report, from)["loss"];
        assert_eq!(loss["sent"], 200, "{loss}");
        assert_eq!(loss["expected_milli"], 162_000, "90 % each way: 81 % of the echoes come back");
        let received = loss["received"].as_u64().unwrap();
        assert!((134..=190).contains(&received), "{loss}");
        assert_eq!(loss["ok"], true, "{loss}");
    }
    // The line dropped what it was told to: its counters agree.
    let show = json(&vnet(&["path", "show", name, "--output", "json"]));
    let dropped: u64 = show["delay_lines"].as_array().unwrap().iter().filter_map(|l| l["status"]["counters"]["dropped"].as_u64()).sum();
    assert!(dropped > 0, "{}", show["delay_lines"]);
    drop(c);
    wait_for("the delay lines to end", Duration::from_secs(10), || (delay_processes(name) == 0).then_some(()));
}

#[test]
fn rate_of_10_mbit_on_one_link_is_measured_within_10_percent() {
    let test = "rate_of_10_mbit_on_one_link_is_measured_within_10_percent";
    let _serial = serial();
    if !docker_ready(test) || !nfqueue_ready(test) {
        return;
    }
    let name = "slow";
    let c = Cleanup::new(name);
    let spec = c.spec(
        "slow.yaml",
        "name: slow\nrouters: [{ name: r1 }, { name: r2 }, { name: r3 }]\nlinks:\n  - { a: r1, b: r2 }\n  - { a: r2, b: r3, rate: 10mbit }\n",
    );
    assert_eq!(vnet(&["path", "create", "-f", &spec]).status.code(), Some(0), "slow path did not verify");
    let out = vnet(&["path", "verify", name, "--measure", "rate", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "rate not within 10 %");
    let rate = json(&out)["rate"].clone();
    assert_eq!(rate["planned_bps"], 10_000_000, "{rate}");
    let mbit = rate["measured_bps"].as_u64().unwrap() as f64 / 1e6;
    assert!((9.0..=11.0).contains(&mbit), "{rate}");
    drop(c);
}

/// Deep space: BGP forms across a link of 60 s each way (a 2-minute round trip) with the
/// derived TCP and BGP profile, and the path verifies. Only the create holds the engine lock:
/// the minutes of waiting that follow overlap the other tests of this file.
#[test]
fn deep_space_60_s_each_way_bgp_forms_and_the_path_verifies() {
    let test = "deep_space_60_s_each_way_bgp_forms_and_the_path_verifies";
    let name = "deep";
    let c = {
        let _serial = serial();
        if !docker_ready(test) || !nfqueue_ready(test) {
            return;
        }
        let c = Cleanup::new(name);
        let spec = c.spec(
            "deep.yaml",
            "name: deep\nrouters: [{ name: r1 }, { name: r2 }, { name: r3 }]\nlinks:\n  - { a: r1, b: r2 }\n  - { a: r2, b: r3, delay: 60s }\nconverge: with-delay\n",
        );
        let out = vnet(&["path", "create", "-f", &spec, "--no-verify"]);
        assert_eq!(out.status.code(), Some(0), "deep-space path not created");
        c
    };
    // The session needs about two and a half round trips (SYN, SYN-ACK, OPENs, KEEPALIVEs),
    // the routes one more crossing, the first reply and then the probes a round trip each:
    // about 10 minutes; verify's default for this path is 30 s plus eight round trips.
    let out = vnet(&["path", "verify", name, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "the deep-space path did not verify");
    let report = json(&out);
    let there = delay_report(&report, "src");
    assert_eq!(there["end_to_end"]["planned_us"], 120_000_000);
    let rtt = ms(&there["end_to_end"]["measured_us"]);
    assert!((117_600.0..122_400.0).contains(&rtt), "round trip {rtt} ms for 120000 planned (± 2 %)");
    let plan = plan_of(name);
    let container = router(&plan, "r2")["container"].as_str().unwrap().to_string();
    let far = neighbor(&plan, "r2", "r3")["address"].as_str().unwrap().to_string();
    let summary = exec_json(&container, &["vtysh", "-c", "show bgp summary json"]);
    assert_eq!(summary["ipv4Unicast"]["peers"][&far]["state"], "Established", "{summary}");
    let running = exec(&container, &["vtysh", "-c", "show running-config"]);
    assert!(running.contains(&format!("neighbor {far} timers 120 480")), "{running}");
    assert_eq!(exec(&container, &["sysctl", "-n", "net.ipv4.tcp_syn_retries"]).trim(), "7");
    drop(c);
    wait_for("the delay lines to end", Duration::from_secs(10), || (delay_processes(name) == 0).then_some(()));
}

/// The fastest of a few pings from a host container to an address, in ms (None: no reply).
fn ping_ms(container: &str, target: &str) -> Option<f64> {
    let out = docker_out(&["exec", container, "ping", "-c", "2", "-i", "0.3", "-W", "4", target]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split("time=").nth(1)?.split_whitespace().next()?.parse::<f64>().ok())
        .reduce(f64::min)
}

/// Milliseconds since the path's schedule started, as `path show` reports it.
fn schedule_elapsed_ms(path: &str) -> u64 {
    let show = json(&vnet(&["path", "show", path, "--output", "json"]));
    show["schedule_elapsed_ms"].as_u64().unwrap_or_else(|| panic!("no schedule_elapsed_ms in path show: {}", show["schedule_now"]))
}

/// Waits until the schedule is at least `ms` old (polling `path show`).
fn wait_for_schedule(path: &str, ms: u64, within: Duration) {
    wait_for(&format!("the schedule of {path} to reach +{} s", ms as f64 / 1000.0), within, || (schedule_elapsed_ms(path) >= ms).then_some(()));
}

/// `path verify` exits 1 naming `link` (and its reverse) as down by schedule since `since_ms`.
fn assert_down_by_schedule(path: &str, link: &str, since_ms: u64) {
    let out = vnet(&["path", "verify", path, "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "verify while {link} is down: {}", String::from_utf8_lossy(&out.stdout));
    let report = json(&out);
    let down = report["down_by_schedule"].as_array().unwrap_or_else(|| panic!("no down_by_schedule: {report}"));
    let named = down.iter().find(|d| d["link"] == link).unwrap_or_else(|| panic!("{link} not named: {report}"));
    assert_eq!(named["since_ms"], since_ms, "{named}");
    let table = vnet(&["path", "verify", path]);
    let text = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(text.contains(&format!("link {link}: DOWN by schedule since +{} s", since_ms as f64 / 1000.0)), "{text}");
}

/// Polls `path verify` until it passes (BGP re-forms across a link back up).
fn verify_passes_again(path: &str, within: Duration) -> serde_json::Value {
    wait_for(&format!("{path} to verify again"), within, || {
        let out = vnet(&["path", "verify", path, "--output", "json"]);
        (out.status.code() == Some(0)).then(|| json(&out))
    })
}

/// Nothing of the path left: no delay-line process, no control directory, no labelled
/// object (the queue rules and qdiscs live in the containers' namespaces, gone with them).
fn assert_all_gone(path: &str) {
    wait_for("the delay lines to end", Duration::from_secs(10), || (delay_processes(path) == 0).then_some(()));
    let prefix = format!("vte-{path}-");
    let dirs: Vec<String> = std::fs::read_dir("/run/vnet-te/delay")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(dirs.is_empty(), "delay-line directories left: {dirs:?}");
    assert_eq!(labelled(path), (0, 0));
}

#[test]
fn schedule_changes_a_delay_takes_a_link_down_and_up_at_its_times() {
    let test = "schedule_changes_a_delay_takes_a_link_down_and_up_at_its_times";
    let _serial = serial();
    if !docker_ready(test) || !nfqueue_ready(test) {
        return;
    }
    let name = "sched";
    let c = Cleanup::new(name);
    let spec = c.spec(
        "sched.yaml",
        "name: sched\nrouters: [{ name: r1 }, { name: r2 }, { name: r3 }]\nschedule:\n\
         \x20 - { at: 5s, link: r2-r3, delay: 100ms }\n\
         \x20 - { at: 5s, link: r1-r2, from: r1, rate: 20mbit }\n\
         \x20 - { at: 10s, link: r2-r3, down: true }\n\
         \x20 - { at: 20s, link: r2-r3, up: true }\n",
    );
    let out = vnet(&["path", "create", "-f", &spec, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "create did not verify: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("schedule started: 4 delay lines"), "{}", String::from_utf8_lossy(&out.stderr));
    let plan = plan_of(name);
    let (src, dst) = (host(&plan, "src")["container"].as_str().unwrap().to_string(), host(&plan, "dst")["address"].as_str().unwrap().to_string());

    // Before +5 s the links have no delay; from +5 s r2–r3 holds 100 ms each way.
    let before = ping_ms(&src, &dst).expect("a reply before the change");
    let elapsed = schedule_elapsed_ms(name);
    assert!(before < 50.0 && elapsed < 5_000, "{before} ms at +{elapsed} ms");
    let after = wait_for("pings to take the scheduled 100 ms each way", Duration::from_secs(30), || ping_ms(&src, &dst).filter(|ms| *ms >= 200.0));
    assert!(after < 260.0, "round trip {after} ms with 200 ms scheduled");
    // The rate went onto r1's end toward r2, set by the delay line there.
    let r1 = router(&plan, "r1");
    let ifname = r1["interfaces"].as_array().unwrap().iter().find(|i| i["peer"] == "r2").unwrap()["ifname"].as_str().unwrap().to_string();
    let r1c = r1["container"].as_str().unwrap().to_string();
    let qdisc = exec(&r1c, &["tc", "qdisc", "show", "dev", &ifname]);
    assert!(qdisc.contains("tbf") && qdisc.contains("20Mbit"), "{qdisc}");
    let show = String::from_utf8_lossy(&vnet(&["path", "show", name]).stdout).to_string();
    assert!(show.contains("r2–r3: now delay 100 ms (since +5 s); next +10 s: down"), "{show}");

    // +10 s: r2–r3 down; verify names it, and the lines drop what arrives.
    wait_for_schedule(name, 10_500, Duration::from_secs(30));
    assert_down_by_schedule(name, "r2–r3", 10_000);
    assert_eq!(ping_ms(&src, &dst), None, "no reply across a link down");
    let lines = json(&vnet(&["path", "show", name, "--output", "json"]))["delay_lines"].clone();
    let dropped_down: u64 = lines.as_array().unwrap().iter().filter_map(|l| l["status"]["counters"]["dropped_down"].as_u64()).sum();
    assert!(dropped_down > 0, "{lines}");
    let impair = vnet(&["path", "impair", name, "--link", "r2-r3", "--up"]);
    assert_eq!(impair.status.code(), Some(2), "impair on a scheduled link: {}", String::from_utf8_lossy(&impair.stderr));
    assert!(String::from_utf8_lossy(&impair.stderr).contains("follows the path's schedule"));

    // +20 s: up again; verify passes against the scheduled 100 ms.
    wait_for_schedule(name, 20_000, Duration::from_secs(30));
    let report = verify_passes_again(name, Duration::from_secs(120));
    assert_eq!(delay_report(&report, "src")["end_to_end"]["planned_us"], 200_000, "{report}");
    drop(c);
    assert_all_gone(name);
}

#[test]
fn contact_plan_drives_links_down_up_and_their_delay() {
    let test = "contact_plan_drives_links_down_up_and_their_delay";
    let _serial = serial();
    if !docker_ready(test) || !nfqueue_ready(test) {
        return;
    }
    let name = "dtn";
    let c = Cleanup::new(name);
    c.spec(
        "dtn.ionrc",
        "# r1 = node 1, r2 = node 2, r3 = node 3\n\
         a contact +0 +3600 2 3 1250000\na contact +0 +3600 3 2 1250000\n\
         a contact +0 +10 1 2 1250000\na contact +0 +10 2 1 1250000\n\
         a contact +20 +3600 1 2 1250000\na contact +20 +3600 2 1 1250000\n\
         a range +5 +3600 2 3 1\n",
    );
    let spec = c.spec(
        "dtn.yaml",
        "name: dtn\nrouters: [{ name: r1 }, { name: r2 }, { name: r3 }]\ncontact_plan: { file: dtn.ionrc, nodes: { r1: 1, r2: 2, r3: 3 } }\n",
    );
    let out = vnet(&["path", "create", "-f", &spec, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "create did not verify: {}", String::from_utf8_lossy(&out.stderr));
    let plan = plan_of(name);
    let (src, dst) = (host(&plan, "src")["container"].as_str().unwrap().to_string(), host(&plan, "dst")["address"].as_str().unwrap().to_string());

    // From +5 s the range 2–3 (2 < 3: both ways) holds 1 s each way.
    let rtt = wait_for("pings to take the range's 1 s each way", Duration::from_secs(30), || ping_ms(&src, &dst).filter(|ms| *ms >= 2000.0));
    assert!(rtt < 2100.0, "round trip {rtt} ms with 2 s of light time");

    // +10 s: the contacts 1 ⇄ 2 end; the link is down until the next ones at +20 s.
    wait_for_schedule(name, 10_500, Duration::from_secs(30));
    assert_down_by_schedule(name, "r1–r2", 10_000);

    wait_for_schedule(name, 20_000, Duration::from_secs(30));
    let report = verify_passes_again(name, Duration::from_secs(120));
    assert_eq!(delay_report(&report, "src")["end_to_end"]["planned_us"], 2_000_000, "{report}");
    drop(c);
    assert_all_gone(name);
}
