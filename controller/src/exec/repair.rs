//! Repair: a running path brought back to its plan in place. A container restarted (by hand,
//! or by a dockerd restart) comes back without the links vnet-te made into its namespace and
//! without its delay lines; a stopped one is started, a removed one made again from the plan
//! (same name, addresses, ASN and config). Then every missing link end is made again, and
//! every delay line and rate of a container that lost a link is started again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use vnet_te_agent::node::{labels, Node, NodeError};

use super::create::{make_link, BGPD_WAIT_SECS};
use super::nodes::{DeployError, Nodes, Step, PARALLELISM};
use crate::core::objects::{container_specs, direct_links, impairments, line_schedule, DirectLink};
use crate::core::plan::sessions::routers_waiting_for_bgp;
use crate::core::plan::Plan;
use crate::core::render;

/// How long a veth end whose peer's namespace is gone may take to go too.
const LONE_END_WITHIN: Duration = Duration::from_secs(10);

/// Waits until `container` no longer has interface `ifname` (the lone end of a pair).
async fn lone_end_gone(node: &dyn Node, container: &str, ifname: &str) -> Result<(), String> {
    let deadline = Instant::now() + LONE_END_WITHIN;
    loop {
        let ifs = node.interface_counters(container).await.map_err(|e| e.to_string())?;
        if !ifs.iter().any(|i| i.name == ifname) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{container}:{ifname} is still there {} s after its peer went; delete the path and create it again",
                LONE_END_WITHIN.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a repair did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Repaired {
    /// Containers made again (they had been removed).
    pub recreated: Vec<String>,
    /// Containers started (they were stopped).
    pub started: Vec<String>,
    /// Link ends made again, as "container:interface".
    pub link_ends: Vec<String>,
    /// Delay lines started again.
    pub lines: usize,
}

impl Repaired {
    pub fn is_empty(&self) -> bool {
        self.recreated.is_empty() && self.started.is_empty() && self.link_ends.is_empty() && self.lines == 0
    }
}

fn step(step: Step) -> impl Fn(NodeError) -> DeployError {
    move |source| DeployError::Step { step: step.describe(), source }
}

/// Brings the path's containers, links, delay lines and rates back to `plan`.
pub async fn repair(plan: &Plan, nodes: &Nodes) -> Result<Repaired, DeployError> {
    let mut done = Repaired::default();
    let files = render::render(plan)?;
    let mut specs = container_specs(plan, &files);
    // A container made again belongs to this repair's run.
    let run = super::create::Run::new();
    for (_, c) in &mut specs {
        run.label(&mut c.labels);
    }

    // Containers: what runs, what is stopped, what is gone.
    let mut present: BTreeMap<String, bool> = BTreeMap::new();
    for node in nodes.by_name.values() {
        let found = node.find_containers(labels::PATH, Some(&plan.name)).await.map_err(step(Step::Preflight))?;
        present.extend(found.into_iter().map(|c| (c.name, c.running)));
    }
    for (node, spec) in &specs {
        let n = nodes.get(node)?;
        match present.get(&spec.name) {
            Some(true) => continue,
            Some(false) => done.started.push(spec.name.clone()),
            None => {
                n.create_container(spec).await.map_err(step(Step::Containers))?;
                done.recreated.push(spec.name.clone());
            }
        }
        n.start_container(&spec.name).await.map_err(step(Step::Containers))?;
    }

    // Link ends: which interfaces each container has now.
    let waiting = routers_waiting_for_bgp(plan);
    let links = direct_links(plan, &nodes.underlay, &waiting)?;
    let node_of: BTreeMap<&str, &str> = specs.iter().map(|(n, s)| (s.name.as_str(), n.as_str())).collect();
    let containers: BTreeSet<&str> = links.iter().flat_map(|(_, l)| l.ends().into_iter().map(|(c, _)| c)).collect();
    let have: BTreeMap<&str, BTreeSet<String>> = stream::iter(containers)
        .map(|c| {
            let node = nodes.get(node_of.get(c).copied().unwrap_or_default());
            async move {
                let node = node?;
                let ifs = node.interface_counters(c).await.map_err(step(Step::Links))?;
                Ok::<_, DeployError>((c, ifs.into_iter().map(|i| i.name).collect()))
            }
        })
        .buffer_unordered(PARALLELISM)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let missing = |l: &DirectLink| l.ends().into_iter().filter(|(c, i)| !have.get(c).is_some_and(|s| s.contains(*i))).count();
    let mut broken: Vec<&(String, DirectLink)> = Vec::new();
    for link in &links {
        match (missing(&link.1), &link.1) {
            (0, _) => {}
            (1, DirectLink::Veth(v)) => {
                // The end left in a running container goes once the kernel has finished with the
                // namespace that held its peer (a moment after that container stopped).
                let (c, i) = link.1.ends().into_iter().find(|(c, i)| have.get(c).is_some_and(|s| s.contains(*i))).unwrap_or_default();
                lone_end_gone(nodes.get(&link.0)?.as_ref(), c, i).await.map_err(|message| DeployError::Step {
                    step: Step::Links.describe(),
                    source: NodeError::Failed {
                        doing: format!("repairing the link {}:{} – {}:{}", v.a.container, v.a.ifname, v.b.container, v.b.ifname),
                        message,
                    },
                })?;
                broken.push(link);
            }
            _ => broken.push(link),
        }
    }

    // The VXLAN filter comes back with the links (a node restarted has lost it).
    let vxlan_nodes: BTreeSet<&String> = links.iter().filter(|(_, l)| matches!(l, DirectLink::Vxlan(_))).map(|(n, _)| n).collect();
    if !vxlan_nodes.is_empty() {
        let _filter = super::lock::forwarding(&nodes.state_dir).await?;
        let allow: Vec<std::net::Ipv4Addr> = nodes.underlay.values().copied().collect();
        for node in vxlan_nodes {
            nodes.get(node)?.vxlan_filter(Some(&allow)).await.map_err(step(Step::Links))?;
        }
    }
    // A router that lost a link waits for its bgpd (a restart runs it again) before the link
    // comes back, as at create.
    let relinked: BTreeSet<&str> = broken.iter().flat_map(|(_, l)| l.ends().into_iter().map(|(c, _)| c)).collect();
    for r in plan.routers.iter().filter(|r| relinked.contains(r.container.as_str())) {
        let _ = nodes.get(&r.node)?.wait_bgpd(&r.container, BGPD_WAIT_SECS).await;
    }
    // Delay lines first (their rules name the interface, so packets are held from the first).
    let schedule_start = plan.schedule.as_ref().and_then(|s| s.start_unix_ms);
    let impaired = impairments(plan);
    for i in impaired.iter().filter(|i| relinked.contains(i.to.container.as_str())) {
        let Some(mut line) = i.delay_line() else {
            continue;
        };
        // A scheduled link's line takes its timeline on from the path's start.
        line.schedule = schedule_start.and_then(|start| line_schedule(plan, i, start));
        nodes.get(&i.to.node)?.start_delay_line(&line).await.map_err(step(Step::Delays))?;
        done.lines += 1;
    }
    let made: Vec<Result<Vec<String>, DeployError>> = stream::iter(broken)
        .map(|(node, link)| async move {
            make_link(link, &**nodes.get(node)?).await.map_err(step(Step::Links))?;
            Ok(link.ends().into_iter().map(|(c, i)| format!("{c}:{i}")).collect())
        })
        .buffer_unordered(PARALLELISM)
        .collect()
        .await;
    for m in made {
        done.link_ends.extend(m?);
    }
    for i in impaired.iter().filter(|i| i.impair.rate_bps > 0 && relinked.contains(i.from.container.as_str())) {
        nodes.get(&i.from.node)?.set_link_rate(&i.from.container, &i.from.ifname, Some(i.impair.rate_bps)).await.map_err(step(Step::Delays))?;
    }
    done.link_ends.sort();
    Ok(done)
}
