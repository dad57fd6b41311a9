//! `path plan|render|create|verify|list|show|delete|update`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use vnet_te_agent::node::labels;

use super::{emit, load_spec, plan_json, preview_plan, print_report, Bar, Output, SpecInput};
use crate::core::compare;
use crate::core::plan::timeouts::{self, After};
use crate::core::plan::{self, Inventory};
use crate::core::render;
use crate::core::replan;
use crate::error::{exit, BadInput};
use crate::core::spec::Converge;
use crate::exec::{apply, cluster, create as exec_create, distance, observe, repair, state, teardown, vpn, DeployError, Nodes};

pub struct CreateOptions {
    pub spec: SpecInput,
    /// Delete an existing path of the same name first.
    pub replace: bool,
    pub verify: bool,
    /// None: as the plan needs (`core::plan::timeouts`).
    pub timeout: Option<Duration>,
    pub output: Output,
}

pub struct UpdateOptions {
    /// The running path (the spec must carry the same name).
    pub path: String,
    pub spec: SpecInput,
    pub verify: bool,
    pub timeout: Option<Duration>,
    pub output: Output,
}

/// The time verification may wait: the one given, or what the plan needs after `after`
/// (`core::plan::timeouts`).
fn timeout_for(plan: &plan::Plan, given: Option<Duration>, after: After) -> Duration {
    given.unwrap_or_else(|| timeouts::verify_timeout(plan, after))
}

/// `path plan`: the resolved plan of a spec, as a table or JSON.
pub fn plan(spec: &SpecInput, output: Output) -> anyhow::Result<i32> {
    let plan = preview_plan(spec)?;
    // Planned for this machine alone: its neighbour table is the one the path would use.
    if spec.nodes.is_empty() {
        warn_neighbour_table(&plan, plan::LOCAL_NODE);
    }
    match output {
        Output::Table => emit(&plan.to_string())?,
        Output::Json => emit(&format!("{}\n", plan_json(&plan)))?,
    }
    Ok(exit::OK)
}

/// `path render`: every rendered file under `out`.
pub fn render(spec: &SpecInput, out: &Path) -> anyhow::Result<i32> {
    let plan = preview_plan(spec)?;
    let n = write_rendered(&plan, out)?;
    println!("wrote {n} files for {} containers under {}", plan.routers.len() + plan.hosts.len(), out.display());
    Ok(exit::OK)
}

pub async fn create(a: CreateOptions) -> anyhow::Result<i32> {
    // Bad input is refused before any Docker call.
    let spec = load_spec(&a.spec)?;
    if !a.spec.nodes.is_empty() {
        return Err(BadInput("--nodes is for `path plan`; `path create` places on the engine's nodes".into()).into());
    }
    let _lock = super::lock_path(&spec.name)?;
    let nodes = cluster::nodes().await?;
    let started = Instant::now();
    if a.replace {
        let removed = teardown::delete(&nodes, Some(&spec.name)).await?;
        if !removed.unreached.is_empty() {
            let stored = state::stored_plan(&nodes.state_dir, &spec.name);
            bail!(
                "cannot replace path '{}': {}; nothing was created (once the node answers, run this again, or `vnet-te path delete --force {}` and then create it)",
                spec.name,
                unreached_text(stored.as_ref(), &removed.unreached),
                spec.name
            );
        }
        if removed.containers + removed.networks > 0 {
            eprintln!("replaced: removed {} containers and {} networks of path {}", removed.containers, removed.networks, spec.name);
        }
    }
    // Only a spec that attaches a host to a LAN needs the nodes' interfaces.
    let attaches = spec.hosts.sides().iter().any(|(_, h)| h.attach.is_some());
    let interfaces = if attaches { Some(nodes.own_interfaces().await?) } else { None };
    let inv = Inventory { nodes: nodes.names(), taken: nodes.taken_subnets().await?, interfaces };
    let mut plan = plan::build(&spec, &inv)?;
    warn_neighbour_table(&plan, nodes.manager.name());
    underlay(&mut plan, &nodes).await;

    let progress = Bar::new();
    let run = exec_create::Run::new();
    // The tunnel's key: kept in the path state and the two ends' swanctl.conf only.
    let psk = plan.vpn.is_some().then(vpn::new_psk);
    let result = tokio::select! {
        r = async {
            exec_create::create(&plan, &nodes, &run, &progress).await?;
            match &psk {
                Some(k) => vpn::setup(&mut plan, &nodes, k).await,
                None => Ok(()),
            }
        } => r,
        signal = super::interrupted() => Err(DeployError::Interrupted(signal)),
    };
    progress.done();
    if let Err(e) = result.and_then(|()| Ok(state::save_new_with_psk(&nodes.state_dir, &plan, psk.as_deref())?)) {
        return Err(exec_create::roll_back(&plan, &nodes, &run, e).await);
    }
    // The path exists from here on: a signal ends the command, not the path.
    let name = plan.name.clone();
    tokio::spawn(async move {
        let signal = super::interrupted().await;
        eprintln!(
            "interrupted by {signal}: path '{name}' was created but not verified; verify it with `vnet-te path verify {name}` or remove it with `vnet-te path delete {name}`"
        );
        std::process::exit(crate::error::exit::FAILED);
    });
    let docker_nets = plan.networks.iter().filter(|n| n.driver.is_docker()).count();
    eprintln!(
        "created path {} ({} routers, {} hosts, {} links: {} made directly, {} Docker networks) in {:.1} s",
        plan.name,
        plan.routers.len(),
        plan.hosts.len(),
        plan.networks.len(),
        plan.networks.len() - docker_nets,
        docker_nets,
        started.elapsed().as_secs_f64()
    );
    if nodes.by_name.len() > 1 {
        eprintln!("{}", cross_host_summary(&plan));
    }
    let then_delay = plan.distance.as_ref().is_some_and(|d| d.converge == Converge::ThenDelay);
    if !then_delay {
        let code = if a.verify {
            verify_and_report(&plan, &nodes, timeout_for(&plan, a.timeout, After::Create), a.output, started).await?
        } else {
            exit::OK
        };
        begin_schedule(&mut plan, &nodes).await?;
        return Ok(code);
    }
    // `converge: then-delay`: verified at zero delay first, then the delays go in.
    if a.verify {
        let zero = plan::distance::without_distance(&plan);
        let code = verify_and_report(&zero, &nodes, timeout_for(&zero, a.timeout, After::Create), a.output, started).await?;
        if code != exit::OK {
            return Ok(code);
        }
    }
    let n = distance::apply_all(&plan, &nodes).await.with_context(|| {
        format!(
            "path '{}' runs, but its delays could not all be applied; delete it (`vnet-te path delete {}`) or set them with `vnet-te path impair`",
            plan.name, plan.name
        )
    })?;
    eprintln!(
        "delays applied to {n} link directions (converge: then-delay); `vnet-te path show {}` shows each delay line",
        plan.name
    );
    begin_schedule(&mut plan, &nodes).await?;
    Ok(exit::OK)
}

/// Warns when the path's link ends on `node`, this machine's engine, would pass the kernel's
/// neighbour table (`plan::neighbours`); other nodes' tables are not read from here.
fn warn_neighbour_table(plan: &plan::Plan, node: &str) {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let Some(limit) = read("/proc/sys/net/ipv4/neigh/default/gc_thresh3").and_then(|s| s.trim().parse().ok()) else { return };
    let in_use = read("/proc/net/stat/arp_cache").and_then(|s| plan::neighbours::entries_in_use(&s)).unwrap_or(0);
    if let Some(w) = plan::neighbours::warning(plan, node, in_use, limit) {
        eprintln!("warning: {w}");
    }
}

/// Measures the underlay under the path's links between nodes (before any delay line
/// starts) and plans their delay lines with it; says what it measured, and warns of pairs it
/// could not measure and of links the underlay alone makes longer than planned.
async fn underlay(plan: &mut plan::Plan, nodes: &Nodes) {
    let t = Instant::now();
    let measured = distance::measure_underlay(plan, nodes).await;
    if measured.is_empty() {
        return;
    }
    let mut ok = BTreeMap::new();
    let mut figures = Vec::new();
    for ((a, b), r) in measured {
        match r {
            Ok(u) => {
                figures.push(format!("{a}–{b} {} (round trip {})", plan::ms(u.one_way_us), plan::ms(u.rtt_us)));
                ok.insert((a, b), u);
            }
            Err(e) => eprintln!(
                "warning: the underlay between nodes {a} and {b} was not measured ({e}); the delay lines of the links between them hold packets for the whole delay"
            ),
        }
    }
    if !figures.is_empty() {
        eprintln!(
            "underlay one way, subtracted from the delay lines of the links between nodes: {} (measured in {:.2} s)",
            figures.join(", "),
            t.elapsed().as_secs_f64()
        );
    }
    for w in plan::distance::set_underlay(plan, &ok) {
        eprintln!("warning: {w}");
    }
}

/// Starts the path's schedule now (once it verified, or was made without verifying): every
/// delay line of a scheduled link gets its timeline, and the start time goes into the stored
/// plan, where `path show` and `path verify` take it from.
async fn begin_schedule(plan: &mut plan::Plan, nodes: &Nodes) -> anyhow::Result<()> {
    if plan.schedule.is_none() {
        return Ok(());
    }
    let start = unix_ms_now();
    let n = distance::start_schedule(plan, nodes, start).await.with_context(|| {
        format!("path '{}' runs, but its schedule could not be handed to its delay lines; delete it (`vnet-te path delete {}`)", plan.name, plan.name)
    })?;
    if let Some(s) = &mut plan.schedule {
        s.start_unix_ms = Some(start);
    }
    state::store_plan(plan, nodes).with_context(|| format!("storing the schedule's start in path '{}'", plan.name))?;
    eprintln!("schedule started: {n} delay lines run their timelines from now (`vnet-te path show {}` says where it stands)", plan.name);
    Ok(())
}

/// The wall clock in unix milliseconds (every node of a cluster is assumed to share it).
fn unix_ms_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// How far the path's schedule is: ms since its start, if it started.
fn schedule_elapsed(plan: &plan::Plan) -> Option<u64> {
    let start = plan.schedule.as_ref()?.start_unix_ms?;
    Some(unix_ms_now().saturating_sub(start))
}

/// What a path is judged against now: the plan in the state its schedule gives at this
/// moment (the stored plan when it has none), how far the schedule is, and the report to
/// give instead of probing when the schedule has links down.
fn judged_now(stored: &plan::Plan) -> (plan::Plan, Option<u64>, Option<compare::Report>) {
    let Some(e) = schedule_elapsed(stored) else { return (stored.clone(), None, None) };
    let (now, down) = plan::schedule::plan_at(stored, e);
    let report = (!down.is_empty()).then(|| compare::down_by_schedule(&now, e, &down));
    (now, Some(e), report)
}

/// Verifies, prints the report, and maps the verdict to the exit code.
async fn verify_and_report(
    plan: &plan::Plan,
    nodes: &Nodes,
    timeout: Duration,
    output: Output,
    started: Instant,
) -> anyhow::Result<i32> {
    let progress = Bar::new();
    let report = observe::verify(plan, nodes, timeout, &progress).await;
    progress.done();
    print_report(&report, output);
    eprintln!("total {:.1} s from start to verdict", started.elapsed().as_secs_f64());
    Ok(if report.verified { exit::OK } else { exit::VERIFY_FAILED })
}

pub(crate) async fn plan_of(nodes: &Nodes, name: &str) -> anyhow::Result<plan::Plan> {
    match state::load_plan(nodes, name).await? {
        Some(p) => Ok(p),
        None => {
            let ex = teardown::find(nodes, Some(name)).await?;
            if ex.is_empty() {
                Err(BadInput(format!("no path named '{name}' on this engine (see `vnet-te path list`)")).into())
            } else {
                bail!(
                    "path '{name}' exists but its plan is not stored here ({}: the plan is kept on the machine that created the path); \
                     run this where it was created, or delete it with `vnet-te path delete {name}`",
                    state::file(&nodes.state_dir, name).display()
                )
            }
        }
    }
}

/// `path verify`; with `measure_rate`, also the TCP throughput from the first host to the
/// last against the slowest planned rate (iperf3, a few seconds).
pub async fn verify(name: &str, timeout: Option<Duration>, output: Output, measure_rate: bool) -> anyhow::Result<i32> {
    let nodes = cluster::nodes().await?;
    let stored = plan_of(&nodes, name).await?;
    let (plan, elapsed, down) = judged_now(&stored);
    if measure_rate && compare::distance::planned_rate(&plan).is_none() {
        return Err(BadInput(format!("--measure rate: path '{name}' plans no rate on its links")).into());
    }
    if let Some(report) = down {
        print_report(&report, output);
        return Ok(exit::VERIFY_FAILED);
    }
    let progress = Bar::new();
    let mut report = observe::verify(&plan, &nodes, timeout_for(&plan, timeout, After::Verify), &progress).await;
    if let Some(e) = elapsed {
        let end = schedule_elapsed(&stored).unwrap_or(e);
        report.note = Some(compare::schedule_note(&stored, e, end, report.note.take()));
    }
    if measure_rate {
        progress.update_phase("throughput (iperf3)");
        report.rate = compare::distance::rate_report(&plan, observe::measure_rate(&plan, &nodes).await);
        report.verified &= report.rate.as_ref().is_some_and(|r| r.ok);
    }
    progress.done();
    print_report(&report, output);
    Ok(if report.verified { exit::OK } else { exit::VERIFY_FAILED })
}

/// `path repair`: the running path brought back to its stored plan in place, then verified.
pub async fn repair(name: &str, verify: bool, timeout: Option<Duration>, output: Output) -> anyhow::Result<i32> {
    let _lock = super::lock_path(name)?;
    let nodes = cluster::nodes().await?;
    let stored = plan_of(&nodes, name).await?;
    let started = Instant::now();
    let done = repair::repair(&stored, &nodes).await.with_context(|| {
        format!("repairing path '{name}' stopped; run `vnet-te path repair {name}` again once the cause is fixed, or delete it (`vnet-te path delete {name}`)")
    })?;
    let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    if done.is_empty() {
        eprintln!("path {name}: every container, link and delay line is in place");
    } else {
        eprintln!(
            "repaired path {name} in {:.1} s: containers made again: {}; started: {}; link ends made again: {}; delay lines started: {}",
            started.elapsed().as_secs_f64(),
            list(&done.recreated),
            list(&done.started),
            list(&done.link_ends),
            done.lines
        );
    }
    if !verify {
        return Ok(exit::OK);
    }
    let (plan, _, down) = judged_now(&stored);
    if let Some(report) = down {
        print_report(&report, output);
        return Ok(exit::VERIFY_FAILED);
    }
    verify_and_report(&plan, &nodes, timeout_for(&plan, timeout, After::Update), output, started).await
}

/// Where one scheduled link direction stands now.
#[derive(Debug, Serialize)]
struct ScheduleShow {
    link: String,
    now: plan::schedule::LinkState,
    /// The last step applied (ms after the start); None: still as planned.
    last_at_ms: Option<u64>,
    next: Option<plan::schedule::ScheduleStep>,
}

#[derive(Debug, Serialize)]
struct PathSummary {
    name: String,
    plan_hashes: Vec<String>,
    routers: usize,
    hosts: usize,
    running: usize,
    networks: usize,
    nodes: Vec<String>,
}

impl PathSummary {
    fn new(name: &str) -> Self {
        PathSummary {
            name: name.to_string(),
            plan_hashes: vec![],
            routers: 0,
            hosts: 0,
            running: 0,
            networks: 0,
            nodes: vec![],
        }
    }
}

pub async fn list(output: Output) -> anyhow::Result<i32> {
    let nodes = cluster::nodes().await?;
    let mut paths: BTreeMap<String, PathSummary> = BTreeMap::new();
    for (node_name, node) in &nodes.by_name {
        for c in node.find_containers(labels::PATH, None).await? {
            let Some(p) = c.labels.get(labels::PATH) else { continue };
            let s = paths.entry(p.clone()).or_insert_with(|| PathSummary::new(p));
            match c.labels.get(labels::ROLE).map(String::as_str) {
                Some("router") => s.routers += 1,
                Some("host") => s.hosts += 1,
                _ => {}
            }
            if c.running {
                s.running += 1;
            }
            if let Some(h) = c.labels.get(labels::PLAN_HASH) {
                if !s.plan_hashes.contains(h) {
                    s.plan_hashes.push(h.clone());
                }
            }
            if !s.nodes.contains(node_name) {
                s.nodes.push(node_name.clone());
            }
        }
        for n in node.find_networks(labels::PATH, None).await? {
            let Some(p) = n.labels.get(labels::PATH) else { continue };
            paths.entry(p.clone()).or_insert_with(|| PathSummary::new(p)).networks += 1;
        }
    }
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&paths.values().collect::<Vec<_>>())?),
        Output::Table => {
            if paths.is_empty() {
                println!("no paths");
            } else {
                println!("{:<20} {:>7} {:>5} {:>8} {:>8}  {:<12} nodes", "path", "routers", "hosts", "running", "networks", "plan");
                for s in paths.values() {
                    println!(
                        "{:<20} {:>7} {:>5} {:>8} {:>8}  {:<12} {}",
                        s.name,
                        s.routers,
                        s.hosts,
                        s.running,
                        s.networks,
                        s.plan_hashes.join(","),
                        s.nodes.join(",")
                    );
                }
            }
        }
    }
    Ok(exit::OK)
}

pub async fn show(name: &str, output: Output) -> anyhow::Result<i32> {
    let nodes = cluster::nodes().await?;
    let plan = plan_of(&nodes, name).await?;
    let ex = teardown::find(&nodes, Some(name)).await?;
    let state: BTreeMap<&str, bool> = ex.containers.iter().map(|(_, c, r)| (c.as_str(), *r)).collect();
    let lines: Vec<DelayLineShow> = distance::status(&plan, &nodes)
        .await
        .into_iter()
        .map(|(i, r)| {
            let (status, error) = match r {
                Ok(Some(s)) => (s.status, s.error),
                Ok(None) => (None, Some("no delay line runs there".to_string())),
                Err(e) => (None, Some(e)),
            };
            let line_delay_us = i.line().delay_us;
            DelayLineShow {
                link: i.link,
                container: i.to.container,
                ifname: i.to.ifname,
                planned: i.impair,
                underlay_us: i.underlay.map(|u| u.one_way_us),
                line_delay_us,
                status,
                error,
            }
        })
        .collect();
    let cross = plan::distance::cross_node_links(&plan);
    let elapsed = schedule_elapsed(&plan);
    let schedule_now: Vec<ScheduleShow> = match elapsed {
        None => Vec::new(),
        Some(e) => plan
            .schedule
            .iter()
            .flat_map(|s| &s.directions)
            .map(|d| {
                let (now, last, next) = plan::schedule::position(d, e);
                ScheduleShow { link: d.link.clone(), now, last_at_ms: last.map(|k| d.steps[k].at_ms), next: next.copied() }
            })
            .collect(),
    };
    match output {
        Output::Json => {
            #[derive(Serialize)]
            struct Show<'a> {
                plan: &'a plan::Plan,
                containers: &'a BTreeMap<&'a str, bool>,
                #[serde(skip_serializing_if = "<[DelayLineShow]>::is_empty")]
                delay_lines: &'a [DelayLineShow],
                #[serde(skip_serializing_if = "<[plan::distance::CrossNodeLink]>::is_empty")]
                cross_node_links: &'a [plan::distance::CrossNodeLink],
                #[serde(skip_serializing_if = "Option::is_none")]
                schedule_elapsed_ms: Option<u64>,
                #[serde(skip_serializing_if = "<[ScheduleShow]>::is_empty")]
                schedule_now: &'a [ScheduleShow],
            }
            let show = Show {
                plan: &plan,
                containers: &state,
                delay_lines: &lines,
                cross_node_links: &cross,
                schedule_elapsed_ms: elapsed,
                schedule_now: &schedule_now,
            };
            println!("{}", serde_json::to_string_pretty(&show)?);
        }
        Output::Table => {
            print!("{plan}");
            for c in &cross {
                let (a, b) = &c.ends;
                let underlay = match c.underlay {
                    Some(u) => format!("underlay {} one way (round trip {})", plan::ms(u.one_way_us), plan::ms(u.rtt_us)),
                    None => "underlay not measured".to_string(),
                };
                println!(
                    "link {} between nodes {} and {}: {underlay}; {a} → {b}: delay {}, line {}; {b} → {a}: delay {}, line {}",
                    c.link,
                    c.nodes.0,
                    c.nodes.1,
                    plan::ms(c.delay_us.0),
                    plan::ms(c.line_delay_us.0),
                    plan::ms(c.delay_us.1),
                    plan::ms(c.line_delay_us.1),
                );
            }
            if let Some(v) = &plan.vpn {
                let engine = v.engine.map_or("not probed".to_string(), |e| e.to_string());
                println!("{}: {} ⇄ {} (strongSwan IKEv2, {}), ESP engine: {engine}", v.label(), v.ends[0].outer, v.ends[1].outer, v.auth);
            }
            if let Some(e) = elapsed {
                println!("schedule: +{:.1} s since it started", e as f64 / 1000.0);
                for s in &schedule_now {
                    let last = s.last_at_ms.map_or("as planned".to_string(), |t| format!("since +{} s", t as f64 / 1000.0));
                    let next = s.next.map_or("no change to come".to_string(), |n| format!("next +{} s: {}", n.at_ms as f64 / 1000.0, n.state));
                    println!("  {}: now {} ({last}); {next}", s.link, s.now);
                }
            } else if plan.schedule.is_some() {
                println!("schedule: not started (it starts once the path verified at create)");
            }
            for l in &lines {
                match (&l.status, &l.error) {
                    (Some(s), _) => println!(
                        "delay line {} at {} {}: delay {} ms, jitter {} ms, loss {} %{}; {} packets held now, {} queued, {} released, {} dropped{}",
                        l.link,
                        l.container,
                        l.ifname,
                        s.settings.delay_ms,
                        s.settings.jitter_ms,
                        s.settings.loss_percent,
                        if s.down { ", DOWN" } else { "" },
                        s.counters.queue_len,
                        s.counters.queued,
                        s.counters.released,
                        s.counters.dropped,
                        s.schedule.map_or(String::new(), |p| format!(
                            " ({} while down); schedule step {}/{}{}",
                            s.counters.dropped_down,
                            p.applied,
                            p.steps,
                            if p.rate_errors > 0 { format!(", {} rate changes refused (see its log)", p.rate_errors) } else { String::new() }
                        ))
                    ),
                    (None, e) => println!("delay line {} at {} {}: {}", l.link, l.container, l.ifname, e.as_deref().unwrap_or("?")),
                }
            }
            let down: Vec<&str> = state.iter().filter(|(_, r)| !**r).map(|(c, _)| *c).collect();
            let missing: Vec<&str> = plan
                .routers
                .iter()
                .map(|r| r.container.as_str())
                .chain(plan.hosts.iter().map(|h| h.container.as_str()))
                .filter(|c| !state.contains_key(c))
                .collect();
            println!(
                "containers: {} running, {} stopped{}, {} missing{}",
                state.values().filter(|r| **r).count(),
                down.len(),
                if down.is_empty() { String::new() } else { format!(" ({})", down.join(", ")) },
                missing.len(),
                if missing.is_empty() { String::new() } else { format!(" ({})", missing.join(", ")) },
            );
        }
    }
    Ok(exit::OK)
}

/// What may be left on nodes that did not answer, from the stored plan where there is one.
fn unreached_text(stored: Option<&plan::Plan>, unreached: &[teardown::Unreached]) -> String {
    match stored {
        Some(p) => exec_create::left_on(p, unreached),
        None => unreached
            .iter()
            .map(|u| format!("node {} did not answer ({}): what the path has there may be left", u.node, u.error))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Deletes one path, or every path with `None`. A node that does not answer keeps its share
/// (exit 3, naming it) and the others are done; with `force` its share is forgotten with the
/// controller-side state, and a later delete once it answers removes what is left there.
pub async fn delete(target: Option<&str>, force: bool) -> anyhow::Result<i32> {
    let _lock = target.map(super::lock_path).transpose()?;
    let nodes = cluster::nodes().await?;
    let started = Instant::now();
    let stored = target.and_then(|t| state::stored_plan(&nodes.state_dir, t));
    let removed = teardown::delete(&nodes, target).await?;
    let what = match target {
        None => "all paths".to_string(),
        Some(name) => format!("path {name}"),
    };
    if !removed.unreached.is_empty() {
        let again = target.map_or("--all".to_string(), str::to_string);
        eprintln!(
            "deleted what the nodes that answer hold of {what}: {} containers, {} networks in {:.1} s",
            removed.containers,
            removed.networks,
            started.elapsed().as_secs_f64()
        );
        eprintln!("left: {}", unreached_text(stored.as_ref(), &removed.unreached));
        if !force {
            eprintln!(
                "run `vnet-te path delete {again}` again once the node answers, or `vnet-te path delete --force {again}` to forget its share"
            );
            return Ok(exit::FAILED);
        }
        teardown::forget_state(&nodes, target)?;
        eprintln!(
            "--force: forgot {what} (the controller's state too); what is left on {} stays until `vnet-te path delete {again}` runs while it answers (labels find it)",
            removed.unreached.iter().map(|u| u.node.as_str()).collect::<Vec<_>>().join(", ")
        );
        return Ok(exit::OK);
    }
    if removed.containers + removed.networks == 0 {
        eprintln!("{what}: nothing to delete");
    } else {
        eprintln!(
            "deleted {what}: {} containers, {} networks in {:.1} s",
            removed.containers,
            removed.networks,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(exit::OK)
}

/// `path update NAME -f SPEC`: re-plan over the running path's own subnets, refuse anything
/// that needs other containers or networks, apply the new policy to the running routers,
/// store the new plan, verify (see `crate::core::replan`).
pub async fn update(a: UpdateOptions) -> anyhow::Result<i32> {
    let spec = load_spec(&a.spec)?;
    if !a.spec.nodes.is_empty() {
        return Err(BadInput("--nodes is for `path plan`; `path update` keeps the running path's nodes".into()).into());
    }
    if spec.name != a.path {
        return Err(BadInput(format!(
            "the spec is for path '{}', not '{}' (an update keeps the path's name)",
            spec.name, a.path
        ))
        .into());
    }
    let _lock = super::lock_path(&spec.name)?;
    let nodes = cluster::nodes().await?;
    let old = plan_of(&nodes, &a.path).await?;
    let started = Instant::now();
    let refused = |why: String| {
        BadInput(format!(
            "cannot update path '{}' in place (nothing was changed): {why}\n\
             an update keeps every container, network and address; to change those, delete the path and create it again",
            a.path
        ))
    };
    let mut new = replan::replan(&old, &spec)
        .map_err(|e| refused(format!("the new spec needs subnets the running path does not have ({e})")))?;
    let conflicts = replan::conflicts(&old, &new);
    if !conflicts.is_empty() {
        return Err(refused(format!("\n  {}", conflicts.join("\n  "))).into());
    }
    // The schedule runs on from its start.
    if let (Some(n), Some(o)) = (&mut new.schedule, &old.schedule) {
        n.start_unix_ms = o.start_unix_ms;
    }
    let applied = apply::apply(&old, &new, &nodes)
        .await
        .with_context(|| format!("updating path '{}'", a.path))?;
    let show = |p: &[String]| if p.len() <= 12 { p.join(" → ") } else { format!("{} hops", p.len()) };
    eprintln!(
        "updated path {}: {} became {}; new policy on {applied} running routers in {:.1} s (no container or network recreated)",
        a.path,
        show(&old.path),
        show(&new.path),
        started.elapsed().as_secs_f64()
    );
    if !a.verify {
        return Ok(exit::OK);
    }
    let (new, _, down) = judged_now(&new);
    if let Some(report) = down {
        print_report(&report, a.output);
        return Ok(exit::VERIFY_FAILED);
    }
    verify_and_report(&new, &nodes, timeout_for(&new, a.timeout, After::Update), a.output, started).await
}

/// One delay line as `path show` reports it: the plan's settings and what the line answers.
#[derive(Debug, Serialize)]
struct DelayLineShow {
    link: String,
    container: String,
    ifname: String,
    planned: crate::core::spec::distance::Impair,
    /// The underlay's share (one way) on a link between nodes, taken off the line's delay.
    #[serde(skip_serializing_if = "Option::is_none")]
    underlay_us: Option<u64>,
    /// What the line is to hold each packet for.
    line_delay_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<vnet_te_agent::delay::Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One line naming the links that cross hosts and what carries them, e.g.
/// `cross-host links (VXLAN): 2 of 3: r1@n1–r2@n2, r2@n2–r3@n3`.
pub fn cross_host_summary(plan: &plan::Plan) -> String {
    let node_of: BTreeMap<&str, &str> = plan.routers.iter().map(|r| (r.name.as_str(), r.node.as_str())).collect();
    let links: Vec<&plan::NetworkPlan> = plan.networks.iter().filter(|n| n.role == plan::NetworkRole::Link).collect();
    let cross: Vec<String> = links
        .iter()
        .filter(|n| n.cross_host)
        .map(|n| {
            n.ends
                .iter()
                .map(|e| format!("{}@{}", e.name, node_of.get(e.name.as_str()).copied().unwrap_or("?")))
                .collect::<Vec<_>>()
                .join("–")
        })
        .collect();
    let kind = match plan.wiring {
        crate::core::spec::Wiring::Direct => "VXLAN",
        crate::core::spec::Wiring::Docker => "overlay",
    };
    format!("cross-host links ({kind}): {} of {}: {}", cross.len(), links.len(), cross.join(", "))
}

/// Writes `<out>/<container>/<file>` for every rendered file; returns how many.
pub fn write_rendered(plan: &plan::Plan, out: &Path) -> anyhow::Result<usize> {
    let mut rendered = render::render(plan)?;
    // The tunnel's key exists only once the path is made: a placeholder stands in for it.
    if let Some(v) = &plan.vpn {
        for (object, files) in crate::core::vpn_render::render(plan, v, crate::core::vpn_render::PSK_PLACEHOLDER) {
            rendered.entry(object).or_default().extend(files);
        }
    }
    let files: Vec<(String, Vec<render::RenderedFile>)> = rendered.into_iter().collect();
    // Thousands of small files: creating them dominates, so spread it over the cores.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let chunk = files.len().div_ceil(threads).max(64);
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || -> anyhow::Result<usize> {
                    let mut n = 0;
                    for (object, list) in part {
                        let dir = out.join(object);
                        refuse_link(&dir)?;
                        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                        for f in list {
                            write_new(&dir.join(&f.name), &f.content, rendered_mode(f))?;
                            n += 1;
                        }
                    }
                    Ok(n)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("writer thread panicked")).sum()
    })
}

/// The mode a rendered file gets on disk: the one it gets inside the container (scripts are
/// 0755), so the tree can be mounted or copied as it is; owner-only when it carries secrets.
fn rendered_mode(f: &render::RenderedFile) -> u32 {
    if f.secret {
        0o600
    } else {
        f.mode
    }
}

/// Refuses a path that is a symbolic link: it would lead the write elsewhere.
fn refuse_link(path: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            anyhow::bail!("{} is a symbolic link: refusing to write through it (remove it or choose another --out)", path.display())
        }
        _ => Ok(()),
    }
}

/// Writes `content` to a new file at `path` with `mode`, replacing a regular file there but
/// never following a link (`create_new` fails on one).
fn write_new(path: &Path, content: &str, mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    refuse_link(path)?;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("replacing {}", path.display()))
        }
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(content.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    // Set after the content is in, and exactly (the umask does not apply).
    file.set_permissions(std::fs::Permissions::from_mode(mode)).with_context(|| format!("setting the mode of {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn plan() -> plan::Plan {
        let spec = crate::core::spec::chain("c", 2).expect("valid");
        plan::build(&spec, &Inventory { nodes: vec!["n1".into()], taken: vec![], interfaces: None }).expect("plans")
    }

    #[test]
    fn rendered_files_with_passwords_are_for_their_owner_only() {
        let out = tempfile::tempdir().unwrap();
        assert!(write_rendered(&plan(), out.path()).unwrap() > 0);
        assert_eq!(mode(&out.path().join("r1/frr.conf")), 0o600);
        assert_eq!(mode(&out.path().join("r1/daemons")), 0o644);
        assert_eq!(mode(&out.path().join("r1/boot.sh")), 0o755);
        // Rendering again replaces what is there, modes included.
        std::fs::set_permissions(out.path().join("r1/frr.conf"), std::fs::Permissions::from_mode(0o644)).unwrap();
        write_rendered(&plan(), out.path()).unwrap();
        assert_eq!(mode(&out.path().join("r1/frr.conf")), 0o600);
    }

    #[test]
    fn render_never_writes_through_a_link() {
        let out = tempfile::tempdir().unwrap();
        let victim = out.path().join("victim");
        std::fs::write(&victim, "mine\n").unwrap();
        std::fs::create_dir(out.path().join("r1")).unwrap();
        std::os::unix::fs::symlink(&victim, out.path().join("r1/frr.conf")).unwrap();
        let e = format!("{:#}", write_rendered(&plan(), out.path()).unwrap_err());
        assert!(e.contains("r1/frr.conf is a symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "mine\n");

        let elsewhere = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), out.path().join("r2")).unwrap();
        let e = format!("{:#}", write_rendered(&plan(), out.path()).unwrap_err());
        assert!(e.contains("r2 is a symbolic link"), "{e}");
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0, "nothing written through the link");
    }

    #[test]
    fn cross_host_summary_names_each_overlay_link_with_its_nodes() {
        let spec = crate::core::spec::chain("c", 3).expect("valid");
        let inv = Inventory { nodes: vec!["n1".into(), "n2".into()], taken: vec![], interfaces: None };
        let plan = plan::build(&spec, &inv).expect("plans");
        assert_eq!(cross_host_summary(&plan), "cross-host links (VXLAN): 2 of 2: r1@n1–r2@n2, r2@n2–r3@n1");
        let one = plan::build(&spec, &Inventory { nodes: vec!["n1".into()], taken: vec![], interfaces: None }).expect("plans");
        assert_eq!(cross_host_summary(&one), "cross-host links (VXLAN): 0 of 2: ");
        let mut docker = spec.clone();
        docker.wiring = Some(crate::core::spec::Wiring::Docker);
        let plan = plan::build(&docker, &inv).expect("plans");
        assert_eq!(cross_host_summary(&plan), "cross-host links (overlay): 2 of 2: r1@n1–r2@n2, r2@n2–r3@n1");
    }
}
