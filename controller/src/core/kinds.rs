//! One place per container kind (FRR router, VyOS router, experiment host): its image, its
//! boot command, the files it gets (template, file name, path, mode) and how they travel.
//! Capabilities are not here: the agent grants them by role and trusts no caller for them.

use vnet_te_agent::node::ContainerRole;
use vnet_te_agent::scope;

use crate::core::spec::RouterKind;

/// Where a container's boot script and setup script live.
pub const BOOT_PATH: &str = "/etc/vnet-te/boot.sh";
pub const SETUP_PATH: &str = "/etc/vnet-te/setup.sh";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Frr,
    Vyos,
    Host,
}

/// One file a kind's containers get: rendered from `template`, written as `name` in
/// `path render`'s output and at `path` in the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSlot {
    pub template: &'static str,
    pub name: &'static str,
    pub path: &'static str,
    pub mode: u32,
    /// Carries secrets (BGP passwords): written for its owner only outside a container.
    pub secret: bool,
}

const fn slot(template: &'static str, name: &'static str, path: &'static str, mode: u32) -> FileSlot {
    FileSlot { template, name, path, mode, secret: false }
}

const fn secret(template: &'static str, name: &'static str, path: &'static str, mode: u32) -> FileSlot {
    FileSlot { template, name, path, mode, secret: true }
}

/// `frr.conf` first: `path update` applies it alone.
const FRR_FILES: &[FileSlot] = &[
    secret("frr.conf", "frr.conf", "/etc/frr/frr.conf", 0o644),
    slot("zebra.conf", "zebra.conf", "/etc/frr/zebra.conf", 0o644),
    slot("daemons", "daemons", "/etc/frr/daemons", 0o644),
    slot("vtysh.conf", "vtysh.conf", "/etc/frr/vtysh.conf", 0o644),
    slot("router-boot.sh", "boot.sh", BOOT_PATH, 0o755),
];
/// FRR edge routers of an EVPN L2VPN set their VXLAN bridge up before FRR starts.
pub const FRR_VTEP_SETUP: FileSlot = slot("router-setup.sh", "setup.sh", SETUP_PATH, 0o755);
const VYOS_FILES: &[FileSlot] = &[
    secret("vyos.commands", "vyos.commands", "/config/vnet-te.commands", 0o644),
    slot(
        "vyos-postconfig.script",
        "vyos-postconfig-bootup.script",
        "/config/scripts/vyos-postconfig-bootup.script",
        0o755,
    ),
];
const HOST_FILES: &[FileSlot] = &[
    slot("host-setup.sh", "setup.sh", SETUP_PATH, 0o755),
    slot("host-boot.sh", "boot.sh", BOOT_PATH, 0o755),
];

impl Kind {
    pub fn of(r: RouterKind) -> Kind {
        match r {
            RouterKind::Frr => Kind::Frr,
            RouterKind::Vyos => Kind::Vyos,
        }
    }

    /// The image reference, versioned with vnet-te (VyOS: supplied by the user).
    pub fn image(self) -> String {
        match self {
            Kind::Frr => scope::router_image(),
            Kind::Host => scope::host_image(),
            Kind::Vyos => vyos_image(),
        }
    }

    pub fn boot_cmd(self) -> Vec<String> {
        match self {
            Kind::Frr | Kind::Host => vec!["/bin/bash".to_string(), BOOT_PATH.to_string()],
            Kind::Vyos => vec!["/sbin/init".to_string()],
        }
    }

    /// Whether the files may travel in the create call's environment (the image has bash
    /// for the unpacking prologue and nothing else needs them before boot).
    pub fn files_in_env(self) -> bool {
        self == Kind::Frr
    }

    pub fn role(self) -> ContainerRole {
        match self {
            Kind::Frr | Kind::Vyos => ContainerRole::Router,
            Kind::Host => ContainerRole::Host,
        }
    }

    pub fn files(self) -> &'static [FileSlot] {
        match self {
            Kind::Frr => FRR_FILES,
            Kind::Vyos => VYOS_FILES,
            Kind::Host => HOST_FILES,
        }
    }
}

/// VyOS images cannot be built offline; users supply one (`docker load`) under
/// `scope::DEFAULT_VYOS_IMAGE` or point VNET_TE_VYOS_IMAGE at theirs. The one environment read
/// in `core`: a setting of the machine, like the version, not state. Nodes accept the same
/// name (`scope`), so a node's agent is given it too.
pub fn vyos_image() -> String {
    scope::vyos_image()
}
