//! The operations behind `vnet-te path create|verify|list|show|delete` and `images build`:
//! thin glue between the CLI, the planner, the executor (`deploy`) and `verify`.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use vnet_te_agent::docker::LocalNode;
use vnet_te_agent::node::labels;

use crate::cli::{BadInput, CreateArgs, DeleteArgs, ListArgs, Output, ShowArgs, VerifyArgs};
use crate::deploy::{self, DeployError, Nodes, Step};
use crate::exit;
use crate::plan::{self, Inventory, LOCAL_NODE};
use crate::verify::{self, Report};

/// The embedded default: the local Docker engine is the only node.
async fn local_nodes() -> anyhow::Result<Nodes> {
    let node = LocalNode::connect(LOCAL_NODE).await.context(
        "no Docker engine answered; start one (`bash deploy/ensure-docker.sh` installs and starts it)",
    )?;
    Ok(Nodes::single(Arc::new(node)))
}

struct Bar(ProgressBar);

impl deploy::Progress for Bar {
    fn step(&self, step: Step, total: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(0);
        self.0.set_message(step.describe());
    }
    fn tick(&self) {
        self.0.inc(1);
    }
}

impl verify::VerifyProgress for Bar {
    fn update(&self, ok: usize, total: usize, phase: &str) {
        self.0.set_length(total as u64);
        self.0.set_position(ok as u64);
        self.0.set_message(format!("verifying: {phase}"));
    }
}

fn bar() -> Bar {
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("valid template"),
    );
    pb.enable_steady_tick(Duration::from_millis(120));
    Bar(pb)
}

fn print_report(report: &Report, output: Output) {
    match output {
        Output::Table => print!("{report}"),
        Output::Json => println!("{}", serde_json::to_string_pretty(report).expect("report serialises")),
    }
}

pub async fn create(a: CreateArgs) -> anyhow::Result<i32> {
    // Bad input is refused before any Docker call.
    let spec = crate::cli::load_spec(&a.spec)?;
    if !a.spec.nodes.is_empty() {
        return Err(BadInput("--nodes is for `path plan`; `path create` places on the engine's nodes".into()).into());
    }
    let nodes = local_nodes().await?;
    let started = Instant::now();
    if a.replace {
        let removed = deploy::delete(&nodes, Some(&spec.name)).await?;
        if removed.containers + removed.networks > 0 {
            eprintln!("replaced: removed {} containers and {} networks of path {}", removed.containers, removed.networks, spec.name);
        }
    }
    let mut taken = Vec::new();
    for node in nodes.by_name.values() {
        for s in node.taken_subnets().await.context("listing the engine's networks")? {
            if let Ok(net) = s.parse() {
                taken.push(net);
            }
        }
    }
    let inv = Inventory { nodes: nodes.names(), taken };
    let plan = plan::build(&spec, &inv)?;

    let progress = bar();
    let result = tokio::select! {
        r = deploy::create(&plan, &nodes, &progress) => r.map_err(anyhow::Error::from),
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    progress.0.finish_and_clear();
    if let Err(e) = result {
        let nothing_created = matches!(
            e.downcast_ref::<DeployError>(),
            Some(DeployError::Exists(_)) | Some(DeployError::ImageMissing { .. })
        );
        if nothing_created {
            if matches!(e.downcast_ref::<DeployError>(), Some(DeployError::Exists(_))) {
                return Err(e.context(BadInput(format!("cannot create path '{}'", plan.name))));
            }
            return Err(e.context(format!("cannot create path '{}' (nothing was created)", plan.name)));
        }
        let rollback = deploy::delete(&nodes, Some(&plan.name)).await;
        let undo = match rollback {
            Ok(r) => format!("rolled back: removed {} containers and {} networks", r.containers, r.networks),
            Err(re) => format!(
                "rollback failed too ({re}); remove the rest with `vnet-te path delete {}`",
                plan.name
            ),
        };
        return Err(e.context(format!(
            "creating path '{}' failed; {undo}; fix the cause and run the same command again",
            plan.name
        )));
    }
    let created = started.elapsed();
    eprintln!(
        "created path {} ({} routers, {} hosts, {} networks) in {:.1} s",
        plan.name,
        plan.routers.len(),
        plan.hosts.len(),
        plan.networks.len(),
        created.as_secs_f64()
    );
    if a.no_verify {
        return Ok(exit::OK);
    }
    let progress = bar();
    let report = verify::verify(&plan, &nodes, Duration::from_secs(a.timeout), &progress).await;
    progress.0.finish_and_clear();
    print_report(&report, a.output);
    eprintln!("total {:.1} s from start to verdict", started.elapsed().as_secs_f64());
    Ok(if report.verified { exit::OK } else { exit::VERIFY_FAILED })
}

async fn plan_of(nodes: &Nodes, name: &str) -> anyhow::Result<plan::Plan> {
    match deploy::load_plan(nodes, name).await? {
        Some(p) => Ok(p),
        None => {
            let ex = deploy::find(nodes, Some(name)).await?;
            if ex.is_empty() {
                Err(BadInput(format!("no path named '{name}' on this engine (see `vnet-te path list`)")).into())
            } else {
                bail!(
                    "path '{name}' exists but its plan could not be read from its experiment hosts; \
                     delete it with `vnet-te path delete {name}`"
                )
            }
        }
    }
}

pub async fn verify(a: VerifyArgs) -> anyhow::Result<i32> {
    let nodes = local_nodes().await?;
    let plan = plan_of(&nodes, &a.name).await?;
    let progress = bar();
    let report = verify::verify(&plan, &nodes, Duration::from_secs(a.timeout), &progress).await;
    progress.0.finish_and_clear();
    print_report(&report, a.output);
    Ok(if report.verified { exit::OK } else { exit::VERIFY_FAILED })
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

pub async fn list(a: ListArgs) -> anyhow::Result<i32> {
    let nodes = local_nodes().await?;
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
    match a.output {
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

pub async fn show(a: ShowArgs) -> anyhow::Result<i32> {
    let nodes = local_nodes().await?;
    let plan = plan_of(&nodes, &a.name).await?;
    let ex = deploy::find(&nodes, Some(&a.name)).await?;
    let state: BTreeMap<&str, bool> = ex.containers.iter().map(|(_, c, r)| (c.as_str(), *r)).collect();
    match a.output {
        Output::Json => {
            #[derive(Serialize)]
            struct Show<'a> {
                plan: &'a plan::Plan,
                containers: &'a BTreeMap<&'a str, bool>,
            }
            println!("{}", serde_json::to_string_pretty(&Show { plan: &plan, containers: &state })?);
        }
        Output::Table => {
            print!("{plan}");
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

pub async fn delete(a: DeleteArgs) -> anyhow::Result<i32> {
    let nodes = local_nodes().await?;
    let started = Instant::now();
    let target = a.target.name.as_deref();
    let removed = deploy::delete(&nodes, if a.target.all { None } else { target }).await?;
    let what = if a.target.all { "all paths".to_string() } else { format!("path {}", target.unwrap_or_default()) };
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

const BUILD_SCRIPT: &str = include_str!("../../images/build-rootfs.sh");

pub async fn images_build(force: bool) -> anyhow::Result<i32> {
    for (kind, tag) in [("router", deploy::router_image()), ("host", deploy::host_image())] {
        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg("-c").arg(BUILD_SCRIPT).arg("build-rootfs.sh");
        if force {
            cmd.arg("--force");
        }
        cmd.arg(kind).arg(&tag).stdin(Stdio::null());
        let status = cmd.status().await.context("running bash for the image build")?;
        if !status.success() {
            bail!("building image {tag} failed (see the messages above)");
        }
    }
    Ok(exit::OK)
}
