//! `cluster init|status|rotate`, `node add|list|remove|reissue`.

use super::Output;
use crate::error::exit;
use crate::exec::cluster;

pub use crate::exec::cluster::{AddArgs, InitArgs, RemoveArgs, SshArgs};

pub async fn init(a: InitArgs) -> anyhow::Result<i32> {
    cluster::init(a).await.map(|()| exit::OK)
}

pub async fn add(a: AddArgs) -> anyhow::Result<i32> {
    cluster::add(a).await.map(|()| exit::OK)
}

pub async fn remove(a: RemoveArgs) -> anyhow::Result<i32> {
    cluster::remove(a).await.map(|()| exit::OK)
}

pub async fn reissue(name: &str, ssh: SshArgs) -> anyhow::Result<i32> {
    cluster::reissue(name, ssh).await.map(|()| exit::OK)
}

pub async fn rotate(ssh: SshArgs) -> anyhow::Result<i32> {
    cluster::rotate(ssh).await.map(|()| exit::OK)
}

pub async fn rotate_ca(ssh: SshArgs) -> anyhow::Result<i32> {
    cluster::rotate_ca(ssh).await.map(|()| exit::OK)
}

/// `cluster status` / `node list`: exit 0 when every node answers, 1 otherwise.
pub async fn status(output: Output) -> anyhow::Result<i32> {
    let (_, rows) = cluster::status().await?;
    match output {
        Output::Table => cluster::print_status(&rows),
        Output::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
    }
    Ok(if rows.iter().all(|r| r.agent == "ok") { exit::OK } else { exit::VERIFY_FAILED })
}
