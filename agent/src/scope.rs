//! What a node acts on: vnet-te's own objects, made from vnet-te's images, written only where
//! vnet-te keeps its files. Pure checks on names, specs and labels; `docker` applies them to
//! what the engine reports, so the agent and the controller's in-process node both pass here.
//!
//! An object is vnet-te's when its name starts with [`NAME_PREFIX`] *and* it carries the
//! [`labels::PATH`] label: a name alone is anyone's to take, and the agent's own container
//! carries a vnet-te label but no path.

use std::collections::HashMap;

use crate::node::{labels, ContainerRole, ContainerSpec, FileSpec, NetworkSpec};

/// The prefix of every container and Docker network vnet-te makes (`vte-<path>-…`).
pub const NAME_PREFIX: &str = "vte-";
/// The prefix of the Linux bridges of vnet-te's bridge networks.
pub const BRIDGE_PREFIX: &str = "vte";
/// Names the VyOS image a node accepts, beside [`DEFAULT_VYOS_IMAGE`].
pub const VYOS_IMAGE_ENV: &str = "VNET_TE_VYOS_IMAGE";
pub const DEFAULT_VYOS_IMAGE: &str = "vyos/vyos:1.4";
/// Where a container's files may be given at create and read back.
pub const FILE_PREFIXES: &[&str] = &["/etc/vnet-te/", "/etc/frr/", "/config/"];
/// Where files may be replaced in an existing container.
pub const WRITABLE_PREFIX: &str = "/etc/vnet-te/";
/// Environment a container may be given: its files, for the unpacking prologue
/// (`VNET_TE_F<n>`, `VNET_TE_F<n>_PATH`, `VNET_TE_F<n>_MODE`).
const FILE_ENV_PREFIX: &str = "VNET_TE_F";

/// The FRR router image, versioned with vnet-te.
pub fn router_image() -> String {
    format!("vnet-te/router:{}", env!("CARGO_PKG_VERSION"))
}

/// The experiment host image, versioned with vnet-te.
pub fn host_image() -> String {
    format!("vnet-te/host:{}", env!("CARGO_PKG_VERSION"))
}

/// VyOS images cannot be built offline; users supply one under this name or name theirs in
/// `VNET_TE_VYOS_IMAGE` (on the controller, and on each node's agent: `node add` passes it on).
pub fn vyos_image() -> String {
    std::env::var(VYOS_IMAGE_ENV).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| DEFAULT_VYOS_IMAGE.to_string())
}

/// A name vnet-te gives: [`NAME_PREFIX`] then letters, digits, `-`, `_`, `.`.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let rest = name.strip_prefix(NAME_PREFIX).filter(|r| !r.is_empty());
    let plain = |r: &str| r.len() <= 200 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    match rest {
        Some(r) if plain(r) => Ok(()),
        _ => Err(format!("{what} {name:?} is not vnet-te's (names start with {NAME_PREFIX:?}, then letters, digits, '-', '_', '.')")),
    }
}

/// Refuses an object that does not carry a path label (the name is checked apart).
pub fn check_labels(what: &str, name: &str, labels: Option<&HashMap<String, String>>) -> Result<(), String> {
    match labels.and_then(|l| l.get(labels::PATH)) {
        Some(path) if !path.is_empty() => Ok(()),
        _ => Err(format!("{what} {name} is not vnet-te's (no {} label)", labels::PATH)),
    }
}

/// Only vnet-te's labels may be searched for.
pub fn check_label_key(label: &str) -> Result<(), String> {
    if label.starts_with("vnet-te.") && label.len() <= 64 {
        Ok(())
    } else {
        Err(format!("label {label:?} is not vnet-te's (only vnet-te.* labels are searched)"))
    }
}

/// An absolute path under one of `prefixes`, with no `.`, `..` or empty component and no
/// control character: what the path says is where the file lands.
pub fn check_path(path: &str, prefixes: &[&str]) -> Result<(), String> {
    let outside = || format!("{path:?} is outside vnet-te's paths ({})", prefixes.join(", "));
    let Some(prefix) = prefixes.iter().find(|p| path.starts_with(*p)) else { return Err(outside()) };
    let rest = &path[prefix.len()..];
    if rest.is_empty() || path.chars().any(char::is_control) {
        return Err(outside());
    }
    if rest.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(format!("{path:?}: no '.', '..' or empty components"));
    }
    Ok(())
}

/// Files given at create: under [`FILE_PREFIXES`].
fn check_files(files: &[FileSpec], prefixes: &[&str]) -> Result<(), String> {
    files.iter().try_for_each(|f| check_path(&f.path, prefixes))
}

/// Files replaced in an existing container: under [`WRITABLE_PREFIX`] only.
pub fn check_writable(files: &[FileSpec]) -> Result<(), String> {
    check_files(files, &[WRITABLE_PREFIX])
}

/// The images a container of `role` may be made from.
pub fn images_for(role: ContainerRole) -> Vec<String> {
    match role {
        ContainerRole::Router => vec![router_image(), vyos_image()],
        ContainerRole::Host => vec![host_image()],
    }
}

fn role_label(role: ContainerRole) -> &'static str {
    match role {
        ContainerRole::Router => "router",
        ContainerRole::Host => "host",
    }
}

/// A container spec that makes a vnet-te container: its name, its role's image and label,
/// its path label, its networks' names (never `host`, `none` or `container:…`), its files
/// under vnet-te's paths, its environment only those files, its sysctls allowed ones.
/// Capabilities are not in the spec: the node grants each role its own.
pub fn check_container_spec(spec: &ContainerSpec) -> Result<(), String> {
    check_name("container", &spec.name)?;
    let images = images_for(spec.role);
    if !images.contains(&spec.image) {
        return Err(format!("image {:?} is not vnet-te's {} image (allowed: {})", spec.image, role_label(spec.role), images.join(", ")));
    }
    let labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    check_labels("container", &spec.name, Some(&labels))?;
    match spec.labels.get(labels::ROLE) {
        Some(r) if r == role_label(spec.role) => {}
        other => return Err(format!("label {} is {other:?}, not {:?} as its role", labels::ROLE, role_label(spec.role))),
    }
    for a in &spec.attachments {
        check_name("network", &a.network)?;
    }
    check_files(&spec.files, FILE_PREFIXES)?;
    check_env(&spec.env)?;
    check_devices(&spec.devices)?;
    crate::node::check_sysctls(&spec.sysctls)?;
    spec.limits.check()
}

/// Only the devices a VPN end needs (the TUN device), nothing else of the node's.
pub fn check_devices(devices: &[String]) -> Result<(), String> {
    for d in devices {
        if !crate::vpn::ALLOWED_DEVICES.contains(&d.as_str()) {
            return Err(format!("device {d:?} is not allowed (allowed: {})", crate::vpn::ALLOWED_DEVICES.join(", ")));
        }
    }
    Ok(())
}

/// Only the unpacking prologue's variables, their paths under [`FILE_PREFIXES`].
fn check_env(env: &[String]) -> Result<(), String> {
    for e in env {
        let (key, value) = e.split_once('=').unwrap_or((e, ""));
        let Some(rest) = key.strip_prefix(FILE_ENV_PREFIX) else {
            return Err(format!("environment variable {key:?} is not allowed (only {FILE_ENV_PREFIX}<n>[_PATH|_MODE])"));
        };
        let (n, suffix) = rest.split_at(rest.bytes().take_while(u8::is_ascii_digit).count());
        match suffix {
            _ if n.is_empty() => return Err(format!("environment variable {key:?} is not allowed")),
            "" => {}
            "_MODE" if !value.is_empty() && value.len() <= 4 && value.bytes().all(|b| (b'0'..=b'7').contains(&b)) => {}
            "_PATH" => check_path(value, FILE_PREFIXES)?,
            _ => return Err(format!("environment variable {key:?} is not allowed (or its value {value:?})")),
        }
    }
    Ok(())
}

/// A network spec that makes a vnet-te network: its name, its path label, a bridge or
/// overlay driver, a bridge named as vnet-te's.
pub fn check_network_spec(spec: &NetworkSpec) -> Result<(), String> {
    check_name("network", &spec.name)?;
    let labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    check_labels("network", &spec.name, Some(&labels))?;
    if spec.driver != "bridge" && spec.driver != "overlay" {
        return Err(format!("network driver {:?} is not allowed (bridge or overlay)", spec.driver));
    }
    if let Some(b) = &spec.bridge_name {
        let plain = b.len() <= 15 && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
        if !b.starts_with(BRIDGE_PREFIX) || !plain {
            return Err(format!("bridge name {b:?} is not vnet-te's ({BRIDGE_PREFIX:?} then at most 15 letters, digits, '-')"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;

    use super::*;
    use crate::node::Attachment;

    fn router() -> ContainerSpec {
        ContainerSpec {
            name: "vte-p-r1".into(),
            hostname: "r1".into(),
            image: router_image(),
            role: ContainerRole::Router,
            attachments: vec![Attachment { network: "vte-p-l1".into(), address: Ipv4Addr::new(10, 0, 0, 2) }],
            files: vec![FileSpec { path: "/etc/frr/frr.conf".into(), mode: 0o600, content: String::new() }],
            env: vec!["VNET_TE_F0_PATH=/etc/vnet-te/boot.sh".into(), "VNET_TE_F0_MODE=755".into(), "VNET_TE_F0=x=y".into()],
            cmd: vec!["/bin/bash".into()],
            labels: BTreeMap::from([(labels::PATH.into(), "p".into()), (labels::ROLE.into(), "router".into())]),
            sysctls: BTreeMap::new(),
            devices: Vec::new(),
            limits: Default::default(),
        }
    }

    #[test]
    fn a_planned_router_passes_and_each_departure_is_refused_with_its_reason() {
        assert_eq!(check_container_spec(&router()), Ok(()));
        let refused = |f: fn(&mut ContainerSpec), want: &str| {
            let mut s = router();
            f(&mut s);
            let e = check_container_spec(&s).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        };
        refused(|s| s.name = "postgres".into(), "not vnet-te's");
        refused(|s| s.image = "alpine:latest".into(), "is not vnet-te's router image");
        refused(|s| s.image = host_image(), "is not vnet-te's router image");
        refused(|s| s.labels.remove(labels::PATH).map(drop).unwrap_or(()), "no vnet-te.path label");
        refused(|s| s.role = ContainerRole::Host, "is not vnet-te's host image");
        refused(|s| s.attachments[0].network = "host".into(), "network \"host\" is not vnet-te's");
        refused(|s| s.attachments[0].network = "container:vte-p-r2".into(), "is not vnet-te's");
        refused(|s| s.files[0].path = "/etc/shadow".into(), "outside vnet-te's paths");
        refused(|s| s.files[0].path = "/etc/frr/../../root/.ssh/authorized_keys".into(), "no '.', '..'");
        refused(|s| s.env.push("LD_PRELOAD=/x.so".into()), "LD_PRELOAD");
        refused(|s| s.env[0] = "VNET_TE_F0_PATH=/usr/bin/ip".into(), "outside vnet-te's paths");
        refused(|s| s.env[1] = "VNET_TE_F0_MODE=4755; rm".into(), "VNET_TE_F0_MODE");
        refused(|s| drop(s.sysctls.insert("kernel.core_pattern".into(), "1".into())), "not allowed");
        refused(|s| s.limits.memory = 0, "memory limit 0 bytes is outside");
        refused(|s| s.limits.pids = 0, "pids limit 0 is outside");
        refused(|s| s.limits.pids = u32::MAX, "is outside 32..=32768");
    }

    #[test]
    fn vyos_routers_take_the_configured_image() {
        let mut s = router();
        s.image = vyos_image();
        assert_eq!(check_container_spec(&s), Ok(()));
    }

    #[test]
    fn paths_stay_where_they_say() {
        for ok in ["/etc/vnet-te/plan.json", "/etc/frr/frr.conf", "/config/scripts/x.script"] {
            assert_eq!(check_path(ok, FILE_PREFIXES), Ok(()), "{ok}");
        }
        for bad in ["/etc/vnet-te/", "/etc/vnet-te//x", "/etc/vnet-te/./x", "/etc/vnet-te/a/../x", "/etc/vnet-te/x\n", "etc/vnet-te/x", "/etc/frrx"] {
            assert!(check_path(bad, FILE_PREFIXES).is_err(), "{bad:?}");
        }
        let f = |p: &str| FileSpec { path: p.into(), mode: 0o644, content: String::new() };
        assert!(check_writable(&[f("/etc/vnet-te/plan.json")]).is_ok());
        assert!(check_writable(&[f("/etc/frr/frr.conf")]).is_err(), "frr.conf changes through apply_frr_config");
    }

    #[test]
    fn networks_are_vnet_tes_bridges_or_overlays() {
        let spec = NetworkSpec {
            name: "vte-p-l1".into(),
            driver: "bridge".into(),
            subnet: "10.0.0.0/30".into(),
            gateway: "10.0.0.1".into(),
            ip_range: "10.0.0.0/30".into(),
            bridge_name: Some("vteab12l1".into()),
            mtu: None,
            labels: BTreeMap::from([(labels::PATH.into(), "p".into())]),
        };
        assert_eq!(check_network_spec(&spec), Ok(()));
        let mut s = spec.clone();
        s.driver = "macvlan".into();
        assert!(check_network_spec(&s).unwrap_err().contains("macvlan"));
        let mut s = spec.clone();
        s.bridge_name = Some("docker0".into());
        assert!(check_network_spec(&s).unwrap_err().contains("docker0"));
        let mut s = spec.clone();
        s.labels.clear();
        assert!(check_network_spec(&s).unwrap_err().contains("no vnet-te.path label"));
        let mut s = spec;
        s.name = "host".into();
        assert!(check_network_spec(&s).is_err());
    }

    #[test]
    fn only_vnet_te_labels_are_searched() {
        assert!(check_label_key(labels::PATH).is_ok());
        assert!(check_label_key("com.docker.compose.project").is_err());
    }
}
