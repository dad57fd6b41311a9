//! `images build`: the router and host images offline, and the agent image.

use std::process::Stdio;

use anyhow::{bail, Context};

use crate::core::kinds::Kind;
use crate::error::exit;
use crate::exec::cluster;

const BUILD_SCRIPT: &str = include_str!("../../../images/build-rootfs.sh");

pub async fn build(force: bool) -> anyhow::Result<i32> {
    for (kind, tag) in [("router", Kind::Frr.image()), ("host", Kind::Host.image())] {
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

const AGENT_DOCKERFILE: &str = include_str!("../../../images/agent/Dockerfile");

/// The agent image (for clusters): the `vnet-te-agent` binary next to this one and the delay
/// line `vnet-te-delay` beside it, on the host image, built through the engine's classic
/// builder (offline: the base is local). Rebuilt when the binaries differ from those in the
/// image (the SHA-256 of both is a label).
async fn build_agent_image(force: bool) -> anyhow::Result<()> {
    use bollard::query_parameters::BuildImageOptionsBuilder;
    use futures_util::StreamExt;
    use sha2::Digest;

    let tag = cluster::agent_image();
    let bin = match std::env::var_os("VNET_TE_AGENT_BINARY") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::env::current_exe().context("locating this binary")?.with_file_name("vnet-te-agent"),
    };
    let delay_bin = match std::env::var_os(vnet_te_agent::docker::delay::BINARY_ENV) {
        Some(p) if !p.is_empty() => std::path::PathBuf::from(p),
        _ => bin.with_file_name("vnet-te-delay"),
    };
    let (Ok(binary), Ok(delay)) = (std::fs::read(&bin), std::fs::read(&delay_bin)) else {
        let missing = if bin.is_file() { &delay_bin } else { &bin };
        eprintln!(
            "images: {tag} not built: {} not found (`cargo build --release` builds it; only clusters need it)",
            missing.display()
        );
        return Ok(());
    };
    let mut hasher = sha2::Sha256::new();
    for b in [&binary, &delay] {
        hasher.update(sha2::Sha256::digest(b));
    }
    let digest = format!("{:x}", hasher.finalize());
    let local = vnet_te_agent::docker::LocalNode::connect(crate::core::plan::LOCAL_NODE).await?;
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
        ("vnet-te-delay", &delay[..], 0o755),
    ])
    .context("packing the agent build context")?;
    let args = std::collections::HashMap::from([("BASE".to_string(), Kind::Host.image())]);
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

