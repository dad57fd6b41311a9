//! Golden tests: every example spec's plan (JSON) and every rendered file, byte for byte;
//! every bad spec's exact error messages. `VNET_TE_UPDATE_GOLDEN=1` rewrites them.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use vnet_te::commands;
use vnet_te::core::plan::{self, Inventory};
use vnet_te::core::{objects, render, spec};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn updating() -> bool {
    std::env::var("VNET_TE_UPDATE_GOLDEN").is_ok_and(|v| v == "1")
}

/// Compares (or rewrites) one golden file; returns a description of a mismatch.
fn check(path: &Path, actual: &str) -> Option<String> {
    if updating() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, actual).unwrap();
        return None;
    }
    match fs::read_to_string(path) {
        Ok(expected) if expected == actual => None,
        Ok(expected) => {
            let line = expected.lines().zip(actual.lines()).position(|(a, b)| a != b);
            Some(format!(
                "{}: differs (first at line {}); run with VNET_TE_UPDATE_GOLDEN=1 and review the diff",
                path.display(),
                line.map(|l| l + 1).unwrap_or(expected.lines().count().min(actual.lines().count()) + 1)
            ))
        }
        Err(_) => Some(format!("{}: missing; run with VNET_TE_UPDATE_GOLDEN=1", path.display())),
    }
}

fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.insert(p);
            }
        }
    }
    out
}

/// The cases: every `paths/*.yaml` on the local node, the `--hops 24` chain, and two
/// cluster placements.
fn cases() -> Vec<(String, spec::PathSpec, Inventory)> {
    let mut cases = Vec::new();
    let mut entries: Vec<PathBuf> =
        fs::read_dir(root().join("paths")).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "yaml")).collect();
    entries.sort();
    assert!(entries.len() >= 4, "expected the example specs under paths/");
    for p in entries {
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        let text = fs::read_to_string(&p).unwrap();
        let read = |name: &str| fs::read_to_string(root().join("paths").join(name)).map_err(|e| e.to_string());
        let s = spec::parse_yaml_with(&p.display().to_string(), &text, &read).unwrap_or_else(|e| panic!("{e}"));
        cases.push((stem, s, Inventory::default()));
    }
    cases.push(("hops-24".into(), spec::chain("chain24", 24).unwrap(), Inventory::default()));
    let three = Inventory { nodes: vec!["node1".into(), "node2".into(), "node3".into()], taken: vec![], interfaces: None };
    let nict = cases.iter().find(|c| c.0 == "nict-24").unwrap().1.clone();
    cases.push(("nict-24-spread-3-nodes".into(), nict.clone(), three.clone()));
    let mut packed = nict;
    packed.placement = spec::Placement::Pack;
    cases.push(("nict-24-pack-3-nodes".into(), packed, three));
    // VyOS renderings of the detour (forced local preference, passwords), EVPN features and
    // announce all (loopback blocks, `ge 32`): the examples with every router VyOS.
    for stem in ["ring-detour", "mesh-detour", "evpn-pair", "ring-announce-all"] {
        let mut s = cases.iter().find(|c| c.0 == stem).unwrap().1.clone();
        for r in &mut s.routers {
            r.kind = spec::RouterKind::Vyos;
        }
        cases.push((format!("{stem}-vyos"), s, Inventory::default()));
    }
    cases
}

#[test]
fn golden_plans_and_rendered_files() {
    let mut failures = Vec::new();
    for (name, s, inv) in cases() {
        let dir = root().join("tests/golden").join(&name);
        let p = plan::build(&s, &inv).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Same input, byte-identical output.
        assert_eq!(commands::plan_json(&p), commands::plan_json(&plan::build(&s, &inv).unwrap()));
        let mut expected_files = BTreeSet::new();
        let plan_path = dir.join("plan.json");
        failures.extend(check(&plan_path, &(commands::plan_json(&p) + "\n")));
        expected_files.insert(plan_path);
        let table_path = dir.join("plan.txt");
        failures.extend(check(&table_path, &p.to_string()));
        expected_files.insert(table_path);
        let mut rendered = render::render(&p).unwrap();
        let objects_path = dir.join("objects.json");
        failures.extend(check(&objects_path, &objects_digest(&p, &rendered)));
        expected_files.insert(objects_path);
        // The tunnel's files as `path render` writes them (the PSK a placeholder).
        if let Some(v) = &p.vpn {
            for (object, files) in vnet_te::core::vpn_render::render(&p, v, vnet_te::core::vpn_render::PSK_PLACEHOLDER) {
                rendered.entry(object).or_default().extend(files);
            }
        }
        for (object, files) in rendered {
            for f in files {
                let path = dir.join(&object).join(&f.name);
                failures.extend(check(&path, &f.content));
                expected_files.insert(path);
            }
        }
        for stale in files_under(&dir).difference(&expected_files) {
            if updating() {
                fs::remove_file(stale).unwrap();
            } else {
                failures.push(format!("{}: no longer rendered; rerun with VNET_TE_UPDATE_GOLDEN=1", stale.display()));
            }
        }
    }
    assert!(failures.is_empty(), "golden mismatches:\n{}", failures.join("\n"));
}

/// What the executor makes of a plan (`core::objects`): every container with its node,
/// image, command, labels, attachments, limits, and its files and environment by path or name and
/// size (their contents are the rendered goldens); every Docker network; every direct link.
/// Nodes get documentation addresses (192.0.2.0/24) as underlay.
fn objects_digest(p: &plan::Plan, rendered: &render::Rendered) -> String {
    use serde_json::json;
    let underlay: std::collections::BTreeMap<String, std::net::Ipv4Addr> =
        p.nodes.iter().enumerate().map(|(i, n)| (n.clone(), std::net::Ipv4Addr::new(192, 0, 2, i as u8 + 1))).collect();
    let waiting = plan::sessions::routers_waiting_for_bgp(p);
    let containers: Vec<_> = objects::container_specs(p, rendered)
        .into_iter()
        .map(|(node, c)| {
            let env: Vec<String> = c
                .env
                .iter()
                .map(|e| match e.split_once('=') {
                    Some((k, v)) if v.len() > 40 => format!("{k}=<{} bytes>", v.len()),
                    _ => e.clone(),
                })
                .collect();
            let cmd: Vec<String> = c.cmd.iter().map(|a| if a.len() > 40 { format!("<{} bytes>", a.len()) } else { a.clone() }).collect();
            json!({
                "node": node, "name": c.name, "hostname": c.hostname, "image": c.image, "role": c.role,
                "cmd": cmd, "env": env, "labels": c.labels, "attachments": c.attachments, "sysctls": c.sysctls, "limits": c.limits,
                "files": c.files.iter().map(|f| format!("{} {:o} <{} bytes>", f.path, f.mode, f.content.len())).collect::<Vec<_>>(),
            })
        })
        .collect();
    let networks: Vec<_> = objects::network_specs(p).into_iter().map(|(nodes, n)| json!({ "nodes": nodes, "network": n })).collect();
    let links: Vec<_> = objects::direct_links(p, &underlay, &waiting).unwrap().into_iter().map(|(node, l)| json!({ "node": node, "link": l })).collect();
    let all = json!({ "containers": containers, "networks": networks, "links": links });
    serde_json::to_string_pretty(&all).unwrap() + "\n"
}

/// Each `tests/errors/<case>.yaml` must be refused with exactly `<case>.expected`.
#[test]
fn golden_errors() {
    let dir = root().join("tests/errors");
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "yaml")).collect();
    cases.sort();
    assert!(cases.len() >= 5, "expected bad specs under tests/errors/");
    let mut failures = Vec::new();
    for case in cases {
        let text = fs::read_to_string(&case).unwrap();
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let message = match spec::parse_yaml(&name, &text) {
            Ok(s) => match plan::build(&s, &Inventory::default()) {
                Ok(_) => {
                    failures.push(format!("{name}: accepted, but it is a bad spec"));
                    continue;
                }
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        failures.extend(check(&case.with_extension("expected"), &(message + "\n")));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
