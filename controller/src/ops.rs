//! The operations behind `vnet-te path create|verify|list|show|delete` and `images build`:
//! thin glue between the CLI, the planner, the executor (`deploy`) and `verify`.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use vnet_te_agent::node::labels;

use crate::cli::{BadInput, CreateArgs, DeleteArgs, ListArgs, Output, ShowArgs, VerifyArgs};
use crate::deploy::{self, DeployError, Nodes, Step};
use crate::exit;
use crate::plan::{self, Inventory};
use crate::verify::{self, Report};

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
    let nodes = crate::cluster::nodes().await?;
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
    let docker_nets = plan.networks.iter().filter(|n| n.driver.is_docker()).count();
    eprintln!(
        "created path {} ({} routers, {} hosts, {} links: {} made directly, {} Docker networks) in {:.1} s",
        plan.name,
        plan.routers.len(),
        plan.hosts.len(),
        plan.networks.len(),
        plan.networks.len() - docker_nets,
        docker_nets,
        created.as_secs_f64()
    );
    if nodes.by_name.len() > 1 {
        eprintln!("{}", cross_host_summary(&plan));
    }
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
    let nodes = crate::cluster::nodes().await?;
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
    let nodes = crate::cluster::nodes().await?;
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
    let nodes = crate::cluster::nodes().await?;
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
    let nodes = crate::cluster::nodes().await?;
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
    build_agent_image(force).await?;
    Ok(exit::OK)
}

const AGENT_DOCKERFILE: &str = include_str!("../../images/agent/Dockerfile");

/// The agent image (for clusters): the `vnet-te-agent` binary next to this one, on the host
/// image, built through the engine's classic builder (offline: the base is local). Rebuilt
/// when the binary differs from the one in the image (its SHA-256 is a label).
async fn build_agent_image(force: bool) -> anyhow::Result<()> {
    use bollard::query_parameters::BuildImageOptionsBuilder;
    use futures_util::StreamExt;
    use sha2::Digest;

    let tag = crate::cluster::agent_image();
    let bin = match std::env::var_os("VNET_TE_AGENT_BINARY") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::env::current_exe().context("locating this binary")?.with_file_name("vnet-te-agent"),
    };
    let Ok(binary) = std::fs::read(&bin) else {
        eprintln!(
            "images: {tag} not built: {} not found (`cargo build --release` builds it; only clusters need it)",
            bin.display()
        );
        return Ok(());
    };
    let digest = format!("{:x}", sha2::Sha256::digest(&binary));
    let local = vnet_te_agent::docker::LocalNode::connect(crate::plan::LOCAL_NODE).await?;
    let docker = local.docker();
    if !force {
        if let Ok(img) = docker.inspect_image(&tag).await {
            let same = img.config.and_then(|c| c.labels).and_then(|l| l.get("vnet-te.agent-sha256").cloned());
            if same.as_deref() == Some(digest.as_str()) {
                eprintln!("images: {tag} is up to date");
                return Ok(());
            }
        }
    }
    let mut dockerfile = AGENT_DOCKERFILE.to_string();
    dockerfile.push_str(&format!("LABEL vnet-te.agent-sha256={digest}\n"));
    let context = vnet_te_agent::docker::pack_tar(&[
        ("Dockerfile", dockerfile.as_bytes(), 0o644),
        ("vnet-te-agent", &binary[..], 0o755),
    ])
    .context("packing the agent build context")?;
    let args = std::collections::HashMap::from([("BASE".to_string(), deploy::host_image())]);
    let opts = BuildImageOptionsBuilder::default().dockerfile("Dockerfile").t(&tag).buildargs(&args).rm(true).build();
    let mut stream = docker.build_image(opts, None, Some(bollard::body_full(context.into())));
    while let Some(item) = stream.next().await {
        let info = item.with_context(|| format!("building {tag}"))?;
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            bail!("building {tag}: {e}");
        }
    }
    eprintln!("images: built {tag} (agent {})", &digest[..12]);
    Ok(())
}

/// `cluster status` / `node list`: exit 0 when every node answers, 1 otherwise.
pub async fn cluster_status(output: Output) -> anyhow::Result<i32> {
    let (_, rows) = crate::cluster::status().await?;
    match output {
        Output::Table => crate::cluster::print_status(&rows),
        Output::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
    }
    Ok(if rows.iter().all(|r| r.agent == "ok") { exit::OK } else { exit::VERIFY_FAILED })
}

/// `path update NAME -f SPEC`: re-plan over the running path's own subnets, refuse anything
/// that needs other containers or networks, apply the new policy to the running routers,
/// store the new plan, verify (see `crate::update`).
pub async fn update(a: crate::cli::UpdateArgs) -> anyhow::Result<i32> {
    let spec = crate::cli::load_spec(&a.spec)?;
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
    let nodes = crate::cluster::nodes().await?;
    let old = plan_of(&nodes, &a.path).await?;
    let started = Instant::now();
    let refused = |why: String| {
        BadInput(format!(
            "cannot update path '{}' in place (nothing was changed): {why}\n\
             an update keeps every container, network and address; to change those, delete the path and create it again",
            a.path
        ))
    };
    let new = crate::update::replan(&old, &spec)
        .map_err(|e| refused(format!("the new spec needs subnets the running path does not have ({e})")))?;
    let conflicts = crate::update::conflicts(&old, &new);
    if !conflicts.is_empty() {
        return Err(refused(format!("\n  {}", conflicts.join("\n  "))).into());
    }
    let applied = crate::update::apply(&old, &new, &nodes)
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
    if a.no_verify {
        return Ok(exit::OK);
    }
    let progress = bar();
    let report = verify::verify(&new, &nodes, Duration::from_secs(a.timeout), &progress).await;
    progress.0.finish_and_clear();
    print_report(&report, a.output);
    eprintln!("total {:.1} s from start to verdict", started.elapsed().as_secs_f64());
    Ok(if report.verified { exit::OK } else { exit::VERIFY_FAILED })
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
        crate::spec::Wiring::Direct => "VXLAN",
        crate::spec::Wiring::Docker => "overlay",
    };
    format!("cross-host links ({kind}): {} of {}: {}", cross.len(), links.len(), cross.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_host_summary_names_each_overlay_link_with_its_nodes() {
        let spec = crate::spec::chain("c", 3).expect("valid");
        let inv = Inventory { nodes: vec!["n1".into(), "n2".into()], taken: vec![] };
        let plan = plan::build(&spec, &inv).expect("plans");
        assert_eq!(cross_host_summary(&plan), "cross-host links (VXLAN): 2 of 2: r1@n1–r2@n2, r2@n2–r3@n1");
        let one = plan::build(&spec, &Inventory { nodes: vec!["n1".into()], taken: vec![] }).expect("plans");
        assert_eq!(cross_host_summary(&one), "cross-host links (VXLAN): 0 of 2: ");
        let mut docker = spec.clone();
        docker.wiring = Some(crate::spec::Wiring::Docker);
        let plan = plan::build(&docker, &inv).expect("plans");
        assert_eq!(cross_host_summary(&plan), "cross-host links (overlay): 2 of 2: r1@n1–r2@n2, r2@n2–r3@n1");
    }
}
