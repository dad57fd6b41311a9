//! Rendering: a `Plan` → the files each container needs (FRR or VyOS config, setup scripts).
//!
//! Pure. Templates are embedded, handlebars runs in strict mode (a missing field is an error,
//! not an empty string) with HTML escaping off, and every template reads a small context
//! struct built here from the plan — never raw spec strings. Names reaching a template were
//! validated to `[a-z0-9-]`, passwords to a config-safe alphabet (see `spec`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use handlebars::{Context, Handlebars};
use ipnet::Ipv4Net;
use serde::Serialize;

use crate::core::plan::{HostPlan, NeighborPlan, Plan, RouterPlan, StaticRoutePlan, TE_LOCAL_PREF};
use crate::core::kinds::{FileSlot, Kind, FRR_VTEP_SETUP};
use crate::core::spec::RouterKind;

/// One file for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// File name in the render output directory (`frr.conf`).
    pub name: String,
    /// Absolute path inside the container.
    pub container_path: String,
    pub mode: u32,
    /// Carries secrets (`kinds::FileSlot::secret`).
    pub secret: bool,
    pub content: String,
}

/// Files per container, keyed by router or host name.
pub type Rendered = BTreeMap<String, Vec<RenderedFile>>;

#[derive(Debug, thiserror::Error)]
#[error("rendering {template} for {object}: {source}")]
pub struct RenderError {
    template: &'static str,
    object: String,
    #[source]
    source: Box<handlebars::RenderError>,
}

const TEMPLATES: &[(&str, &str)] = &[
    ("frr.conf", include_str!("../../templates/frr.conf.hbs")),
    ("zebra.conf", include_str!("../../templates/zebra.conf.hbs")),
    ("daemons", include_str!("../../templates/daemons.hbs")),
    ("vtysh.conf", include_str!("../../templates/vtysh.conf.hbs")),
    ("router-setup.sh", include_str!("../../templates/router-setup.sh.hbs")),
    ("host-setup.sh", include_str!("../../templates/host-setup.sh.hbs")),
    ("vyos.commands", include_str!("../../templates/vyos.commands.hbs")),
    ("vyos-postconfig.script", include_str!("../../templates/vyos-postconfig.script.hbs")),
    ("router-boot.sh", include_str!("../../templates/router-boot.sh.hbs")),
    ("host-boot.sh", include_str!("../../templates/host-boot.sh.hbs")),
    ("wait-links.sh", include_str!("../../templates/wait-links.sh.hbs")),
    ("frr-remove.conf", include_str!("../../templates/frr-remove.conf.hbs")),
];

pub use crate::core::kinds::{BOOT_PATH, SETUP_PATH};

fn registry() -> Handlebars<'static> {
    let mut h = Handlebars::new();
    h.set_strict_mode(true);
    h.register_escape_fn(handlebars::no_escape);
    for (name, text) in TEMPLATES {
        h.register_template_string(name, text).expect("embedded template parses");
    }
    h
}

#[derive(Serialize)]
struct RouterCtx<'a> {
    header: String,
    name: &'a str,
    /// VyOS wants a host name of at least two characters: a one-letter router is `router-x`.
    host_name: String,
    asn: u32,
    router_id: Ipv4Addr,
    loopback: Ipv4Net,
    keepalive: u16,
    hold: u16,
    connect_retry: u16,
    local_pref: u32,
    originate: &'a [Ipv4Net],
    /// Static routes; with any, the router runs staticd.
    statics: &'a [StaticRoutePlan],
    interfaces: Vec<IfaceCtx<'a>>,
    neighbors: Vec<NeighborCtx<'a>>,
    policies: Vec<PolicyCtx>,
    evpn: bool,
    vtep: Option<VtepCtx>,
    /// The direct links (the boot script waits for them).
    links: Vec<LinkCtx<'a>>,
    /// IPv4 sessions and policy (all but IPv6-only paths).
    ipv4: bool,
    ipv6: Option<crate::core::render_ipv6::Router6Ctx>,
}

/// A direct link's end inside the container: its name and address.
#[derive(Serialize)]
struct LinkCtx<'a> {
    ifname: &'a str,
    address: Ipv4Net,
}

#[derive(Serialize)]
struct IfaceCtx<'a> {
    index: usize,
    address: Ipv4Net,
    peer: &'a str,
    bridged: bool,
}

#[derive(Serialize)]
struct NeighborCtx<'a> {
    address: Ipv4Addr,
    remote_as: u32,
    peer: &'a str,
    password: Option<&'a str>,
    route_map: Option<String>,
    evpn: bool,
    passive: bool,
    /// Activated in the IPv4 address family by name (IPv6 plans turn the default off).
    activate: bool,
    connect_retry: u16,
    /// Session timers across a long delay (the router's own `timers bgp` otherwise).
    timers: Option<TimersCtx>,
}

#[derive(Serialize)]
struct TimersCtx {
    keepalive: u16,
    hold: u16,
}

#[derive(Serialize)]
struct PolicyCtx {
    route_map: String,
    prefix_list: String,
    prefixes: Vec<PrefixEntry>,
}

/// One prefix-list entry as rendered: `seq <seq> permit <prefix>[ ge <ge>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PrefixEntry {
    pub seq: usize,
    pub prefix: Ipv4Net,
    /// Set for a block of loopbacks: every /32 inside it matches, nothing shorter.
    pub ge: Option<u8>,
}

#[derive(Serialize)]
struct VtepCtx {
    vni: u32,
    lan_address: Ipv4Net,
    lan_index: usize,
    mtu: u32,
    route_target: String,
}

#[derive(Serialize)]
struct HostCtx<'a> {
    header: String,
    links: Vec<LinkCtx<'a>>,
    address: Ipv4Net,
    gateway: Ipv4Addr,
    l2_address: Option<Ipv4Net>,
    ipv6: Option<crate::core::render_ipv6::Host6Ctx>,
}

fn header(plan: &Plan, object: &str) -> String {
    format!("generated by vnet-te for {object} of path {}; do not edit", plan.name)
}

/// Inbound route-map that gives the planned neighbour `peer` the TE local preference.
pub fn route_map_name(peer: &str) -> String {
    format!("VTE-IN-{peer}")
}

/// Prefix-list the route-map matches: the prefixes preferred from `peer`.
pub fn prefix_list_name(peer: &str) -> String {
    format!("VTE-PREFER-{peer}")
}

/// Prefix-list entries as rendered: the preferred prefixes exactly, then the blocks of
/// preferred loopbacks (`announce: all`), which match the /32s inside them.
pub fn prefix_entries(n: &NeighborPlan) -> Vec<PrefixEntry> {
    let exact = n.prefer.iter().map(|p| (*p, None));
    let blocks = n.prefer_loopbacks.iter().map(|b| (*b, (b.prefix_len() < 32).then_some(32)));
    exact.chain(blocks).enumerate().map(|(i, (prefix, ge))| PrefixEntry { seq: (i + 1) * 5, prefix, ge }).collect()
}

/// Whether a neighbour's routes get the TE preference for any prefix.
fn has_policy(n: &NeighborPlan) -> bool {
    !(n.prefer.is_empty() && n.prefer_loopbacks.is_empty())
}

/// Only `frr.conf` of one FRR router (what `path update` applies to a running router).
pub fn render_frr_conf(plan: &Plan, r: &RouterPlan) -> Result<String, RenderError> {
    let h = registry();
    let ctx = context(&r.name, &router_ctx(plan, r))?;
    Ok(file(&h, &Kind::Frr.files()[0], &r.name, &ctx)?.content)
}

/// FRR configuration commands that take out of router `old` what its new plan `new` no
/// longer has: TE route-maps toward neighbours that are no longer planned hops, prefix-list
/// entries no longer preferred, EVPN activations and passwords that go away. Applied before
/// the new `frr.conf` (which re-adds everything it keeps). Objects come after their uses: a
/// route-map removed while still attached would briefly match nothing.
pub fn render_removal(old: &RouterPlan, new: &RouterPlan) -> Result<String, RenderError> {
    let mut ctx = RemovalCtx { asn: old.asn, ..RemovalCtx::default() };
    for o in &old.neighbors {
        let n = new.neighbors.iter().find(|n| n.address == o.address && n.peer == o.peer);
        if has_policy(o) {
            let (route_map, prefix_list) = (route_map_name(&o.peer), prefix_list_name(&o.peer));
            match n.filter(|n| has_policy(n)) {
                None => {
                    ctx.v4.push(RemovedPolicy { address: o.address, route_map: route_map.clone() });
                    ctx.objects.push(RemovedObject { route_map: Some(route_map), prefix_list, seq: 0, prefix: None, ge: None });
                }
                Some(n) => {
                    let keep = prefix_entries(n);
                    for e in prefix_entries(o).into_iter().filter(|e| !keep.contains(e)) {
                        ctx.objects.push(RemovedObject {
                            route_map: None,
                            prefix_list: prefix_list.clone(),
                            seq: e.seq,
                            prefix: Some(e.prefix),
                            ge: e.ge,
                        });
                    }
                }
            }
        }
        if o.evpn && !n.is_some_and(|n| n.evpn) {
            ctx.evpn.push(o.address);
        }
        if o.password.is_some() && n.is_some_and(|n| n.password.is_none()) {
            ctx.passwords.push(o.address);
        }
    }
    ctx.bgp = !(ctx.v4.is_empty() && ctx.evpn.is_empty() && ctx.passwords.is_empty());
    let h = registry();
    let slot = FileSlot { template: "frr-remove.conf", name: "frr-remove.conf", path: "", mode: 0o644, secret: true };
    Ok(file(&h, &slot, &old.name, &context(&old.name, &ctx)?)?.content)
}

#[derive(Default, Serialize)]
struct RemovalCtx {
    asn: u32,
    bgp: bool,
    passwords: Vec<Ipv4Addr>,
    v4: Vec<RemovedPolicy>,
    evpn: Vec<Ipv4Addr>,
    objects: Vec<RemovedObject>,
}

#[derive(Serialize)]
struct RemovedPolicy {
    address: Ipv4Addr,
    route_map: String,
}

/// A whole TE policy (`route_map` set) or one prefix-list entry.
#[derive(Serialize)]
struct RemovedObject {
    route_map: Option<String>,
    prefix_list: String,
    seq: usize,
    prefix: Option<Ipv4Net>,
    ge: Option<u8>,
}

fn router_ctx<'a>(plan: &'a Plan, r: &'a RouterPlan) -> RouterCtx<'a> {
    let policies: Vec<PolicyCtx> = r
        .neighbors
        .iter()
        .filter(|n| has_policy(n))
        .map(|n| PolicyCtx {
            route_map: route_map_name(&n.peer),
            prefix_list: prefix_list_name(&n.peer),
            prefixes: prefix_entries(n),
        })
        .collect();
    let lan_index = r.vtep.as_ref().and_then(|v| {
        r.interfaces.iter().position(|i| i.address == v.lan_address.addr())
    });
    RouterCtx {
        header: header(plan, &format!("router {}", r.name)),
        name: &r.name,
        host_name: if r.name.len() >= 2 { r.name.clone() } else { format!("router-{}", r.name) },
        asn: r.asn,
        router_id: r.router_id,
        loopback: r.loopback,
        keepalive: plan.bgp.keepalive,
        hold: plan.bgp.hold,
        connect_retry: plan.bgp.connect_retry,
        local_pref: TE_LOCAL_PREF,
        originate: &r.originate,
        statics: &r.statics,
        links: r
            .interfaces
            .iter()
            .filter_map(|i| {
                let ifname = i.ifname.as_deref()?;
                Some(LinkCtx { ifname, address: Ipv4Net::new(i.address, i.prefix_len).expect("planned prefix length") })
            })
            .collect(),
        interfaces: r
            .interfaces
            .iter()
            .enumerate()
            .map(|(index, i)| IfaceCtx {
                index,
                address: Ipv4Net::new(i.address, i.prefix_len).expect("planned prefix length"),
                peer: &i.peer,
                bridged: Some(index) == lan_index,
            })
            .collect(),
        neighbors: r
            .neighbors
            .iter()
            .map(|n| NeighborCtx {
                address: n.address,
                remote_as: n.remote_as,
                peer: &n.peer,
                password: n.password.as_deref(),
                route_map: has_policy(n).then(|| route_map_name(&n.peer)),
                evpn: n.evpn,
                passive: n.passive,
                activate: plan.ipv6.is_some(),
                connect_retry: n.timers.map_or(plan.bgp.connect_retry, |t| t.connect_retry),
                timers: n.timers.map(|t| TimersCtx { keepalive: t.keepalive, hold: t.hold }),
            })
            .collect(),
        policies,
        evpn: plan.evpn.is_some() && r.hop.is_some(),
        vtep: r.vtep.as_ref().map(|v| VtepCtx {
            vni: v.vni,
            lan_address: v.lan_address,
            lan_index: lan_index.unwrap_or(0),
            mtu: v.mtu,
            route_target: plan.evpn.as_ref().map(|e| e.route_target.clone()).unwrap_or_default(),
        }),
        ipv4: plan.carries_ipv4(),
        ipv6: crate::core::render_ipv6::of_router(plan, r),
    }
}

fn context(object: &str, ctx: &impl Serialize) -> Result<Context, RenderError> {
    Context::wraps(ctx).map_err(|e| RenderError {
        template: "context",
        object: object.to_string(),
        source: Box::new(e),
    })
}

/// Renders one template from a context converted once per container (the conversion to
/// JSON dominates rendering time for long paths).
fn file(h: &Handlebars<'_>, slot: &FileSlot, object: &str, ctx: &Context) -> Result<RenderedFile, RenderError> {
    let content = h.render_with_context(slot.template, ctx).map_err(|e| RenderError {
        template: slot.template,
        object: object.to_string(),
        source: Box::new(e),
    })?;
    Ok(RenderedFile { name: slot.name.into(), container_path: slot.path.into(), mode: slot.mode, secret: slot.secret, content })
}

fn files(h: &Handlebars<'_>, slots: &[FileSlot], object: &str, ctx: &Context) -> Result<Vec<RenderedFile>, RenderError> {
    slots.iter().map(|slot| file(h, slot, object, ctx)).collect()
}

/// Renders every file of every router and host in the plan.
pub fn render(plan: &Plan) -> Result<Rendered, RenderError> {
    let h = registry();
    let mut out = Rendered::new();
    // Routers render independently: split them over the cores (long paths have thousands).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let chunk = plan.routers.len().div_ceil(threads).max(64);
    type Part = Result<Vec<(String, Vec<RenderedFile>)>, RenderError>;
    let parts: Vec<Part> = std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .routers
            .chunks(chunk)
            .map(|routers| {
                let h = &h;
                s.spawn(move || {
                    routers
                        .iter()
                        .map(|r| Ok((r.name.clone(), render_router(h, plan, r)?)))
                        .collect::<Result<Vec<_>, RenderError>>()
                })
            })
            .collect();
        handles.into_iter().map(|t| t.join().expect("render thread panicked")).collect()
    });
    for part in parts {
        out.extend(part?);
    }
    for host in &plan.hosts {
        out.insert(host.name.clone(), render_host(&h, plan, host)?);
    }
    Ok(out)
}

fn render_router(h: &Handlebars<'_>, plan: &Plan, r: &RouterPlan) -> Result<Vec<RenderedFile>, RenderError> {
    let ctx = context(&r.name, &router_ctx(plan, r))?;
    let mut out = files(h, Kind::of(r.kind).files(), &r.name, &ctx)?;
    if r.kind == RouterKind::Frr && r.vtep.is_some() {
        out.push(file(h, &FRR_VTEP_SETUP, &r.name, &ctx)?);
    }
    Ok(out)
}

fn render_host(h: &Handlebars<'_>, plan: &Plan, host: &HostPlan) -> Result<Vec<RenderedFile>, RenderError> {
    let ctx = HostCtx {
        header: header(plan, &format!("host {}", host.name)),
        links: host
            .ifname
            .as_deref()
            .map(|ifname| LinkCtx { ifname, address: Ipv4Net::new(host.address, host.prefix_len).expect("planned prefix length") })
            .into_iter()
            .collect(),
        address: Ipv4Net::new(host.address, host.prefix_len).expect("planned prefix length"),
        gateway: host.gateway,
        l2_address: host.l2_address,
        ipv6: crate::core::render_ipv6::of_host(plan, host),
    };
    let ctx = context(&host.name, &ctx)?;
    files(h, Kind::Host.files(), &host.name, &ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{plan, spec};

    #[test]
    fn chain_renders_policy_on_path_routers() {
        let p = plan::build(&spec::chain("t", 3).unwrap(), &plan::Inventory::default()).unwrap();
        let out = render(&p).unwrap();
        let r2 = &out["r2"].iter().find(|f| f.name == "frr.conf").unwrap().content;
        assert!(r2.contains("route-map VTE-IN-r3 permit 10"), "{r2}");
        assert!(r2.contains("neighbor 10.199.0.2 route-map VTE-IN-r1 in"), "{r2}");
        assert!(r2.contains("router bgp 4200000002"));
        assert!(!r2.contains("{{"));
        assert_eq!(out["src"][0].container_path, SETUP_PATH);
        assert_eq!(out["src"][1].container_path, BOOT_PATH);
    }
}
